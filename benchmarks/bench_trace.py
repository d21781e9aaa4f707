"""Benchmark: what tracing costs (issue 7, chapter "Tracing").

Workload: 200 tasks, each 50 times ``fib(8)`` then ``await asyncio.sleep(0)``.
Each configuration runs in a subprocess of its own:

- untraced, on the stdlib loop and on ours;
- our loop-level tracer (the observer hook) on our loop;
- our coroutine tracer (sys.monitoring on 3.12+, sys.setprofile on 3.11) on
  the stdlib loop, on every Python given with --python;
- viztracer --log_async and Panopticon 0.0.4, if they are installed.

"run" is the time the program measures around ``asyncio.run`` (our tracers
write their file inside it); "wall" is the whole process, so it includes
start-up, imports, and the external tools' writing of their files at exit.
Ratios are against the untraced stdlib loop on the same Python. Medians of
--repeat runs (slow tools run once). Usage::

    PYTHONPATH=src python benchmarks/bench_trace.py [--repeat 3]
        [--python /tmp/t312/bin/python ...] [--skip-slow]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TASKS, ROUNDS, FIB = 200, 50, 8
SRC = str(Path(__file__).resolve().parents[1] / "src")


def fib(n: int) -> int:
    return n if n < 2 else fib(n - 1) + fib(n - 2)


async def worker() -> None:
    for _ in range(ROUNDS):
        fib(FIB)
        await asyncio.sleep(0)


async def main() -> None:
    await asyncio.gather(*(worker() for _ in range(TASKS)))


def child(config: str, out: str) -> None:
    """Run the workload once in this process under config; print the result."""
    start = time.perf_counter()
    steps = None
    if config == "stdlib":
        asyncio.run(main())
    elif config == "ours":
        from asynciodepth.runners import EventLoop

        with asyncio.Runner(loop_factory=EventLoop) as runner:
            runner.run(main())
    elif config == "ours+loop-tracer":
        from asynciodepth.runners import EventLoop
        from asynciodepth.trace import tracing

        with asyncio.Runner(loop_factory=EventLoop) as runner:
            with tracing(out, loop=runner.get_loop()) as trace:
                runner.run(main())
        steps = sum(1 for e in trace.events if e.get("cat") == "step")
    elif config == "stdlib+coroutine-tracer":
        from asynciodepth.trace import tracing

        with tracing(out) as trace:
            asyncio.run(main())
        steps = sum(1 for e in trace.events if e.get("cat") == "step")
    else:
        raise SystemExit(f"unknown config {config!r}")
    seconds = time.perf_counter() - start
    print(json.dumps({"run": seconds, "steps": steps}))


def run_config(python: str, config: str, tool: str | None) -> dict:
    """Run one configuration in a subprocess; return its times and file size."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "trace.json")
        me = os.path.abspath(__file__)
        if tool == "viztracer":
            command = [python, "-m", "viztracer", "--quiet", "--log_async",
                       "-o", out, me, "--child", config, out]
        elif tool == "panopticon":
            command = [python, "-m", "panopticon", "-o", out, me,
                       "--child", config, out]
        else:
            command = [python, me, "--child", config, out]
        env = dict(os.environ, PYTHONPATH=SRC)
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, env=env,
                              timeout=1800)
        wall = time.perf_counter() - start
        if done.returncode != 0:
            return {"error": done.stderr.strip().splitlines()[-1:]}
        result = json.loads(done.stdout.strip().splitlines()[-1])
        result["wall"] = wall
        result["bytes"] = os.path.getsize(out) if os.path.exists(out) else 0
        return result


def has_module(python: str, name: str) -> bool:
    code = f"import importlib.util,sys; sys.exit(importlib.util.find_spec({name!r}) is None)"
    return subprocess.run([python, "-c", code]).returncode == 0


def version(python: str) -> str:
    code = "import sys; print('%d.%d' % sys.version_info[:2])"
    return subprocess.run([python, "-c", code], capture_output=True,
                          text=True).stdout.strip()


def measure(python: str, config: str, tool: str | None, repeat: int) -> dict:
    runs = [run_config(python, config, tool) for _ in range(repeat)]
    errors = [r for r in runs if "error" in r]
    if errors:
        return errors[0]
    return {
        "run": statistics.median(r["run"] for r in runs),
        "wall": statistics.median(r["wall"] for r in runs),
        "bytes": runs[-1]["bytes"],
        "steps": runs[-1]["steps"],
    }


def main_bench() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--python", action="append", default=[],
                        help="also run the coroutine tracer on this interpreter")
    parser.add_argument("--skip-slow", action="store_true",
                        help="skip viztracer and Panopticon")
    args = parser.parse_args()
    here = sys.executable
    rows = []

    def add(python: str, label: str, config: str, tool: str | None = None,
            repeat: int | None = None) -> None:
        result = measure(python, config, tool, repeat or args.repeat)
        rows.append((version(python), label, result))
        print(version(python), label, result, file=sys.stderr, flush=True)

    add(here, "stdlib loop, untraced", "stdlib")
    add(here, "our loop, untraced", "ours")
    add(here, "our loop + loop-level tracer", "ours+loop-tracer")
    add(here, "stdlib loop + coroutine tracer", "stdlib+coroutine-tracer")
    for python in args.python:
        add(python, "stdlib loop, untraced", "stdlib")
        add(python, "our loop, untraced", "ours")
        add(python, "our loop + loop-level tracer", "ours+loop-tracer")
        add(python, "stdlib loop + coroutine tracer", "stdlib+coroutine-tracer")
    if not args.skip_slow:
        if has_module(here, "viztracer"):
            add(here, "stdlib loop + viztracer --log_async", "stdlib", "viztracer", 1)
        if has_module(here, "panopticon"):
            add(here, "stdlib loop + Panopticon 0.0.4", "stdlib", "panopticon", 1)

    steps = TASKS * (ROUNDS + 1)
    baselines = {}
    for py, label, result in rows:
        if label == "stdlib loop, untraced" and "run" in result:
            baselines[py] = result
    ours_base = {py: r for py, label, r in rows if label == "our loop, untraced"}
    print(f"\nworkload: {TASKS} tasks x {ROUNDS} x (fib({FIB}), sleep(0)); "
          f"{steps} task steps; median of {args.repeat} (slow tools: 1)\n")
    print("| Python | configuration | run s | x stdlib | x same loop | wall s "
          "| x stdlib (wall) | trace MB | bytes/step |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for py, label, result in rows:
        if "error" in result:
            print(f"| {py} | {label} | failed: {result['error']} | | | | | | |")
            continue
        base = baselines[py]
        same = ours_base[py] if label.startswith("our loop") else base
        size = result["bytes"]
        per_step = f"{size / steps:.0f}" if size else "-"
        print(
            f"| {py} | {label} | {result['run']:.3f} | {result['run'] / base['run']:.2f}"
            f" | {result['run'] / same['run']:.2f} | {result['wall']:.2f}"
            f" | {result['wall'] / base['wall']:.2f} | {size / 1e6:.1f} | {per_step} |"
        )


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3])
    else:
        main_bench()
