"""The cost model of the chapter "Performance": what each unit of a loop's work costs.

For every loop (asyncio's, ours in both Future/Task choices, uvloop if installed) it
measures, in microseconds of CPU time per unit:

  call_soon        loop.call_soon(f) on a loop that is not running: a Handle, queued
                   (and dropped), in batches of 1000 on fresh loops
  callback         one callback of a call_soon chain, no fd (workload a)
  callback_fd      the same with one idle registered socket (workload a'): a poll
                   on every iteration
  poll             the loop's own zero-timeout poll path, one idle fd, nothing ready
                   (not reachable from Python on uvloop)
  task_step        one step of a task doing ``await asyncio.sleep(0)`` (workload b)
  timer            a call_later(0) timer scheduled, fired and run
  timer_cancelled  a call_later(3600) timer scheduled, cancelled and dropped
  echo_1k, echo_64k  one round trip of a message through an echo Protocol over a
                   socketpair (both ends on the loop)

and, once, the physical limits under all of them:

  python_call      calling an empty Python function
  context_run      contextvars.Context.run(f) of an empty function (asyncio runs
                   every callback so)
  epoll_wait_0     select.epoll().poll(0) with one idle fd: the system call
  sendrecv_1k, sendrecv_64k  a round trip over a socketpair with blocking
                   send/recv: four system calls, the bytes copied twice each way
  recv_256k_first_state, recv_256k_heap_state  the 1 KiB round trip read with
                   recv(256 KiB), as asyncio's transports (and ours) read: before
                   and after the process has freed a large block (glibc's malloc
                   serves large blocks by mmap() until then; see
                   same_allocator_state(), which every loop's child calls first)

With ``--compiled DIR`` (default build/compiled, if it holds a package) the configs
compiled and compiled-py are ours and ours-py from the compiled build, DIR first on
PYTHONPATH.

Every (loop, repeat) is a fresh subprocess, repeats interleaved (repeat 1 of every
loop, then repeat 2, ...); the JSON keeps every repeat and the model uses medians.
With valgrind installed it also counts instructions per callback and per task step
(callgrind, the difference between two sizes of a run, so start-up cancels out):
counts that do not depend on the machine's load.

Usage: PYTHONPATH=src python benchmarks/cost_model.py [--repeats N] [--quick]
           [--out benchmarks/results/cost_model.json] [--no-callgrind]
           [--configs stdlib,ours,...] [--compiled DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import datetime
import json
import os
import platform
import re
import select
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

from bench_loop import call_soon_chain

CONFIGS = ["stdlib", "ours", "ours-py", "uvloop", "compiled", "compiled-py"]
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)


def new_loop(config: str) -> asyncio.AbstractEventLoop:
    """The loop of a configuration: stdlib, ours, ours-py (python_tasks) or uvloop."""
    if config == "stdlib":
        return asyncio.new_event_loop()
    if config in ("ours", "ours-py", "compiled", "compiled-py"):
        import asynciodepth  # the compiled build when its directory leads PYTHONPATH

        return asynciodepth.EventLoop(python_tasks=config.endswith("-py"))
    if config == "uvloop":
        import uvloop

        return uvloop.new_event_loop()
    raise ValueError(config)


def noop() -> None:
    pass


def per_unit(function, n: int) -> float:
    """CPU microseconds per unit of function(n), on a warmed-up run."""
    function(max(1, n // 10))
    start = time.process_time()
    function(n)
    return (time.process_time() - start) / n * 1e6


# ---- the loop's units ------------------------------------------------------


def m_call_soon(config: str, n: int, batch: int = 1000) -> float:
    # Why batches on fresh loops: a queue of n handles costs more per handle (memory,
    # caches) than the loop's queue ever holds here; the loops' own making and
    # closing is measured apart and taken off.
    def run(n: int, calls: int = batch) -> None:
        for _ in range(max(1, n // batch)):
            loop = new_loop(config)
            call_soon = loop.call_soon
            for _ in range(calls):
                call_soon(noop)
            loop.close()  # the queued handles are dropped with it

    return per_unit(run, n) - per_unit(lambda n: run(n, 0), n)


chain = call_soon_chain  # workload (a) of bench_loop.py


def m_callback(config: str, n: int, with_fd: bool = False) -> float:
    def run(n: int) -> None:
        loop = new_loop(config)
        here, peer = socket.socketpair()
        if with_fd:
            loop.add_reader(here, here.recv, 16)  # idle: the peer never sends
        chain(loop, n)
        if with_fd:
            loop.remove_reader(here)
        here.close()
        peer.close()
        loop.close()

    return per_unit(run, n)


def m_poll(config: str, n: int) -> float | None:
    if config == "uvloop":
        return None
    loop = new_loop(config)
    here, peer = socket.socketpair()
    loop.add_reader(here, here.recv, 16)
    if config == "stdlib":
        select_, process = loop._selector.select, loop._process_events

        def run(n: int) -> None:
            for _ in range(n):
                process(select_(0))

    else:
        poll_and_wait = loop._poll_and_wait

        def run(n: int) -> None:
            for _ in range(n):
                poll_and_wait(0.0)

    try:
        return per_unit(run, n)
    finally:
        loop.remove_reader(here)
        here.close()
        peer.close()
        loop.close()


def m_task_step(config: str, n: int) -> float:
    def run(n: int) -> None:
        loop = new_loop(config)

        async def worker() -> None:
            for _ in range(n // 2):
                await asyncio.sleep(0)

        async def main() -> None:
            await asyncio.gather(worker(), worker())

        loop.run_until_complete(main())
        loop.close()

    return per_unit(run, n)


def m_timer(config: str, n: int, cancelled: bool = False) -> float:
    def run(n: int) -> None:
        loop = new_loop(config)

        def schedule() -> None:
            call_later = loop.call_later
            if cancelled:
                for _ in range(n):
                    call_later(3600.0, noop).cancel()
                loop.call_soon(loop.stop)
            else:
                for _ in range(n - 1):
                    call_later(0.0, noop)
                call_later(0.0, loop.stop)

        loop.call_soon(schedule)
        loop.run_forever()
        loop.run_until_complete(asyncio.sleep(0))  # drop the cancelled timers
        loop.close()

    return per_unit(run, n)


class Echo(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)


class Client(asyncio.Protocol):
    """Send a message, wait for all of it back, n times; then set done."""

    def __init__(self, message: bytes, n: int, done: asyncio.Future) -> None:
        self.message, self.left, self.done, self.got = message, n, done, 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        transport.write(self.message)

    def data_received(self, data: bytes) -> None:
        self.got += len(data)
        if self.got == len(self.message):
            self.got = 0
            self.left -= 1
            if self.left:
                self.transport.write(self.message)
            else:
                self.done.set_result(None)


def same_allocator_state() -> None:
    """Free one large block, so that every loop's reads meet the same malloc.

    Why: both loops' socket transports call recv(256 KiB). glibc's malloc serves a
    block that large with mmap() until the process first frees a block above its
    threshold, and from then on from the heap: recv(262144) of a 1 KiB message
    costs ~10 us before, ~1 us after. Which state a process is in depends on what
    it freed earlier, so without this the echo figures compare allocator states.
    """
    block = bytearray(1 << 20)
    del block


def m_echo(config: str, n: int, size: int) -> float:
    def run(n: int) -> None:
        loop = new_loop(config)
        a, b = socket.socketpair()

        async def main() -> None:
            done = loop.create_future()
            server, _ = await loop.connect_accepted_socket(Echo, b)
            client, _ = await loop.create_connection(
                lambda: Client(b"x" * size, n, done), sock=a
            )
            await done
            client.close()
            server.close()
            await asyncio.sleep(0)

        loop.run_until_complete(main())
        loop.close()

    return per_unit(run, n)


# ---- the physical limits ---------------------------------------------------


def m_python_call(n: int) -> float:
    def run(n: int) -> None:
        f = noop
        for _ in range(n):
            f()

    def empty(n: int) -> None:
        for _ in range(n):
            pass

    return per_unit(run, n) - per_unit(empty, n)


def m_context_run(n: int) -> float:
    def run(n: int) -> None:
        context_run, f = contextvars.copy_context().run, noop
        for _ in range(n):
            context_run(f)

    def empty(n: int) -> None:
        for _ in range(n):
            pass

    return per_unit(run, n) - per_unit(empty, n)


def m_epoll_wait_0(n: int) -> float:
    here, peer = socket.socketpair()
    epoll = select.epoll()
    epoll.register(here.fileno(), select.EPOLLIN)
    poll = epoll.poll

    def run(n: int) -> None:
        for _ in range(n):
            poll(0)

    try:
        return per_unit(run, n)
    finally:
        epoll.close()
        here.close()
        peer.close()


def m_sendrecv(n: int, size: int, read_size: int | None = None) -> float:
    a, b = socket.socketpair()
    message = b"x" * size

    def receive(sock: socket.socket) -> None:
        got = 0
        while got < size:
            got += len(sock.recv(read_size or size - got))

    def run(n: int) -> None:
        for _ in range(n):
            a.sendall(message)
            receive(b)
            b.sendall(message)
            receive(a)

    try:
        return per_unit(run, n)
    finally:
        a.close()
        b.close()


# ---- driver ----------------------------------------------------------------


def sizes(quick: bool) -> dict[str, int]:
    scale = 0.2 if quick else 1.0
    base = {"call_soon": 100_000, "callback": 200_000, "poll": 100_000,
            "task_step": 100_000, "timer": 50_000, "echo_1k": 3_000,
            "echo_64k": 400, "python_call": 1_000_000, "epoll_wait_0": 200_000,
            "sendrecv_1k": 20_000, "sendrecv_64k": 2_000}
    return {key: max(10, int(value * scale)) for key, value in base.items()}


def run_child(config: str, quick: bool) -> dict[str, float | None]:
    """In the subprocess: every unit of one configuration (or the physical limits)."""
    n = sizes(quick)
    if config == "physical":
        # Before anything frees a large block: recv(256 KiB) in malloc's first state.
        fresh = m_sendrecv(n["sendrecv_1k"], 1024, 256 * 1024)
        same_allocator_state()
        return {
            "recv_256k_first_state": fresh,
            "recv_256k_heap_state": m_sendrecv(n["sendrecv_1k"], 1024, 256 * 1024),
            "python_call": m_python_call(n["python_call"]),
            "context_run": m_context_run(n["python_call"]),
            "epoll_wait_0": m_epoll_wait_0(n["epoll_wait_0"]),
            "sendrecv_1k": m_sendrecv(n["sendrecv_1k"], 1024),
            "sendrecv_64k": m_sendrecv(n["sendrecv_64k"], 65536),
        }
    same_allocator_state()
    return {
        "call_soon": m_call_soon(config, n["call_soon"]),
        "callback": m_callback(config, n["callback"]),
        "callback_fd": m_callback(config, n["callback"], with_fd=True),
        "poll": m_poll(config, n["poll"]),
        "task_step": m_task_step(config, n["task_step"]),
        "timer": m_timer(config, n["timer"]),
        "timer_cancelled": m_timer(config, n["timer"], cancelled=True),
        "echo_1k": m_echo(config, n["echo_1k"], 1024),
        "echo_64k": m_echo(config, n["echo_64k"], 65536),
    }


def counting_child(config: str, workload: str, n: int) -> None:
    """In a callgrind subprocess: run one workload of size n, nothing else."""
    loop = new_loop(config)
    if workload == "task_step":

        async def worker() -> None:
            for _ in range(n // 2):
                await asyncio.sleep(0)

        async def main() -> None:
            await asyncio.gather(worker(), worker())

        loop.run_until_complete(main())
    else:
        here, peer = socket.socketpair()
        if workload == "callback_fd":
            loop.add_reader(here, here.recv, 16)
        chain(loop, n)
    loop.close()


def instructions(config: str, workload: str, n: int, env: dict[str, str]) -> int:
    """Instructions that callgrind counts for a run of size n (start-up included)."""
    command = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
               sys.executable, __file__, "--count", config, workload, str(n)]
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    match = re.search(r"Collected : (\d+)", result.stderr)
    if result.returncode or not match:
        raise RuntimeError(f"callgrind failed on {config} {workload}: {result.stderr[-500:]}")
    return int(match.group(1))


def env_of(config: str, compiled: str) -> dict[str, str]:
    """The environment of a child: the compiled build first on PYTHONPATH for compiled*."""
    env = dict(os.environ)
    if config.startswith("compiled"):
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [compiled, env.get("PYTHONPATH")]))
    return env


def available(config: str, compiled: str) -> bool:
    if config.startswith("compiled") and not os.path.isfile(
        os.path.join(compiled, "asynciodepth", "_compiled.json")
    ):
        return False
    command = [sys.executable, "-c", f"import sys; sys.argv=['x']; "
               f"sys.path.insert(0, {HERE!r}); import cost_model; "
               f"cost_model.new_loop({config!r}).close()"]
    env = env_of(config, compiled)
    return subprocess.run(command, env=env, capture_output=True).returncode == 0


def machine() -> dict[str, object]:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            names = re.findall(r"model name\s*:\s*(.*)", f.read())
        cpu = names[0] if names else cpu
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "system": platform.system(),
            "loadavg_start": list(os.getloadavg())}


def commit() -> str:
    try:
        return subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True).stdout.strip()
    except OSError:
        return "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="a fifth of the sizes")
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--out", default=os.path.join(HERE, "results", "cost_model.json"))
    parser.add_argument("--no-callgrind", action="store_true")
    parser.add_argument("--compiled", default=os.path.join(REPO, "build", "compiled"))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--count", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_child(args.child, args.quick)))
        return
    if args.count:
        counting_child(args.count[0], args.count[1], int(args.count[2]))
        return

    configs = [c for c in args.configs.split(",") if available(c, args.compiled)]
    meta = {"commit": commit(), "date": datetime.datetime.now(datetime.timezone.utc)
            .strftime("%Y-%m-%d %H:%M UTC"), "python": platform.python_version(),
            "machine": machine(), "repeats": args.repeats, "quick": args.quick,
            "configs": configs,
            "unit": "CPU microseconds per unit (process_time), medians",
            "command": " ".join(["python", "benchmarks/cost_model.py"] + sys.argv[1:])}
    try:
        import uvloop

        meta["uvloop"] = uvloop.__version__
    except ImportError:
        meta["uvloop"] = None
    runs: dict[str, list[dict]] = {c: [] for c in configs + ["physical"]}
    for repeat in range(args.repeats):
        for config in configs + ["physical"]:
            command = [sys.executable, __file__, "--child", config]
            if args.quick:
                command.append("--quick")
            env = env_of(config, args.compiled)
            out = subprocess.run(command, env=env, capture_output=True, text=True,
                                 check=True).stdout
            runs[config].append(json.loads(out))
            print(f"repeat {repeat + 1}/{args.repeats} {config}", file=sys.stderr)
    medians = {
        config: {key: (None if rows[0][key] is None
                       else statistics.median(row[key] for row in rows))
                 for key in rows[0]}
        for config, rows in runs.items()
    }
    counts: dict[str, dict[str, float]] = {}
    if not args.no_callgrind and shutil.which("valgrind"):
        small, large = 5_000, 15_000
        for config in configs:
            counts[config] = {}
            for workload in ("callback", "callback_fd", "task_step"):
                env = env_of(config, args.compiled)
                low = instructions(config, workload, small, env)
                high = instructions(config, workload, large, env)
                counts[config][workload] = round((high - low) / (large - small), 1)
                print(f"callgrind {config} {workload}: {counts[config][workload]}",
                      file=sys.stderr)
        meta["instructions"] = (f"callgrind, (runs of {large} - {small} units) / "
                                f"{large - small}")
    meta["machine"]["loadavg_end"] = list(os.getloadavg())
    result = {"meta": meta, "sizes": sizes(args.quick), "medians": medians,
              "runs": runs, "instructions_per_unit": counts}
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
        f.write("\n")
    print(json.dumps(medians, indent=1))


if __name__ == "__main__":
    main()
