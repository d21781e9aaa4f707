"""asyncio's own streams and servers, unchanged, on our loop.

Chapter "Transports, protocols and streams".
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import os
import random
import socket
import struct
import sys
import tempfile

import pytest

from io_helpers import echo_handler, run


def test_open_connection_and_start_server(any_impl):
    async def main():
        async def handle(reader, writer):
            while line := await reader.readline():
                writer.write(line.upper())
                await writer.drain()
            writer.close()
            await writer.wait_closed()

        async with await asyncio.start_server(handle, "127.0.0.1", 0) as server:
            reader, writer = await asyncio.open_connection(
                *server.sockets[0].getsockname()
            )
            answers = []
            for word in [b"one\n", b"two\n"]:
                writer.write(word)
                await writer.drain()
                answers.append(await reader.readline())
            writer.write_eof()
            answers.append(await reader.read())
            writer.close()
            await writer.wait_closed()
        return answers

    assert run(any_impl, main()) == [b"ONE\n", b"TWO\n", b""]


def test_unix_streams(any_impl):
    async def main():
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "s.sock")
            server = await asyncio.start_unix_server(echo_handler, path)
            async with server:
                reader, writer = await asyncio.open_unix_connection(path)
                writer.write(b"over unix")
                data = await reader.readexactly(9)
                writer.close()
                await writer.wait_closed()
            # A stale socket file is replaced by a new server.
            server = await asyncio.start_unix_server(echo_handler, path)
            server.close()
            await server.wait_closed()
        return data

    assert run(any_impl, main()) == b"over unix"


def test_unix_bad_input(any_impl):
    async def main():
        loop = asyncio.get_running_loop()
        with pytest.raises(ValueError):
            await loop.create_unix_connection(asyncio.Protocol)
        with pytest.raises(ValueError):
            await loop.create_unix_server(asyncio.Protocol)
        with tempfile.TemporaryDirectory() as tmp:
            with pytest.raises(FileNotFoundError):
                await asyncio.open_unix_connection(os.path.join(tmp, "nobody"))
            with socket.socket() as tcp:
                with pytest.raises(ValueError, match="UNIX Domain Stream Socket"):
                    await loop.create_unix_server(asyncio.Protocol, sock=tcp)

    run(any_impl, main())


@pytest.mark.parametrize("error", [OSError, MemoryError])
def test_unix_server_bind_error_closes_the_socket(impl, monkeypatch, error):
    made = []

    class FailingBind(socket.socket):
        def bind(self, address):
            made.append(self)
            raise error

    async def main():
        monkeypatch.setattr(socket, "socket", FailingBind)
        try:
            with pytest.raises(error):
                await asyncio.get_running_loop().create_unix_server(
                    asyncio.Protocol, "/nowhere/s.sock"
                )
        finally:
            monkeypatch.undo()
        return [sock.fileno() for sock in made]

    assert run(impl, main()) == [-1]


UNLINKS_ON_CLOSE = sys.version_info >= (3, 13)


def test_unix_server_socket_file_after_close(any_impl):
    # asyncio removes the socket file on close() from 3.13 on, and only the
    # one it bound: a file put there since stays. 3.11 and 3.12 leave it.
    async def main():
        loop = asyncio.get_running_loop()
        facts = []
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "s.sock")
            server = await loop.create_unix_server(asyncio.Protocol, path)
            server.close()
            await server.wait_closed()
            facts.append(os.path.exists(path))
            # Replaced while the server listens: the new file is not ours.
            server = await loop.create_unix_server(asyncio.Protocol, path)
            os.unlink(path)
            with socket.socket(socket.AF_UNIX) as other:
                other.bind(path)
                server.close()
                await server.wait_closed()
                facts.append(os.path.exists(path))
            os.unlink(path)
            # Given a bound socket, with cleanup_socket as asyncio has it.
            sock = socket.socket(socket.AF_UNIX)
            sock.bind(path)
            if UNLINKS_ON_CLOSE:
                server = await loop.create_unix_server(
                    asyncio.Protocol, sock=sock, cleanup_socket=False
                )
            else:
                server = await loop.create_unix_server(asyncio.Protocol, sock=sock)
            server.close()
            await server.wait_closed()
            facts.append(os.path.exists(path))
        return facts

    assert run(any_impl, main()) == [not UNLINKS_ON_CLOSE, True, True]


TIMEOUTS = ["ssl_handshake_timeout", "ssl_shutdown_timeout"]
SSL_OPTIONS = [
    *[(m, o) for m in ["create_server", "create_unix_server"] for o in TIMEOUTS],
    *[(m, o) for m in ["connect_accepted_socket", "start_server"] for o in TIMEOUTS],
    *[
        (method, option)
        for method in ["create_connection", "create_unix_connection", "open_connection"]
        for option in [*TIMEOUTS, "server_hostname"]
    ],
]


@pytest.mark.parametrize(("method", "option"), SSL_OPTIONS)
def test_ssl_options_without_ssl(any_impl, method, option):
    # asyncio refuses TLS-only options without ssl before it opens anything.
    async def main():
        loop = asyncio.get_running_loop()
        value = "example.org" if option == "server_hostname" else 1.0
        with tempfile.TemporaryDirectory() as tmp, socket.socket() as sock:
            path = os.path.join(tmp, "s.sock")
            call = {
                "create_connection": lambda **kw: loop.create_connection(
                    asyncio.Protocol, "127.0.0.1", 9, **kw
                ),
                "create_server": lambda **kw: loop.create_server(
                    asyncio.Protocol, "127.0.0.1", 0, **kw
                ),
                "create_unix_connection": lambda **kw: loop.create_unix_connection(
                    asyncio.Protocol, path, **kw
                ),
                "create_unix_server": lambda **kw: loop.create_unix_server(
                    asyncio.Protocol, path, **kw
                ),
                "connect_accepted_socket": lambda **kw: loop.connect_accepted_socket(
                    asyncio.Protocol, sock, **kw
                ),
                "open_connection": lambda **kw: asyncio.open_connection(
                    "127.0.0.1", 9, **kw
                ),
                "start_server": lambda **kw: asyncio.start_server(
                    echo_handler, "127.0.0.1", 0, **kw
                ),
            }[method]
            with pytest.raises(ValueError) as info:
                await call(**{option: value})
            return str(info.value), os.path.exists(path), sock.fileno() >= 0

    assert run(any_impl, main()) == (
        f"{option} is only meaningful with ssl",
        False,
        True,
    )


def test_peer_reset_reaches_the_stream(any_impl):
    async def main():
        accepted = asyncio.get_running_loop().create_future()

        async def handle(reader, writer):
            accepted.set_result(None)
            try:
                await reader.read()
            except ConnectionResetError as exc:
                return exc
            finally:
                writer.close()

        results = []

        async def recording(reader, writer):
            results.append(await handle(reader, writer))

        server = await asyncio.start_server(recording, "127.0.0.1", 0)
        peer = socket.create_connection(server.sockets[0].getsockname())
        await accepted
        peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        peer.close()
        while not results:
            await asyncio.sleep(0.001)
        server.close()
        await server.wait_closed()
        return type(results[0])

    assert run(any_impl, main()) is ConnectionResetError


def _write_after_close(impl):
    async def main():
        async with await asyncio.start_server(echo_handler, "127.0.0.1", 0) as server:
            reader, writer = await asyncio.open_connection(
                *server.sockets[0].getsockname()
            )
            writer.close()
            outcome = []
            try:
                writer.write(b"late")
                outcome.append("write ok")
            except Exception as exc:
                outcome.append(type(exc).__name__)
            try:
                await writer.drain()
                outcome.append("drain ok")
            except Exception as exc:
                outcome.append(type(exc).__name__)
            await writer.wait_closed()
            outcome.append(writer.is_closing())
            return outcome

    return run(impl, main())


def test_writing_after_close_follows_asyncio(impl):
    assert _write_after_close(impl) == _write_after_close("stdlib")


def test_drain_backpressure(any_impl):
    async def main():
        loop = asyncio.get_running_loop()
        may_read = asyncio.Event()
        received = loop.create_future()

        async def slow(reader, writer):
            await may_read.wait()
            received.set_result(len(await reader.read()))
            writer.close()

        async with await asyncio.start_server(slow, "127.0.0.1", 0) as server:
            reader, writer = await asyncio.open_connection(
                *server.sockets[0].getsockname()
            )
            writer.write(b"x" * (16 << 20))
            drain = asyncio.ensure_future(writer.drain())
            await asyncio.sleep(0.02)
            blocked = not drain.done()
            may_read.set()
            await drain
            writer.write_eof()
            total = await received
            writer.close()
            await writer.wait_closed()
        return blocked, total

    assert run(any_impl, main()) == (True, 16 << 20)


# ---- nothing lost --------------------------------------------------------------


async def _roundtrip(port: int, payload: bytes) -> bool:
    """Send payload (while reading), half-close, and compare the echo by hash."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)

    async def send():
        for i in range(0, len(payload), 1 << 20):
            writer.write(payload[i : i + (1 << 20)])
            await writer.drain()
        writer.write_eof()

    sender = asyncio.create_task(send())
    digest = hashlib.sha256()
    total = 0
    while chunk := await reader.read(1 << 18):
        digest.update(chunk)
        total += len(chunk)
    await sender
    writer.close()
    await writer.wait_closed()
    return total == len(payload) and digest.digest() == hashlib.sha256(payload).digest()


@pytest.mark.parametrize("size", [1, 100, 65_537, 1 << 20, 8 << 20])
def test_nothing_lost_single_client(impl, size):
    async def main():
        async with await asyncio.start_server(echo_handler, "127.0.0.1", 0) as server:
            return await _roundtrip(
                server.sockets[0].getsockname()[1], os.urandom(size)
            )

    assert run(impl, main(), timeout=30)


def test_nothing_lost_100_concurrent_clients(impl):
    rng = random.Random(5)
    sizes = [1, 8 << 20] + [
        rng.choice([1, 7, 1024, 65_536, 200_000, 1 << 20]) for _ in range(98)
    ]
    payloads = [rng.randbytes(size) for size in sizes]

    async def main():
        async with await asyncio.start_server(
            echo_handler, "127.0.0.1", 0, backlog=128
        ) as server:
            port = server.sockets[0].getsockname()[1]
            return await asyncio.gather(*(_roundtrip(port, p) for p in payloads))

    assert run(impl, main(), timeout=60) == [True] * 100


# ---- the server object ---------------------------------------------------------


def test_server_api(any_impl):
    async def main():
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            asyncio.Protocol, "127.0.0.1", 0, start_serving=False
        )
        facts = [server.is_serving(), len(server.sockets), server.get_loop() is loop]
        await server.start_serving()
        facts.append(server.is_serving())
        forever = asyncio.create_task(server.serve_forever())
        await asyncio.sleep(0)
        with pytest.raises(RuntimeError, match="already being awaited"):
            await server.serve_forever()
        forever.cancel()
        with pytest.raises(asyncio.CancelledError):
            await forever
        facts += [server.is_serving(), server.sockets]
        if any_impl != "stdlib":  # asyncio's raises a TypeError here (3.11-3.15)
            with pytest.raises(RuntimeError, match="is closed"):
                await server.start_serving()
        await server.wait_closed()
        return facts

    assert run(any_impl, main()) == [False, 1, True, True, False, ()]


def test_wait_closed_counts_connections_attached_without_transport(impl):
    # asyncio 3.12's Server counted connections, and CPython's 3.12 tests call
    # _attach() and _detach() with no transport; ours counts those too.
    async def main():
        server = await asyncio.start_server(echo_handler, "127.0.0.1", 0)
        server._attach()
        server.close()
        waiting = asyncio.create_task(server.wait_closed())
        for _ in range(5):
            await asyncio.sleep(0)
        early = waiting.done()
        server._detach()
        await waiting
        return early

    assert run(impl, main()) is False


def test_cancelled_start_serving_leaves_the_server_serving(any_impl):
    async def main():
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            asyncio.Protocol, "127.0.0.1", 0, start_serving=False
        )
        starting = asyncio.ensure_future(server.start_serving())
        await asyncio.sleep(0)  # start_serving() runs up to its one yield
        starting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await starting
        serving = server.is_serving()
        reader, writer = await asyncio.open_connection(*server.sockets[0].getsockname())
        writer.close()
        await writer.wait_closed()
        server.close()
        await server.wait_closed()
        return serving

    assert run(any_impl, main()) is True


def test_cancelled_serve_forever_with_a_hanging_client(any_impl):
    # From 3.14 on, cancelling serve_forever() closes the connections too;
    # before, it waits in wait_closed() until the client leaves on its own.
    async def main():
        loop = asyncio.get_running_loop()
        made = asyncio.Event()

        class Made(asyncio.Protocol):
            def connection_made(self, transport):
                made.set()

        server = await loop.create_server(Made, "127.0.0.1", 0)
        forever = asyncio.create_task(server.serve_forever())
        await asyncio.sleep(0)
        client = socket.create_connection(server.sockets[0].getsockname())
        await made.wait()
        forever.cancel()
        for _ in range(20):
            await asyncio.sleep(0)
        done_before_the_client_left = forever.done()
        client.close()
        with pytest.raises(asyncio.CancelledError):
            await forever
        return done_before_the_client_left, server.is_serving()

    # asyncio's 3.11 wait_closed() does not wait for connections at all; ours
    # has 3.12.1's on every version (see test_wait_closed_waits_for_connections).
    stdlib_311 = any_impl == "stdlib" and sys.version_info < (3, 12)
    early = sys.version_info >= (3, 14) or stdlib_311
    assert run(any_impl, main()) == (early, False)


def test_wait_closed_waits_for_connections(impl):
    # 3.12.1's semantics, which our Server has on every version.
    async def main():
        events = []
        connected = asyncio.Event()

        async def handle(reader, writer):
            connected.set()
            await reader.read()
            events.append("client done")
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        reader, writer = await asyncio.open_connection(*server.sockets[0].getsockname())
        await connected.wait()
        server.close()
        waiting = asyncio.create_task(server.wait_closed())
        for _ in range(10):
            await asyncio.sleep(0)
        events.append(f"wait_closed done early: {waiting.done()}")
        writer.close()
        await waiting
        events.append("wait_closed done")
        return events

    assert run(impl, main()) == [
        "wait_closed done early: False",
        "client done",
        "wait_closed done",
    ]


@pytest.mark.parametrize("how", ["close_clients", "abort_clients"])
def test_close_clients_and_abort_clients(impl, how):
    async def main():
        connected = 0
        all_connected = asyncio.Event()

        async def handle(reader, writer):
            nonlocal connected
            connected += 1
            if connected == 2:
                all_connected.set()
            await reader.read()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        clients = [
            await asyncio.open_connection(*server.sockets[0].getsockname())
            for _ in range(2)
        ]
        await all_connected.wait()
        server.close()
        getattr(server, how)()
        await server.wait_closed()
        for reader, writer in clients:
            assert await reader.read() == b""
            writer.close()

    run(impl, main())


def test_bind_errors(any_impl):
    async def main():
        loop = asyncio.get_running_loop()
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            with pytest.raises(OSError) as info:
                await loop.create_server(
                    asyncio.Protocol, *taken.getsockname(), reuse_address=False
                )
        assert info.value.errno == errno.EADDRINUSE
        assert "error while attempting to bind on address" in str(info.value)
        with pytest.raises(ValueError):
            await loop.create_server(asyncio.Protocol)
        with pytest.raises(ValueError):
            await loop.create_connection(asyncio.Protocol)
        with socket.socket(type=socket.SOCK_DGRAM) as udp:
            with pytest.raises(ValueError, match="A Stream Socket was expected"):
                await loop.create_connection(asyncio.Protocol, sock=udp)

    run(any_impl, main())


def test_create_connection_with_sock_and_local_addr(any_impl):
    async def main():
        loop = asyncio.get_running_loop()
        async with await asyncio.start_server(echo_handler, "127.0.0.1", 0) as server:
            address = server.sockets[0].getsockname()
            transport, _ = await loop.create_connection(
                asyncio.Protocol, *address, local_addr=("127.0.0.1", 0)
            )
            local_host = transport.get_extra_info("sockname")[0]
            transport.close()
            sock = socket.create_connection(address)
            transport, _ = await loop.create_connection(asyncio.Protocol, sock=sock)
            peer = transport.get_extra_info("peername")
            transport.close()
            await asyncio.sleep(0)
        return local_host, peer == address

    assert run(any_impl, main()) == ("127.0.0.1", True)
