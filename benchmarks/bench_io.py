"""Benchmark: request/response echo over loopback TCP on several event loops.

Issue 5 (chapter "epoll"). Each client sends a message of SIZE bytes, waits
until the whole echo is back, and repeats; requests per second over all clients
are counted. Server and clients run on the same loop in one process, so the
figure measures the loop (and the asyncio layer on top of it) on both ends.

Levels:
  sock      raw ``loop.sock_recv`` / ``loop.sock_sendall`` in tasks
  protocol  ``asyncio.Protocol`` on both ends, callbacks only, no tasks
  stream    ``asyncio.start_server`` / ``asyncio.open_connection``

Loops:
  stdlib          asyncio's own loop (C Task, C Future)
  ours-epoll      asynciodepth.EventLoop() (epoll poller, our Task)
  ours-selectors  asynciodepth.EventLoop(poller="selectors")
  uvloop          uvloop, if it is installed (skipped otherwise)

The rate is requests per second of the process's CPU time by default
(``--clock wall`` for wall-clock time). Why: the workload is CPU-bound (both
ends in one process, loopback), and on a shared machine other processes steal
wall time at random, while the CPU time a request costs stays put.

Every (level, size, clients, loop) runs in a fresh subprocess: two discarded
runs, then a run that warms up and measures ``--repeats`` windows of
``--duration`` seconds. The loops take turns, ``--rounds`` times; the table
shows the median window. Ratios are against the stdlib loop (higher is faster).

Usage: PYTHONPATH=src python benchmarks/bench_io.py [--duration S] [--repeats N]
       [--rounds R] [--loops stdlib,ours-epoll,ours-selectors,uvloop]
       [--levels sock,protocol,stream] [--sizes 1024,65536] [--clients 1,10,100]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import subprocess
import sys
import time
from typing import Any

LOOPS = ["stdlib", "ours-epoll", "ours-selectors", "uvloop"]
LEVELS = ["sock", "protocol", "stream"]
SIZES = [1024, 65536]
CLIENTS = [1, 10, 100]


def new_loop(name: str) -> asyncio.AbstractEventLoop:
    if name == "stdlib":
        return asyncio.new_event_loop()
    if name.startswith("ours"):
        import asynciodepth

        return asynciodepth.EventLoop(poller=name.split("-")[1])
    import uvloop

    return uvloop.new_event_loop()


class Counter:
    def __init__(self) -> None:
        self.requests = 0
        self.stop = False


# ---- the three levels: each returns a cleanup coroutine function -------------


async def start_sock(size: int, clients: int, counter: Counter):
    loop = asyncio.get_running_loop()
    listener = socket.create_server(("127.0.0.1", 0), backlog=512)
    listener.setblocking(False)
    tasks = []

    async def serve(conn):
        while data := await loop.sock_recv(conn, 262144):
            await loop.sock_sendall(conn, data)

    async def acceptor():
        while True:
            conn, _ = await loop.sock_accept(listener)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            tasks.append(asyncio.create_task(serve(conn)))

    async def client():
        sock = socket.socket()
        sock.setblocking(False)
        await loop.sock_connect(sock, listener.getsockname())
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        message = b"x" * size
        while not counter.stop:
            await loop.sock_sendall(sock, message)
            got = 0
            while got < size:
                got += len(await loop.sock_recv(sock, 262144))
            counter.requests += 1
        sock.close()

    tasks.append(asyncio.create_task(acceptor()))
    clients_tasks = [asyncio.create_task(client()) for _ in range(clients)]

    async def cleanup():
        await asyncio.gather(*clients_tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        listener.close()

    return cleanup


async def start_protocol(size: int, clients: int, counter: Counter):
    loop = asyncio.get_running_loop()

    class Echo(asyncio.Protocol):
        def connection_made(self, transport):
            self.transport = transport

        def data_received(self, data):
            self.transport.write(data)

    message = b"x" * size

    class Client(asyncio.Protocol):
        def connection_made(self, transport):
            self.transport = transport
            self.got = 0
            transport.write(message)

        def data_received(self, data):
            self.got += len(data)
            if self.got >= size:
                self.got -= size
                counter.requests += 1
                if counter.stop:
                    self.transport.close()
                else:
                    self.transport.write(message)

    server = await loop.create_server(Echo, "127.0.0.1", 0, backlog=512)
    port = server.sockets[0].getsockname()[1]
    transports = [
        (await loop.create_connection(Client, "127.0.0.1", port))[0]
        for _ in range(clients)
    ]

    async def cleanup():
        for transport in transports:
            transport.close()
        server.close()
        await asyncio.sleep(0.01)

    return cleanup


async def start_stream(size: int, clients: int, counter: Counter):
    handlers = []

    async def handle(reader, writer):
        handlers.append(asyncio.current_task())
        while data := await reader.read(262144):
            writer.write(data)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=512)
    port = server.sockets[0].getsockname()[1]
    message = b"x" * size

    async def client():
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while not counter.stop:
            writer.write(message)
            await writer.drain()
            await reader.readexactly(size)
            counter.requests += 1
        writer.close()
        await writer.wait_closed()

    tasks = [asyncio.create_task(client()) for _ in range(clients)]

    async def cleanup():
        await asyncio.gather(*tasks)
        await asyncio.gather(*handlers)  # each ends when its client closes
        server.close()

    return cleanup


STARTERS = {"sock": start_sock, "protocol": start_protocol, "stream": start_stream}


async def measure_windows(
    start: Any, size: int, clients: int, duration: float, repeats: int,
    cleanup_timeout: float = 10.0,
) -> dict[str, list[float]]:  # fmt: skip
    """Start clients with start(); their request rate over repeats windows (wall, cpu).

    Shared with bench_beyond_tcp.py.
    """
    counter = Counter()
    cleanup = await start(size, clients, counter)
    await asyncio.sleep(min(0.3, duration))  # warm-up
    rates: dict[str, list[float]] = {"wall": [], "cpu": []}
    start_count = counter.requests
    start_wall, start_cpu = time.perf_counter(), time.process_time()
    for _ in range(repeats):
        await asyncio.sleep(duration)
        count = counter.requests
        wall, cpu = time.perf_counter(), time.process_time()
        rates["wall"].append((count - start_count) / (wall - start_wall))
        rates["cpu"].append((count - start_count) / max(cpu - start_cpu, 1e-9))
        start_count, start_wall, start_cpu = count, wall, cpu
    counter.stop = True
    async with asyncio.timeout(cleanup_timeout):
        await cleanup()
    return rates


async def measure(level: str, size: int, clients: int, duration: float, repeats: int):
    return await measure_windows(STARTERS[level], size, clients, duration, repeats)


def child(args: argparse.Namespace) -> None:
    # Why discarded runs: on the shared test machine the first runs in a fresh
    # process were 2-4x slower than later ones, whatever the loop (measured:
    # stdlib then stdlib gave 5,000 then 17,000 requests/s). Two are discarded.
    for repeats in (1, 1, args.repeats):
        with asyncio.Runner(loop_factory=lambda: new_loop(args.loop)) as runner:
            rates = runner.run(
                measure(args.level, args.size, args.nclients, args.duration, repeats)
            )
    print(json.dumps(rates))


def run_child(
    args: argparse.Namespace, name: str, level: str, size: int, clients: int
) -> list[float]:
    """Measure one configuration in a fresh subprocess; return its windows."""
    command = [
        sys.executable,
        __file__,
        "--child",
        "--loop",
        name,
        "--level",
        level,
        "--size",
        str(size),
        "--nclients",
        str(clients),
        "--duration",
        str(args.duration),
        "--repeats",
        str(args.repeats),
    ]
    run = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if run.returncode:
        print(run.stderr, file=sys.stderr)
        return []
    return json.loads(run.stdout)[args.clock]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=0.5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--clock",
        choices=["cpu", "wall"],
        default="cpu",
        help="requests per CPU second of the process (default) or per wall second",
    )
    parser.add_argument("--levels", default=",".join(LEVELS))
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)))
    parser.add_argument("--clients", default=",".join(map(str, CLIENTS)))
    parser.add_argument("--loops", default=",".join(LOOPS))
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--loop", help=argparse.SUPPRESS)
    parser.add_argument("--level", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--nclients", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return

    loops = args.loops.split(",")
    try:
        import uvloop  # noqa: F401
    except ImportError:
        loops = [name for name in loops if name != "uvloop"]
    print(
        f"Python {sys.version.split()[0]}; requests per {args.clock} second, median "
        f"of {args.rounds} x {args.repeats} windows of {args.duration} s; "
        "ratio = ours / stdlib",
        flush=True,
    )
    header = f"{'level':8} {'size':>6} {'clients':>7} " + " ".join(
        f"{name:>14}" for name in loops
    )
    extra = [n for n in ("ours-epoll", "ours-selectors") if n in loops]
    header += "".join(f" {'x ' + n[5:]:>10}" for n in extra if "stdlib" in loops)
    if "uvloop" in loops and "ours-epoll" in loops:
        header += f" {'uvloop/ours':>11}"
    print(header)
    print("-" * len(header))
    for level in args.levels.split(","):
        for size in map(int, args.sizes.split(",")):
            for clients in map(int, args.clients.split(",")):
                windows: dict[str, list[float]] = {name: [] for name in loops}
                # Why rounds: the machine is shared; running the loops in turn,
                # several times, spreads its noise over all of them.
                for _ in range(args.rounds):
                    for name in loops:
                        windows[name] += run_child(args, name, level, size, clients)
                medians = {
                    name: statistics.median(w) if w else float("nan")
                    for name, w in windows.items()
                }
                row = f"{level:8} {size // 1024:>5}K {clients:>7} " + " ".join(
                    f"{medians[name]:>14,.0f}" for name in loops
                )
                if "stdlib" in loops:
                    row += "".join(
                        f" {medians[n] / medians['stdlib']:>10.2f}" for n in extra
                    )
                if "uvloop" in loops and "ours-epoll" in loops:
                    row += f" {medians['uvloop'] / medians['ours-epoll']:>11.2f}"
                print(row, flush=True)


if __name__ == "__main__":
    main()
