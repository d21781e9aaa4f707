"""The socket transport and the protocols it drives.

Chapter "Transports, protocols and streams".

Tests that pin down asyncio's behaviour run on the stdlib loop too, so a
difference between the loops shows up as a failure on one of them.
"""

from __future__ import annotations

import asyncio
import contextvars
import errno
import gc
import socket
import struct
import sys

import pytest

from io_helpers import IMPLS, resource_warnings, run


class Recorder(asyncio.Protocol):
    """Records every call the transport makes, in order."""

    def __init__(self, keep_open_on_eof=False):
        self.events = []
        self.data = bytearray()
        self.keep_open_on_eof = keep_open_on_eof
        self.transport = None
        loop = asyncio.get_running_loop()
        self.lost = loop.create_future()
        self.got_eof = loop.create_future()

    def connection_made(self, transport):
        self.transport = transport
        self.events.append("made")

    def data_received(self, data):
        self.data += data

    def eof_received(self):
        self.events.append("eof")
        self.got_eof.set_result(None)
        return self.keep_open_on_eof

    def pause_writing(self):
        self.events.append("pause_writing")

    def resume_writing(self):
        self.events.append("resume_writing")

    def connection_lost(self, exc):
        self.events.append(("lost", type(exc).__name__ if exc else None))
        self.lost.set_result(exc)


async def connected_pair(protocol_factory=Recorder):
    """A transport on one end of a socket pair; the other end stays a socket."""
    loop = asyncio.get_running_loop()
    ours, theirs = socket.socketpair()
    theirs.setblocking(False)
    transport, protocol = await loop.connect_accepted_socket(protocol_factory, ours)
    return transport, protocol, theirs


def test_extra_info(any_impl):
    async def main():
        loop = asyncio.get_running_loop()
        server = await loop.create_server(Recorder, "127.0.0.1", 0)
        address = server.sockets[0].getsockname()
        transport, protocol = await loop.create_connection(Recorder, *address)
        info = (
            transport.get_extra_info("peername") == address,
            transport.get_extra_info("sockname")[0] == "127.0.0.1",
            transport.get_extra_info("socket").fileno() >= 0,
            transport.get_extra_info("nothing", "default"),
            transport.get_protocol() is protocol,
            transport.is_closing(),
            transport.can_write_eof(),
        )
        transport.close()
        await protocol.lost
        server.close()
        await server.wait_closed()
        return info

    assert run(any_impl, main()) == (True, True, True, "default", True, False, True)


def test_peer_reset_reaches_connection_lost(any_impl):
    async def main():
        loop = asyncio.get_running_loop()
        made = []
        server = await loop.create_server(
            lambda: made.append(Recorder()) or made[-1], "127.0.0.1", 0
        )
        peer = socket.create_connection(server.sockets[0].getsockname())
        while not made or not made[0].events:
            await asyncio.sleep(0.001)
        protocol = made[0]
        # SO_LINGER with a zero timeout makes close() send a RST.
        peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        peer.close()
        exc = await protocol.lost
        closing = protocol.transport.is_closing()
        server.close()
        await server.wait_closed()
        return type(exc), protocol.events, closing

    exc_type, events, closing = run(any_impl, main())
    assert exc_type is ConnectionResetError
    assert events == ["made", ("lost", "ConnectionResetError")]
    assert closing


def test_write_after_close_follows_asyncio(any_impl):
    async def main():
        transport, protocol, theirs = await connected_pair()
        transport.write(b"before")
        transport.close()
        transport.close()  # twice is fine
        transport.write(b"after")  # ignored, as asyncio does
        for _ in range(6):
            transport.write(b"more")
        await protocol.lost
        received = theirs.recv(100)
        theirs.close()
        return received, protocol.events

    assert run(any_impl, main()) == (b"before", ["made", ("lost", None)])


def test_write_bad_input(any_impl):
    async def main():
        transport, protocol, theirs = await connected_pair()
        with pytest.raises(TypeError) as info:
            transport.write("text")
        transport.write(b"")  # nothing to do
        transport.write_eof()
        with pytest.raises(RuntimeError, match="after write_eof"):
            transport.write(b"late")
        transport.close()
        await protocol.lost
        theirs.close()
        return str(info.value)

    # 3.14 names the three types it takes.
    if sys.version_info >= (3, 14):
        kinds = "a bytes, bytearray, or memoryview object"
    else:
        kinds = "a bytes-like object"
    assert run(any_impl, main()) == f"data argument must be {kinds}, not 'str'"


def test_writelines_after_write_eof(any_impl):
    async def main():
        transport, protocol, theirs = await connected_pair()
        transport.writelines([b"one ", bytearray(b"two"), memoryview(b"!")])
        transport.write_eof()
        with pytest.raises(RuntimeError) as info:
            transport.writelines([b"late"])
        transport.close()
        await protocol.lost
        received = b""
        while chunk := theirs.recv(100):
            received += chunk
        theirs.close()
        return received, str(info.value)

    # From 3.12 on, asyncio's writelines() checks write_eof() in its own words.
    method = "writelines" if sys.version_info >= (3, 12) else "write"
    assert run(any_impl, main()) == (
        b"one two!",
        f"Cannot call {method}() after write_eof()",
    )


@pytest.mark.parametrize(
    "fails, message",
    [
        ("data_received", "Fatal error: protocol.data_received() call failed."),
        ("eof_received", "Fatal error: protocol.eof_received() call failed."),
        ("get_buffer", "Fatal error: protocol.get_buffer() call failed."),
        ("empty_buffer", "Fatal error: protocol.get_buffer() call failed."),
        ("buffer_updated", "Fatal error: protocol.buffer_updated() call failed."),
    ],
)
def test_protocol_errors_have_asyncio_messages(any_impl, fails, message):
    class Plain(asyncio.Protocol):
        def data_received(self, data):
            raise ValueError(fails)

        def eof_received(self):
            raise ValueError(fails)

    class Buffered(asyncio.BufferedProtocol):
        def get_buffer(self, sizehint):
            if fails == "get_buffer":
                raise ValueError(fails)
            return bytearray(0 if fails == "empty_buffer" else 100)

        def buffer_updated(self, nbytes):
            raise ValueError(fails)

    async def main():
        loop = asyncio.get_running_loop()
        said = []
        loop.set_exception_handler(lambda loop, context: said.append(context))
        lost = loop.create_future()
        protocol = Plain() if fails.endswith("_received") else Buffered()
        protocol.connection_lost = lost.set_result
        ours, theirs = socket.socketpair()
        await loop.create_connection(lambda: protocol, sock=ours)
        if fails == "eof_received":
            theirs.shutdown(socket.SHUT_WR)
        else:
            theirs.send(b"data")
        exc = await lost
        theirs.close()
        return [(c["message"], type(c["exception"])) for c in said], type(exc)

    kind = RuntimeError if fails == "empty_buffer" else ValueError
    assert run(any_impl, main()) == ([(message, kind)], kind)


def test_half_close_with_write_eof(any_impl):
    async def main():
        loop = asyncio.get_running_loop()

        class Answer(asyncio.Protocol):
            def connection_made(self, transport):
                self.transport, self.request = transport, b""

            def data_received(self, data):
                self.request += data

            def eof_received(self):
                # The client finished its request; we may still write.
                self.transport.write(b"got " + self.request)
                self.transport.close()
                return True

        server = await loop.create_server(Answer, "127.0.0.1", 0)
        transport, client = await loop.create_connection(
            Recorder, *server.sockets[0].getsockname()
        )
        transport.write(b"part one, ")
        transport.write(b"part two")
        transport.write_eof()
        transport.write_eof()  # twice is fine
        await client.lost
        server.close()
        await server.wait_closed()
        return bytes(client.data), client.events

    data, events = run(any_impl, main())
    assert data == b"got part one, part two"
    assert events == ["made", "eof", ("lost", None)]


def test_eof_received_true_keeps_the_transport_open(any_impl):
    async def main():
        transport, protocol, theirs = await connected_pair(
            lambda: Recorder(keep_open_on_eof=True)
        )
        theirs.shutdown(socket.SHUT_WR)
        await protocol.got_eof
        transport.write(b"still writing")
        await asyncio.sleep(0)
        received = b""
        while len(received) < 13:
            received += await asyncio.get_running_loop().sock_recv(theirs, 100)
        transport.close()
        await protocol.lost
        theirs.close()
        return received, protocol.events

    assert run(any_impl, main()) == (b"still writing", ["made", "eof", ("lost", None)])


def test_eof_kept_open_is_delivered_once(any_impl):
    # After eof_received() returns True the reader is removed with no flag:
    # is_reading() stays True and resume_reading() does not re-register it.
    async def main():
        transport, protocol, theirs = await connected_pair(
            lambda: Recorder(keep_open_on_eof=True)
        )
        theirs.shutdown(socket.SHUT_WR)
        await protocol.got_eof
        reading = transport.is_reading()
        transport.resume_reading()
        for _ in range(5):
            await asyncio.sleep(0)
        transport.close()
        await protocol.lost
        theirs.close()
        return reading, protocol.events

    assert run(any_impl, main()) == (True, ["made", "eof", ("lost", None)])


def test_water_marks_pause_and_resume_writing(any_impl):
    async def main():
        loop = asyncio.get_running_loop()
        transport, protocol, theirs = await connected_pair()
        transport.set_write_buffer_limits(high=1000, low=100)
        assert transport.get_write_buffer_limits() == (100, 1000)
        while transport.get_write_buffer_size() <= 1000:
            transport.write(b"x" * 10_000)  # the kernel's buffer fills first
        assert protocol.events == ["made", "pause_writing"]
        buffered = transport.get_write_buffer_size()
        total = 0
        while "resume_writing" not in protocol.events:
            total += len(await loop.sock_recv(theirs, 1 << 20))
        assert transport.get_write_buffer_size() <= 100
        transport.close()
        while chunk := await loop.sock_recv(theirs, 1 << 20):
            total += len(chunk)
        await protocol.lost
        theirs.close()
        return protocol.events, buffered > 1000, total % 10_000

    assert run(any_impl, main()) == (
        ["made", "pause_writing", "resume_writing", ("lost", None)],
        True,
        0,
    )


def test_set_write_buffer_limits_bad_input(any_impl):
    async def main():
        transport, protocol, theirs = await connected_pair()
        with pytest.raises(ValueError):
            transport.set_write_buffer_limits(high=10, low=20)
        transport.set_write_buffer_limits(high=400)
        assert transport.get_write_buffer_limits() == (100, 400)
        transport.close()
        await protocol.lost
        theirs.close()

    run(any_impl, main())


def test_pause_and_resume_reading(any_impl):
    async def main():
        transport, protocol, theirs = await connected_pair()
        transport.pause_reading()
        assert not transport.is_reading()
        transport.pause_reading()  # twice is fine
        theirs.send(b"waiting")
        # A round trip through the loop that must not deliver the data.
        for _ in range(5):
            await asyncio.sleep(0)
        assert protocol.data == b""
        transport.resume_reading()
        assert transport.is_reading()
        while protocol.data != b"waiting":
            await asyncio.sleep(0.001)
        transport.close()
        assert not transport.is_reading()
        await protocol.lost
        theirs.close()
        return bytes(protocol.data)

    assert run(any_impl, main()) == b"waiting"


def test_abort_drops_the_buffer(any_impl):
    async def main():
        transport, protocol, theirs = await connected_pair()
        transport.set_write_buffer_limits(high=10**9)
        while not transport.get_write_buffer_size():
            transport.write(b"x" * 65536)
        transport.abort()
        assert transport.is_closing()
        assert await protocol.lost is None
        theirs.close()
        return transport.get_write_buffer_size(), protocol.events

    assert run(any_impl, main()) == (0, ["made", ("lost", None)])


def test_buffered_protocol(any_impl):
    class Buffered(asyncio.BufferedProtocol):
        def __init__(self):
            self.buffer = bytearray(4)
            self.received = bytearray()
            self.lost = asyncio.get_running_loop().create_future()

        def get_buffer(self, sizehint):
            return self.buffer

        def buffer_updated(self, nbytes):
            self.received += self.buffer[:nbytes]

        def eof_received(self):
            return False

        def connection_lost(self, exc):
            self.lost.set_result(exc)

    async def main():
        transport, protocol, theirs = await connected_pair(Buffered)
        theirs.send(b"chunked into fours")
        theirs.shutdown(socket.SHUT_WR)
        await protocol.lost
        theirs.close()
        return bytes(protocol.received)

    assert run(any_impl, main()) == b"chunked into fours"


def test_error_in_data_received_is_reported_and_closes(any_impl):
    async def main():
        loop = asyncio.get_running_loop()
        contexts = []
        loop.set_exception_handler(lambda loop, context: contexts.append(context))

        class Broken(Recorder):
            def data_received(self, data):
                raise ZeroDivisionError("bug in the protocol")

        transport, protocol, theirs = await connected_pair(Broken)
        theirs.send(b"boom")
        exc = await protocol.lost
        theirs.close()
        return type(exc), [type(c["exception"]) for c in contexts]

    assert run(any_impl, main()) == (ZeroDivisionError, [ZeroDivisionError])


@pytest.mark.parametrize("impl", [*IMPLS, "epoll+ctask"])
def test_write_after_a_buffered_close_is_ignored(impl):
    # Where we differ from asyncio on purpose: asyncio's own transport (3.11 to
    # 3.13) fails here with an AttributeError inside write(), because its
    # socket is gone. Ours ignores the write, as it ignores any write after
    # connection_lost().
    async def main():
        loop = asyncio.get_running_loop()
        contexts = []
        loop.set_exception_handler(lambda loop, context: contexts.append(context))
        transport, protocol, theirs = await connected_pair()
        transport.set_write_buffer_limits(high=10**9)
        sent = 0
        while not transport.get_write_buffer_size():
            transport.write(b"x" * 65536)
            sent += 65536
        transport.close()  # with bytes still buffered: they go out first
        received = 0
        while chunk := await loop.sock_recv(theirs, 1 << 20):
            received += len(chunk)
        await protocol.lost
        transport.write(b"late")  # after connection_lost: ignored
        theirs.close()
        return received == sent, protocol.events, contexts

    assert run(impl, main()) == (True, ["made", ("lost", None)], [])


# ---- nothing leaks when a connection ends early ------------------------------
# Each scenario runs inside resource_warnings(): a socket or transport left
# open is found by the garbage collector and reported as "unclosed ...".


class Quiet(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport


def test_failing_protocol_factory_closes_the_socket(impl):
    # create_connection made the socket; its protocol factory raised before
    # any transport took the socket over. (asyncio leaks it before 3.14.)
    async def main():
        server = await asyncio.get_running_loop().create_server(Quiet, "127.0.0.1", 0)
        address = server.sockets[0].getsockname()

        def failing():
            raise ZeroDivisionError

        with pytest.raises(ZeroDivisionError):
            await asyncio.get_running_loop().create_connection(failing, *address)
        a, b = socket.socketpair()
        with pytest.raises(ZeroDivisionError):
            await asyncio.get_running_loop().connect_accepted_socket(failing, a)
        b.close()
        server.close()
        await asyncio.sleep(0.01)
        return a.fileno()

    with resource_warnings() as caught:
        assert run(impl, main()) == -1
    assert caught.messages == []


def test_server_protocol_factory_that_raises(impl):
    # Ours closes the accepted socket, reports the error and goes on serving.
    # (asyncio reports it in debug mode only, and leaves the socket to the
    # garbage collector: "unclosed socket".)
    async def main():
        loop = asyncio.get_running_loop()
        said = []
        loop.set_exception_handler(lambda loop, context: said.append(context))
        made = []

        def factory():
            made.append(None)
            if len(made) == 1:
                raise ZeroDivisionError
            return Recorder()

        server = await loop.create_server(factory, "127.0.0.1", 0)
        address = server.sockets[0].getsockname()
        refused = socket.socket()
        refused.setblocking(False)
        await loop.sock_connect(refused, address)
        first = await loop.sock_recv(refused, 10)  # b"": the server closed it
        refused.close()
        transport, _ = await loop.create_connection(Quiet, *address)
        while len(made) < 2:
            await asyncio.sleep(0)
        transport.close()
        server.close()
        await server.wait_closed()
        return first, [(c["message"], type(c["exception"])) for c in said]

    with resource_warnings() as caught:
        first, reports = run(impl, main())
    assert first == b""
    assert reports == [("Error in protocol factory", ZeroDivisionError)]
    assert caught.messages == []


def test_server_makes_the_protocol_in_the_accept_callback(any_impl):
    # Ours makes the protocol and the transport in the accept callback; asyncio
    # starts a task per connection for it, so everything there is an
    # iteration later. A call_soon chain counts the iterations.
    async def main():
        loop = asyncio.get_running_loop()
        iterations, log = [0], []

        def tick():
            iterations[0] += 1
            if iterations[0] < 20:
                loop.call_soon(tick)

        class Logged(asyncio.Protocol):
            def __init__(self):
                log.append(("factory", iterations[0]))

            def connection_made(self, transport):
                log.append(("made", iterations[0]))

        server = await loop.create_server(Logged, "127.0.0.1", 0)
        loop.call_soon(tick)
        client = socket.socket()
        client.setblocking(False)
        await loop.sock_connect(client, server.sockets[0].getsockname())
        while iterations[0] < 20:
            await asyncio.sleep(0)
        client.close()
        server.close()
        await server.wait_closed()
        return log

    first = 2 if any_impl == "stdlib" else 1
    assert run(any_impl, main()) == [("factory", first), ("made", first + 1)]


@pytest.mark.parametrize("when", ["resolved", "connecting", "made"])
def test_cancelled_create_connection_leaks_nothing(any_impl, when):
    async def main():
        loop = asyncio.get_running_loop()
        accepted = []
        server = await loop.create_server(
            lambda: accepted.append(Recorder()) or accepted[-1], "127.0.0.1", 0
        )
        address = server.sockets[0].getsockname()
        task = asyncio.ensure_future(loop.create_connection(Quiet, *address))
        for _ in range({"resolved": 0, "connecting": 1, "made": 2}[when]):
            await asyncio.sleep(0)
        task.cancel()
        try:
            transport, _ = await task
        except asyncio.CancelledError:
            pass
        else:
            transport.close()
        await asyncio.sleep(0.01)
        server.close()
        for protocol in accepted:  # the server side sees the client go
            await asyncio.wait_for(protocol.lost, 2)

    with resource_warnings() as caught:
        run(any_impl, main())
    assert caught.messages == []


def test_connection_made_raising_leaks_nothing(any_impl):
    # The server's protocol fails in connection_made(): the loop reports it,
    # and the connection still ends cleanly once the client closes.
    class Failing(asyncio.Protocol):
        def connection_made(self, transport):
            raise ZeroDivisionError

    async def main():
        loop = asyncio.get_running_loop()
        reported = []
        loop.set_exception_handler(lambda loop, context: reported.append(context))
        server = await loop.create_server(Failing, "127.0.0.1", 0)
        transport, protocol = await loop.create_connection(
            Recorder, *server.sockets[0].getsockname()
        )
        await asyncio.sleep(0.01)
        transport.close()
        await protocol.lost
        server.close()
        await asyncio.sleep(0.01)
        return [type(c.get("exception")).__name__ for c in reported]

    with resource_warnings() as caught:
        assert run(any_impl, main()) == ["ZeroDivisionError"]
    assert caught.messages == []


@pytest.mark.parametrize("how", ["abort", "close"])
def test_server_close_with_open_transports(any_impl, how):
    async def main():
        loop = asyncio.get_running_loop()
        accepted = []
        server = await loop.create_server(
            lambda: accepted.append(Recorder()) or accepted[-1], "127.0.0.1", 0
        )
        clients = [
            await loop.create_connection(Recorder, *server.sockets[0].getsockname())
            for _ in range(3)
        ]
        await asyncio.sleep(0.01)
        server.close()
        for transport, _ in clients:
            getattr(transport, how)()
        await asyncio.wait_for(server.wait_closed(), 2)
        await asyncio.gather(*(protocol.lost for protocol in accepted))
        await asyncio.gather(*(protocol.lost for _, protocol in clients))
        return len(accepted), server.sockets

    with resource_warnings() as caught:
        assert run(any_impl, main()) == (3, ())
    assert caught.messages == []


def test_sock_connect_cancelled_leaves_the_socket_to_its_owner(any_impl):
    async def main():
        loop = asyncio.get_running_loop()
        with socket.socket() as listener:
            listener.bind(("127.0.0.1", 0))
            # Why: with a backlog of 0 the kernel completes one connection and
            # lets later ones wait for ever, so the next connect stays pending.
            listener.listen(0)
            fillers = [socket.socket() for _ in range(2)]
            for filler in fillers:
                filler.setblocking(False)
                filler.connect_ex(listener.getsockname())
            with socket.socket() as sock:
                sock.setblocking(False)
                task = asyncio.ensure_future(
                    loop.sock_connect(sock, listener.getsockname())
                )
                await asyncio.sleep(0.01)
                pending = not task.done()
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
                # The loop forgot the socket: it may be registered again.
                loop.add_writer(sock, print)
                removed = loop.remove_writer(sock)
            for filler in fillers:
                filler.close()
        return pending, removed

    with resource_warnings() as caught:
        assert run(any_impl, main()) == (True, True)
    assert caught.messages == []


def test_abandoned_server_transport_warns_unclosed(any_impl):
    # A server-side connection whose protocol stops reading and then lets go
    # of its transport: nothing holds the transport any more, not even its
    # server, so it is collected and warns, as on asyncio.
    held = []

    class Abandoning(asyncio.Protocol):
        def connection_made(self, transport):
            transport.pause_reading()
            held.append(transport)

    async def main():
        loop = asyncio.get_running_loop()
        server = await loop.create_server(Abandoning, "127.0.0.1", 0)
        transport, protocol = await loop.create_connection(
            Quiet, *server.sockets[0].getsockname()
        )
        while not held:
            await asyncio.sleep(0)
        with resource_warnings() as caught:
            held.clear()  # the server is still open and holds nothing either
        transport.close()
        server.close()
        await asyncio.sleep(0)
        return caught.messages

    messages = run(any_impl, main())
    assert [m.split(" ")[:2] for m in messages if "transport" in m] == [
        ["unclosed", "transport"]
    ]


def test_connection_callbacks_keep_their_own_context(any_impl):
    # 3.15 (gh-140947): a connection's callbacks run in a context of its own,
    # so a task that calls resume_reading() no longer lends them its context.
    var = contextvars.ContextVar("var", default="unset")

    async def main():
        loop = asyncio.get_running_loop()
        seen = []
        resumed = asyncio.Event()
        lost = loop.create_future()

        class Pausing(asyncio.Protocol):
            def connection_made(self, transport):
                self.transport = transport

            def data_received(self, data):
                seen.append(var.get())
                self.transport.pause_reading()
                loop.create_task(self.resume())

            async def resume(self):
                var.set("the task's")
                self.transport.resume_reading()
                resumed.set()

            def connection_lost(self, exc):
                seen.append(var.get())
                lost.set_result(None)

        server = await loop.create_server(Pausing, "127.0.0.1", 0)
        reader, writer = await asyncio.open_connection(*server.sockets[0].getsockname())
        writer.write(b"one")
        await resumed.wait()
        writer.write(b"two")
        await writer.drain()
        writer.close()
        await lost
        await writer.wait_closed()
        server.close()
        return seen

    later = "unset" if sys.version_info >= (3, 15) else "the task's"
    assert run(any_impl, main()) == ["unset", later, later]


def test_sockets_are_shown_as_transport_sockets(any_impl):
    # As asyncio: get_extra_info("socket") and Server.sockets give a
    # TransportSocket, a view without the calls that would upset the loop.
    async def main():
        loop = asyncio.get_running_loop()
        accepted = []
        server = await loop.create_server(
            lambda: accepted.append(Recorder()) or accepted[-1], "127.0.0.1", 0
        )
        listening = server.sockets[0]
        transport, _ = await loop.create_connection(Quiet, *listening.getsockname())
        sock = transport.get_extra_info("socket")
        facts = [
            type(listening).__name__,
            type(sock).__name__,
            sock.getpeername() == listening.getsockname(),
            sock.fileno() == transport.get_extra_info("socket").fileno() >= 0,
        ]
        transport.close()
        server.close()
        await accepted[0].lost  # the server side has seen the client go
        return facts

    assert run(any_impl, main()) == ["TransportSocket", "TransportSocket", True, True]


def test_server_has_asyncios_tls_attributes(any_impl):
    # Libraries read asyncio's private Server attributes: websockets' test
    # helpers pick ws:// or wss:// by server._ssl_context.
    async def main():
        server = await asyncio.get_running_loop().create_server(Quiet, "127.0.0.1", 0)
        async with server:
            return [
                server._ssl_context,
                server._ssl_handshake_timeout,
                server._ssl_shutdown_timeout,
            ]

    assert run(any_impl, main()) == [None, None, None]


def test_refused_call_closes_the_socket_it_was_given(impl):
    # On asyncio the transport or server would own sock; UnixEventLoop refuses TLS and
    # UDP, so it closes sock rather than leave it for the garbage collector to warn.
    import ssl

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)

    async def main():
        loop = asyncio.get_running_loop()
        listening = socket.create_server(("127.0.0.1", 0))
        unix_listening = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        left, right = socket.socketpair()
        unix_left, unix_right = socket.socketpair(socket.AF_UNIX)
        calls = [
            (loop.create_server, listening),
            (loop.create_unix_server, unix_listening),
            (loop.connect_accepted_socket, left),
            (loop.create_connection, right),
            (loop.create_unix_connection, unix_left),
        ]
        closed = []
        for method, sock in calls:
            with pytest.raises(NotImplementedError):
                await method(Quiet, sock=sock, ssl=context)
            closed.append(sock.fileno() == -1)
        unix_right.close()
        datagram = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        with pytest.raises(NotImplementedError):
            await loop.create_datagram_endpoint(asyncio.DatagramProtocol, sock=datagram)
        closed.append(datagram.fileno() == -1)
        return closed

    # Chapter "Transports, protocols and streams"'s loop; the package's loop has them.
    from asynciodepth.unix_events import UnixEventLoop

    factory = lambda: UnixEventLoop(poller=impl)  # noqa: E731
    with resource_warnings() as caught, asyncio.Runner(loop_factory=factory) as runner:
        assert runner.run(asyncio.wait_for(main(), 10)) == [True] * 6
    assert caught.messages == []


class _Exhausted(socket.socket):
    """A listening socket whose accept() fails as if the process had no fds left."""

    accepts = 0

    def accept(self):
        type(self).accepts += 1
        raise OSError(errno.EMFILE, "Too many open files")


def test_accept_out_of_file_descriptors_backs_off(any_impl):
    # EMFILE leaves the listening socket readable: a level-triggered loop that
    # kept watching it would call accept() on every iteration, for ever. asyncio
    # reports the error, stops watching and retries a second later. Its accept loop
    # goes on up to the backlog first (one report per failed accept); ours stops
    # at the first failure.
    async def main():
        _Exhausted.accepts = 0
        loop = asyncio.get_running_loop()
        messages = []
        loop.set_exception_handler(lambda loop, ctx: messages.append(ctx["message"]))
        listener = _Exhausted(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind(("127.0.0.1", 0))
        server = await loop.create_server(Quiet, sock=listener, backlog=10)
        with socket.create_connection(listener.getsockname()):
            await asyncio.sleep(0.2)
        server.close()
        await server.wait_closed()
        return _Exhausted.accepts, set(messages)

    accepts, messages = run(any_impl, main())
    assert messages == {"socket.accept() out of system resource"}
    # asyncio 3.14 tries backlog + 1 times.
    assert accepts in ((10, 11) if any_impl == "stdlib" else (1,))


async def refused_with_all_errors() -> list[str]:
    """Connect with all_errors=True to a port nobody listens on; name the errors."""
    loop = asyncio.get_running_loop()
    with socket.create_server(("127.0.0.1", 0)) as listening:
        port = listening.getsockname()[1]
    with pytest.raises(ExceptionGroup) as caught:
        await loop.create_connection(Quiet, "127.0.0.1", port, all_errors=True)
    return [type(e).__name__ for e in caught.value.exceptions]


@pytest.mark.skipif(
    sys.version_info < (3, 12), reason="asyncio's all_errors= is 3.12's"
)
def test_create_connection_all_errors(any_impl):
    # all_errors=True (3.12): every failed attempt, in an ExceptionGroup; ours
    # takes it on every version, this test runs it where asyncio has it too.
    assert run(any_impl, refused_with_all_errors()) == ["ConnectionRefusedError"]


def test_create_connection_all_errors_on_every_version(impl):
    assert run(impl, refused_with_all_errors()) == ["ConnectionRefusedError"]
