"""Benchmark: TLS echo, UDP echo and subprocess spawn-and-wait on several event loops.

Chapter "Beyond TCP". Server and clients run on the same loop in one process, so
each figure measures the loop (and the asyncio layer on top of it) on both ends.

Benchmarks:
  tls-1k, tls-64k  request/response echo over TLS on loopback, with
                   ``asyncio.start_server(ssl=)`` / ``asyncio.open_connection(ssl=)``:
                   each client sends SIZE bytes and waits for the whole echo
  udp              datagram ping-pong: each client sends one datagram of
                   ``--udp-size`` bytes, and the next when its echo is back
  spawn            ``asyncio.create_subprocess_exec("true")`` then ``wait()``, by
                   ``--clients`` workers at once; the rate is children per second

Loops:
  stdlib   asyncio's own loop (C Task, C Future)
  ours     asynciodepth.EventLoop(), or the class $ASYNCIODEPTH_LOOP=module:Class
           names (e.g. asynciodepth.tls:TLSEventLoop, one section's loop)
  uvloop   uvloop, if it is installed (skipped otherwise)

A loop that refuses a feature (NotImplementedError) shows ``refused``.

The rate is per second of the process's CPU time by default (``--clock wall`` for
wall-clock time), as in bench_io.py: on the shared machine other processes steal
wall time at random. For ``spawn`` the children's own CPU time is not counted
(that of fork/exec in the parent is), so ``--clock wall`` is shown next to it.

Every (benchmark, loop) runs in a fresh subprocess: two discarded runs, then one
that warms up and measures ``--repeats`` windows of ``--duration`` seconds. The
loops take turns, ``--rounds`` times, so that the machine's noise falls on all of
them; the table shows the median window and the ratios of the medians.
``--json FILE`` writes every window, the medians and the ratios.

Usage: PYTHONPATH=src python benchmarks/bench_beyond_tcp.py [--duration S]
       [--repeats N] [--rounds R] [--loops stdlib,ours,uvloop]
       [--benches tls-1k,tls-64k,udp,spawn] [--clients N] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import shutil
import statistics
import subprocess
import sys

from bench_io import Counter, measure_windows  # the same harness as the I/O levels

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOOPS = ["stdlib", "ours", "uvloop"]
BENCHES = ["tls-1k", "tls-64k", "udp", "spawn"]


def new_loop(name: str) -> asyncio.AbstractEventLoop:
    if name == "stdlib":
        return asyncio.new_event_loop()
    if name == "ours":
        spec = os.environ.get("ASYNCIODEPTH_LOOP", "asynciodepth:EventLoop")
        module, _, cls = spec.partition(":")
        return getattr(importlib.import_module(module), cls)()
    import uvloop

    return uvloop.new_event_loop()


# ---- the benchmarks: each starts its clients and returns a cleanup coroutine ---


async def start_tls(size: int, clients: int, counter: Counter):
    sys.path.insert(0, os.path.join(TOP, "tests"))
    import tls_certs  # CPython's test certificates (tests/tls_certs.py)

    handlers = []

    async def handle(reader, writer):
        handlers.append(asyncio.current_task())
        while data := await reader.read(262144):
            writer.write(data)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(
        handle, "127.0.0.1", 0, ssl=tls_certs.server_context(), backlog=512
    )
    port = server.sockets[0].getsockname()[1]
    message = b"x" * size

    async def client():
        reader, writer = await asyncio.open_connection(
            "127.0.0.1",
            port,
            ssl=tls_certs.client_context(),
            server_hostname=tls_certs.HOSTNAME,
        )
        while not counter.stop:
            writer.write(message)
            await writer.drain()
            await reader.readexactly(size)
            counter.requests += 1
        writer.close()
        await writer.wait_closed()

    tasks = [asyncio.create_task(client()) for _ in range(clients)]
    await asyncio.sleep(0)  # the handshakes start before the warm-up

    async def cleanup():
        await asyncio.gather(*tasks)
        await asyncio.gather(*handlers)  # each ends when its client closes
        server.close()
        await server.wait_closed()

    return cleanup


async def start_udp(size: int, clients: int, counter: Counter):
    loop = asyncio.get_running_loop()
    message = b"x" * size

    class Echo(asyncio.DatagramProtocol):
        def connection_made(self, transport):
            self.transport = transport

        def datagram_received(self, data, addr):
            self.transport.sendto(data, addr)

    class Client(asyncio.DatagramProtocol):
        def connection_made(self, transport):
            self.transport = transport
            transport.sendto(message)

        def datagram_received(self, data, addr):
            counter.requests += 1
            if not counter.stop:
                self.transport.sendto(message)

    server, _ = await loop.create_datagram_endpoint(
        Echo, local_addr=("127.0.0.1", 0)
    )
    address = server.get_extra_info("sockname")
    transports = [
        (await loop.create_datagram_endpoint(Client, remote_addr=address))[0]
        for _ in range(clients)
    ]

    async def cleanup():
        await asyncio.sleep(0.01)  # the last echoes
        for transport in transports:
            transport.close()
        server.close()
        await asyncio.sleep(0.01)

    return cleanup


async def start_spawn(size: int, clients: int, counter: Counter):
    true = shutil.which("true")

    async def worker():
        while not counter.stop:
            child = await asyncio.create_subprocess_exec(true)
            await child.wait()
            counter.requests += 1

    tasks = [asyncio.create_task(worker()) for _ in range(clients)]

    async def cleanup():
        await asyncio.gather(*tasks)

    return cleanup


def starter(bench: str):
    """The start function and size of one benchmark."""
    if bench.startswith("tls-"):
        return start_tls, int(bench[4:-1]) * 1024
    return {"udp": (start_udp, None), "spawn": (start_spawn, 0)}[bench]


async def measure(bench: str, size: int, clients: int, duration: float, repeats: int):
    start, default_size = starter(bench)
    if default_size is not None:
        size = default_size
    return await measure_windows(
        start, size, clients, duration, repeats, cleanup_timeout=20.0
    )


def child(args: argparse.Namespace) -> None:
    # Why discarded runs: on the shared machine the first runs in a fresh process
    # were 2-4x slower than later ones, whatever the loop (see bench_io.py).
    try:
        for repeats in (1, 1, args.repeats):
            with asyncio.Runner(loop_factory=lambda: new_loop(args.loop)) as runner:
                rates = runner.run(
                    measure(
                        args.bench, args.udp_size, args.clients, args.duration, repeats
                    )
                )
    except NotImplementedError as e:
        rates = {"refused": f"NotImplementedError: {e}"}
    print(json.dumps(rates))


def run_child(args: argparse.Namespace, name: str, bench: str) -> dict:
    """Measure one (benchmark, loop) in a fresh subprocess: its windows, or refused."""
    command = [
        sys.executable,
        __file__,
        "--child",
        "--loop",
        name,
        "--bench",
        bench,
        "--udp-size",
        str(args.udp_size),
        "--clients",
        str(args.clients),
        "--duration",
        str(args.duration),
        "--repeats",
        str(args.repeats),
    ]
    try:
        run = subprocess.run(command, capture_output=True, text=True, timeout=180)
    except subprocess.TimeoutExpired:
        return {"failed": "timeout (180 s)"}
    if run.returncode:
        print(run.stderr, file=sys.stderr)
        return {"failed": (run.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(run.stdout)


def cell(median: float | None, refused: bool) -> str:
    if refused:
        return f"{'refused':>10}"
    return f"{'n/a':>10}" if median is None else f"{median:>10,.0f}"


def ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:>13.2f}" if a and b else f"{'-':>13}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=0.5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--udp-size", type=int, default=1024)
    parser.add_argument(
        "--clock",
        choices=["cpu", "wall"],
        default="cpu",
        help="rates per CPU second of the process (default) or per wall second",
    )
    parser.add_argument("--benches", default=",".join(BENCHES))
    parser.add_argument("--loops", default=",".join(LOOPS))
    parser.add_argument("--json", help="write windows, medians and ratios here")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--loop", help=argparse.SUPPRESS)
    parser.add_argument("--bench", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return

    loops = args.loops.split(",")
    try:
        import uvloop

        uvloop_version = uvloop.__version__
    except ImportError:
        loops = [name for name in loops if name != "uvloop"]
        uvloop_version = None
    ours = os.environ.get("ASYNCIODEPTH_LOOP", "asynciodepth:EventLoop")
    print(
        f"Python {sys.version.split()[0]}, uvloop {uvloop_version}, ours = {ours}; "
        f"{args.clients} clients; rate per {args.clock} second, median of "
        f"{args.rounds} x {args.repeats} windows of {args.duration} s",
        flush=True,
    )
    pairs = [
        (a, b)
        for a, b in (("ours", "stdlib"), ("uvloop", "stdlib"), ("uvloop", "ours"))
        if a in loops and b in loops
    ]
    header = f"{'bench':10} " + " ".join(f"{name:>10}" for name in loops)
    header += "".join(f" {a + '/' + b:>13}" for a, b in pairs)
    print(header)
    print("-" * len(header))
    report: dict = {
        "python": sys.version.split()[0],
        "uvloop": uvloop_version,
        "ours": ours,
        "args": {k: v for k, v in vars(args).items() if k not in ("child", "loop")},
        "benches": {},
    }
    for bench in args.benches.split(","):
        results: dict[str, dict] = {name: {"wall": [], "cpu": []} for name in loops}
        # Why rounds: the machine is shared; the loops take turns, several times.
        for _ in range(args.rounds):
            for name in loops:
                got = run_child(args, name, bench)
                if "wall" in got:
                    for clock in ("wall", "cpu"):
                        results[name][clock] += got[clock]
                else:
                    results[name].update(got)
        medians = {
            clock: {
                name: statistics.median(r[clock]) if r[clock] else None
                for name, r in results.items()
            }
            for clock in ("wall", "cpu")
        }
        # Why both clocks for spawn: the children's CPU time is not the process's.
        clocks = [args.clock] + (["wall"] if bench == "spawn" else [])
        for clock in dict.fromkeys(clocks):
            shown = medians[clock]
            label = bench if clock == args.clock else f"{bench}/{clock}"
            row = f"{label:10} " + " ".join(
                cell(shown[name], "refused" in results[name]) for name in loops
            )
            row += "".join(f" {ratio(shown[a], shown[b])}" for a, b in pairs)
            print(row, flush=True)
        report["benches"][bench] = {
            "windows": results,
            "medians": medians,
            "ratios": {
                clock: {
                    f"{a}/{b}": (m[a] / m[b] if m[a] and m[b] else None)
                    for a, b in pairs
                }
                for clock, m in medians.items()
            },
        }
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
            f.write("\n")


if __name__ == "__main__":
    main()
