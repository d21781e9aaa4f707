"""Readiness callbacks, socket futures and signals on our loop (chapter "epoll").

Each test runs with the epoll poller and with the selectors fallback; tests
that pin down asyncio's behaviour also run on the stdlib loop.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import os
import signal
import socket
import tempfile
import threading

import pytest
from io_helpers import loop_factory, run

import asynciodepth
from asynciodepth.loop import SelectorEventLoop
from asynciodepth.unix_events import UnixEventLoop


def test_public_names_give_the_io_loop():
    loop = asynciodepth.new_event_loop()
    try:
        assert type(loop) is asynciodepth.EventLoop is SelectorEventLoop
        assert loop.get_poller().name == "epoll"
    finally:
        loop.close()
    loop = asynciodepth.EventLoop(poller="selectors")
    try:
        assert loop.get_poller().name == "selectors"
    finally:
        loop.close()

    async def which():
        return type(asyncio.get_running_loop())

    assert asynciodepth.run(which()) is SelectorEventLoop
    with asyncio.Runner(loop_factory=asynciodepth.EventLoop) as runner:
        assert runner.run(which()) is SelectorEventLoop
    policy = asynciodepth.EventLoopPolicy()
    loop = policy.new_event_loop()
    try:
        assert type(loop) is SelectorEventLoop
    finally:
        loop.close()


OUR_IO_MODULES = {
    "asynciodepth.io_events",
    "asynciodepth.connections",
    "asynciodepth.unix_events",
}


def test_no_io_method_is_left_a_stub():
    # Every I/O entry point the earlier chapters left as a stub is defined by
    # this chapter's modules now.
    for name in [
        "add_reader",
        "remove_reader",
        "add_writer",
        "remove_writer",
        "add_signal_handler",
        "remove_signal_handler",
        "sock_recv",
        "sock_recv_into",
        "sock_sendall",
        "sock_connect",
        "sock_accept",
        "create_connection",
        "create_server",
        "create_unix_connection",
        "create_unix_server",
        "connect_accepted_socket",
        "start_tls",
        "create_datagram_endpoint",
        "sock_recvfrom",
        "sock_recvfrom_into",
        "sock_sendto",
        "subprocess_exec",
        "subprocess_shell",
        "connect_read_pipe",
        "connect_write_pipe",
        "sock_sendfile",
        "sendfile",
        "getaddrinfo",
        "getnameinfo",
    ]:
        owner = next(cls for cls in UnixEventLoop.__mro__ if name in vars(cls))
        if name in {"getaddrinfo", "getnameinfo"}:
            continue  # the earlier chapters' executor versions are the real ones
        assert owner.__module__ in OUR_IO_MODULES, (name, owner)


@pytest.mark.parametrize(
    "call, what",
    [
        (
            lambda loop: loop.create_datagram_endpoint(
                asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0)
            ),
            "UDP",
        ),
        (lambda loop: loop.sock_sendto(None, b"", None), "UDP"),
        (
            lambda loop: loop.subprocess_exec(asyncio.SubprocessProtocol, "true"),
            "Subprocesses",
        ),
        (lambda loop: asyncio.create_subprocess_exec("true"), "Subprocesses"),
        (lambda loop: asyncio.open_connection("127.0.0.1", 1, ssl=True), "SSL"),
        (lambda loop: loop.start_tls(None, None, None), "SSL"),
    ],
)
def test_out_of_scope_raises_clearly(impl, call, what):
    # Chapter "Transports, protocols and streams"'s loop refuses what chapter
    # "Beyond TCP" adds, naming it.
    async def main():
        with pytest.raises(NotImplementedError, match=f"{what} is not on this loop"):
            await call(asyncio.get_running_loop())

    with asyncio.Runner(loop_factory=lambda: UnixEventLoop(poller=impl)) as runner:
        runner.run(main())


# ---- readiness callbacks ---------------------------------------------------


def test_add_reader_runs_until_removed(any_impl):
    async def main():
        loop = asyncio.get_running_loop()
        a, b = socket.socketpair()
        a.setblocking(False)
        got = []
        done = loop.create_future()

        def on_readable():
            got.append(a.recv(1))
            if len(got) == 3:
                assert loop.remove_reader(a) is True
                done.set_result(None)

        loop.add_reader(a.fileno(), on_readable)
        b.send(b"xyz")  # one event, three callbacks: level-triggered
        await done
        assert loop.remove_reader(a) is False
        a.close(), b.close()
        return got

    assert run(any_impl, main()) == [b"x", b"y", b"z"]


def test_add_reader_replaces_callback_and_writer_coexists(any_impl):
    async def main():
        loop = asyncio.get_running_loop()
        a, b = socket.socketpair()
        a.setblocking(False)
        events = []
        done = loop.create_future()
        loop.add_reader(a, lambda: events.append("old reader"))
        loop.add_reader(
            a,
            lambda: (
                events.append("new reader"),
                a.recv(10),
                loop.remove_reader(a),
                done.set_result(None),
            ),
        )

        def on_writable():
            events.append("writer")
            loop.remove_writer(a)

        loop.add_writer(a, on_writable)
        b.send(b"data")
        await done
        await asyncio.sleep(0)
        a.close(), b.close()
        return sorted(events)

    assert run(any_impl, main()) == ["new reader", "writer"]


def test_remove_reader_skips_callback_already_queued(impl):
    # Both fds become ready in the same poll; the first callback to run removes
    # the other's reader, which therefore must not run.
    async def main():
        loop = asyncio.get_running_loop()
        pairs = [socket.socketpair() for _ in range(2)]
        ran = []

        def make(i):
            def callback():
                ran.append(i)
                for j in range(2):
                    loop.remove_reader(pairs[j][0])

            return callback

        for i, (a, _) in enumerate(pairs):
            loop.add_reader(a, make(i))
        for _, b in pairs:
            b.send(b"x")
        # Let the loop poll once with both ready.
        for _ in range(3):
            await asyncio.sleep(0.01)
        for a, b in pairs:
            a.close(), b.close()
        return ran

    assert len(run(impl, main())) == 1


def test_threadsafe_call_wakes_a_sleeping_loop(impl):
    async def main():
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        started = threading.Event()

        def thread():
            started.wait(5)
            loop.call_soon_threadsafe(done.set_result, "woken")

        threading.Thread(target=thread).start()
        loop.call_soon(started.set)
        return await done  # no timers: the loop blocks in poll(None)

    assert run(impl, main()) == "woken"


@pytest.mark.parametrize("method", ["add_reader", "add_writer"])
def test_registering_closed_or_invalid_fd(any_impl, method):
    async def main():
        loop = asyncio.get_running_loop()
        s = socket.socket()
        s.close()
        with pytest.raises(ValueError, match="Invalid file descriptor: -1"):
            getattr(loop, method)(s, print)
        with pytest.raises(ValueError, match="Invalid file descriptor: -1"):
            getattr(loop, method)(-1, print)
        with pytest.raises(ValueError, match="Invalid file object"):
            getattr(loop, method)("not a file", print)
        fd = os.open(os.devnull, os.O_RDONLY)
        os.close(fd)
        with pytest.raises(OSError) as info:
            getattr(loop, method)(fd, print)
        assert info.value.errno == errno.EBADF
        # Nothing was recorded: removing says so.
        assert getattr(loop, method.replace("add", "remove"))(fd) is False

    run(any_impl, main())


def test_fd_reused_by_new_socket(impl):
    # A reader is left registered on a socket that is then closed; a new
    # socket gets the same fd number. The loop must watch the new socket, run
    # only the new callback, and not be confused by the old one.
    async def main():
        loop = asyncio.get_running_loop()
        a, b = socket.socketpair()
        fd = a.fileno()
        loop.add_reader(fd, lambda: pytest.fail("stale callback ran"))
        a.close(), b.close()
        c, d = socket.socketpair()
        new, peer = (c, d) if c.fileno() == fd else (d, c)
        assert new.fileno() == fd
        new.setblocking(False)
        got = loop.create_future()
        loop.add_reader(new, lambda: got.done() or got.set_result(new.recv(10)))
        peer.send(b"fresh")
        data = await got
        loop.remove_reader(new)
        # And sock_* on yet another reuse of the number.
        new.close(), peer.close()
        e, f = socket.socketpair()
        e.setblocking(False), f.setblocking(False)
        recv = asyncio.ensure_future(loop.sock_recv(e, 10))
        await asyncio.sleep(0)
        await loop.sock_sendall(f, b"again")
        data2 = await recv
        e.close(), f.close()
        return data, data2

    assert run(impl, main()) == (b"fresh", b"again")


@pytest.mark.parametrize("direction", ["reader", "writer"])
def test_remove_after_close_finds_the_registration(any_impl, direction):
    # A socket closed while registered has fileno() -1; removing it by the
    # object still works, once, as asyncio's selectors find it by identity.
    async def main():
        loop = asyncio.get_running_loop()
        add = getattr(loop, f"add_{direction}")
        remove = getattr(loop, f"remove_{direction}")
        a, b = socket.socketpair()
        fd = a.fileno()
        add(a, pytest.fail, "a removed callback ran")
        a.close()
        b.close()
        assert a.fileno() == -1
        events = [remove(a)]
        with pytest.raises(ValueError, match="Invalid file descriptor: -1"):
            remove(a)  # no registration left to find
        # Registered by number, the closed object cannot be matched to it.
        c, d = socket.socketpair()
        add(c.fileno(), print)
        fd_c = c.fileno()
        c.close()
        d.close()
        with pytest.raises(ValueError, match="Invalid file descriptor: -1"):
            remove(c)
        events.append(remove(fd_c))
        # And the loop still runs: nothing stale is polled.
        await asyncio.sleep(0)
        events.append(fd >= 0)
        return events

    assert run(any_impl, main()) == [True, True, True]


def test_remove_one_direction_after_close(impl):
    # Registered both ways, then closed: removing one direction, then the
    # other, works. (asyncio's own loop raises EBADF for the first removal,
    # from epoll_ctl(MOD); our poller knows a closed fd needs no narrowing.)
    async def main():
        loop = asyncio.get_running_loop()
        a, b = socket.socketpair()
        loop.add_reader(a, pytest.fail, "reader ran")
        loop.add_writer(a, pytest.fail, "writer ran")
        a.close()
        b.close()
        removed = [loop.remove_reader(a), loop.remove_writer(a)]
        await asyncio.sleep(0)
        return removed, loop.get_poller().interest(a.fileno())

    assert run(impl, main()) == ([True, True], 0)


def test_closed_socket_after_its_fd_was_reused(impl):
    # The old socket is closed and its fd number now belongs to a new socket,
    # registered since. The old object no longer names any registration: the
    # new socket's reader stays, and still runs.
    async def main():
        loop = asyncio.get_running_loop()
        a, b = socket.socketpair()
        fd = a.fileno()
        loop.add_reader(a, pytest.fail, "stale callback ran")
        a.close(), b.close()
        c, d = socket.socketpair()
        new, peer = (c, d) if c.fileno() == fd else (d, c)
        assert new.fileno() == fd
        got = loop.create_future()
        loop.add_reader(new, lambda: got.done() or got.set_result(new.recv(10)))
        with pytest.raises(ValueError, match="Invalid file descriptor: -1"):
            loop.remove_reader(a)
        peer.send(b"new")
        data = await got
        removed = loop.remove_reader(new)
        new.close(), peer.close()
        return data, removed

    assert run(impl, main()) == (b"new", True)


def test_add_reader_on_regular_file_is_refused(any_impl):
    # epoll refuses regular files (EPERM); nothing is left registered.
    async def main():
        loop = asyncio.get_running_loop()
        with tempfile.TemporaryFile() as file:
            with pytest.raises(PermissionError):
                loop.add_reader(file, print)
            return loop.remove_reader(file)

    assert run(any_impl, main()) is False


def watched_then_closed_with_a_dup(loop):
    """A socket pair whose a is watched for reading, then closed while a dup lives.

    Returns (a, b, the dup's fd): epoll's entry for a outlives its close.
    """
    a, b = socket.socketpair()
    loop.add_reader(a, pytest.fail, "stale callback ran")
    keep = os.dup(a.fileno())
    a.close()
    return a, b, keep


def test_reader_closed_with_a_dup_alive_stops_reporting():
    # epoll(7) Q6: the entry of a socket closed while watched outlives the
    # close while a dup lives. Removing the reader (found by the object) must
    # leave nothing that the poll reports, and the loop must not spin on it.
    async def main():
        loop = asyncio.get_running_loop()
        a, b, keep = watched_then_closed_with_a_dup(loop)
        b.send(b"x")
        removed = loop.remove_reader(a)
        for _ in range(3):
            await asyncio.sleep(0)
        events = loop.get_poller().poll(0)
        os.close(keep)
        b.close()
        return removed, events

    assert run("epoll", main()) == (True, [])


def test_sock_methods_refuse_transport_fd(impl):
    async def main():
        loop = asyncio.get_running_loop()
        a, b = socket.socketpair()
        transport, _ = await loop.connect_accepted_socket(asyncio.Protocol, a)
        with pytest.raises(RuntimeError, match="is used by transport"):
            await loop.sock_recv(a, 10)
        with pytest.raises(RuntimeError, match="is used by transport"):
            loop.add_reader(a, print)
        transport.close()
        b.close()

    run(impl, main())


# ---- socket futures ----------------------------------------------------------


def test_sock_echo(any_impl):
    async def main():
        loop = asyncio.get_running_loop()
        listener = socket.create_server(("127.0.0.1", 0))
        listener.setblocking(False)

        async def serve():
            conn, _ = await loop.sock_accept(listener)
            assert conn.gettimeout() == 0
            with conn:
                buf = bytearray(100)
                while n := await loop.sock_recv_into(conn, buf):
                    await loop.sock_sendall(conn, bytes(buf[:n]).upper())

        server = asyncio.create_task(serve())
        client = socket.socket()
        client.setblocking(False)
        await loop.sock_connect(client, ("localhost", listener.getsockname()[1]))
        answers = []
        for word in [b"a", b"bc", b"def"]:
            await loop.sock_sendall(client, word)
            answers.append(await loop.sock_recv(client, 100))
        client.close()
        await server
        listener.close()
        return answers

    assert run(any_impl, main()) == [b"A", b"BC", b"DEF"]


def test_sock_sendall_large_payload_waits_for_room(impl):
    async def main():
        loop = asyncio.get_running_loop()
        a, b = socket.socketpair()
        a.setblocking(False), b.setblocking(False)
        payload = os.urandom(4 * 1024 * 1024)
        send = asyncio.ensure_future(loop.sock_sendall(a, payload))
        received = bytearray()
        while len(received) < len(payload):
            received += await loop.sock_recv(b, 1 << 20)
        await send
        a.close(), b.close()
        return bytes(received) == payload

    assert run(impl, main())


@pytest.mark.parametrize(
    ("address", "error"),
    [
        (("127.0.0.1",), ValueError),
        ("127.0.0.1:80", TypeError),
        (None, TypeError),
        (("127.0.0.1", 70000), OverflowError),  # not wrapped around to 4464
        (("127.0.0.1", "no such service"), socket.gaierror),
    ],
)
def test_sock_connect_bad_address(any_impl, address, error):
    async def main():
        loop = asyncio.get_running_loop()
        with socket.socket() as sock:
            sock.setblocking(False)
            with pytest.raises(error):
                await loop.sock_connect(sock, address)

    run(any_impl, main())


def test_connection_refused(any_impl):
    async def main():
        loop = asyncio.get_running_loop()
        with socket.socket() as unused, socket.socket() as client:
            unused.bind(("127.0.0.1", 0))
            client.setblocking(False)
            with pytest.raises(ConnectionRefusedError) as info:
                await loop.sock_connect(client, unused.getsockname())
            address = unused.getsockname()
        with pytest.raises(ConnectionRefusedError):
            await loop.create_connection(asyncio.Protocol, *address)
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection(*address)
        return info.value.errno

    assert run(any_impl, main()) == errno.ECONNREFUSED


def test_cancelled_sock_recv_leaves_the_data(any_impl):
    async def main():
        loop = asyncio.get_running_loop()
        a, b = socket.socketpair()
        a.setblocking(False)
        first = asyncio.ensure_future(loop.sock_recv(a, 10))
        await asyncio.sleep(0)
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        b.send(b"kept")
        second = await loop.sock_recv(a, 10)
        a.close(), b.close()
        return first.cancelled(), second

    assert run(any_impl, main()) == (True, b"kept")


def test_sock_accept_and_recv_with_timeout(impl):
    async def main():
        loop = asyncio.get_running_loop()
        listener = socket.create_server(("127.0.0.1", 0))
        listener.setblocking(False)
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.02):
                await loop.sock_accept(listener)
        # The reader of the cancelled accept is gone; a new accept works.
        client = socket.create_connection(listener.getsockname())
        conn, _ = await loop.sock_accept(listener)
        for s in (conn, client, listener):
            s.close()

    run(impl, main())


def test_debug_mode_refuses_blocking_socket(any_impl):
    async def main():
        loop = asyncio.get_running_loop()
        loop.set_debug(True)
        a, b = socket.socketpair()
        with a, b:
            with pytest.raises(ValueError, match="must be non-blocking"):
                await loop.sock_recv(a, 1)

    run(any_impl, main())


def test_getaddrinfo_and_getnameinfo(impl):
    async def main():
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo("127.0.0.1", 80, type=socket.SOCK_STREAM)
        name = await loop.getnameinfo(
            ("127.0.0.1", 80), socket.NI_NUMERICHOST | socket.NI_NUMERICSERV
        )
        return infos[0][4], name

    assert run(impl, main()) == (("127.0.0.1", 80), ("127.0.0.1", "80"))


# ---- signals -----------------------------------------------------------------


def test_signal_handler_runs_on_the_loop(any_impl):
    async def main():
        loop = asyncio.get_running_loop()
        got = loop.create_future()
        loop.add_signal_handler(signal.SIGUSR1, got.set_result, "handled")
        loop.call_soon(os.kill, os.getpid(), signal.SIGUSR1)
        result = await got
        assert loop.remove_signal_handler(signal.SIGUSR1) is True
        assert loop.remove_signal_handler(signal.SIGUSR1) is False
        return result

    old = signal.getsignal(signal.SIGUSR1)
    assert run(any_impl, main()) == "handled"
    assert signal.getsignal(signal.SIGUSR1) is signal.SIG_DFL
    signal.signal(signal.SIGUSR1, old)


def test_signal_wakes_a_sleeping_loop_from_another_thread(impl):
    async def main():
        loop = asyncio.get_running_loop()
        got = loop.create_future()
        loop.add_signal_handler(signal.SIGUSR2, got.set_result, "woken")
        started = threading.Event()
        threading.Thread(
            target=lambda: (started.wait(5), os.kill(os.getpid(), signal.SIGUSR2))
        ).start()
        loop.call_soon(started.set)
        return await got

    assert run(impl, main()) == "woken"


def test_signal_handler_bad_input(any_impl):
    async def main():
        loop = asyncio.get_running_loop()
        with pytest.raises(TypeError, match="coroutines cannot be used"):
            loop.add_signal_handler(signal.SIGUSR1, main)
        with pytest.raises(TypeError, match="sig must be an int"):
            loop.add_signal_handler("SIGUSR1", print)
        with pytest.raises(ValueError, match="invalid signal number"):
            loop.add_signal_handler(10_000, print)
        with pytest.raises(RuntimeError, match="cannot be caught"):
            loop.add_signal_handler(signal.SIGKILL, print)
        assert loop.remove_signal_handler(signal.SIGUSR1) is False

    run(any_impl, main())


def test_signal_handler_outside_main_thread(any_impl):
    errors = []

    def thread():
        loop = loop_factory(any_impl)()
        try:
            loop.add_signal_handler(signal.SIGUSR1, print)
        except RuntimeError as exc:
            errors.append(exc)
        finally:
            loop.close()

    t = threading.Thread(target=thread)
    t.start()
    t.join(10)
    assert len(errors) == 1


def test_close_removes_signal_handlers(impl):
    loop = loop_factory(impl)()
    loop.add_signal_handler(signal.SIGUSR1, print)
    loop.close()
    assert signal.getsignal(signal.SIGUSR1) is signal.SIG_DFL
    assert signal.set_wakeup_fd(-1) == -1


def test_io_can_arrive_follows_registrations(impl):
    # The base loop's hook: may its zero-timeout poll report anything besides
    # the wake-up socket? Only while a reader, a writer or a signal handler is
    # registered.
    async def main():
        loop = asyncio.get_running_loop()
        facts = [loop._io_can_arrive()]
        a, b = socket.socketpair()
        for add, remove in [
            (loop.add_reader, loop.remove_reader),
            (loop.add_writer, loop.remove_writer),
        ]:
            add(a, print)
            facts.append(loop._io_can_arrive())
            remove(a)
            facts.append(loop._io_can_arrive())
        loop.add_signal_handler(signal.SIGUSR1, print)
        facts.append(loop._io_can_arrive())
        loop.remove_signal_handler(signal.SIGUSR1)
        facts.append(loop._io_can_arrive())
        transport, _ = await loop.connect_accepted_socket(asyncio.Protocol, a)
        facts.append(loop._io_can_arrive())  # the transport reads
        transport.close()
        await asyncio.sleep(0)
        facts.append(loop._io_can_arrive())
        b.close()
        return facts

    assert run(impl, main()) == [
        False,
        True,
        False,
        True,
        False,
        True,
        False,
        True,
        False,
    ]


def test_closed_loop_refuses_io(impl):
    loop = loop_factory(impl)()
    loop.close()
    a, b = socket.socketpair()
    with a, b:
        with pytest.raises(RuntimeError, match="Event loop is closed"):
            loop.add_reader(a, print)
        assert loop.remove_reader(a) is False


def test_rebuilt_poller_still_wakes_from_a_thread():
    # A stale entry makes the epoll poller rebuild its set; the wake-up socket
    # must be in the new set, or call_soon_threadsafe could not end a poll.
    async def main():
        loop = asyncio.get_running_loop()
        a, b, keep = watched_then_closed_with_a_dup(loop)
        epoll_fd = loop.get_poller().fileno()
        loop.remove_reader(a)  # EBADF: the poller rebuilds before its next poll
        done = loop.create_future()
        threading.Timer(0.05, loop.call_soon_threadsafe, [done.set_result, 1]).start()
        result = await done  # no timer: only the wake-up socket can end the poll
        assert loop.get_poller().fileno() != epoll_fd  # a new epoll object
        os.close(keep)
        b.close()
        return result

    assert run("epoll", main()) == 1


# ---- the chapter's own layers, as the chapter builds them --------------------
# The tests above run on the final loop (unix_events). These run the two
# classes of io_events.py themselves, which later modules subclass, so that a
# layer that only works once a later one overrides it is caught here.


def run_on_layer(layer, impl, main, timeout=10.0):
    """Run main on io_events.<layer>(poller=impl), failing after timeout s."""
    from asynciodepth import io_events

    async def bounded():
        async with asyncio.timeout(timeout):
            return await main

    factory = functools.partial(getattr(io_events, layer), poller=impl)
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(bounded())


def test_socket_layer_runs_an_echo_and_leaves_nothing_watched(impl):
    async def main():
        loop = asyncio.get_running_loop()
        assert type(loop).__name__ == "SocketEventLoop"
        listener = socket.create_server(("127.0.0.1", 0))
        listener.setblocking(False)

        async def serve():
            conn, _ = await loop.sock_accept(listener)
            with conn:
                while data := await loop.sock_recv(conn, 100):
                    await loop.sock_sendall(conn, data.upper())

        server = asyncio.create_task(serve())
        client = socket.socket()
        client.setblocking(False)
        await loop.sock_connect(client, listener.getsockname())
        answers = []
        for word in [b"a", b"bc"]:
            await loop.sock_sendall(client, word)
            answers.append(await loop.sock_recv(client, 100))
        client.close()
        await server
        listener.close()
        # Only the wake-up socket is left; no reader or writer is registered.
        return answers, repr(loop.get_poller()), loop._io_can_arrive()

    answers, poller, can_arrive = run_on_layer("SocketEventLoop", impl, main())
    assert answers == [b"A", b"BC"]
    assert poller.endswith("watching 1 fds>")
    assert can_arrive is False


def test_socket_layer_resolves_only_host_names_in_a_thread(impl):
    # A numeric address is resolved on the spot; a host name goes to
    # loop.getaddrinfo() (a thread), as asyncio's _ensure_resolved does.
    from asynciodepth import io_events

    asked = []

    class Logged(io_events.SocketEventLoop):
        async def getaddrinfo(self, host, port, **options):
            asked.append(host)
            return await super().getaddrinfo(host, port, **options)

    async def connect(host):
        loop = asyncio.get_running_loop()
        with socket.create_server(("127.0.0.1", 0)) as listener:
            with socket.socket() as client:
                client.setblocking(False)
                await loop.sock_connect(client, (host, listener.getsockname()[1]))
                return client.getpeername()[0]

    for host in ["127.0.0.1", "localhost"]:
        with asyncio.Runner(loop_factory=lambda: Logged(poller=impl)) as runner:
            assert runner.run(connect(host)) == "127.0.0.1"
    assert asked == ["localhost"]


def test_readiness_layer_cancels_a_writer_removed_after_it_was_queued(impl):
    # The writer is queued by every poll behind the task's step; in the last
    # iteration the task removes it first, and the queued handle must not run.
    async def main():
        loop = asyncio.get_running_loop()
        a, b = socket.socketpair()
        calls = []
        loop.add_writer(a, calls.append, "writable")
        for _ in range(5):
            await asyncio.sleep(0)
        loop.remove_writer(a)
        await asyncio.sleep(0)
        a.close()
        b.close()
        return len(calls)

    assert run_on_layer("ReadinessEventLoop", impl, main()) == 4


# ---- the poll's fast path (chapter "epoll", "The poll's fast path") ----------


def _chain_with_idle_socket(loop, n):
    """Run a chain of n call_soon callbacks with one idle reader; count its polls."""
    a, b = socket.socketpair()
    loop.add_reader(a, lambda: None)
    polls = []
    poll = loop.get_poller().poll
    loop.get_poller().poll = lambda timeout: polls.append(timeout) or poll(timeout)
    left = n

    def chain():
        nonlocal left
        left -= 1
        if left:
            loop.call_soon(chain)
        else:
            loop.stop()

    loop.call_soon(chain)
    loop.run_forever()
    loop.remove_reader(a)
    a.close()
    b.close()
    return polls


@pytest.mark.parametrize("python_tasks", [False, True])
def test_fast_path_polls_once_per_iteration_with_a_socket_watched(impl, python_tasks):
    loop = asynciodepth.EventLoop(poller=impl, python_tasks=python_tasks)
    try:
        polls = _chain_with_idle_socket(loop, 100)
    finally:
        loop.close()
    # One poll per iteration, none blocking: the chain is ready in each.
    assert polls == [0.0] * 100


def test_fast_path_queues_io_in_the_same_iteration(impl):
    """Data that arrived before a poll runs its reader in that iteration."""
    loop = asynciodepth.EventLoop(poller=impl)
    a, b = socket.socketpair()
    order = []
    try:
        loop.add_reader(a, lambda: order.append(("read", a.recv(10))))
        b.send(b"x")
        loop.call_soon(order.append, "callback")
        loop.call_soon(loop.stop)
        loop.run_forever()
        # The poll comes first, so the reader is queued behind the callbacks of
        # the same snapshot: asyncio's order.
        assert order == ["callback", ("read", b"x")]
        assert loop._poll_and_wait(0.0) == 0  # nothing more: no event, no handle
        b.send(b"y")
        assert loop._poll_and_wait(0.0) == 1 and len(loop._ready) == 1
        loop.remove_reader(a)
        assert len(loop._ready) == 1 and loop._ready[0].cancelled()
    finally:
        loop.close()
        a.close()
        b.close()


def test_fast_path_keeps_the_virtual_clock_jump(impl):
    """Under a virtual clock a pending timer is reached by a jump, not by sleeping."""
    from asynciodepth.events import VirtualClock

    clock = VirtualClock()
    loop = asynciodepth.EventLoop(poller=impl, clock=clock)
    a, b = socket.socketpair()
    try:
        loop.add_reader(a, lambda: None)  # the poll cannot be skipped
        fired = []
        loop.call_later(3600, fired.append, "timer")
        loop.call_later(3601, loop.stop)
        loop.run_forever()
        assert fired == ["timer"] and loop.time() == 3601
        loop.remove_reader(a)
    finally:
        loop.close()
        a.close()
        b.close()
