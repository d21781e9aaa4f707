"""Tests of section "TLS" (tls.py, tls_transport.py): TLSEventLoop against asyncio's loop.

Every test runs on asyncio's loop (``stdlib``) and on ours with each poller, and once
with the book's Python Task; each run is bounded, so a bug fails instead of hanging.
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import os
import socket
import ssl
import sys
import threading
from typing import Any

import pytest
import tls_certs

from asynciodepth.tls import TLSEventLoop
from asynciodepth.tls_transport import SSLTransport

LOOPS = ["stdlib", "epoll", "selectors", "epoll+pytask"]


def new_loop(name: str) -> asyncio.AbstractEventLoop:
    if name == "stdlib":
        return asyncio.new_event_loop()
    poller = name.split("+")[0]
    return TLSEventLoop(poller=poller, python_tasks=name.endswith("+pytask"))


def run(name: str, main: Any, timeout: float = 15.0) -> Any:
    async def bounded() -> Any:
        async with asyncio.timeout(timeout):
            return await main

    with asyncio.Runner(loop_factory=lambda: new_loop(name)) as runner:
        return runner.run(bounded())


def open_fds() -> int:
    gc.collect()
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture(params=LOOPS)
def loop_name(request: Any) -> str:
    return request.param


def server_ctx() -> ssl.SSLContext:
    return tls_certs.server_context()


def client_ctx() -> ssl.SSLContext:
    return tls_certs.client_context()


def port_of(server: Any) -> int:
    return server.sockets[0].getsockname()[1]


async def echo_server(**kwargs: Any) -> Any:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        writer.close()

    return await asyncio.start_server(
        echo, "127.0.0.1", 0, ssl=kwargs.pop("ssl", server_ctx()), **kwargs
    )


async def connect(port: int, **kwargs: Any) -> Any:
    kwargs.setdefault("ssl", client_ctx())
    kwargs.setdefault("server_hostname", "localhost")
    return await asyncio.open_connection("127.0.0.1", port, **kwargs)


def describe(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"{type(exc).__name__}: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError):
        return f"{type(exc).__name__}: {exc.reason}"
    return f"{type(exc).__name__}: {exc}"


# ---- data both ways, extra info, close_notify ------------------------------


def test_echo_one_mib_hash_checked(loop_name: str) -> None:
    payload = os.urandom(1024 * 1024)

    async def main() -> bytes:
        async with await echo_server() as server:
            reader, writer = await connect(port_of(server))
            writer.write(payload)
            got = await reader.readexactly(len(payload))
            writer.close()
            await writer.wait_closed()
            return got

    assert hashlib.sha256(run(loop_name, main())).digest() == hashlib.sha256(payload).digest()


def test_extra_info(loop_name: str) -> None:
    async def main() -> dict[str, Any]:
        context = client_ctx()
        async with await echo_server() as server:
            _, writer = await connect(port_of(server), ssl=context)
            info = {
                key: writer.get_extra_info(key)
                for key in ("peercert", "cipher", "compression", "ssl_object")
            }
            info["context_is_ours"] = writer.get_extra_info("sslcontext") is context
            info["peername"] = writer.get_extra_info("peername")[1] == port_of(server)
            info["socket"] = writer.get_extra_info("socket").family
            info["missing"] = writer.get_extra_info("nothing", "default")
            writer.close()
            await writer.wait_closed()
            return info

    info = run(loop_name, main())
    assert dict(x[0] for x in info["peercert"]["subject"])["commonName"] == "localhost"
    assert info["cipher"][1] == "TLSv1.3"
    assert info["compression"] is None
    assert isinstance(info["ssl_object"], ssl.SSLObject)
    assert info["context_is_ours"] and info["peername"]
    assert info["socket"] == socket.AF_INET
    assert info["missing"] == "default"


class Recorder(asyncio.Protocol):
    def __init__(self) -> None:
        self.events: list[str] = []
        self.lost = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.events.append("connection_made")

    def data_received(self, data: bytes) -> None:
        self.events.append(f"data_received({data!r})")

    def eof_received(self) -> None:
        self.events.append("eof_received")

    def connection_lost(self, exc: BaseException | None) -> None:
        self.events.append(f"connection_lost({exc!r})")
        self.lost.set_result(None)


def test_close_notify_reaches_the_server_protocol(loop_name: str) -> None:
    async def main() -> tuple[list[str], list[str]]:
        loop = asyncio.get_running_loop()
        recorders: list[Recorder] = []

        def factory() -> Recorder:
            recorders.append(Recorder())
            return recorders[-1]

        server = await loop.create_server(factory, "127.0.0.1", 0, ssl=server_ctx())
        transport, client = await loop.create_connection(
            Recorder, "127.0.0.1", port_of(server), ssl=client_ctx(),
            server_hostname="localhost",
        )
        transport.write(b"hi")
        await asyncio.sleep(0.05)
        transport.close()
        assert transport.is_closing()
        await recorders[0].lost
        await client.lost
        server.close()
        await server.wait_closed()
        return recorders[0].events, client.events

    server_events, client_events = run(loop_name, main())
    assert server_events == [
        "connection_made", "data_received(b'hi')", "eof_received", "connection_lost(None)"
    ]
    # The server's close_notify in answer is the client's eof_received.
    assert client_events == ["connection_made", "eof_received", "connection_lost(None)"]


def test_read_returns_eof_after_peer_close(loop_name: str) -> None:
    async def main() -> bytes:
        async def serve(reader: Any, writer: Any) -> None:
            writer.write(b"bye")
            writer.close()

        async with await asyncio.start_server(serve, "127.0.0.1", 0, ssl=server_ctx()) as srv:
            reader, writer = await connect(port_of(srv))
            data = await reader.read()
            writer.close()
            await writer.wait_closed()
            return data

    assert run(loop_name, main()) == b"bye"


class Buffered(asyncio.BufferedProtocol):
    def __init__(self, size: int) -> None:
        self.buffer = bytearray(4096)
        self.got = bytearray()
        self.size = size
        self.done = asyncio.get_running_loop().create_future()

    def get_buffer(self, sizehint: int) -> bytearray:
        return self.buffer

    def buffer_updated(self, nbytes: int) -> None:
        self.got += self.buffer[:nbytes]
        if len(self.got) >= self.size and not self.done.done():
            self.done.set_result(bytes(self.got))

    def connection_lost(self, exc: BaseException | None) -> None:
        if not self.done.done():
            self.done.set_result(bytes(self.got))


def test_buffered_protocol_app(loop_name: str) -> None:
    payload = os.urandom(300_000)

    async def main() -> bytes:
        loop = asyncio.get_running_loop()
        async with await echo_server() as server:
            transport, protocol = await loop.create_connection(
                lambda: Buffered(len(payload)), "127.0.0.1", port_of(server),
                ssl=client_ctx(), server_hostname="localhost",
            )
            transport.write(payload)
            got = await protocol.done
            transport.close()
            return got

    assert run(loop_name, main()) == payload


def test_unix_sockets(loop_name: str, tmp_path: Any) -> None:
    path = str(tmp_path / "tls.sock")

    async def main() -> bytes:
        async def serve(reader: Any, writer: Any) -> None:
            writer.write(await reader.readline())
            writer.close()

        server = await asyncio.start_unix_server(serve, path, ssl=server_ctx())
        reader, writer = await asyncio.open_unix_connection(
            path, ssl=client_ctx(), server_hostname="localhost"
        )
        writer.write(b"over a unix socket\n")
        line = await reader.readline()
        writer.close()
        await writer.wait_closed()
        server.close()
        await server.wait_closed()
        return line

    assert run(loop_name, main()) == b"over a unix socket\n"


def test_connect_accepted_socket(loop_name: str) -> None:
    async def main() -> bytes:
        loop = asyncio.get_running_loop()
        with socket.create_server(("127.0.0.1", 0)) as listener:
            listener.setblocking(False)
            connecting = asyncio.ensure_future(connect(listener.getsockname()[1]))
            conn, _ = await loop.sock_accept(listener)
        transport, protocol = await loop.connect_accepted_socket(
            Recorder, conn, ssl=server_ctx()
        )
        reader, writer = await connecting
        transport.write(b"accepted")
        data = await reader.readexactly(8)
        writer.close()
        await protocol.lost
        await writer.wait_closed()
        return data

    assert run(loop_name, main()) == b"accepted"


# ---- transport API -----------------------------------------------------------


def test_transport_api(loop_name: str) -> None:
    async def main() -> list[Any]:
        async with await echo_server() as server:
            reader, writer = await connect(port_of(server))
            transport = writer.transport
            out: list[Any] = [transport.can_write_eof(), transport.get_write_buffer_limits()]
            try:
                transport.write_eof()
            except NotImplementedError as exc:
                out.append(type(exc).__name__)
            try:
                transport.write("text")
            except TypeError as exc:
                out.append(str(exc))
            out.append(transport.is_reading())
            transport.pause_reading()
            out.append(transport.is_reading())
            transport.resume_reading()
            transport.set_write_buffer_limits(high=1000)
            out.append(transport.get_write_buffer_limits())
            out.append(transport._sendfile_compatible)
            writer.close()
            out.append(transport.is_closing())
            await writer.wait_closed()
            return out

    assert run(loop_name, main()) == [
        False, (128 * 1024, 512 * 1024), "NotImplementedError",
        "data: expecting a bytes-like instance, got str",
        True, False, (250, 1000), asyncio.constants._SendfileMode.FALLBACK, True,
    ]


def test_flow_control_both_ways(loop_name: str) -> None:
    """16 MiB to a reader paused for a while: the writer is paused and resumed."""
    payload = hashlib.sha256(b"x").digest() * (16 * 1024 * 1024 // 32)

    class Sender(asyncio.Protocol):
        def __init__(self) -> None:
            self.calls: list[str] = []
            self.lost = asyncio.get_running_loop().create_future()

        def connection_made(self, transport: Any) -> None:
            for start in range(0, len(payload), 65536):
                transport.write(payload[start : start + 65536])
            self.buffered = transport.get_write_buffer_size() > 0
            transport.close()

        def pause_writing(self) -> None:
            self.calls.append("pause")

        def resume_writing(self) -> None:
            self.calls.append("resume")

        def connection_lost(self, exc: BaseException | None) -> None:
            self.lost.set_result(exc)

    async def main() -> tuple[list[str], bool, bool]:
        loop = asyncio.get_running_loop()
        got = hashlib.sha256()
        done = loop.create_future()

        async def serve(reader: Any, writer: Any) -> None:
            writer.transport.pause_reading()
            await asyncio.sleep(0.3)
            writer.transport.resume_reading()
            while data := await reader.read(65536):
                got.update(data)
            writer.close()
            done.set_result(None)

        async with await asyncio.start_server(serve, "127.0.0.1", 0, ssl=server_ctx()) as srv:
            _, sender = await loop.create_connection(
                Sender, "127.0.0.1", port_of(srv), ssl=client_ctx(),
                server_hostname="localhost",
            )
            assert await sender.lost is None
            await done
        return sender.calls, sender.buffered, got.digest() == hashlib.sha256(payload).digest()

    calls, buffered, intact = run(loop_name, main(), timeout=30)
    assert calls[:2] == ["pause", "resume"] and buffered and intact


def test_server_attributes(loop_name: str) -> None:
    async def main() -> list[Any]:
        context = server_ctx()
        server = await asyncio.start_server(
            lambda r, w: None, "127.0.0.1", 0, ssl=context,
            ssl_handshake_timeout=5.0, ssl_shutdown_timeout=7.0,
        )
        out = [server._ssl_context is context, server._ssl_handshake_timeout,
               server._ssl_shutdown_timeout]
        server.close()
        await server.wait_closed()
        return out

    assert run(loop_name, main()) == [True, 5.0, 7.0]


# ---- start_tls -------------------------------------------------------------------


def test_start_tls_streams(loop_name: str) -> None:
    async def main() -> list[bytes]:
        async def serve(reader: Any, writer: Any) -> None:
            await reader.readline()
            writer.write(b"GO\n")
            await writer.drain()
            await writer.start_tls(server_ctx())
            writer.write(b"secret " + await reader.readline())
            await writer.drain()
            writer.close()

        async with await asyncio.start_server(serve, "127.0.0.1", 0) as server:
            reader, writer = await asyncio.open_connection("127.0.0.1", port_of(server))
            writer.write(b"STARTTLS\n")
            out = [await reader.readline()]
            await writer.start_tls(client_ctx(), server_hostname="localhost")
            out.append(writer.get_extra_info("ssl_object").version().encode())
            writer.write(b"42\n")
            out.append(await reader.readline())
            writer.close()
            await writer.wait_closed()
            return out

    assert run(loop_name, main()) == [b"GO\n", b"TLSv1.3", b"secret 42\n"]


def test_start_tls_bad_arguments(loop_name: str) -> None:
    async def main() -> list[str]:
        loop = asyncio.get_running_loop()
        out = []
        async with await echo_server(ssl=None) as srv:
            transport, protocol = await loop.create_connection(
                asyncio.Protocol, "127.0.0.1", port_of(srv)
            )
            for context in (None, "context"):
                try:
                    await loop.start_tls(transport, protocol, context)
                except TypeError as exc:
                    out.append(str(exc))
            try:
                await loop.start_tls(
                    transport, protocol, client_ctx(), ssl_handshake_timeout=-1
                )
            except ValueError as exc:
                out.append(str(exc))
            transport.close()

            class Other(asyncio.Transport):
                def __repr__(self) -> str:
                    return "<Other>"

            try:
                await loop.start_tls(Other(), protocol, client_ctx())
            except TypeError as exc:
                out.append(str(exc))
        return out

    assert run(loop_name, main()) == [
        "sslcontext is expected to be an instance of ssl.SSLContext, got None",
        "sslcontext is expected to be an instance of ssl.SSLContext, got 'context'",
        "ssl_handshake_timeout should be a positive number, got -1",
        "transport <Other> is not supported by start_tls()",
    ]


# ---- bad arguments ---------------------------------------------------------------


def outcome(loop_name: str, make: Any) -> str:
    async def main() -> str:
        try:
            result = await make(asyncio.get_running_loop())
        except Exception as exc:
            return describe(exc)
        result[0].close()
        return "ok"

    return run(loop_name, main())


@pytest.mark.parametrize(
    "case, expected",
    [
        ("no host", "ValueError: You must set server_hostname when using ssl without a host"),
        ("hostname without ssl", "ValueError: server_hostname is only meaningful with ssl"),
        ("handshake timeout without ssl",
         "ValueError: ssl_handshake_timeout is only meaningful with ssl"),
        ("shutdown timeout without ssl",
         "ValueError: ssl_shutdown_timeout is only meaningful with ssl"),
        ("negative handshake timeout",
         "ValueError: ssl_handshake_timeout should be a positive number, got -1"),
        ("zero shutdown timeout",
         "ValueError: ssl_shutdown_timeout should be a positive number, got 0"),
        ("SSLSocket", "TypeError: Socket cannot be of type SSLSocket"),
        ("ssl=True", "SSLCertVerificationError: unable to get local issuer certificate"),
    ],
)
def test_create_connection_checks(loop_name: str, case: str, expected: str) -> None:
    async def make(loop: Any) -> Any:
        server = await echo_server()
        port = port_of(server)
        kwargs: dict[str, Any] = {"ssl": client_ctx()}
        host: Any = "127.0.0.1"
        sock = None
        if case == "no host":
            sock = socket.create_connection(("127.0.0.1", port))
            host = port = None
        elif case == "hostname without ssl":
            kwargs = {"server_hostname": "localhost"}
        elif case == "handshake timeout without ssl":
            kwargs = {"ssl_handshake_timeout": 1}
        elif case == "shutdown timeout without ssl":
            kwargs = {"ssl_shutdown_timeout": 1}
        elif case == "negative handshake timeout":
            kwargs["ssl_handshake_timeout"] = -1
        elif case == "zero shutdown timeout":
            kwargs["ssl_shutdown_timeout"] = 0
        elif case == "SSLSocket":
            sock = client_ctx().wrap_socket(
                socket.socket(), server_hostname="localhost", do_handshake_on_connect=False
            )
            host = port = None
            kwargs["server_hostname"] = "localhost"
        elif case == "ssl=True":
            kwargs = {"ssl": True, "server_hostname": "localhost"}
        if "server_hostname" not in kwargs and kwargs.get("ssl") and host:
            kwargs["server_hostname"] = "localhost"
        try:
            return await loop.create_connection(
                asyncio.Protocol, host, port, sock=sock, **kwargs
            )
        finally:
            if sock is not None:
                sock.close()
            server.close()
            # No wait_closed(): asyncio checks the timeouts only once connected,
            # and its socket then stays open until collected (3.12+ would wait).

    assert outcome(loop_name, make) == expected


@pytest.mark.parametrize(
    "case, expected",
    [
        ("server ssl=True", "TypeError: ssl argument must be an SSLContext or None"),
        ("unix server ssl=True", "TypeError: ssl argument must be an SSLContext or None"),
        ("unix no hostname", "ValueError: you have to pass server_hostname when using ssl"),
        ("server timeout without ssl",
         "ValueError: ssl_handshake_timeout is only meaningful with ssl"),
        ("accepted ssl=True", "ValueError: Server side SSL needs a valid SSLContext"),
    ],
)
def test_other_method_checks(loop_name: str, case: str, expected: str, tmp_path: Any) -> None:
    path = str(tmp_path / "s")

    async def make(loop: Any) -> Any:
        if case == "server ssl=True":
            return [await loop.create_server(asyncio.Protocol, "127.0.0.1", 0, ssl=True)]
        if case == "unix server ssl=True":
            return [await loop.create_unix_server(asyncio.Protocol, path, ssl=True)]
        if case == "unix no hostname":
            return await loop.create_unix_connection(asyncio.Protocol, path, ssl=client_ctx())
        if case == "server timeout without ssl":
            return [await loop.create_server(
                asyncio.Protocol, "127.0.0.1", 0, ssl_handshake_timeout=1
            )]
        a, b = socket.socketpair()
        try:
            return await loop.connect_accepted_socket(asyncio.Protocol, a, ssl=True)
        finally:
            a.close()
            b.close()

    assert outcome(loop_name, make) == expected


# ---- faults: same exception as asyncio, no fd left, no hang ------------------------


def untrusted_ctx() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tls_certs.ONLYCERT, tls_certs.ONLYKEY)
    return context


async def plain_server(behaviour: str) -> Any:
    async def serve(reader: Any, writer: Any) -> None:
        if behaviour == "drop":
            writer.transport.abort()
            return
        if behaviour == "http":
            writer.write(b"HTTP/1.0 400 Bad Request\r\n\r\n")
        try:
            await reader.read()
        except ConnectionError:
            pass
        writer.close()

    return await asyncio.start_server(serve, "127.0.0.1", 0)


@pytest.mark.parametrize(
    "fault, expected",
    [
        ("untrusted", "SSLCertVerificationError: self-signed certificate"),
        ("hostname", "SSLCertVerificationError: Hostname mismatch, certificate is not "
         "valid for 'localhost'."),
        ("http", "SSLError: WRONG_VERSION_NUMBER"),
        ("drop", "ConnectionResetError: "),
        ("silent", "ConnectionAbortedError: SSL handshake is taking longer than 0.2 "
         "seconds: aborting the connection"),
    ],
)
def test_client_faults(loop_name: str, fault: str, expected: str) -> None:
    async def main() -> str:
        if fault == "untrusted":
            server = await echo_server(ssl=untrusted_ctx())
        elif fault == "hostname":
            server = await echo_server(
                ssl=tls_certs.server_context(tls_certs.SIGNED_CERTFILE2)
            )
        else:
            server = await plain_server(fault)
        try:
            await connect(port_of(server), ssl_handshake_timeout=0.2)
        except Exception as exc:
            result = describe(exc)
        else:
            result = "connected"
        await asyncio.sleep(0.05)  # the server's handler sees the client go
        server.close()
        await server.wait_closed()
        return result

    before = open_fds()
    got = run(loop_name, main())
    if fault == "drop":
        got = got.split(":")[0] + ": "
    assert got == expected
    assert open_fds() == before


def test_server_survives_failed_handshakes(loop_name: str) -> None:
    async def main() -> bytes:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda loop, context: None)  # the failed handshakes
        async with await echo_server(ssl_handshake_timeout=0.3) as server:
            port = port_of(server)
            with socket.create_connection(("127.0.0.1", port)) as plain:
                plain.sendall(b"GET / HTTP/1.0\r\n\r\n")
                silent = socket.create_connection(("127.0.0.1", port))
                await asyncio.sleep(0.5)  # the silent one times out
                silent.close()
            reader, writer = await connect(port)
            writer.write(b"still serving")
            data = await reader.readexactly(13)
            writer.close()
            await writer.wait_closed()
            return data

    before = open_fds()
    assert run(loop_name, main()) == b"still serving"
    assert open_fds() == before


def test_shutdown_timeout(loop_name: str) -> None:
    """A peer that never answers close_notify: connection_lost(TimeoutError)."""
    listener = socket.create_server(("127.0.0.1", 0))
    release = threading.Event()

    def peer() -> None:
        conn, _ = listener.accept()
        with server_ctx().wrap_socket(conn, server_side=True) as tls:
            release.wait(10)

    thread = threading.Thread(target=peer)
    thread.start()

    async def main() -> str:
        loop = asyncio.get_running_loop()
        transport, protocol = await loop.create_connection(
            Recorder, *listener.getsockname(), ssl=client_ctx(),
            server_hostname="localhost", ssl_shutdown_timeout=0.3,
        )
        transport.close()
        await protocol.lost
        return protocol.events[-1]

    try:
        last = run(loop_name, main())
    finally:
        release.set()
        thread.join()
        listener.close()
    assert last == "connection_lost(TimeoutError('SSL shutdown timed out'))"


def test_cancelled_during_handshake_leaks_nothing(loop_name: str) -> None:
    async def main() -> bool:
        server = await plain_server("silent")
        before = open_fds()
        task = asyncio.ensure_future(connect(port_of(server)))
        await asyncio.sleep(0.1)
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        await asyncio.sleep(0.05)
        server.close()
        await server.wait_closed()
        return open_fds() <= before

    assert run(loop_name, main())


def test_context_freed_without_gc(loop_name: str) -> None:
    import weakref

    async def main() -> Any:
        context = client_ctx()
        async with await echo_server() as server:
            reader, writer = await connect(port_of(server), ssl=context)
            writer.close()
            await writer.wait_closed()
        return weakref.ref(context)

    gc.disable()
    try:
        ref = run(loop_name, main())
        assert ref() is None
    finally:
        gc.enable()


def test_tls_transport_class() -> None:
    assert SSLTransport._start_tls_compatible is True
    assert SSLTransport._sendfile_compatible == asyncio.constants._SendfileMode.FALLBACK
    assert sys.version_info >= (3, 11)


# ---- fixes asyncio made in 3.14, which ours has on every version ------------------

OURS = [name for name in LOOPS if name != "stdlib"]


@pytest.mark.parametrize("loop_name", OURS)
def test_start_tls_takes_the_hello_a_stream_reader_buffered(loop_name: str) -> None:
    """The server's reader holds the client's hello when it calls start_tls()."""

    async def main() -> bytes:
        async def serve(reader: Any, writer: Any) -> None:
            await reader._wait_for_data("test")  # the hello is in the buffer now
            assert reader._buffer
            await writer.start_tls(server_ctx())
            writer.write(await reader.readline())
            await writer.drain()
            writer.close()

        async with await asyncio.start_server(serve, "127.0.0.1", 0) as server:
            reader, writer = await asyncio.open_connection("127.0.0.1", port_of(server))
            await writer.start_tls(client_ctx(), server_hostname="localhost")
            writer.write(b"ping\n")
            line = await reader.readline()
            writer.close()
            await writer.wait_closed()
            return line

    assert run(loop_name, main()) == b"ping\n"


@pytest.mark.parametrize("close_first", [True, False])
@pytest.mark.parametrize("loop_name", OURS)
def test_shutdown_timeout_with_a_peer_that_stops_reading(
    loop_name: str, close_first: bool
) -> None:
    """The peer sends EOF and never reads: the shutdown timeout still ends it."""
    listener = socket.create_server(("127.0.0.1", 0))
    filled, release = threading.Event(), threading.Event()

    def peer() -> None:
        conn, _ = listener.accept()
        with server_ctx().wrap_socket(conn, server_side=True) as tls:
            filled.wait(10)
            tls.shutdown(socket.SHUT_WR)
            release.wait(10)

    thread = threading.Thread(target=peer)
    thread.start()

    class Writer(Recorder):
        paused = False

        def pause_writing(self) -> None:
            self.paused = True

    async def main() -> str:
        loop = asyncio.get_running_loop()
        transport, protocol = await loop.create_connection(
            Writer, *listener.getsockname(), ssl=client_ctx(),
            server_hostname="localhost", ssl_shutdown_timeout=0.2,
        )
        while not protocol.paused:
            transport.write(bytes(256 * 1024))
            await asyncio.sleep(0)
        if close_first:
            transport.close()
        filled.set()
        await protocol.lost
        return protocol.events[-1]

    try:
        last = run(loop_name, main())
    finally:
        filled.set()
        release.set()
        thread.join()
        listener.close()
    assert last == "connection_lost(TimeoutError('SSL shutdown timed out'))"


class HalfSend:
    """A socket whose send() takes half of each buffer: a full kernel buffer, faked.

    CPython's test_ssl wraps a transport's socket so (gh-115514). Since send() of
    one byte takes none, only a write handler that sends otherwise drains the buffer.
    """

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sock, name)

    def send(self, data: Any) -> int:
        return self.sock.send(memoryview(data)[: len(data) // 2])


# asyncio's write handler sends with sendmsg from 3.12 on; 3.11's stalls on HalfSend.
SENDMSG_LOOPS = [name for name in LOOPS if name != "stdlib" or sys.version_info >= (3, 12)]


@pytest.mark.parametrize("loop_name", SENDMSG_LOOPS)
def test_backlog_and_close_notify_reach_the_peer_through_a_slow_send(
    loop_name: str,
) -> None:
    """close() with a big backlog on a socket whose send() takes half: all arrives."""
    size = 2 * 1024 * 1024
    listener = socket.create_server(("127.0.0.1", 0))
    received: list[Any] = []

    def peer() -> None:
        conn, _ = listener.accept()
        conn.settimeout(10)
        # A ragged EOF raises SSLEOFError: recv() returns b"" on close_notify only.
        with server_ctx().wrap_socket(
            conn, server_side=True, suppress_ragged_eofs=False
        ) as tls:
            total = 0
            try:
                while chunk := tls.recv(65536):
                    total += len(chunk)
                received.append(total)
                tls.unwrap().close()  # close_notify in answer
            except (OSError, ssl.SSLError) as exc:
                received.append(describe(exc))

    thread = threading.Thread(target=peer)
    thread.start()

    async def main() -> list[str]:
        loop = asyncio.get_running_loop()
        transport, protocol = await loop.create_connection(
            Recorder, *listener.getsockname(), ssl=client_ctx(),
            server_hostname="localhost",
        )
        plain = transport._ssl_protocol._transport
        plain._sock = HalfSend(plain._sock)
        transport.write(bytes(size))
        transport.close()
        await protocol.lost
        return protocol.events

    try:
        events = run(loop_name, main(), timeout=5)
    finally:
        thread.join(10)
        listener.close()
    assert received == [size]
    assert events[-1] == "connection_lost(None)"


def test_private_names_libraries_read(loop_name: str) -> None:
    # aiohttp's test_tcp_connector_do_not_raise_connector_ssl_error reads
    # transport._ssl_protocol._sslcontext, as asyncio's SSLProtocol names it.
    async def main() -> tuple[bool, bool, bool]:
        context = client_ctx()
        async with await echo_server() as server:
            _, writer = await connect(port_of(server), ssl=context)
            try:
                tls = writer.transport._ssl_protocol
                return (
                    getattr(tls, "_sslcontext", None) is context,
                    tls._app_transport is writer.transport,
                    tls._sslobj is writer.get_extra_info("ssl_object"),
                )
            finally:
                writer.close()
                await writer.wait_closed()

    assert run(loop_name, main()) == (True, True, True)
