"""Benchmark: asynciodepth's loop against asyncio's (and uvloop, if installed).

Workloads (issue 4):
  a  a chain of 1,000,000 call_soon callbacks, each scheduling the next;
  b  two tasks, each doing 200,000 ``await asyncio.sleep(0)``;
  c  10,000 tasks, each doing 10 random sleeps of 0-10 ms (seeded).

Configurations:
  stdlib+ctask   asyncio's loop with its C Task (the baseline)
  stdlib+pytask  asyncio's loop with its pure-Python Task
  ours+ours      asynciodepth.EventLoop(python_tasks=True): our Future and Task
  ours+ctask     asynciodepth.EventLoop() as it comes: asyncio's C Future and Task
  uvloop         uvloop's loop (skipped if uvloop is not installed)

Every run of a (configuration, workload) pair is a fresh subprocess on a new
loop; the repeats are interleaved (repeat 1 of every configuration, then repeat
2, ...) so that a burst of load on a shared machine does not hit one
configuration only. Each run reports wall time and CPU time (process_time);
the tables show medians and the ratio baseline / configuration (higher is
faster than the baseline). On a busy machine trust the CPU table more.

Usage: PYTHONPATH=src python benchmarks/bench_loop.py [--repeats N] [--scale F]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import subprocess
import sys
import time

CONFIGS = ["stdlib+ctask", "stdlib+pytask", "ours+ours", "ours+ctask", "uvloop"]
WORKLOADS = ["a", "b", "c"]
BASELINE = "stdlib+ctask"


def new_loop(config: str) -> asyncio.AbstractEventLoop:
    if config.startswith("stdlib"):
        loop = asyncio.new_event_loop()
        if config == "stdlib+pytask":
            py_task = asyncio.tasks._PyTask
            loop.set_task_factory(
                lambda loop, coro, **kw: py_task(coro, loop=loop, **kw)
            )
        return loop
    if config.startswith("ours"):
        import asynciodepth

        return asynciodepth.EventLoop(python_tasks=config == "ours+ours")
    if config == "uvloop":
        import uvloop

        return uvloop.new_event_loop()
    raise ValueError(config)


def workload_a(loop: asyncio.AbstractEventLoop, scale: float) -> None:
    n = int(1_000_000 * scale)
    remaining = n

    def callback() -> None:
        nonlocal remaining
        remaining -= 1
        if remaining:
            loop.call_soon(callback)
        else:
            loop.stop()

    loop.call_soon(callback)
    loop.run_forever()
    assert remaining == 0


def workload_b(loop: asyncio.AbstractEventLoop, scale: float) -> None:
    n = int(200_000 * scale)

    async def worker() -> int:
        for _ in range(n):
            await asyncio.sleep(0)
        return n

    async def main() -> list[int]:
        return await asyncio.gather(worker(), worker())

    assert loop.run_until_complete(main()) == [n, n]


def workload_c(loop: asyncio.AbstractEventLoop, scale: float) -> None:
    rng = random.Random(4)
    ntasks = int(10_000 * scale)
    plans = [[rng.uniform(0, 0.010) for _ in range(10)] for _ in range(ntasks)]

    async def worker(delays: list[float]) -> None:
        for delay in delays:
            await asyncio.sleep(delay)

    async def main() -> None:
        await asyncio.gather(*(worker(plan) for plan in plans))

    loop.run_until_complete(main())


def run_child(config: str, workload: str, scale: float) -> None:
    """In the subprocess: time one run of the workload, print [wall, cpu] as JSON."""
    function = {"a": workload_a, "b": workload_b, "c": workload_c}[workload]
    loop = new_loop(config)
    try:
        wall, cpu = time.perf_counter(), time.process_time()
        function(loop, scale)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    finally:
        loop.close()
    print(json.dumps([wall, cpu]))


def available(config: str) -> bool:
    if config != "uvloop":
        return True
    try:
        import uvloop
    except ImportError:
        return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--scale", type=float, default=1.0, help="shrink workloads")
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    parser.add_argument("--child", nargs=2, metavar=("CONFIG", "WORKLOAD"))
    args = parser.parse_args()
    if args.child:
        run_child(*args.child, args.scale)
        return

    configs = [c for c in args.configs.split(",") if available(c)]
    workloads = args.workloads.split(",")
    runs: dict[tuple[str, str], list[list[float]]] = {}
    for _ in range(args.repeats):
        for workload in workloads:
            for config in configs:
                output = subprocess.run(
                    [
                        sys.executable,
                        __file__,
                        "--child",
                        config,
                        workload,
                        "--scale",
                        str(args.scale),
                    ],
                    check=True,
                    capture_output=True,
                    text=True,
                ).stdout
                runs.setdefault((config, workload), []).append(json.loads(output))

    print(
        f"Python {sys.version.split()[0]}, {args.repeats} repeats, scale "
        f"{args.scale}; medians (ratio = {BASELINE} / configuration)"
    )
    for column, title in [(0, "wall seconds"), (1, "CPU seconds")]:
        medians = {
            key: statistics.median(run[column] for run in value)
            for key, value in runs.items()
        }
        print()
        header = f"{title:<15}" + "".join(f"{'workload ' + w:>20}" for w in workloads)
        print(header)
        print("-" * len(header))
        for config in configs:
            cells = []
            for workload in workloads:
                seconds = medians[config, workload]
                ratio = medians[BASELINE, workload] / seconds
                cells.append(f"{seconds:>8.3f}  x{ratio:>5.2f}")
            print(f"{config:<15}" + "".join(f"{cell:>20}" for cell in cells))


if __name__ == "__main__":
    main()
