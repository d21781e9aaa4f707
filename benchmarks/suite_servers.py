"""The suite's servers and clients that run in processes of their own.

``benchmarks/suite.py`` starts them; nothing here is run by hand.

- ``serve(config, kind, ...)``: a server on the loop under test (echo with streams
  or protocols, or an aiohttp application). It prints its port, then obeys
  commands on its standard input, read by the loop itself (``add_reader``):
  ``start`` notes the wall and CPU clocks and answers ``ok``; ``stop`` answers
  ``{"wall": s, "cpu": s}`` since ``start`` and ends the process. The CPU time is
  the server process's only: its clients are another process.
- ``echo_client(...)``: the echo clients, on asyncio's own loop always (the same
  driver for every loop measured). They connect, run a warm-up, print ``warm``,
  wait for ``go`` on standard input, then make ``requests`` round trips in all and
  print ``{"wall": s, "completed": n}``.
- ``in_process(config, bench, ...)``: TLS echo and subprocess spawn from
  bench_beyond_tcp.py, clients and server on one loop as there, for a fixed number
  of requests instead of a time window; prints ``{"wall": s, "cpu": s}``.
"""

from __future__ import annotations

import asyncio
import gc
import json
import socket
import sys
import time

import bench_loop


# The suite's configurations by bench_loop.py's names (compiled: by PYTHONPATH).
BENCH_LOOP_NAME = {
    "stdlib": "stdlib+ctask",
    "uvloop": "uvloop",
    "ours": "ours+ctask",
    "compiled": "ours+ctask",
    "ours-py": "ours+ours",
    "compiled-py": "ours+ours",
}


def new_loop(config: str) -> asyncio.AbstractEventLoop:
    """The loop of one of the suite's configurations."""
    return bench_loop.new_loop(BENCH_LOOP_NAME[config])


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


# ---- the servers ------------------------------------------------------------------


async def start_protocol_echo(sock: socket.socket) -> asyncio.AbstractServer:
    class Echo(asyncio.Protocol):
        def connection_made(self, transport):
            self.transport = transport

        def data_received(self, data):
            self.transport.write(data)

    return await asyncio.get_running_loop().create_server(Echo, sock=sock)


async def start_stream_echo(sock: socket.socket) -> asyncio.AbstractServer:
    async def handle(reader, writer):
        try:
            while data := await reader.read(262144):
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        writer.close()

    return await asyncio.start_server(handle, sock=sock)


async def start_http(sock: socket.socket):
    """An aiohttp application: a plain-text and a small JSON route."""
    from aiohttp import web

    async def plaintext(request):
        return web.Response(text="Hello, World!")

    async def json_route(request):
        return web.json_response({"message": "Hello, World!", "id": 1})

    app = web.Application()
    app.router.add_get("/", plaintext)
    app.router.add_get("/json", json_route)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.SockSite(runner, sock, backlog=1024).start()
    return runner


async def serve_main(kind: str) -> None:
    loop = asyncio.get_running_loop()
    sock = socket.create_server(("127.0.0.1", 0), backlog=1024)
    sock.setblocking(False)
    if kind == "http":
        runner = await start_http(sock)
    else:
        server = await {"protocols": start_protocol_echo, "streams": start_stream_echo}[
            kind
        ](sock)
    done = loop.create_future()
    marks: list[tuple[float, float]] = []
    stdin = sys.stdin.fileno()
    pending = b""

    def command() -> None:
        nonlocal pending
        import os

        chunk = os.read(stdin, 1024)
        if not chunk:  # the parent went away
            if not done.done():
                done.set_result(None)
            return
        pending += chunk
        while b"\n" in pending:
            line, _, pending = pending.partition(b"\n")
            if line == b"start":
                gc.collect()  # the start-up's garbage, not in the window
            marks.append((time.perf_counter(), time.process_time()))
            if line == b"start":
                say("ok")
            elif line == b"stop" and len(marks) >= 2:
                (w0, c0), (w1, c1) = marks[0], marks[-1]
                say(json.dumps({"wall": w1 - w0, "cpu": c1 - c0}))
                if not done.done():
                    done.set_result(None)

    loop.add_reader(stdin, command)
    say(f"port {sock.getsockname()[1]}")
    try:
        await done
    finally:
        loop.remove_reader(stdin)
        if kind == "http":
            await runner.cleanup()
        else:
            server.close()


def serve(config: str, kind: str) -> None:
    loop = new_loop(config)
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(serve_main(kind))
    finally:
        loop.close()


# ---- the echo clients -------------------------------------------------------------


class Clients:
    """n protocol clients doing round trips of size bytes, in phases."""

    def __init__(self, size: int) -> None:
        self.message = b"x" * size
        self.size = size
        self.completed = 0
        self.limit = 0
        self.running = 0
        self.idle = asyncio.get_running_loop().create_future()
        self.transports: list[asyncio.Transport] = []

    def protocol(self) -> asyncio.Protocol:
        clients = self

        class Client(asyncio.Protocol):
            def connection_made(self, transport):
                self.transport = transport
                self.got = 0

            def data_received(self, data):
                self.got += len(data)
                if self.got < clients.size:
                    return
                self.got -= clients.size
                clients.completed += 1
                if clients.completed < clients.limit:
                    self.transport.write(clients.message)
                else:
                    clients.running -= 1
                    if not clients.running and not clients.idle.done():
                        clients.idle.set_result(None)

            def connection_lost(self, exc):
                if exc is not None and not clients.idle.done():
                    clients.idle.set_exception(exc)

        return Client()

    async def phase(self, requests: int) -> float:
        """Run until requests more round trips are done; the wall time taken."""
        self.limit = self.completed + requests
        self.idle = asyncio.get_running_loop().create_future()
        self.running = len(self.transports)
        start = time.perf_counter()
        for transport in self.transports:
            transport.write(self.message)
        await self.idle
        return time.perf_counter() - start


async def echo_client_main(
    port: int, size: int, clients: int, warmup: int, requests: int
) -> None:
    loop = asyncio.get_running_loop()
    group = Clients(size)
    for _ in range(clients):
        transport, _ = await loop.create_connection(group.protocol, "127.0.0.1", port)
        transport.get_extra_info("socket").setsockopt(
            socket.IPPROTO_TCP, socket.TCP_NODELAY, 1
        )
        group.transports.append(transport)
    await group.phase(max(warmup, clients))
    say("warm")
    await loop.run_in_executor(None, sys.stdin.readline)
    before = group.completed
    wall = await group.phase(requests)
    say(json.dumps({"wall": wall, "completed": group.completed - before}))
    for transport in group.transports:
        transport.close()
    await asyncio.sleep(0)


def echo_client(port: int, size: int, clients: int, warmup: int, requests: int) -> None:
    asyncio.run(echo_client_main(port, size, clients, warmup, requests))


# ---- TLS echo and spawn in one process (bench_beyond_tcp's) ----------------------


def in_process(config: str, bench: str, clients: int, requests: int) -> None:
    import bench_beyond_tcp
    from bench_io import Counter

    class Bounded(Counter):
        """Stops the clients after a fixed number of requests."""

        def __init__(self) -> None:
            self._requests = 0
            self.limit = 1 << 62
            self.final = False  # the measured phase: stop the clients at the limit
            self.done: asyncio.Future | None = None
            super().__init__()

        @property
        def requests(self) -> int:
            return self._requests

        @requests.setter
        def requests(self, value: int) -> None:
            self._requests = value
            if value >= self.limit:
                self.stop = self.final
                if self.done is not None and not self.done.done():
                    self.done.set_result(None)

    async def main() -> dict[str, float]:
        start, size = bench_beyond_tcp.starter(bench)
        counter = Bounded()
        counter.limit = max(clients, requests // 10)  # the warm-up
        counter.done = asyncio.get_running_loop().create_future()
        cleanup = await start(size, clients, counter)
        await counter.done
        counter.done = asyncio.get_running_loop().create_future()
        counter.limit = counter.requests + requests
        counter.final = True
        wall, cpu = time.perf_counter(), time.process_time()
        await counter.done
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        async with asyncio.timeout(30):
            await cleanup()
        return {"wall": wall, "cpu": cpu}

    loop = new_loop(config)
    asyncio.set_event_loop(loop)
    try:
        say(json.dumps(loop.run_until_complete(main())))
    finally:
        loop.close()
