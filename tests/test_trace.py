"""Tests of asynciodepth.trace: both tracers, the file format, faults, interfaces."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import gc
import io
import json
import os
import random
import re
import signal
import subprocess
import sys
import textwrap
import time
import types
import warnings
from pathlib import Path
from unittest import mock

import pytest

import asynciodepth.tasks
from asynciodepth.events import VirtualClock
from asynciodepth.hello import typist
from asynciodepth.runners import TaskEventLoop as EventLoop
from asynciodepth.trace.formatter import FLUSH_EVERY
from asynciodepth.trace import (
    MONITORING,
    TraceSizeWarning,
    TracingError,
    load_trace,
    plot_timeline,
    traced,
    tracing,
)

SRC = str(Path(__file__).resolve().parents[1] / "src")


# -- helpers: the properties every trace must have ----------------------------


def strict_events(text: str) -> list[dict]:
    """Parse text as strict JSON (no repair) and return its events."""
    data = json.loads(text)
    assert list(data) == ["traceEvents"]
    return data["traceEvents"]


def strict_load(path: Path) -> list[dict]:
    """Parse path as strict JSON (no repair) and return its events."""
    return strict_events(path.read_text(encoding="utf-8"))


def check_flows(events: list[dict]) -> int:
    """Every flow start has exactly one finish, later or at the same time."""
    starts = collections.Counter(e["id"] for e in events if e["ph"] == "s")
    ends = collections.Counter(e["id"] for e in events if e["ph"] == "f")
    assert starts == ends
    assert all(count == 1 for count in starts.values())
    start_ts = {e["id"]: e["ts"] for e in events if e["ph"] == "s"}
    for event in events:
        if event["ph"] == "f":
            assert event["ts"] >= start_ts[event["id"]]
    return len(starts)


def task_lives(events: list[dict]) -> list[dict]:
    """The complete events, category "task", that span each task's life."""
    return [e for e in events if e["ph"] == "X" and e.get("cat") == "task"]


def check_tracks(events: list[dict]) -> dict[int, list[dict]]:
    """Every task track is named, has one life, and holds its steps inside it."""
    lives = collections.Counter(e["tid"] for e in task_lives(events))
    assert all(count == 1 for count in lives.values())
    life = {e["tid"]: e for e in task_lives(events)}
    steps = collections.defaultdict(list)
    for event in events:
        if event["ph"] == "X" and event["cat"] == "step":
            tid = event["tid"]
            assert tid in life
            assert life[tid]["ts"] <= event["ts"]
            end = life[tid]["ts"] + life[tid]["dur"]
            assert event["ts"] + event["dur"] <= end + 1e-6
            steps[tid].append(event)
    names = {e["tid"] for e in events if e["ph"] == "M" and e["name"] == "thread_name"}
    # Every task track that was opened (named) was also closed (has a life).
    assert names - {1} == set(life)
    return steps


def outcomes(events: list[dict], tid: int) -> list[str]:
    return [
        e["args"]["outcome"]
        for e in events
        if e["ph"] == "X" and e.get("cat") == "step" and e["tid"] == tid
    ]


def task_tid(events: list[dict], coroutine: str) -> int:
    tids = [
        e["tid"]
        for e in events
        if e in task_lives(events) and e["args"]["coroutine"].endswith(coroutine)
    ]
    assert len(tids) == 1, tids
    return tids[0]


# -- programs to trace -----------------------------------------------------------


async def worker(n: int) -> int:
    for _ in range(n):
        await asyncio.sleep(0.01)
    return n


async def failing() -> None:
    await asyncio.sleep(0.035)
    raise ValueError("boom")


async def gather_with_failure() -> str:
    try:
        await asyncio.gather(worker(1), failing(), worker(3))
    except ValueError as error:
        return f"caught {error}"
    return "no error"


async def many(count: int, n: int) -> list[int]:
    return await asyncio.gather(*(worker(n) for _ in range(count)))


def worker_tracks(events: list[dict]) -> list[int]:
    return [
        e["tid"]
        for e in events
        if e in task_lives(events) and e["args"]["coroutine"].endswith("worker")
    ]


def python_task(loop, coro, **options):
    """Our Python Task (chapter "The scheduler"), whatever the loop's default."""
    return asynciodepth.tasks.Task(coro, loop=loop, **options)


def c_task(loop, coro, **options):
    """asyncio's own Task (the C one)."""
    return asyncio.Task(coro, loop=loop, **options)


def asyncio_python_task(loop, coro, **options):
    """asyncio's pure-Python Task, the one it uses where its C module is missing."""
    return asyncio.tasks._PyTask(coro, loop=loop, **options)


TASK_FACTORIES = {"python": python_task, "c": c_task, "asyncio-py": asyncio_python_task}


@pytest.fixture(params=list(TASK_FACTORIES))
def task_kind(request) -> str:
    """Each Task class our loop can run: ours, asyncio's C Task and its Python one."""
    return request.param


def virtual_loop(task_kind: str = "python") -> EventLoop:
    loop = EventLoop(clock=VirtualClock())
    loop.set_task_factory(TASK_FACTORIES[task_kind])
    return loop


# -- the loop-level tracer ---------------------------------------------------------


def test_loop_tracer_typist_is_valid_and_deterministic(
    tmp_path: Path, task_kind: str
) -> None:
    texts = []
    for run in range(2):
        loop = virtual_loop(task_kind)
        path = tmp_path / f"typist{run}.json"
        out = io.StringIO()
        with tracing(path, loop=loop) as trace:
            coro = typist("Hello!", rng=random.Random(7), out=out)
            # Default names (Task-N) count tasks process-wide: name it.
            loop.run_until_complete(loop.create_task(coro, name="typist"))
        loop.close()
        assert out.getvalue() == "Hello!\n"
        events = strict_load(path)
        assert events == trace.events
        steps = check_tracks(events)
        # One first step, then one step per keystroke's sleep.
        assert [len(s) for s in steps.values()] == [7]
        assert check_flows(events) >= 6  # each timer wakes the typist
        texts.append(path.read_text())
    assert texts[0] == texts[1]


@pytest.mark.parametrize("kind", ["callbacks", "steps"])
def test_loop_tracer_bounds_its_records_on_a_busy_loop_that_never_polls(
    tmp_path: Path, kind: str
) -> None:
    """100,000 handles and no fd watched: no poll, yet records go out in batches."""
    loop = EventLoop()
    polls = []
    poll = loop._poll
    loop._poll = lambda timeout: polls.append(timeout) or poll(timeout)
    peak = 0
    count = 0

    def tick() -> None:
        nonlocal peak, count
        peak = max(peak, len(trace.recorder.records))
        count += 1
        if count < 100_000:
            loop.call_soon(tick)
        else:
            loop.stop()

    async def spin() -> None:
        nonlocal peak
        for _ in range(100_000):
            peak = max(peak, len(trace.recorder.records))
            await asyncio.sleep(0)

    with tracing(tmp_path / "busy.json", loop=loop) as trace:
        if kind == "callbacks":
            loop.call_soon(tick)
            loop.run_forever()
        else:
            loop.run_until_complete(spin())
        assert polls == []  # nothing could arrive: the loop never polled
    loop.close()
    # Records are handed on as they reach FLUSH_EVERY, not kept to the end.
    assert FLUSH_EVERY // 2 < peak <= FLUSH_EVERY + 4
    assert len(strict_load(tmp_path / "busy.json")) > 100_000


def test_loop_tracer_flows_go_from_timers_to_steps(task_kind: str) -> None:
    loop = virtual_loop(task_kind)
    with tracing(loop=loop) as trace:
        loop.run_until_complete(worker(3))
    loop.close()
    events = trace.events
    by_ts = {(e["tid"], e["ts"]): e for e in events if e["ph"] == "X"}
    kinds = []
    for start in (e for e in events if e["ph"] == "s"):
        end = next(e for e in events if e["ph"] == "f" and e["id"] == start["id"])
        kinds.append(
            (
                by_ts[start["tid"], start["ts"]]["cat"],
                by_ts[end["tid"], end["ts"]]["cat"],
            )
        )
    assert kinds.count(("timer", "step")) == 3


def test_loop_tracer_gather_failure_tells_outcomes_and_links_tasks(
    task_kind: str,
) -> None:
    loop = virtual_loop(task_kind)
    with tracing(loop=loop) as trace:
        result = loop.run_until_complete(gather_with_failure())
    loop.close()
    assert result == "caught boom"
    events = trace.events
    check_tracks(events)
    check_flows(events)
    assert outcomes(events, task_tid(events, "failing")) == ["suspended", "raised"]
    workers = [
        e["tid"]
        for e in events
        if e in task_lives(events) and e["args"]["coroutine"] == "worker"
    ]
    assert sorted(outcomes(events, tid) for tid in workers) == [
        ["suspended", "returned"],
        ["suspended"] * 3 + ["returned"],
    ]
    main = task_tid(events, "gather_with_failure")
    assert outcomes(events, main) == ["suspended", "returned"]
    # The main task's second step was woken by the failing task, through the
    # gather's done callback on the loop's track.
    flow_into_main = [e for e in events if e["ph"] == "f" and e["tid"] == main]
    assert len(flow_into_main) == 1
    start = next(
        e for e in events if e["ph"] == "s" and e["id"] == flow_into_main[0]["id"]
    )
    callback = next(
        e
        for e in events
        if e["ph"] == "X" and e["tid"] == start["tid"] and e["ts"] == start["ts"]
    )
    assert callback["cat"] == "callback" and "gather" in callback["name"]


def test_loop_tracer_cancelled_task(task_kind: str) -> None:
    async def main() -> None:
        task = asyncio.get_running_loop().create_task(worker(10))
        await asyncio.sleep(0.025)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    loop = virtual_loop(task_kind)
    with tracing(loop=loop) as trace:
        loop.run_until_complete(main())
    loop.close()
    events = trace.events
    check_tracks(events)
    steps = outcomes(events, task_tid(events, "worker"))
    assert steps[-1] == "cancelled"
    assert set(steps[:-1]) == {"suspended"}


def test_loop_tracer_eager_tasks() -> None:
    from asynciodepth.tasks import eager_task_factory

    async def quick() -> int:
        return 1  # finishes in its eager first step

    async def main() -> int:
        await asyncio.sleep(0.01)
        tasks = [asyncio.create_task(quick()), asyncio.create_task(worker(2))]
        return sum(await asyncio.gather(*tasks))

    loop = virtual_loop()
    loop.set_task_factory(eager_task_factory)
    with tracing(loop=loop) as trace:
        assert loop.run_until_complete(main()) == 3
    loop.close()
    events = trace.events
    check_tracks(events)
    check_flows(events)
    assert outcomes(events, task_tid(events, "quick")) == ["returned"]
    assert outcomes(events, task_tid(events, "worker")) == ["suspended"] * 2 + [
        "returned"
    ]
    # main was woken by its timer, then by the gather: both arrows survive the
    # eager steps that ran inside main's step.
    main = task_tid(events, "main")
    assert len([e for e in events if e["ph"] == "f" and e["tid"] == main]) == 2


@pytest.mark.skipif(sys.version_info < (3, 12), reason="eager_task_factory: 3.12+")
def test_loop_tracer_eager_c_tasks_are_seen_from_their_second_step() -> None:
    # asyncio's eager start runs the first step in C inside the creator's step:
    # no handle runs it, so our loop cannot report it.
    async def quick() -> int:
        return 1

    async def main() -> int:
        await asyncio.sleep(0.01)
        tasks = [asyncio.create_task(quick()), asyncio.create_task(worker(2))]
        return sum(await asyncio.gather(*tasks))

    loop = virtual_loop("c")
    loop.set_task_factory(asyncio.eager_task_factory)
    with tracing(loop=loop) as trace:
        assert loop.run_until_complete(main()) == 3
    loop.close()
    events = trace.events
    check_tracks(events)
    check_flows(events)
    coroutines = [e["args"]["coroutine"] for e in task_lives(events)]
    assert "quick" not in coroutines
    assert outcomes(events, task_tid(events, "worker")) == ["suspended", "returned"]
    assert outcomes(events, task_tid(events, "main")) == ["suspended"] * 2 + [
        "returned"
    ]


def test_loop_tracer_refuses_a_loop_that_has_an_observer() -> None:
    loop = virtual_loop()
    with tracing(loop=loop):
        with pytest.raises(TracingError, match="already active"):
            with tracing(loop=loop):
                pass
    loop.set_observer(object())
    with pytest.raises(TracingError, match="already has an observer"):
        with tracing(loop=loop):
            pass
    loop.set_observer(None)
    loop.close()


def test_loop_tracer_summary(task_kind: str) -> None:
    loop = virtual_loop(task_kind)
    with tracing(loop=loop) as trace:
        loop.run_until_complete(gather_with_failure())
    loop.close()
    summary = trace.summary()
    rows = {row.name: row for row in summary.tasks}
    assert [row.steps for row in summary.tasks] == [2, 2, 2, 4]
    assert [row.outcome for row in summary.tasks] == [
        "returned",
        "returned",
        "raised",
        "returned",
    ]
    assert summary.tasks[0].waiting >= 35_000
    assert all(row.running <= row.lifetime for row in rows.values())
    assert "longest steps" in str(summary)


def test_loop_tracer_io_wakeups_come_from_the_poll() -> None:
    from asynciodepth.unix_events import UnixEventLoop as IOEventLoop

    async def serve(reader, writer) -> None:
        while line := await reader.readline():
            writer.write(line.upper())
            await writer.drain()
        writer.close()

    async def main() -> bytes:
        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"ping\n")
            answer = await reader.readline()
            writer.close()
            await writer.wait_closed()
        return answer

    loop = IOEventLoop(clock=VirtualClock(), python_tasks=True)
    with tracing(loop=loop) as trace:
        assert loop.run_until_complete(main()) == b"PING\n"
    loop.close()
    events = trace.events
    check_tracks(events)
    check_flows(events)
    slices = {(e["tid"], e["ts"]): e for e in events if e["ph"] == "X"}
    starts = {e["id"]: slices[e["tid"], e["ts"]] for e in events if e["ph"] == "s"}
    ends = {e["id"]: slices[e["tid"], e["ts"]] for e in events if e["ph"] == "f"}
    # poll -> read callback -> the step of the task whose readline it completed
    from_poll = [ends[i] for i, start in starts.items() if start["name"] == "poll"]
    assert any(end["name"].endswith("_read_ready") for end in from_poll)
    read_ready = {(e["tid"], e["ts"]) for e in from_poll}
    to_steps = [
        ends[i]
        for i, start in starts.items()
        if (start["tid"], start["ts"]) in read_ready and ends[i]["cat"] == "step"
    ]
    assert len(to_steps) >= 2  # the server's readline, then the client's


# -- the coroutine tracer, on any loop ------------------------------------------------

LOOPS = {
    "stdlib": asyncio.new_event_loop,
    "ours": EventLoop,
}


@pytest.mark.parametrize("make_loop", list(LOOPS.values()), ids=list(LOOPS))
def test_coroutine_tracer_gather(make_loop, tmp_path: Path) -> None:
    path = tmp_path / "gather.json"
    with tracing(path, tracer="coroutines") as trace:
        with asyncio.Runner(loop_factory=make_loop) as runner:
            assert runner.run(gather_with_failure()) == "caught boom"
    assert trace.kind == "coroutines"
    events = strict_load(path)
    check_tracks(events)
    check_flows(events)
    assert outcomes(events, task_tid(events, "failing")) == ["suspended", "raised"]
    assert outcomes(events, task_tid(events, "gather_with_failure")) == [
        "suspended",
        "returned",
    ]
    workers = worker_tracks(events)
    assert sorted(len(outcomes(events, tid)) for tid in workers) == [2, 4]


async def returns_constant() -> None:
    await asyncio.sleep(0)
    # 3.12 compiles this to RETURN_CONST: Panopticon's blind spot.
    return None  # noqa: PLR1711, RET501


async def returns_variable() -> int:
    value = 41
    await asyncio.sleep(0)
    return value + 1


async def awaits_a_task() -> int:
    task = asyncio.ensure_future(returns_variable())
    return await task


@pytest.mark.parametrize("coroutine", [returns_constant, returns_variable])
def test_coroutine_tracer_tells_suspension_from_completion(coroutine) -> None:
    with tracing() as trace:
        asyncio.run(coroutine())
    events = trace.events
    assert outcomes(events, task_tid(events, coroutine.__name__)) == [
        "suspended",
        "returned",
    ]


def test_coroutine_tracer_cancellation_is_not_suspension() -> None:
    async def waiter(event: asyncio.Event) -> None:
        await event.wait()  # never set: only cancel() ends this

    async def main() -> None:
        task = asyncio.ensure_future(waiter(asyncio.Event()))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    with tracing() as trace:
        asyncio.run(main())
    steps = outcomes(trace.events, task_tid(trace.events, "waiter"))
    # On 3.11 the frame's "exception" trace event names the CancelledError.
    assert steps == ["suspended", "cancelled"]


def test_coroutine_tracer_a_caught_exception_is_not_an_unwinding() -> None:
    async def catches_then_raises() -> None:
        try:
            raise asyncio.CancelledError  # caught right here: not how it ends
        except asyncio.CancelledError:
            pass
        await asyncio.sleep(0)
        raise KeyError("the real end")

    async def main() -> None:
        with pytest.raises(KeyError):
            await asyncio.ensure_future(catches_then_raises())

    with tracing() as trace:
        asyncio.run(main())
    steps = outcomes(trace.events, task_tid(trace.events, "catches_then_raises"))
    assert steps == ["suspended", "raised"]


def test_coroutine_tracer_gives_an_eager_tasks_first_step_its_own_track(
    setup,
) -> None:
    # Our Python Task's eager start and asyncio's (3.12+) both run the first
    # step inside the creator's, called from plain code: the task factory.
    factory = eager_factory_of(setup)

    async def child() -> int:
        await asyncio.sleep(0)
        return 1

    async def quick() -> int:
        return 2

    async def main() -> int:
        asyncio.get_running_loop().set_task_factory(factory)
        first, second = asyncio.ensure_future(child()), asyncio.ensure_future(quick())
        return await first + await second

    with tracing(tracer="coroutines") as trace:
        assert setup.run(main()) == 3
    events = trace.events
    steps = check_tracks(events)
    child_tid, main_tid = task_tid(events, "child"), task_tid(events, "main")
    assert outcomes(events, child_tid) == ["suspended", "returned"]
    assert outcomes(events, task_tid(events, "quick")) == ["returned"]
    # The child's first step ran inside main's first step.
    first, outer = steps[child_tid][0], steps[main_tid][0]
    assert outer["ts"] <= first["ts"]
    assert first["ts"] + first["dur"] <= outer["ts"] + outer["dur"]


def test_coroutine_tracer_flow_from_awaited_task(setup) -> None:
    # The arrow needs the awaited value to be known as a task: asyncio's, or ours.
    with tracing(tracer="coroutines") as trace:
        assert setup.run(awaits_a_task()) == 42
    events = trace.events
    assert check_flows(events) == 1
    start = next(e for e in events if e["ph"] == "s")
    end = next(e for e in events if e["ph"] == "f")
    assert start["tid"] == task_tid(events, "returns_variable")
    assert end["tid"] == task_tid(events, "awaits_a_task")


def test_coroutine_tracer_identity_is_stable_across_awaits() -> None:
    async def main() -> None:
        await asyncio.gather(worker(3), worker(3))

    with tracing() as trace:
        asyncio.run(main())
    steps = check_tracks(trace.events)
    assert [len(steps[tid]) for tid in worker_tracks(trace.events)] == [4, 4]


# -- what the coroutine tracer must not take for a task ------------------------------


def test_coroutine_tracer_cancel_in_sleep_zero_still_ends_in_cancelled_error(
    setup,
) -> None:
    # The CancelledError is thrown into asyncio.sleep(0)'s inner generator:
    # a PY_THROW in plain code, which a DISABLE would turn into ValueError.
    async def sleeper() -> None:
        await asyncio.sleep(0)

    async def main() -> list:
        task = asyncio.ensure_future(sleeper())
        await asyncio.sleep(0)
        task.cancel()
        return await asyncio.gather(task, return_exceptions=True)

    with tracing(tracer="coroutines") as trace:
        (ended,) = setup.run(main())
    assert type(ended) is asyncio.CancelledError
    events = trace.events
    check_tracks(events)
    assert outcomes(events, task_tid(events, "sleeper")) == ["suspended", "cancelled"]


def test_coroutine_tracer_leaves_generator_close_and_throw_alone() -> None:
    def numbers():
        try:
            yield 1
            yield 2
        except KeyError:
            yield "caught"

    def plain():
        yield 1

    async def main() -> list:
        gen = plain()
        next(gen)
        gen.close()  # a PY_THROW in plain code (3.12, 3.14+)
        gen = numbers()
        next(gen)
        caught = gen.throw(KeyError("k"))
        gen.close()
        await asyncio.sleep(0)
        return [caught, gen.gi_frame is None]

    with tracing() as trace:
        assert asyncio.run(main()) == ["caught", True]
    assert outcomes(trace.events, task_tid(trace.events, "main")) == [
        "suspended",
        "returned",
    ]


async def letters():
    for letter in "abc":
        await asyncio.sleep(0)  # a coroutine whose caller is an async generator
        yield letter


@types.coroutine
def delegate(awaitable):
    # A generator-based coroutine: its frame calls the coroutine it delegates to.
    return (yield from awaitable)


class Later:
    """An awaitable class whose __await__, a plain generator, calls a coroutine."""

    def __await__(self):
        return (yield from asyncio.sleep(0, "!").__await__())


async def through_agen_and_generator() -> str:
    joined = "".join([letter async for letter in letters()])
    await delegate(asyncio.sleep(0))
    value = await delegate(returns_variable())
    return f"{joined}{value}{await Later()}"


def test_coroutine_tracer_awaits_in_agen_and_types_coroutine_are_one_task(
    setup,
) -> None:
    with tracing(tracer="coroutines") as trace:
        assert setup.run(through_agen_and_generator()) == "abc42!"
    events = trace.events
    check_tracks(events)
    coroutines = [e["args"]["coroutine"] for e in task_lives(events)]
    assert not [name for name in coroutines if name.endswith(("sleep", "variable"))]
    main = task_tid(events, "through_agen_and_generator")
    # 3 sleeps in the comprehension, one delegated, one in returns_variable,
    # one in Later.__await__.
    assert outcomes(events, main) == ["suspended"] * 6 + ["returned"]


# -- traced or not, a program does the same ------------------------------------------
# Each program prints what it sees, returns a value or raises: run untraced and
# traced, the three must be equal, on every setup and with both tracers.


async def cancels() -> None:
    async def sleeper(delay: float) -> None:
        try:
            await asyncio.sleep(delay)
        finally:
            print("sleeper", delay, "leaves")

    tasks = [asyncio.ensure_future(sleeper(delay)) for delay in (0, 0.001, 10)]
    await asyncio.sleep(0)
    for task in tasks:
        task.cancel("stop")
    ended = await asyncio.gather(*tasks, return_exceptions=True)
    print([(type(e).__name__, e.args) for e in ended])
    task = asyncio.ensure_future(sleeper(0))
    await asyncio.sleep(0)
    task.cancel()
    await task  # the CancelledError leaves main


async def timeouts() -> None:
    try:
        async with asyncio.timeout(0.005):
            await asyncio.sleep(10)
    except TimeoutError as error:
        print("timeout:", type(error.__context__).__name__)
    print(await asyncio.wait_for(asyncio.sleep(0, "in time"), 10))
    await asyncio.wait_for(asyncio.sleep(10), 0.005)


async def task_group_failure() -> None:
    async def sibling() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            print("sibling cancelled")
            raise

    async def fails() -> None:
        await asyncio.sleep(0)
        raise ValueError("fails")

    async with asyncio.TaskGroup() as group:
        group.create_task(sibling())
        group.create_task(fails())


async def async_generators() -> list:
    async def ticks(n: int):
        try:
            for i in range(n):
                await asyncio.sleep(0)
                yield i
        finally:
            print("ticks", n, "closed")

    print([i async for i in ticks(3)])
    first = ticks(4)
    print(await first.__anext__(), await first.asend(None))
    await first.aclose()
    second = ticks(5)
    await anext(second)
    try:
        await second.athrow(KeyError("thrown in"))
    except KeyError as error:
        print("athrow:", error)
    left_open = ticks(6)
    return [await anext(left_open)]  # finalized by the loop's asyncgen hooks


async def generators_closed() -> str:
    def numbers():
        try:
            yield 1
            yield 2
        finally:
            print("numbers finally")

    gen = numbers()
    next(gen)
    gen.close()
    gen = numbers()
    next(gen)
    try:
        gen.throw(ValueError("into the generator"))
    except ValueError as error:
        print("thrown:", error)

    @types.coroutine
    def bare_yield():
        yield  # to the Task: like sleep(0)
        return "resumed"

    print(await bare_yield())
    asyncio.sleep(1).close()  # a coroutine closed before it starts
    coro = returns_variable()
    coro.send(None)  # driven by hand to its await, then closed
    coro.close()
    return "done"


async def exception_groups() -> None:
    async def fails(error: Exception) -> None:
        await asyncio.sleep(0)
        raise error

    try:
        async with asyncio.TaskGroup() as group:
            group.create_task(fails(KeyError("a")))
            group.create_task(fails(OSError("b")))
    except* KeyError as group:
        print("KeyError:", [repr(e) for e in group.exceptions])
    except* OSError as group:
        print("OSError:", [repr(e) for e in group.exceptions])
    inner = ExceptionGroup("inner", [TypeError("t")])
    raise ExceptionGroup("outer", [ValueError("v"), inner])


async def eager_tasks(factory) -> list:
    asyncio.get_running_loop().set_task_factory(factory)
    order = []

    async def quick() -> int:
        order.append("quick")
        return 1

    async def slow() -> int:
        order.append("slow starts")
        await asyncio.sleep(0)
        order.append("slow ends")
        return 2

    first = asyncio.create_task(quick())
    order.append("created quick")
    second = asyncio.create_task(slow())
    order.append("created slow")
    print(order, first.done(), second.done())
    print(await asyncio.gather(first, second), order)

    async def fails() -> None:
        raise KeyError("eager")

    third = asyncio.create_task(fails())
    print("failed at once:", third.done())
    return await third


def eager_factory_of(setup):
    """The setup's eager task factory; skip where its Task has none (3.11's C Task)."""
    try:
        return setup.eager_factory()
    except AttributeError:  # asyncio.eager_task_factory is new in 3.12
        pytest.skip("asyncio.eager_task_factory is new in 3.12")


def eager_program(setup):
    return eager_tasks(eager_factory_of(setup))


PROGRAMS = {
    "cancel": lambda setup: cancels(),
    "timeout": lambda setup: timeouts(),
    "taskgroup": lambda setup: task_group_failure(),
    "agen": lambda setup: async_generators(),
    "generator-close": lambda setup: generators_closed(),
    "exception-groups": lambda setup: exception_groups(),
    "eager": eager_program,
}


def run_program(setup, tracer: str | None, make_program) -> tuple:
    """Run a program on a fresh loop of setup; return what it did, and the trace."""
    program = make_program(setup)
    out = io.StringIO()
    result = error = trace = None
    runner = asyncio.Runner(loop_factory=setup.new_loop)
    loop = runner.get_loop()
    if tracer is None:
        session = contextlib.nullcontext()
    else:
        options = {"loop": loop} if tracer == "loop" else {"tracer": tracer}
        session = tracing(**options)
    with contextlib.redirect_stdout(out):
        try:
            with session as trace:
                try:
                    result = runner.run(program)
                finally:
                    runner.close()  # the async generators' finalizers run here
        except (Exception, asyncio.CancelledError) as exc:  # noqa: BLE001
            # Why so wide: whatever the program raises is part of what it did.
            error = exc
    did = (repr(result), type(error), str(error), repr(error), out.getvalue())
    return did, trace


@pytest.mark.parametrize("tracer", ["coroutines", "loop", "auto"])
@pytest.mark.parametrize("program", list(PROGRAMS.values()), ids=list(PROGRAMS))
def test_tracing_does_not_change_what_a_program_does(setup, tracer, program) -> None:
    if tracer != "coroutines" and not setup.ours:
        pytest.skip("the loop-level tracer needs our loop")
    untraced, _ = run_program(setup, None, program)
    traced, trace = run_program(setup, tracer, program)
    assert traced == untraced
    assert untraced[4]  # each program prints something
    check_tracks(trace.events)


def test_hook_is_in_the_expected_form_and_released() -> None:
    assert MONITORING == (sys.version_info >= (3, 12))
    with tracing() as trace:
        if MONITORING:
            tool = trace._tracer.tool_id
            assert sys.monitoring.get_tool(tool) == "asynciodepth.trace"
        else:
            assert sys.gettrace() is not None
    if MONITORING:
        assert sys.monitoring.get_tool(tool) is None
    else:
        assert sys.gettrace() is None


@pytest.mark.skipif(MONITORING, reason="3.11 only: the trace hook is shared")
def test_trace_hook_in_use_is_a_clear_error() -> None:
    previous = sys.gettrace()  # None, unless the tests run under a debugger
    sys.settrace(lambda *args: None)
    try:
        with pytest.raises(TracingError, match="settrace"):
            with tracing():
                pass
    finally:
        sys.settrace(previous)


# -- faults ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["loop", "coroutines"])
def test_exception_still_gives_valid_json(kind: str, tmp_path: Path) -> None:
    path = tmp_path / "crash.json"
    loop = virtual_loop()
    trace = tracing(path, loop=loop if kind == "loop" else None)
    with pytest.raises(ValueError, match="boom"):
        with trace:
            loop.run_until_complete(failing())
    loop.close()
    events = strict_load(path)
    check_tracks(events)
    check_flows(events)
    assert isinstance(trace.error, ValueError)
    errors = [e for e in events if e.get("cat") == "error"]
    assert [e["name"] for e in errors] == ["ValueError: boom"]


@pytest.mark.parametrize("kind", ["loop", "coroutines"])
def test_keyboard_interrupt_mid_trace_gives_valid_json(kind: str, tmp_path: Path):
    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.create_task(worker(100))  # still pending when Ctrl-C arrives
        await asyncio.sleep(0.02)
        raise KeyboardInterrupt

    path = tmp_path / "interrupted.json"
    loop = virtual_loop()
    with pytest.raises(KeyboardInterrupt):
        with tracing(path, loop=loop if kind == "loop" else None):
            loop.run_until_complete(main())
    events = strict_load(path)
    steps = check_tracks(events)
    pending = [e for e in task_lives(events) if e["args"]["outcome"] == "pending"]
    assert len(pending) == 1  # the worker: its track is closed, marked pending
    assert all(steps.values())
    loop.close()


def test_tracing_cannot_nest() -> None:
    # Why collect: a pending task left by an earlier test, closed by the garbage
    # collector during this trace, would run its coroutine's frame: a track.
    gc.collect()
    with tracing() as outer:
        with pytest.raises(TracingError, match="nested tracing is not supported"):
            with tracing():
                pass
        asyncio.run(worker(1))
    check_tracks(outer.events)
    assert len(worker_tracks(outer.events)) == 1
    with tracing():  # the failed attempt left nothing behind
        pass


@pytest.mark.parametrize("kind", ["loop", "coroutines"])
def test_size_limit_stops_recording_with_a_warning(kind: str, tmp_path: Path):
    path = tmp_path / "limited.json"
    loop = virtual_loop()
    limit = 4000
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with tracing(
            path, loop=loop if kind == "loop" else None, max_bytes=limit
        ) as trace:
            loop.run_until_complete(many(5, 400))
    loop.close()
    assert [w.category for w in caught] == [TraceSizeWarning]
    assert "size limit of 4000 bytes" in str(caught[0].message)
    assert trace.truncated
    events = strict_load(path)
    check_tracks(events)
    closing = sum(len(json.dumps(e)) + 3 for e in task_lives(events))
    assert path.stat().st_size <= limit + closing + 8


@pytest.mark.parametrize("kind", ["loop", "coroutines"])
def test_tasks_started_after_the_limit_leave_no_stray_ends(kind: str, tmp_path: Path):
    async def two_rounds() -> None:
        await many(5, 200)  # enough to reach the limit
        await many(3, 2)  # these tasks begin and end after recording stopped

    path = tmp_path / "late.json"
    loop = virtual_loop()
    with pytest.warns(TraceSizeWarning):
        with tracing(path, loop=loop if kind == "loop" else None, max_bytes=3000):
            loop.run_until_complete(two_rounds())
    loop.close()
    events = strict_load(path)
    check_tracks(events)
    assert {e["args"]["outcome"] for e in task_lives(events)} == {"truncated"}


def test_truncated_stream_can_be_loaded(tmp_path: Path) -> None:
    path = tmp_path / "full.json"
    loop = virtual_loop()
    with tracing(path, loop=loop):
        loop.run_until_complete(worker(5))
    loop.close()
    whole = strict_load(path)
    text = path.read_text()
    cut = tmp_path / "cut.json"
    cut.write_text(text[: len(text) // 2])  # died in the middle of a line
    with pytest.raises(json.JSONDecodeError):
        json.loads(cut.read_text())
    partial = load_trace(cut)
    assert 0 < len(partial) < len(whole)
    assert partial == whole[: len(partial)]


def test_recorder_rejects_a_tiny_limit() -> None:
    with pytest.raises(ValueError, match="max_bytes"):
        with tracing(max_bytes=3):
            pass


# -- interfaces ----------------------------------------------------------------------


def test_decorator_sync_and_async(tmp_path: Path) -> None:
    @traced(tmp_path / "sync.json")
    def run_it() -> int:
        return asyncio.run(worker(2))

    @traced()
    async def inner() -> int:
        return await asyncio.gather(worker(1), worker(2))

    assert run_it() == 2
    check_tracks(strict_load(tmp_path / "sync.json"))
    assert asyncio.run(inner()) == [1, 2]
    # The decorated coroutine's own task was running when tracing began.
    steps = check_tracks(inner.last_trace.events)
    assert sorted(len(s) for s in steps.values()) == [1, 2, 3]
    assert repr(inner.last_trace) == "<Trace coroutines: 3 tasks, 6 steps>"


def test_plot_draws_tracks_and_arrows(task_kind: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    loop = virtual_loop(task_kind)
    with tracing(loop=loop) as trace:
        loop.run_until_complete(gather_with_failure())
    loop.close()
    fig = trace.plot(title="gather")
    ax = fig.axes[0]
    labels = [label.get_text() for label in ax.get_yticklabels()]
    assert labels[0].startswith("loop")
    assert len(labels) == 5
    arrows = [
        child for child in ax.get_children() if type(child).__name__ == "Annotation"
    ]
    assert len(arrows) == check_flows(trace.events)
    assert trace._repr_png_().startswith(b"\x89PNG")
    plt.close("all")


def test_plot_legend_names_only_what_the_figure_shows() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    loop = virtual_loop("python")
    with tracing(loop=loop) as trace:
        loop.run_until_complete(gather_with_failure())
    loop.close()
    legend = trace.plot().axes[0].get_legend()
    shown = [text.get_text() for text in legend.get_texts()]
    # The loop-level trace has callbacks, polls, lives and arrows, and steps
    # that suspended, returned and raised; nothing was cancelled or cut off.
    assert shown == [
        "step, then suspended",
        "last step: returned",
        "last step: raised",
        "callback",
        "wait in the poll",
        "task alive",
        "wake-up",
    ]
    # A trace without a loop track or arrows names neither.
    steps_only = [
        e for e in trace.events if e.get("tid") != 1 and e["ph"] not in ("s", "f")
    ]
    legend = plot_timeline(steps_only, flows=False).axes[0].get_legend()
    assert "wait in the poll" not in [t.get_text() for t in legend.get_texts()]
    assert "wake-up" not in [t.get_text() for t in legend.get_texts()]
    plt.close("all")


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=SRC, MPLBACKEND="Agg")
    return subprocess.run(
        [sys.executable, "-m", "asynciodepth.trace", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


PROGRAM = textwrap.dedent(
    """
    import asyncio, os, signal, sys

    async def worker(n):
        for _ in range(n):
            await asyncio.sleep(0.001)

    async def main(mode):
        await asyncio.gather(worker(2), worker(3))
        if mode == "raise":
            raise RuntimeError("the program failed")
        if mode == "sigint":
            asyncio.get_running_loop().create_task(worker(1000))
            await asyncio.sleep(0.005)
            os.kill(os.getpid(), signal.SIGINT)
            await asyncio.sleep(10)
        if mode == "wait":
            print("ready", flush=True)
            await asyncio.sleep(10)
        if mode == "sigkill":
            await asyncio.sleep(0.15)  # the tracer hands its records on
            asyncio.get_running_loop().create_task(worker(1000))
            await asyncio.sleep(0.005)
            os.kill(os.getpid(), signal.SIGKILL)
        print("done", sys.argv[1:])

    asyncio.run(main(sys.argv[1]))
    """
)


@pytest.mark.parametrize(("mode", "status"), [("ok", 0), ("raise", 1), ("sigint", 130)])
def test_cli_script(mode: str, status: int, tmp_path: Path) -> None:
    (tmp_path / "prog.py").write_text(PROGRAM)
    done = run_cli(
        "-o", "out.json", "--plot", "t.png", "--summary", "prog.py", mode, cwd=tmp_path
    )
    assert done.returncode == status, done.stderr
    events = strict_load(tmp_path / "out.json")
    check_tracks(events)
    assert "events written to out.json" in done.stderr
    if mode == "ok":
        assert done.stdout == "done ['ok']\n"
        assert (tmp_path / "t.png").read_bytes().startswith(b"\x89PNG")
    if mode == "raise":
        assert "RuntimeError: the program failed" in done.stderr
    if mode == "sigint":
        assert "interrupted" in done.stderr


def test_sigkill_still_leaves_a_finished_file(tmp_path: Path) -> None:
    """The writer process outlives a killed program and finishes its file."""
    (tmp_path / "prog.py").write_text(PROGRAM)
    done = run_cli("-o", "killed.json", "prog.py", "sigkill", cwd=tmp_path)
    assert done.returncode == -9
    path = tmp_path / "killed.json"
    for _ in range(200):  # the writer finishes on its own, soon after
        if path.read_text().endswith("\n]}\n"):
            break
        time.sleep(0.05)
    events = strict_load(path)
    check_tracks(events)
    assert len(worker_tracks(events)) >= 2  # the gathered workers, handed on
    errors = [e["name"] for e in events if e.get("cat") == "error"]
    assert errors == ["the traced process ended without closing the trace"]


def test_ctrl_c_in_a_terminal_does_not_reach_the_writer(tmp_path: Path) -> None:
    """Ctrl-C signals the whole foreground process group: the writer is not in it."""
    (tmp_path / "prog.py").write_text(PROGRAM)
    env = dict(os.environ, PYTHONPATH=SRC)
    command = [sys.executable, "-m", "asynciodepth.trace", "-o", "out.json"]
    with subprocess.Popen(
        [*command, "prog.py", "wait"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # a process group of its own, like a terminal job
    ) as traced:
        assert traced.stdout.readline() == "ready\n"
        os.killpg(traced.pid, signal.SIGINT)
        _, stderr = traced.communicate(timeout=60)
    assert traced.returncode == 130, stderr
    events = strict_load(tmp_path / "out.json")
    check_tracks(events)
    assert len(worker_tracks(events)) == 2


def test_file_format_is_what_perfetto_reads(tmp_path: Path) -> None:
    """The object form, commas only between events, each task's life one slice."""
    loop = virtual_loop()
    with tracing(tmp_path / "t.json", loop=loop):
        loop.run_until_complete(gather_with_failure())
    loop.close()
    text = (tmp_path / "t.json").read_text()
    # vizviewer refuses the bare-array form; Perfetto counts a {} element,
    # which a comma after the last event would need, as a parse error.
    assert text.startswith('{"traceEvents":[\n{') and text.endswith("}\n]}\n")
    events = json.loads(text)["traceEvents"]
    assert all(events)
    assert not [e for e in events if e["ph"] in ("B", "E")]
    assert len(check_tracks(events)) == 4


@pytest.mark.parametrize("kind", ["loop", "coroutines"])
def test_writer_process_and_in_process_formatting_agree(kind: str, tmp_path: Path):
    from asynciodepth.trace import Recorder

    texts = []
    for process in (True, False):
        path = tmp_path / f"{process}.json"
        loop = virtual_loop()
        with mock.patch.object(Recorder, "__init__", _recorder_with(process=process)):
            with tracing(path, loop=loop if kind == "loop" else None) as trace:
                loop.run_until_complete(gather_with_failure())
        loop.close()
        assert (trace.recorder._writer is not None) == process
        # Task names count tasks process-wide: the only difference allowed.
        texts.append(re.sub(r"Task-\d+", "Task-N", path.read_text()))
        if kind == "loop":
            assert trace.events == strict_load(path)
    if kind == "loop":  # virtual time: the same file, byte for byte
        assert texts[0] == texts[1]
    else:  # real time: the same events apart from the times
        shapes = [
            [(e["ph"], e.get("name"), e.get("tid")) for e in strict_events(text)]
            for text in texts
        ]
        assert shapes[0] == shapes[1]


def test_without_a_writer_process_the_file_is_written_here(tmp_path: Path) -> None:
    path = tmp_path / "here.json"
    loop = virtual_loop()
    with mock.patch.object(sys, "executable", str(tmp_path / "no-such-python")):
        with tracing(path, loop=loop) as trace:
            loop.run_until_complete(gather_with_failure())
    loop.close()
    assert trace.recorder._writer is None
    assert len(check_tracks(strict_load(path))) == 4


@pytest.mark.parametrize("kind", ["loop", "coroutines"])
def test_a_bad_path_fails_at_once(kind: str, tmp_path: Path) -> None:
    loop = virtual_loop()
    on = {"loop": loop} if kind == "loop" else {}
    with pytest.raises(FileNotFoundError):
        with tracing(tmp_path / "no-such-dir" / "t.json", **on):
            pytest.fail("the traced code must not run")
    with pytest.raises(IsADirectoryError):
        with tracing(tmp_path, **on):
            pytest.fail("the traced code must not run")
    assert loop.get_observer() is None
    with tracing():  # nothing was left active
        pass
    loop.close()


def test_a_forked_child_leaves_the_parents_trace_alone(tmp_path: Path) -> None:
    async def forks() -> None:
        await worker(2)
        pid = os.fork()
        if pid == 0:  # the child: steps of its own, enough to hand records on
            try:
                asyncio.run(many(30, 30))
            finally:
                os._exit(0)
        os.waitpid(pid, 0)
        await worker(2)

    path = tmp_path / "forked.json"
    with tracing(path):
        asyncio.run(forks())
    events = strict_load(path)
    check_tracks(events)
    lives = [e["args"]["coroutine"].split(".")[-1] for e in task_lives(events)]
    # The parent's three tasks: the program's and asyncio.run's two at its end.
    assert lives == ["forks", "shutdown_asyncgens", "shutdown_default_executor"]


def _recorder_with(**fixed):
    from asynciodepth.trace import Recorder

    original = Recorder.__init__

    def init(self, *args, **options):
        original(self, *args, **{**options, **fixed})

    return init


def test_cli_module(tmp_path: Path) -> None:
    (tmp_path / "progmod.py").write_text(PROGRAM)
    done = run_cli("-o", "m.json", "-m", "progmod", "ok", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "done ['ok']\n"
    events = strict_load(tmp_path / "m.json")
    check_tracks(events)
    assert len(worker_tracks(events)) == 2
