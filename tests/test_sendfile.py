"""sock_sendfile() and sendfile() (book/08f_sendfile.ipynb), on asyncio's loop and ours.

Every test runs on ``stdlib`` (asyncio's own loop: the behaviour to match), on
SendfileEventLoop with each poller, and with the book's Python Task.
"""

from __future__ import annotations

import asyncio
import io
import os
import socket
import ssl
import sys
from asyncio import constants

import pytest
from io_helpers import open_fds

from asynciodepth.sendfile import SendfileEventLoop

LOOPS = ["stdlib", "epoll", "selectors", "epoll+pytask"]
DATA = b"Hello, world!\n" * 30_000  # 420 kB: more than a loopback buffer takes
SEEKS_ALWAYS = sys.version_info >= (3, 14, 6)  # gh-150107, in 3.14.6


def new_loop(name: str) -> asyncio.AbstractEventLoop:
    if name == "stdlib":
        return asyncio.new_event_loop()
    if name == "epoll+pytask":
        return SendfileEventLoop(poller="epoll", python_tasks=True)
    return SendfileEventLoop(poller=name)


def run(name: str, main, timeout: float = 20.0):
    async def bounded():
        async with asyncio.timeout(timeout):
            return await main

    with asyncio.Runner(loop_factory=lambda: new_loop(name)) as runner:
        return runner.run(bounded())


@pytest.fixture(params=LOOPS)
def impl(request) -> str:
    return request.param


@pytest.fixture
def path(tmp_path):
    p = tmp_path / "data.bin"
    p.write_bytes(DATA)
    return p


@pytest.fixture
def big(tmp_path):
    """8 MiB: more than a peer that does not read lets through."""
    p = tmp_path / "big.bin"
    p.write_bytes(DATA * 20)
    return p


async def receive_all(sock: socket.socket) -> bytes:
    loop, chunks = asyncio.get_running_loop(), []
    while chunk := await loop.sock_recv(sock, 65536):
        chunks.append(chunk)
    return b"".join(chunks)


async def connected_pair() -> tuple[socket.socket, socket.socket]:
    loop = asyncio.get_running_loop()
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.setblocking(False)
        client = socket.socket()
        client.setblocking(False)
        accepting = asyncio.ensure_future(loop.sock_accept(listener))
        await loop.sock_connect(client, listener.getsockname())
        conn, _ = await accepting
    return conn, client


async def sock_send(file, *args, before=b"", after=b"", **kwargs):
    """sock_sendfile(file, *args) between two sock_sendall(); return (sent, data)."""
    loop = asyncio.get_running_loop()
    conn, client = await connected_pair()
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    with conn, client:
        receiving = asyncio.ensure_future(receive_all(client))
        try:
            if before:
                await loop.sock_sendall(conn, before)
            sent = await loop.sock_sendfile(conn, file, *args, **kwargs)
            if after:
                await loop.sock_sendall(conn, after)
        finally:
            conn.shutdown(socket.SHUT_WR)
            data = await receiving
    return sent, data


# -- sock_sendfile ------------------------------------------------------------------


@pytest.mark.parametrize(
    "offset, count, expected",
    [
        (0, None, DATA),
        (1000, 2000, DATA[1000:3000]),
        (len(DATA) - 10, 100, DATA[-10:]),  # count beyond the end of the file
        (len(DATA) + 5, None, b""),  # offset beyond it
    ],
)
def test_sock_sendfile_offset_and_count(impl, path, offset, count, expected):
    async def main():
        with open(path, "rb") as f:
            sent, data = await sock_send(f, offset, count)
            return sent, data, f.tell()

    sent, data, position = run(impl, main())
    assert (sent, data) == (len(expected), expected)
    if expected:
        assert position == offset + sent
    else:
        assert position == (offset if SEEKS_ALWAYS else 0)


def test_sock_sendfile_empty_file_and_mixed_with_sendall(impl, tmp_path, path):
    empty = tmp_path / "empty"
    empty.write_bytes(b"")

    async def main():
        with open(empty, "rb") as e, open(path, "rb") as f:
            nothing = await sock_send(e)
            mixed = await sock_send(f, before=b"<" * 65536, after=b">" * 65536)
            return nothing, e.tell(), mixed

    nothing, position, (sent, data) = run(impl, main())
    assert nothing == (0, b"") and position == 0
    assert sent == len(DATA) and data == b"<" * 65536 + DATA + b">" * 65536


class CountingBytesIO(io.BytesIO):
    reads = 0

    def readinto(self, buffer):
        self.reads += 1
        return super().readinto(buffer)


@pytest.mark.parametrize("offset, count", [(0, None), (1000, 50_000), (7, 1)])
def test_sock_sendfile_fallback_chunks_as_asyncio(impl, monkeypatch, offset, count):
    monkeypatch.setattr(constants, "SENDFILE_FALLBACK_READBUFFER_SIZE", 16 * 1024)

    async def main():
        file = CountingBytesIO(DATA)
        sent, data = await sock_send(file, offset, count)
        return sent, data, file.reads, file.tell()

    sent, data, reads, position = run(impl, main())
    end = len(DATA) if count is None else offset + count
    assert data == DATA[offset:end] and sent == end - offset
    assert position == end
    whole, rest = divmod(end - offset, 16 * 1024)
    assert reads == whole + bool(rest) + (count is None)  # count: no read at the end


def test_sock_sendfile_fallback_false(impl):
    async def main():
        unavailable = asyncio.SendfileNotAvailableError
        with pytest.raises(unavailable, match="not a regular file"):
            await sock_send(io.BytesIO(DATA), fallback=False)

    run(impl, main())


@pytest.mark.parametrize("fallback", [False, True])
def test_sock_sendfile_position_from_offset_zero(impl, path, monkeypatch, fallback):
    """Before 3.14 asyncio's fallback reads on from the position if offset is 0."""

    async def main():
        loop = asyncio.get_running_loop()
        if fallback:

            async def unavailable(*args):
                raise asyncio.SendfileNotAvailableError()

            monkeypatch.setattr(loop, "_sock_sendfile_native", unavailable)
        with open(path, "rb") as f:
            f.seek(100)
            sent, data = await sock_send(f)
            return sent, data, f.tell()

    sent, data, position = run(impl, main())
    if fallback and not SEEKS_ALWAYS:
        assert (sent, data, position) == (len(DATA) - 100, DATA[100:], len(DATA) - 100)
    else:
        assert (sent, data, position) == (len(DATA), DATA, len(DATA))


COUNT = "count must be a positive integer"
OFFSET = "offset must be a non-negative integer"


def bad_cases(path):
    text = open(path)  # noqa: SIM115 (closed by the test)
    binary = open(path, "rb")  # noqa: SIM115
    return [text, binary], [
        ("text", text, 0, None, ValueError, "file should be opened in binary mode"),
        ("count0", binary, 0, 0, ValueError, rf"^{COUNT} \(got 0\)$"),
        ("count-1", binary, 0, -1, ValueError, rf"^{COUNT} \(got -1\)$"),
        ("countstr", binary, 0, "1", TypeError, rf"^{COUNT} \(got '1'\)$"),
        ("offset-1", binary, -1, None, ValueError, rf"^{OFFSET} \(got -1\)$"),
        ("offsetf", binary, 1.5, None, TypeError, rf"^{OFFSET} \(got 1.5\)$"),
    ]


def test_sock_sendfile_bad_input(impl, path):
    async def main():
        loop = asyncio.get_running_loop()
        files, cases = bad_cases(path)
        conn, client = await connected_pair()
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        tls = ssl.create_default_context().wrap_socket(
            socket.socket(), server_hostname="x", do_handshake_on_connect=False
        )
        with conn, client, udp, tls, files[0], files[1]:
            for name, file, offset, count, exc_type, message in cases:
                with pytest.raises(exc_type, match=message):
                    await loop.sock_sendfile(conn, file, offset, count)
                assert files[1].tell() == 0, name
            with pytest.raises(ValueError, match="only SOCK_STREAM type"):
                await loop.sock_sendfile(udp, files[1])
            with pytest.raises(TypeError, match="^Socket cannot be of type SSLSocket$"):
                await loop.sock_sendfile(tls, files[1])

    run(impl, main())


def test_sock_sendfile_blocking_socket_in_debug(impl, path):
    async def main():
        loop = asyncio.get_running_loop()
        loop.set_debug(True)
        with socket.socket() as blocking, open(path, "rb") as f:
            with pytest.raises(ValueError, match="^the socket must be non-blocking$"):
                await loop.sock_sendfile(blocking, f)

    run(impl, main())


def test_sock_sendfile_cancelled_leaves_nothing_registered(impl, big):
    before = open_fds()

    async def main():
        loop = asyncio.get_running_loop()
        conn, client = await connected_pair()
        with conn, client, open(big, "rb") as f:
            task = asyncio.ensure_future(loop.sock_sendfile(conn, f))
            await asyncio.sleep(0.05)
            assert not task.done()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            # Nothing is watching the socket: removing a writer finds none.
            assert loop.remove_writer(conn) is False
            # The socket still works for the next call.
            loop.add_writer(conn, lambda: None)
            assert loop.remove_writer(conn) is True

    run(impl, main())
    assert open_fds() == before


# -- sendfile on a transport ------------------------------------------------------


class Receiver(asyncio.Protocol):
    def __init__(self, close_after: int = 0) -> None:
        self.data = bytearray()
        self.close_after = close_after
        self.done = asyncio.get_running_loop().create_future()

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.data += data
        if self.close_after and len(self.data) >= self.close_after:
            self.transport.close()

    def connection_lost(self, exc):
        self.done.set_result(exc)


class Sender(asyncio.Protocol):
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.data = bytearray()

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.data += data

    def pause_writing(self):
        self.calls.append("pause")

    def resume_writing(self):
        self.calls.append("resume")


async def transport_pair(close_after: int = 0, small: bool = True):
    """A client transport (Sender) connected to a server protocol (Receiver)."""
    loop = asyncio.get_running_loop()
    receiver = Receiver(close_after)
    server = await loop.create_server(lambda: receiver, "127.0.0.1", 0)
    transport, sender = await loop.create_connection(
        Sender, *server.sockets[0].getsockname()
    )
    if small:
        transport.get_extra_info("socket").setsockopt(
            socket.SOL_SOCKET, socket.SO_SNDBUF, 4096
        )
        transport.set_write_buffer_limits(high=4096)
    return server, transport, sender, receiver


async def finish(server, transport, receiver):
    transport.close()
    await receiver.done
    server.close()
    await server.wait_closed()


# asyncio 3.12 and 3.13's transport fallback writes views of the buffer it reuses,
# which their transport keeps: bytes still buffered are overwritten (ours copies).
STDLIB_REUSES_VIEWS = (3, 12) <= sys.version_info < (3, 14)


@pytest.mark.parametrize("mode", ["native", "forced", "FALLBACK"])
@pytest.mark.parametrize("offset, count", [(0, None), (1000, 100), (5, 300_000)])
def test_sendfile(impl, path, monkeypatch, mode, offset, count):
    if impl == "stdlib" and mode != "native" and STDLIB_REUSES_VIEWS:
        pytest.xfail("asyncio's fallback may corrupt data here (3.12, 3.13)")
    async def main():
        loop = asyncio.get_running_loop()
        server, transport, sender, receiver = await transport_pair()
        if mode == "forced":  # as CPython's test_sendfile_force_fallback

            async def unavailable(*args):
                raise asyncio.SendfileNotAvailableError("not supported")

            monkeypatch.setattr(loop, "_sendfile_native", unavailable)
        elif mode == "FALLBACK":  # as the TLS transport says
            transport._sendfile_compatible = constants._SendfileMode.FALLBACK
        with open(path, "rb") as f:
            transport.write(b"PREFIX" * 10_000)
            sent = await loop.sendfile(transport, f, offset, count)
            transport.write(b"SUFFIX" * 10_000)
            position = f.tell()
        await finish(server, transport, receiver)
        return sent, bytes(receiver.data), position, sender.calls

    sent, data, position, calls = run(impl, main())
    end = len(DATA) if count is None else offset + count
    assert sent == end - offset and position == end
    assert data == b"PREFIX" * 10_000 + DATA[offset:end] + b"SUFFIX" * 10_000
    assert calls[:2] == ["pause", "resume"] and len(calls) % 2 == 0


def test_sendfile_after_headers_as_aiohttp(impl, path):
    """aiohttp's FileResponse: on the server's transport, the headers by write(),
    then sendfile() from an offset, count bytes; twice on one connection. The
    client reads exactly Content-Length bytes each time, and nothing more."""
    offset, count = 1000, 300_000

    class Handler(asyncio.Protocol):
        def __init__(self) -> None:
            self.responses: list[asyncio.Future] = []

        def connection_made(self, transport):
            self.transport = transport
            sock = transport.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
            handlers.append(self)

        def data_received(self, data):
            self.responses.append(asyncio.ensure_future(self.respond()))

        async def respond(self) -> int:
            loop = asyncio.get_running_loop()
            with open(path, "rb") as f:
                head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % count
                self.transport.write(head)
                sent = await loop.sendfile(self.transport, f, offset, count)
            if len(self.responses) == 2:
                self.transport.close()
            return sent

    handlers: list[Handler] = []

    async def main():
        loop = asyncio.get_running_loop()
        server = await loop.create_server(Handler, "127.0.0.1", 0)
        reader, writer = await asyncio.open_connection(
            *server.sockets[0].getsockname()
        )
        bodies = []
        for _ in range(2):
            writer.write(b"GET /data.bin HTTP/1.1\r\n\r\n")
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
            bodies.append(await reader.readexactly(length))
        rest = await reader.read()
        sent = [await response for response in handlers[0].responses]
        writer.close()
        await writer.wait_closed()
        server.close()
        await server.wait_closed()
        return sent, bodies, rest

    sent, bodies, rest = run(impl, main())
    assert sent == [count, count] and rest == b""
    assert bodies == [DATA[offset : offset + count]] * 2


def test_os_sendfile_is_called_in_one_function(impl, path, monkeypatch):
    """asyncio calls os.sendfile() in one function, ours too, at once and on each
    writable event. The library suites' harness lets blockbuster allow the call
    there by file and function name, as blockbuster allows asyncio's."""
    callers, calls = set(), []
    real = os.sendfile

    def recording(*args):
        frame = sys._getframe(1)
        where = frame.f_code.co_filename.replace("\\", "/").split("/")[-2:]
        callers.add(("/".join(where), frame.f_code.co_name))
        calls.append(args)
        return real(*args)

    monkeypatch.setattr(os, "sendfile", recording)

    async def main():
        with open(path, "rb") as f:
            sent, data = await sock_send(f)
        return sent, len(data), len(calls)

    sent, received, count = run(impl, main())
    assert sent == received == len(DATA) and count > 1
    if impl == "stdlib":
        assert callers == {("asyncio/unix_events.py", "_sock_sendfile_native_impl")}
    else:
        assert callers == {("asynciodepth/sendfile.py", "send_some")}


def test_sendfile_refusals(impl, path):
    class NoAttribute(asyncio.Transport):
        def is_closing(self):
            return False

    class Fallback(NoAttribute):
        _sendfile_compatible = constants._SendfileMode.FALLBACK

    async def main():
        loop = asyncio.get_running_loop()
        server, transport, sender, receiver = await transport_pair()
        with open(path, "rb") as f:
            with pytest.raises(RuntimeError, match="^sendfile is not supported for"):
                await loop.sendfile(NoAttribute(), f)
            with pytest.raises(RuntimeError, match="^fallback is disabled and native"):
                await loop.sendfile(Fallback(), f, fallback=False)
            with pytest.raises(asyncio.SendfileNotAvailableError, match="regular file"):
                await loop.sendfile(transport, io.BytesIO(DATA), fallback=False)
            with pytest.raises(ValueError, match="binary mode"):
                with open(path) as text:
                    await loop.sendfile(transport, text)
            # After each refusal the transport reads and writes as before.
            assert transport.is_reading() and f.tell() == 0
            transport.write(b"still works")
            transport.close()
            with pytest.raises(RuntimeError, match="^Transport is closing$"):
                await loop.sendfile(transport, f)
            assert await receiver.done is None
            assert bytes(receiver.data) == b"still works" and f.tell() == 0
        server.close()
        await server.wait_closed()

    run(impl, main())


def test_sendfile_refuses_a_write_meanwhile_then_reads_again(impl, path):
    async def main():
        loop = asyncio.get_running_loop()
        server, transport, sender, receiver = await transport_pair()
        with open(path, "rb") as f:
            sending = asyncio.ensure_future(loop.sendfile(transport, f))
            await asyncio.sleep(0)
            assert not transport.is_reading() or impl == "stdlib"
            with pytest.raises(RuntimeError, match="sendfile is in progress"):
                transport.write(b"x")
            assert await sending == len(DATA)
        assert transport.is_reading()
        receiver.transport.write(b"answer")  # the sender's protocol hears it again
        while not sender.data:
            await asyncio.sleep(0.01)
        await finish(server, transport, receiver)
        return bytes(sender.data), bytes(receiver.data) == DATA

    assert run(impl, main()) == (b"answer", True)


def test_sendfile_keeps_reading_paused(impl, path):
    async def main():
        loop = asyncio.get_running_loop()
        server, transport, sender, receiver = await transport_pair()
        transport.pause_reading()
        with open(path, "rb") as f:
            await loop.sendfile(transport, f, 0, 1000)
            await loop.sendfile(transport, io.BytesIO(DATA), 0, 1000)
        paused = not transport.is_reading()
        await finish(server, transport, receiver)
        return paused, bytes(receiver.data) == DATA[:1000] * 2

    assert run(impl, main()) == (True, True)


@pytest.mark.parametrize("native", [True, False])
def test_sendfile_peer_closes_in_the_middle(impl, big, native):
    before = open_fds()

    async def main():
        loop = asyncio.get_running_loop()
        server, transport, sender, receiver = await transport_pair(close_after=1024)
        file = open(big, "rb") if native else io.BytesIO(DATA * 20)
        with file:
            with pytest.raises(ConnectionError):
                await loop.sendfile(transport, file)
            await receiver.done
            assert 1024 <= len(receiver.data) < len(DATA) * 20
            assert 1024 <= file.tell() < len(DATA) * 20
        for _ in range(10):  # the transport learns of the reset when it reads
            if transport.is_closing():
                break
            await asyncio.sleep(0.01)
        assert transport.is_closing()
        transport.close()
        server.close()
        await server.wait_closed()
        await asyncio.sleep(0)

    run(impl, main())
    assert open_fds() == before


@pytest.mark.parametrize("how", ["close", "abort"])
@pytest.mark.parametrize("name", [loop for loop in LOOPS if loop != "stdlib"])
def test_sendfile_transport_closed_meanwhile(name, big, how):
    """Ours fails the transfer; asyncio's loop waits for ever (so: ours only)."""
    before = open_fds()

    async def main():
        loop = asyncio.get_running_loop()
        server, transport, sender, receiver = await transport_pair()
        receiver.transport.pause_reading()  # a peer that does not read
        with open(big, "rb") as f:
            sending = asyncio.ensure_future(loop.sendfile(transport, f))
            await asyncio.sleep(0.05)
            getattr(transport, how)()
            with pytest.raises(ConnectionError, match="Connection is closed by peer"):
                await sending
            assert 0 < f.tell() < len(DATA) * 20
        receiver.transport.abort()
        await receiver.done
        server.close()
        await server.wait_closed()
        return sorted(loop._writers)

    assert run(name, main()) == []
    assert open_fds() == before
