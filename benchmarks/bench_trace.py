"""Benchmark: what tracing costs (chapter "Tracing").

Workload: 200 tasks, each 50 times ``fib(8)`` then ``await asyncio.sleep(0)``.
Each configuration runs in a subprocess of its own:

- untraced, on the stdlib loop and on ours;
- our loop-level tracer (the observer hook) on our loop;
- our coroutine tracer (sys.monitoring on 3.12+, sys.settrace on 3.11) on
  the stdlib loop, on every Python given with --python;
- viztracer --log_async and Panopticon 0.0.4, if they are installed.

"run" is the time the program measures around ``asyncio.run`` and, for our
tracers, ``tracing()``, whose end waits until the trace file is finished;
"closing" is that wait. "CPU" is the traced process's own CPU time; "writer
CPU" is the CPU time of our tracers' writer process, which formats and writes
the file on another core. "wall" is the whole process, so it includes
start-up, imports, and the external tools' writing of their files at exit.
Ratios are against the untraced run on the same loop and Python; wall ratios
against the untraced stdlib loop. Medians, and best, of --repeat interleaved
runs (the slow tools run once). Usage::

    PYTHONPATH=src python benchmarks/bench_trace.py [--repeat 3]
        [--python OTHER_PYTHON ...] [--skip-slow]

With ``--floors`` it measures instead, in one process per Python, the floors
under each tracer's overhead: an observer whose hooks do nothing, six
``sys.monitoring`` callbacks that only return DISABLE, each tracer with its
records thrown away, and each tracer writing a file; the last line of each table
is the Recorder's hot path alone (a file trace over records thrown away). Run it
with ``PYTHONPATH=build/compiled`` ahead of src for the compiled build::

    PYTHONPATH=src python benchmarks/bench_trace.py --floors --repeat 9

``--json OUT`` also writes the tracers' ratios, for the benchmark suite, as
``{"configs": {name: {"cpu_ratio": x, "wall_ratio": y, "bytes_per_step": z}}}``
(CPU and run time over the untraced run on the same loop; bytes of the trace
file per task step).

With ``--hooks FILE`` it measures instead, in one process per Python, what the
interpreter's hooks cost on the same workload: ``sys.settrace`` and
``sys.setprofile`` with a hook that does nothing and with one that looks at
each frame's code, and our two tracers (writing a file, through the writer
process). It writes the best of --repeat interleaved runs of each, in seconds,
as JSON to FILE; chapter "Tracing" draws its first figure from that file::

    PYTHONPATH=src python benchmarks/bench_trace.py --hooks \
        benchmarks/trace_hooks.json --repeat 7 --python OTHER_PYTHON ...
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TASKS, ROUNDS, FIB = 200, 50, 8
SRC = str(Path(__file__).resolve().parents[1] / "src")


def child_env() -> dict[str, str]:
    """A child's environment: PYTHONPATH as given (build/compiled, say), then src."""
    given = os.environ.get("PYTHONPATH")
    path = SRC if not given else f"{given}{os.pathsep}{SRC}"
    return dict(os.environ, PYTHONPATH=path)


def child_json(python: str, mode: str, repeat: int) -> dict:
    """Run this file as a child in mode (--hooks-child, ...); its last line's JSON."""
    done = subprocess.run(
        [python, os.path.abspath(__file__), mode, str(repeat)],
        capture_output=True,
        text=True,
        env=child_env(),
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


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
    if config != "stdlib":  # import outside the timed part
        from asynciodepth.runners import TaskEventLoop as EventLoop
        from asynciodepth.trace import tracing
    cpu = time.process_time()
    start = time.perf_counter()
    trace = None
    ran = None  # when the program ended, before tracing() closed its trace
    if config == "stdlib":
        asyncio.run(main())
    elif config == "ours":
        with asyncio.Runner(loop_factory=EventLoop) as runner:
            runner.run(main())
    elif config == "ours+loop-tracer":
        with asyncio.Runner(loop_factory=EventLoop) as runner:
            with tracing(out, loop=runner.get_loop()) as trace:
                runner.run(main())
                ran = time.perf_counter()
    elif config == "ours+tracing()":
        # No loop=: the coroutine tracer hands our loop to the loop-level one.
        with asyncio.Runner(loop_factory=EventLoop) as runner:
            with tracing(out) as trace:
                runner.run(main())
                ran = time.perf_counter()
    elif config == "stdlib+coroutine-tracer":
        with tracing(out) as trace:
            asyncio.run(main())
            ran = time.perf_counter()
    else:
        raise SystemExit(f"unknown config {config!r}")
    end = time.perf_counter()
    cpu = time.process_time() - cpu
    # The writer process, waited for by tracing(), counts as a child.
    writer_cpu = sum(resource.getrusage(resource.RUSAGE_CHILDREN)[:2])
    # Outside the timed part: counting parses the whole trace.
    steps = (
        None
        if trace is None
        else sum(1 for e in trace.events if e.get("cat") == "step")
    )
    result = {
        "run": end - start,
        "closing": 0.0 if ran is None else end - ran,
        "cpu": cpu,
        "writer_cpu": writer_cpu,
        "steps": steps,
    }
    print(json.dumps(result))


def ignore_all(frame, event, arg):  # noqa: ANN001, ANN201
    """A hook that does nothing."""
    return None


def look_at_code(frame, event, arg):  # noqa: ANN001, ANN201
    """A hook that does what a tracer does first: look at the frame's code."""
    if frame.f_code.co_flags & 0x80:  # CO_COROUTINE
        return None
    return None


HOOKS = [
    ("stdlib loop, untraced", "stdlib", None, None),
    ("settrace, hook does nothing", "stdlib", sys.settrace, ignore_all),
    ("setprofile, hook does nothing", "stdlib", sys.setprofile, ignore_all),
    ("settrace, hook looks at the code", "stdlib", sys.settrace, look_at_code),
    ("setprofile, hook looks at the code", "stdlib", sys.setprofile, look_at_code),
    ("coroutine tracer", "stdlib+coroutine-tracer", None, None),
    ("our loop, untraced", "ours", None, None),
    ("our loop + loop-level tracer", "ours+loop-tracer", None, None),
]


def hooks_child(repeat: int) -> None:
    """Time each of HOOKS, best of repeat interleaved runs; print JSON."""
    from asynciodepth.runners import TaskEventLoop
    from asynciodepth.trace import tracing

    best = {label: float("inf") for label, *_ in HOOKS}
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "trace.json")
        for _ in range(repeat):
            for label, config, install, hook in HOOKS:
                start = time.perf_counter()
                if config == "ours":
                    with asyncio.Runner(loop_factory=TaskEventLoop) as runner:
                        runner.run(main())
                elif config == "ours+loop-tracer":
                    with asyncio.Runner(loop_factory=TaskEventLoop) as runner:
                        with tracing(out, loop=runner.get_loop()):
                            runner.run(main())
                elif config == "stdlib+coroutine-tracer":
                    with tracing(out):
                        asyncio.run(main())
                else:
                    if install is not None:
                        install(hook)
                    try:
                        asyncio.run(main())
                    finally:
                        if install is not None:
                            install(None)
                best[label] = min(best[label], time.perf_counter() - start)
    print(json.dumps(best))


def main_hooks(path: str, pythons: list[str], repeat: int) -> None:
    results = {}
    for python in pythons:
        results[version(python)] = child_json(python, "--hooks-child", repeat)
        print(version(python), results[version(python)], file=sys.stderr)
    data = {
        "workload": f"{TASKS} tasks x {ROUNDS} x (fib({FIB}), sleep(0))",
        "best_of": repeat,
        "seconds": results,
    }
    with open(path, "w", encoding="utf-8") as file:
        json.dump(data, file, indent=1)
        file.write("\n")


def _discarding_recorder():  # noqa: ANN202
    """A Recorder whose records are thrown away at each flush."""
    from asynciodepth.trace import Recorder

    recorder = Recorder()
    recorder.flush = recorder.records.clear
    return recorder


class _Nothing:
    """An observer whose five hooks do nothing."""

    def on_schedule(self, loop, handle, scheduled_by):  # noqa: ANN001, ANN201
        pass

    def on_task_step(self, loop, task, woken_by, start, end):  # noqa: ANN001, ANN201
        pass

    def on_callback(self, loop, handle, start, end):  # noqa: ANN001, ANN201
        pass

    def on_poll(self, loop, timeout, start, end, nevents):  # noqa: ANN001, ANN201
        pass

    def on_timer_fired(self, loop, handle, now):  # noqa: ANN001, ANN201
        pass


def _monitoring_that_only_disables() -> tuple:
    """Six sys.monitoring callbacks that do nothing but DISABLE plain code."""
    mon = sys.monitoring
    events = mon.events

    def plain(code, offset, *rest):  # noqa: ANN001, ANN202
        return None if code.co_flags & 0x80 else mon.DISABLE

    def keep(code, offset, *rest):  # noqa: ANN001, ANN202
        return None  # PY_THROW and PY_UNWIND cannot be disabled

    return (
        (events.PY_START, plain),
        (events.PY_RESUME, plain),
        (events.PY_YIELD, plain),
        (events.PY_RETURN, plain),
        (events.PY_THROW, keep),
        (events.PY_UNWIND, keep),
    )


def floors_child(repeat: int) -> None:
    """CPU time of each floor configuration, interleaved; print JSON lists."""
    from asynciodepth.runners import TaskEventLoop
    from asynciodepth.trace import CoroutineTracer, LoopTracer, tracing

    def ours(observer=None) -> None:  # noqa: ANN001
        with asyncio.Runner(loop_factory=TaskEventLoop) as runner:
            if observer is not None:
                runner.get_loop().set_observer(observer)
            runner.run(main())

    def loop_tracer_discarding() -> None:
        ours(LoopTracer(_discarding_recorder()))

    def loop_tracer_file() -> None:
        with asyncio.Runner(loop_factory=TaskEventLoop) as runner:
            with tracing(out, loop=runner.get_loop()):
                runner.run(main())

    def tracing_auto() -> None:
        with asyncio.Runner(loop_factory=TaskEventLoop) as runner:
            with tracing(out):
                runner.run(main())

    def monitoring_only_disables() -> None:
        mon = sys.monitoring
        mon.use_tool_id(mon.PROFILER_ID, "floor")
        mask = 0
        for event, callback in _monitoring_that_only_disables():
            mon.register_callback(mon.PROFILER_ID, event, callback)
            mask |= event
        mon.restart_events()
        mon.set_events(mon.PROFILER_ID, mask)
        try:
            asyncio.run(main())
        finally:
            mon.set_events(mon.PROFILER_ID, 0)
            for event, _ in _monitoring_that_only_disables():
                mon.register_callback(mon.PROFILER_ID, event, None)
            mon.free_tool_id(mon.PROFILER_ID)

    def coroutine_tracer_discarding() -> None:
        tracer = CoroutineTracer(_discarding_recorder())
        tracer.start()
        try:
            asyncio.run(main())
        finally:
            tracer.stop()

    def coroutine_tracer_file() -> None:
        with tracing(out):
            asyncio.run(main())

    plan = {
        "our loop, untraced": ours,
        "our loop, an observer whose hooks do nothing": lambda: ours(_Nothing()),
        "our loop + loop-level tracer, records thrown away": loop_tracer_discarding,
        "our loop + loop-level tracer": loop_tracer_file,
        "our loop + tracing() without loop=": tracing_auto,
        "stdlib loop, untraced": lambda: asyncio.run(main()),
    }
    if hasattr(sys, "monitoring"):
        plan["six sys.monitoring callbacks that only DISABLE"] = (
            monitoring_only_disables
        )
    plan["stdlib loop + coroutine tracer, records thrown away"] = (
        coroutine_tracer_discarding
    )
    plan["stdlib loop + coroutine tracer"] = coroutine_tracer_file
    cpu: dict[str, list[float]] = {label: [] for label in plan}
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "trace.json")
        for _ in range(repeat):
            for label, run in plan.items():
                start = time.process_time()
                run()
                cpu[label].append(time.process_time() - start)
    print(json.dumps(cpu))


def main_floors(pythons: list[str], repeat: int) -> None:
    """Print, per Python, each floor's CPU time over the untraced loop's."""
    for python in pythons:
        cpu = child_json(python, "--floors-child", repeat)
        print(
            f"\nPython {version(python)}: CPU time over the untraced run on the "
            f"same loop, {repeat} interleaved runs in one process\n"
        )
        print("| configuration | median | best |")
        print("|---|---:|---:|")
        for label, times in cpu.items():
            loop = "our loop" if label.startswith("our") else "stdlib loop"
            base = cpu[f"{loop}, untraced"]
            median = statistics.median(times) / statistics.median(base)
            best = min(times) / min(base)
            print(f"| {label} | {median:.2f} | {best:.2f} |")
        # The Recorder's hot path alone (what trace/recorder.py and the writer
        # cost the traced process): a file trace over one whose records are
        # thrown away, the tracer's hooks being the same in both.
        pairs = (("loop-level tracer", "our loop"), ("coroutine tracer", "stdlib loop"))
        for tracer, loop in pairs:
            kept = cpu[f"{loop} + {tracer}"]
            dropped = cpu[f"{loop} + {tracer}, records thrown away"]
            median = statistics.median(kept) / statistics.median(dropped)
            best = min(kept) / min(dropped)
            print(f"| handing records on ({tracer}): file / thrown away "
                  f"| {median:.2f} | {best:.2f} |")


def run_config(python: str, config: str, tool: str | None) -> dict:
    """Run one configuration in a subprocess; return its times and file size."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "trace.json")
        me = os.path.abspath(__file__)
        # The external tools run this script under them, writing to out too.
        wrapper = {
            None: [],
            "viztracer": ["-m", "viztracer", "--quiet", "--log_async", "-o", out],
            "panopticon": ["-m", "panopticon", "-o", out],
        }[tool]
        command = [python, *wrapper, me, "--child", config, out]
        env = child_env()
        start = time.perf_counter()
        done = subprocess.run(
            command, capture_output=True, text=True, env=env, timeout=1800, check=False
        )
        wall = time.perf_counter() - start
        if done.returncode != 0:
            return {"error": done.stderr.strip().splitlines()[-1:]}
        result = json.loads(done.stdout.strip().splitlines()[-1])
        result["wall"] = wall
        result["bytes"] = os.path.getsize(out) if os.path.exists(out) else 0
        return result


def has_module(python: str, name: str) -> bool:
    code = (
        "import importlib.util, sys; "
        f"sys.exit(importlib.util.find_spec({name!r}) is None)"
    )
    return subprocess.run([python, "-c", code], check=False).returncode == 0


def version(python: str) -> str:
    code = "import sys; print('%d.%d' % sys.version_info[:2])"
    return subprocess.run(
        [python, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()


def summarize_runs(runs: list[dict]) -> dict:
    errors = [r for r in runs if "error" in r]
    if errors:
        return errors[0]
    summary = {
        key: statistics.median(r.get(key, 0.0) for r in runs)
        for key in ("run", "closing", "cpu", "writer_cpu", "wall")
    }
    summary["best"] = min(r["run"] for r in runs)
    summary["bytes"] = runs[-1]["bytes"]
    summary["steps"] = runs[-1]["steps"]
    return summary


def main_bench() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--python",
        action="append",
        default=[],
        help="also run every configuration on this interpreter",
    )
    parser.add_argument(
        "--skip-slow", action="store_true", help="skip viztracer and Panopticon"
    )
    parser.add_argument(
        "--hooks", metavar="FILE", help="measure the hooks; write JSON to FILE"
    )
    parser.add_argument(
        "--json", metavar="OUT", help="also write the tracers' ratios as JSON to OUT"
    )
    parser.add_argument(
        "--floors",
        action="store_true",
        help="measure the floors (hooks that do nothing, records thrown away)",
    )
    args = parser.parse_args()
    here = sys.executable
    if args.hooks:
        main_hooks(args.hooks, [here, *args.python], args.repeat)
        return
    if args.floors:
        main_floors([here, *args.python], args.repeat)
        return
    plan = []
    for python in [here, *args.python]:
        plan += [
            (python, "stdlib loop, untraced", "stdlib", None),
            (python, "our loop, untraced", "ours", None),
            (python, "our loop + loop-level tracer", "ours+loop-tracer", None),
            (python, "our loop + tracing() without loop=", "ours+tracing()", None),
            (python, "stdlib loop + coroutine tracer", "stdlib+coroutine-tracer", None),
        ]
    # Why interleave: the machine is shared; a burst of load then hits every
    # configuration alike instead of one of them.
    results: dict[int, list[dict]] = {index: [] for index in range(len(plan))}
    for _ in range(args.repeat):
        for index, (python, _label, config, tool) in enumerate(plan):
            results[index].append(run_config(python, config, tool))
    rows = [
        (version(python), label, summarize_runs(results[index]))
        for index, (python, label, _config, _tool) in enumerate(plan)
    ]
    if not args.skip_slow:
        for tool, label in [
            ("viztracer", "stdlib loop + viztracer --log_async"),
            ("panopticon", "stdlib loop + Panopticon 0.0.4"),
        ]:
            if has_module(here, tool):
                result = summarize_runs([run_config(here, "stdlib", tool)])
                rows.append((version(here), label, result))
    for row in rows:
        print(*row, file=sys.stderr)

    steps = TASKS * (ROUNDS + 1)
    baselines = {}
    for py, label, result in rows:
        if label == "stdlib loop, untraced" and "run" in result:
            baselines[py] = result
    ours_base = {py: r for py, label, r in rows if label == "our loop, untraced"}
    print(
        f"\nworkload: {TASKS} tasks x {ROUNDS} x (fib({FIB}), sleep(0)); "
        f"{steps} task steps; median of {args.repeat} interleaved runs "
        "(slow tools: 1)\n"
    )
    print(
        "| Python | configuration | run s (median) | x untraced (median)"
        " | x untraced (best) | closing ms | CPU x untraced | writer CPU s"
        " | wall x stdlib | trace MB | bytes/step |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    configs = {}
    for py, label, result in rows:
        if "error" in result:
            print(f"| {py} | {label} | failed: {result['error']} | | | | | | | | |")
            continue
        base = baselines[py]
        # "untraced" means the same loop: ours for our loop, the stdlib's otherwise.
        same = ours_base[py] if label.startswith("our loop") else base
        size = result["bytes"]
        per_step = f"{size / steps:.0f}" if size else "-"
        print(
            f"| {py} | {label} | {result['run']:.3f}"
            f" | {result['run'] / same['run']:.2f}"
            f" | {result['best'] / same['best']:.2f}"
            f" | {result['closing'] * 1000:.1f}"
            f" | {result['cpu'] / same['cpu']:.2f}"
            f" | {result['writer_cpu']:.3f}"
            f" | {result['wall'] / base['wall']:.2f}"
            f" | {size / 1e6:.1f} | {per_step} |"
        )
        if "untraced" not in label:
            name = JSON_NAMES.get(label, label)
            if py != version(here):
                name += f" ({py})"
            configs[name] = {
                "cpu_ratio": round(result["cpu"] / same["cpu"], 3),
                "wall_ratio": round(result["run"] / same["run"], 3),
                "bytes_per_step": round(size / steps, 1) if size else None,
                "python": py,
            }
    if args.json:
        with open(args.json, "w", encoding="utf-8") as file:
            json.dump({"configs": configs}, file, indent=1)
            file.write("\n")


# The names of the configurations in --json's output.
JSON_NAMES = {
    "our loop + loop-level tracer": "loop-tracer",
    "our loop + tracing() without loop=": "tracing-auto",
    "stdlib loop + coroutine tracer": "coroutine-tracer",
    "stdlib loop + viztracer --log_async": "viztracer",
    "stdlib loop + Panopticon 0.0.4": "panopticon",
}


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3])
    elif len(sys.argv) >= 2 and sys.argv[1] == "--hooks-child":
        hooks_child(int(sys.argv[2]))
    elif len(sys.argv) >= 2 and sys.argv[1] == "--floors-child":
        floors_child(int(sys.argv[2]))
    else:
        main_bench()
