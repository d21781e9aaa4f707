"""The benchmark suite: every workload on every loop, in one run, interleaved.

Configurations (each skipped, with a message, when it cannot run):
  stdlib       asyncio's own loop (C Future and Task): the baseline of every ratio
  uvloop       uvloop, if it is installed
  ours         asynciodepth.EventLoop(), asyncio's C Future and Task
  ours-py      asynciodepth.EventLoop(python_tasks=True), the book's Future and Task
  compiled     ours from the compiled build (--compiled DIR, default build/compiled
  compiled-py  when it holds a package): DIR goes first on PYTHONPATH

Groups and workloads (sizes at --scale 1; --quick: a tenth, 2 repeats, and
only a, a', b, c, timers, threadsafe, 1KiB-10c, 64KiB-10c, plaintext, tls-1k, spawn):
  micro      a: 300k call_soon chain, no fd; a': the same with one idle registered
             socket; b: 2 tasks x 100k sleep(0); c: 5k tasks x 10 random sleeps
             (seeded); timers: 300k call_later cancelled before they fire (1k fire);
             threadsafe: 200k call_soon_threadsafe posts from a thread
             (bench_loop.py's workloads)
  streams    echo with start_server/StreamReader/StreamWriter, and
  protocols  with an asyncio.Protocol: 1 KiB and 64 KiB messages, 1, 10 and 100
             clients; the clients are another process (on asyncio's loop), so the
             CPU time is the server's alone
  http       an aiohttp application ("/": plain text, "/json"), driven by wrk
             (-t1 -c50, a warm-up first) for a bounded time: requests/s, p50, p99
  tls        TLS echo (1 KiB, 64 KiB; 10 clients) and
  spawn      create_subprocess_exec("true") + wait (10 workers), from
             bench_beyond_tcp.py, clients on the same loop
  trace      benchmarks/bench_trace.py --json, if it has that option

Every child runs with glibc's malloc thresholds fixed (MALLOC_MMAP_THRESHOLD_,
MALLOC_TRIM_THRESHOLD_; see MALLOC_PINNED), unless --malloc default.

Method: every (configuration, workload) run is a fresh subprocess; the repeats
are interleaved (repeat 1 of every configuration, then repeat 2, ...; the order
of the configurations rotates from one repeat to the next). Each run gives wall
and CPU seconds (process time of the loop's process) for a fixed amount of work;
for http, whose runs last a fixed time, both are per 10,000 requests. Ratios are
median(stdlib) / median(configuration) of the same run: higher is faster.

Usage: python benchmarks/suite.py [--quick] [--json FILE] [--repeats N]
       [--configs stdlib,uvloop,...] [--groups micro,streams,...]
       [--workloads a,b,...] [--compiled DIR] [--scale F]
       python benchmarks/suite.py --report FILE     (the Markdown tables)
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(HERE)
sys.path.insert(0, HERE)

from suite_report import CONFIGS, HTTP_ROUTES, ratio_of, report  # noqa: E402, F401
from suite_servers import BENCH_LOOP_NAME  # noqa: E402

GROUPS = ["micro", "streams", "protocols", "http", "tls", "spawn", "trace"]
# Why these scales: bench_loop.py's sizes are a 1M, b 2 x 200k, c 10k tasks,
# timers 100k, threadsafe 100k; the are a 300k, b 100k, c 5k.
MICRO = {"a": 0.3, "a'": 0.3, "b": 0.5, "c": 0.5, "timers": 3.0, "threadsafe": 2.0}
# Echo: (size, clients) -> round trips at scale 1 (each run ~0.3-1 s of CPU).
ECHO = {
    (1024, 1): 10_000,
    (1024, 10): 20_000,
    (1024, 100): 20_000,
    (65536, 1): 2_000,
    (65536, 10): 3_000,
    (65536, 100): 3_000,
}
TLS = {"tls-1k": 20_000, "tls-64k": 3_000}
SPAWN = 500


def echo_name(size: int, clients: int) -> str:
    return f"{size // 1024}KiB-{clients}c"


def workloads(args: argparse.Namespace) -> list[tuple[str, str]]:
    """(group, workload) pairs of this run."""
    pairs: list[tuple[str, str]] = []
    for group in args.groups:
        if group == "micro":
            pairs += [("micro", w) for w in MICRO]
        elif group in ("streams", "protocols"):
            pairs += [(group, echo_name(*key)) for key in ECHO]
        elif group == "http":
            pairs += [("http", w) for w in HTTP_ROUTES]
        elif group == "tls":
            pairs += [("tls", w) for w in TLS]
        elif group == "spawn":
            pairs += [("spawn", "spawn-10w")]
    if args.workloads:
        pairs = [p for p in pairs if p[1] in args.workloads]
    return pairs


# ---- running one (configuration, workload) ----------------------------------------


# Why pinned: with glibc's adaptive thresholds, a recv(256 KiB) (asyncio's and
# ours's read size) is served by mmap + mremap + munmap on every call or from the
# heap, depending on what the process freed before: strace of one echo server
# counted 2,218 mmap/mremap/munmap for 2,009 requests on ours and none on stdlib,
# and ours cost 19 us a request instead of 5. Fixed thresholds give every loop
# the heap: ours 4.3-4.9 us, stdlib 5.3. `--malloc default` measures without.
MALLOC_PINNED = {
    "MALLOC_MMAP_THRESHOLD_": "1048576",
    "MALLOC_TRIM_THRESHOLD_": "8388608",
}
QUICK_WORKLOADS = list(MICRO) + ["1KiB-10c", "64KiB-10c", "plaintext", "tls-1k",
                                 "spawn-10w"]  # fmt: skip


def child_env(config: str, args: argparse.Namespace) -> dict[str, str]:
    env = dict(os.environ)
    if args.malloc == "pinned":
        for key, value in MALLOC_PINNED.items():
            env.setdefault(key, value)
    path = [os.path.join(TOP, "src")]
    if config.startswith("compiled"):
        path.insert(0, args.compiled)
    env["PYTHONPATH"] = os.pathsep.join(path + [env.get("PYTHONPATH", "")]).rstrip(
        os.pathsep
    )
    return env


def me(*argv: str) -> list[str]:
    return [sys.executable, os.path.join(HERE, "suite.py"), *argv]


def run_json(command: list[str], env: dict[str, str], timeout: float) -> dict:
    run = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=timeout
    )
    if run.returncode:
        raise RuntimeError((run.stderr.strip().splitlines() or ["?"])[-1])
    return json.loads(run.stdout.strip().splitlines()[-1])


class Session:
    """Processes started for one measurement; all killed on a timeout or error."""

    def __init__(self, timeout: float) -> None:
        self.processes: list[subprocess.Popen] = []
        self.timer = threading.Timer(timeout, self.kill)
        self.timer.start()

    def start(self, command: list[str], env: dict[str, str]) -> subprocess.Popen:
        process = subprocess.Popen(
            command,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.processes.append(process)
        return process

    @staticmethod
    def tell(process: subprocess.Popen, line: str) -> None:
        process.stdin.write(line + "\n")
        process.stdin.flush()

    @staticmethod
    def read(process: subprocess.Popen) -> str:
        line = process.stdout.readline()
        if not line:
            raise RuntimeError(
                (process.stderr.read().strip().splitlines() or ["no output"])[-1]
            )
        return line.strip()

    def kill(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()

    def close(self) -> None:
        self.timer.cancel()
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            for stream in (process.stdin, process.stdout, process.stderr):
                stream.close()


def start_server(session: Session, config: str, kind: str, args) -> tuple:
    server = session.start(me("--serve", config, kind), child_env(config, args))
    port = int(session.read(server).split()[1])
    return server, port


def run_echo(config: str, group: str, workload: str, args) -> dict:
    size, clients = next(key for key in ECHO if echo_name(*key) == workload)
    requests = max(clients, int(ECHO[size, clients] * args.scale))
    session = Session(timeout=120)
    try:
        server, port = start_server(session, config, group, args)
        client = session.start(
            me("--echo-client", str(port), str(size), str(clients),
               str(requests // 10), str(requests)),
            child_env("stdlib", args),
        )  # fmt: skip
        assert session.read(client) == "warm"
        session.tell(server, "start")
        assert session.read(server) == "ok"
        session.tell(client, "go")
        done = json.loads(session.read(client))
        session.tell(server, "stop")
        measured = json.loads(session.read(server))
    finally:
        session.kill()
        session.close()
    return {
        "wall": done["wall"],
        "cpu": measured["cpu"],
        "extra": {
            "requests": done["completed"],
            "rps": done["completed"] / done["wall"],
            "server_wall": measured["wall"],
        },
    }


def wrk(url: str, seconds: float, connections: int) -> dict:
    duration = f"-d{max(1, round(seconds))}s"
    command = ["wrk", "-t1", f"-c{connections}", duration, "--latency", url]
    output = subprocess.run(
        command, capture_output=True, text=True, timeout=seconds + 30, check=True
    ).stdout
    result: dict = {}
    units = {"us": 1e-3, "ms": 1.0, "s": 1e3}
    for line in output.splitlines():
        words = line.split()
        if line.startswith("Requests/sec:"):
            result["rps"] = float(words[1])
        elif " requests in " in line:
            result["requests"] = int(words[0])
        elif len(words) == 2 and words[0] in ("50%", "99%"):
            number = words[1].rstrip("mus")
            unit = words[1][len(number):]
            result[f"p{words[0][:-1]}_ms"] = float(number) * units[unit]
        elif line.strip().startswith("Non-2xx") or "Socket errors" in line:
            result.setdefault("errors", []).append(line.strip())
    return result


def run_http(config: str, workload: str, args) -> dict:
    seconds = args.http_seconds
    session = Session(timeout=seconds * 2 + 90)
    try:
        server, port = start_server(session, config, "http", args)
        url = f"http://127.0.0.1:{port}{HTTP_ROUTES[workload]}"
        wrk(url, 1, args.http_connections)  # the warm-up
        session.tell(server, "start")
        assert session.read(server) == "ok"
        got = wrk(url, seconds, args.http_connections)
        session.tell(server, "stop")
        measured = json.loads(session.read(server))
    finally:
        session.kill()
        session.close()
    requests = got["requests"]
    return {
        "wall": measured["wall"] / requests * 10_000,
        "cpu": measured["cpu"] / requests * 10_000,
        "extra": dict(got, server_cpu=measured["cpu"], server_wall=measured["wall"]),
    }


def run_one(config: str, group: str, workload: str, args) -> dict:
    """One measurement in fresh subprocesses: {"wall", "cpu", "extra"}."""
    if group == "micro":
        wall, cpu = run_json(
            [sys.executable, os.path.join(HERE, "bench_loop.py"), "--child",
             BENCH_LOOP_NAME[config], workload,
             "--scale", str(MICRO[workload] * args.scale)],
            child_env(config, args), timeout=300,
        )  # fmt: skip
        return {"wall": wall, "cpu": cpu, "extra": {}}
    if group in ("streams", "protocols"):
        return run_echo(config, group, workload, args)
    if group == "http":
        return run_http(config, workload, args)
    requests = TLS.get(workload, SPAWN)
    got = run_json(
        me("--in-process", config, "spawn" if group == "spawn" else workload, "10",
           str(max(10, int(requests * args.scale)))),
        child_env(config, args), timeout=300,
    )  # fmt: skip
    return {"wall": got["wall"], "cpu": got["cpu"], "extra": {}}


# ---- the run -------------------------------------------------------------------------


def available(config: str, args: argparse.Namespace) -> str | None:
    """None if the configuration can run, else why not."""
    if config.startswith("compiled"):
        if not os.path.isdir(os.path.join(args.compiled, "asynciodepth")):
            return f"no compiled build in {args.compiled}"
        code = "import asynciodepth.base_events as m; print(m.__file__)"
        check = subprocess.run([sys.executable, "-c", code], capture_output=True,
                               text=True, env=child_env(config, args))  # fmt: skip
        if check.returncode or check.stdout.strip().endswith(".py"):
            return f"the build in {args.compiled} does not load compiled modules"
        return None
    if config == "uvloop":
        check = subprocess.run([sys.executable, "-c", "import uvloop"],
                               capture_output=True)  # fmt: skip
        return None if check.returncode == 0 else "uvloop is not installed"
    return None


def group_missing(group: str) -> str | None:
    if group == "http":
        if shutil.which("wrk") is None:
            return "wrk is not installed (apt-get install wrk)"
        check = subprocess.run([sys.executable, "-c", "import aiohttp"],
                               capture_output=True)  # fmt: skip
        if check.returncode:
            return "aiohttp is not installed (requirements-bench.txt)"
    return None


def run_trace(args: argparse.Namespace, results: list[dict]) -> None:
    script = os.path.join(HERE, "bench_trace.py")
    env = child_env("ours", args)
    helptext = subprocess.run([sys.executable, script, "--help"], env=env,
                              capture_output=True, text=True).stdout  # fmt: skip
    if "--json" not in helptext:
        print("trace: skipped (bench_trace.py has no --json option yet)", flush=True)
        return
    handle, out = tempfile.mkstemp(prefix="suite-trace-", suffix=".json")
    os.close(handle)
    command = [sys.executable, script, "--json", out, "--repeat",
               str(min(args.repeats, 3))]  # fmt: skip
    if "--skip-slow" in helptext:
        command.append("--skip-slow")
    for python in args.trace_python:  # e.g. a 3.12+, for the sys.monitoring tracer
        command += ["--python", python]
    try:
        subprocess.run(command, env=env, capture_output=True, text=True,
                       timeout=args.trace_timeout, check=True)  # fmt: skip
        with open(out) as f:
            configs = json.load(f)["configs"]
    except (subprocess.SubprocessError, OSError, ValueError, KeyError) as e:
        print(f"trace: failed ({type(e).__name__}: {e})", flush=True)
        return
    finally:
        os.unlink(out)
    for name, figures in configs.items():
        results.append({"group": "trace", "workload": "tracing", "config": name,
                        "wall": [], "cpu": [], "extra": figures})  # fmt: skip
    print(f"trace: {len(configs)} configurations from bench_trace.py", flush=True)


def git(*argv: str) -> str:
    """git's answer, or "" where there is no git (e.g. a chroot with only Python)."""
    try:
        run = subprocess.run(["git", "-C", TOP, *argv], capture_output=True, text=True)
    except OSError:
        return ""
    return run.stdout.strip()


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "system": platform.system(),
            "loadavg_start": [round(x, 2) for x in os.getloadavg()]}  # fmt: skip


def version_of(module: str) -> str | None:
    code = f"import {module}; print({module}.__version__)"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    return run.stdout.strip() or None


def run(args: argparse.Namespace) -> dict:
    started = time.perf_counter()
    configs = []
    for config in args.configs:
        why = available(config, args)
        if why:
            print(f"{config}: skipped ({why})", flush=True)
        else:
            configs.append(config)
    groups = []
    for group in args.groups:
        why = group_missing(group)
        if why:
            print(f"{group}: skipped ({why})", flush=True)
        else:
            groups.append(group)
    args.groups = groups
    pairs = workloads(args)
    meta = {
        "commit": git("rev-parse", "--short=12", "HEAD")
        + ("+dirty" if git("status", "--porcelain", "--", "src", "benchmarks") else ""),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds"
        ),
        "python": platform.python_version(),
        "uvloop": version_of("uvloop") if "uvloop" in configs else None,
        "aiohttp": version_of("aiohttp") if "http" in groups else None,
        "machine": machine(),
        "repeats": args.repeats,
        "scale": args.scale,
        "configs": configs,
        "compiled": args.compiled if "compiled" in configs else None,
        "malloc": MALLOC_PINNED if args.malloc == "pinned" else "default",
        "command": " ".join(["python", "benchmarks/suite.py", *sys.argv[1:]]),
    }
    table: dict[tuple[str, str, str], dict] = {}
    failures: list[str] = []
    spent: dict[str, float] = {}  # seconds of the run per group
    for repeat in range(args.repeats):
        order = configs[repeat % len(configs):] + configs[: repeat % len(configs)]
        for group, workload in pairs:
            for config in order:
                entry = table.setdefault(
                    (group, workload, config),
                    {"group": group, "workload": workload, "config": config,
                     "wall": [], "cpu": [], "extra": {}},
                )  # fmt: skip
                began = time.perf_counter()
                try:
                    got = run_one(config, group, workload, args)
                except (RuntimeError, AssertionError, ValueError, OSError,
                        subprocess.SubprocessError) as e:  # fmt: skip
                    failures.append(f"{group}/{workload}/{config}: {e}")
                    print(f"  FAILED {failures[-1]}", flush=True)
                    continue
                spent[group] = spent.get(group, 0.0) + time.perf_counter() - began
                entry["wall"].append(got["wall"])
                entry["cpu"].append(got["cpu"])
                for key, value in got["extra"].items():
                    entry["extra"].setdefault(key, []).append(value)
        print(f"repeat {repeat + 1}/{args.repeats} done, "
              f"{time.perf_counter() - started:.0f} s", flush=True)  # fmt: skip
    results = list(table.values())
    if "trace" in groups:
        began = time.perf_counter()
        run_trace(args, results)
        spent["trace"] = time.perf_counter() - began
    meta["machine"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    meta["elapsed_s"] = round(time.perf_counter() - started, 1)
    meta["group_seconds"] = {group: round(value, 1) for group, value in spent.items()}
    meta["failures"] = failures
    return {"meta": meta, "results": results}


# ---- the command line ---------------------------------------------------------------


def main() -> None:
    modes = ("--serve", "--echo-client", "--in-process")
    if len(sys.argv) > 1 and sys.argv[1] in modes:
        import suite_servers

        mode, rest = sys.argv[1], sys.argv[2:]
        if mode == "--serve":
            suite_servers.serve(*rest)
        elif mode == "--echo-client":
            suite_servers.echo_client(*map(int, rest))
        else:
            suite_servers.in_process(rest[0], rest[1], int(rest[2]), int(rest[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run of about two minutes")  # fmt: skip
    parser.add_argument("--repeats", type=int)
    parser.add_argument("--scale", type=float)
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--groups", default=",".join(GROUPS))
    parser.add_argument("--workloads", help="only these (comma-separated)")
    parser.add_argument("--compiled", default=os.path.join(TOP, "build", "compiled"))
    parser.add_argument("--http-seconds", type=int)
    parser.add_argument("--http-connections", type=int, default=50)
    parser.add_argument("--trace-timeout", type=float, default=300)
    parser.add_argument(
        "--trace-python",
        action="append",
        default=[],
        metavar="PYTHON",
        help="bench_trace.py --python: also trace on this interpreter",
    )
    parser.add_argument(
        "--malloc",
        choices=["pinned", "default"],
        default="pinned",
        help="glibc's mmap/trim thresholds fixed in every child (default) or not",
    )
    parser.add_argument("--json", help="write the results here")
    parser.add_argument(
        "--report", metavar="FILE", help="print FILE's tables, run nothing"
    )
    args = parser.parse_args()
    if args.report:
        with open(args.report) as f:
            sys.stdout.write(report(json.load(f)))
        return
    quick = args.quick
    args.repeats = args.repeats or (2 if quick else 4)
    args.scale = args.scale or (0.1 if quick else 1.0)
    args.http_seconds = args.http_seconds or (1 if quick else 4)
    args.configs = args.configs.split(",")
    args.groups = args.groups.split(",")
    args.workloads = args.workloads.split(",") if args.workloads else None
    if quick and not args.workloads:
        args.workloads = QUICK_WORKLOADS
    args.compiled = os.path.abspath(args.compiled)
    data = run(args)
    text = json.dumps(data, indent=1) + "\n"
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            f.write(text)
    sys.stdout.write("\n" + report(data))


if __name__ == "__main__":
    main()
