"""Benchmark: asynciodepth's loop against asyncio's (and uvloop, if installed).

Workloads:
  a   a chain of 1,000,000 call_soon callbacks, each scheduling the next;
  a'  the same with one idle socket registered with add_reader: a loop must
      then poll on every iteration (asyncio does), since data could arrive;
  b   two tasks, each doing 200,000 ``await asyncio.sleep(0)``;
  c   10,000 tasks, each doing 10 random sleeps of 0-10 ms (seeded);
  timers      100,000 call_later timers cancelled before they fire, in rounds
              of 100, each round started by a timer that fires (1,000 fire);
  threadsafe  100,000 call_soon_threadsafe posts from another thread.
  (timers and threadsafe run only when named in --workloads.)

Configurations:
  stdlib+ctask   asyncio's loop with its C Task (the baseline)
  stdlib+pytask  asyncio's loop with its pure-Python Task
  ours+ours      asynciodepth.EventLoop(python_tasks=True): our Future and Task
  ours+ctask     asynciodepth.EventLoop() as it comes: asyncio's C Future and Task
                 (for a --compare-src tree from before that default, the same
                 classes through its _future_class/_task_class or task factory)
  uvloop         uvloop's loop (skipped if uvloop is not installed)

``--compare-src [LABEL=]DIR`` (repeatable) adds every ``ours`` configuration
once more, with the asynciodepth of another source tree (e.g. an older
commit's ``src``), named ``LABEL:...`` (default ``before``): the same run,
interleaved, so the trees can be compared.

Every run of a (configuration, workload) pair is a fresh subprocess on a new
loop; the repeats are interleaved (repeat 1 of every configuration, then repeat
2, ...) so that a burst of load on a shared machine does not hit one
configuration only. Each run reports wall time and CPU time (process_time);
the tables show medians and the ratio baseline / configuration (higher is
faster than the baseline). On a busy machine trust the CPU table more.

Usage: PYTHONPATH=src python benchmarks/bench_loop.py [--repeats N] [--scale F]
       [--configs C1,C2] [--workloads "a,a',b,c"] [--compare-src [LABEL=]DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import time

CONFIGS = [
    "stdlib+ctask",
    "stdlib+pytask",
    "ours+ours",
    "ours+ctask",
    "uvloop",
]
WORKLOADS = ["a", "a'", "b", "c"]
BASELINE = "stdlib+ctask"


def _our_loop(asynciodepth, config: str) -> asyncio.AbstractEventLoop:
    """ours+ours: our Future and Task; ours+ctask: asyncio's, on any tree."""
    try:
        return asynciodepth.EventLoop(python_tasks=config == "ours+ours")
    except TypeError:  # a tree from before python_tasks= (our Task the default)
        loop = asynciodepth.EventLoop()
    if config == "ours+ctask":
        if hasattr(loop, "_future_class"):
            loop._future_class = asyncio.Future
            loop._task_class = asyncio.Task
        else:
            c_task = asyncio.Task
            loop.set_task_factory(
                lambda loop, coro, **kw: c_task(coro, loop=loop, **kw)
            )
    return loop


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

        return _our_loop(asynciodepth, config)
    if config == "uvloop":
        import uvloop

        return uvloop.new_event_loop()
    raise ValueError(config)


def workload_a(loop: asyncio.AbstractEventLoop, scale: float) -> None:
    call_soon_chain(loop, int(1_000_000 * scale))


def call_soon_chain(loop: asyncio.AbstractEventLoop, n: int) -> None:
    """Run n callbacks, each scheduling the next with call_soon (workload a)."""
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


def workload_a_with_socket(loop: asyncio.AbstractEventLoop, scale: float) -> None:
    here, peer = socket.socketpair()
    loop.add_reader(here, here.recv, 16)  # idle: the peer never sends
    try:
        workload_a(loop, scale)
    finally:
        loop.remove_reader(here)
        here.close()
        peer.close()


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


def workload_timers(loop: asyncio.AbstractEventLoop, scale: float) -> None:
    rounds = max(1, int(1_000 * scale))
    done = 0

    def noop() -> None:
        pass

    def round_() -> None:
        nonlocal done
        done += 1
        handles = [loop.call_later(60.0 + i, noop) for i in range(100)]
        for handle in handles:
            handle.cancel()
        if done < rounds:
            loop.call_later(0, round_)
        else:
            loop.stop()

    loop.call_soon(round_)
    loop.run_forever()
    assert done == rounds


def workload_threadsafe(loop: asyncio.AbstractEventLoop, scale: float) -> None:
    import threading

    n = int(100_000 * scale)
    received = 0

    def callback() -> None:
        nonlocal received
        received += 1
        if received == n:
            loop.stop()

    def poster() -> None:
        post = loop.call_soon_threadsafe
        for _ in range(n):
            post(callback)

    thread = threading.Thread(target=poster)
    loop.call_soon(thread.start)
    loop.run_forever()
    thread.join()
    assert received == n


WORKLOAD_FUNCTIONS = {
    "a": workload_a,
    "a'": workload_a_with_socket,
    "b": workload_b,
    "c": workload_c,
    "timers": workload_timers,
    "threadsafe": workload_threadsafe,
}


def run_child(config: str, workload: str, scale: float) -> None:
    """In the subprocess: time one run of the workload, print [wall, cpu] as JSON."""
    function = WORKLOAD_FUNCTIONS[workload]
    loop = new_loop(config)
    try:
        wall, cpu = time.perf_counter(), time.process_time()
        function(loop, scale)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    finally:
        loop.close()
    print(json.dumps([wall, cpu]))


def available(config: str, env: dict[str, str]) -> bool:
    """True if the configuration can run (uvloop installed, the option exists)."""
    check = {
        "uvloop": "import uvloop",
    }.get(config)
    if check is None:
        return True
    command = [sys.executable, "-c", check]
    return subprocess.run(command, env=env, capture_output=True).returncode == 0


def child_env(src: str | None) -> dict[str, str]:
    """The environment of a child; src replaces PYTHONPATH (another tree's)."""
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = src
    return env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--scale", type=float, default=1.0, help="shrink workloads")
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    parser.add_argument(
        "--compare-src",
        action="append",
        default=[],
        metavar="[LABEL=]DIR",
        help="also run ours from this source tree",
    )
    parser.add_argument("--child", nargs=2, metavar=("CONFIG", "WORKLOAD"))
    args = parser.parse_args()
    if args.child:
        run_child(*args.child, args.scale)
        return

    # Each row: (label, configuration, environment of its children).
    rows = []
    chosen = args.configs.split(",")
    if BASELINE not in chosen:  # the ratios need it
        chosen.insert(0, BASELINE)
    for config in chosen:
        env = child_env(None)
        if available(config, env):
            rows.append((config, config, env))
    for other in args.compare_src:
        name, _, src = other.rpartition("=")
        env = child_env(src)
        for config in chosen:
            if config.startswith("ours") and available(config, env):
                rows.append((f"{name or 'before'}:{config}", config, env))
    configs = [label for label, _, _ in rows]
    workloads = args.workloads.split(",")
    runs: dict[tuple[str, str], list[list[float]]] = {}
    for _ in range(args.repeats):
        for workload in workloads:
            for label, config, env in rows:
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
                    env=env,
                ).stdout
                runs.setdefault((label, workload), []).append(json.loads(output))

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
        width = max(15, *(len(label) + 2 for label in configs))
        header = f"{title:<{width}}" + "".join(
            f"{'workload ' + w:>20}" for w in workloads
        )
        print(header)
        print("-" * len(header))
        for config in configs:
            cells = []
            for workload in workloads:
                seconds = medians[config, workload]
                ratio = medians[BASELINE, workload] / seconds
                cells.append(f"{seconds:>8.3f}  x{ratio:>5.2f}")
            print(f"{config:<{width}}" + "".join(f"{cell:>20}" for cell in cells))


if __name__ == "__main__":
    main()
