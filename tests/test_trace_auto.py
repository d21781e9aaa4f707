"""tracing() without loop=: our loop's own hook is found and used by itself.

The coroutine tracer hands each of our loops, as it starts to run, to the
loop-level tracer (appendix "The trace tool"); the trace must be the one that
``tracing(loop=...)`` gives: the same steps, slices and arrows.
"""

from __future__ import annotations

import asyncio
import collections
import socket
import sys
from typing import Any

import pytest

import asynciodepth
from asynciodepth.events import LoopObserver, VirtualClock
from asynciodepth.trace import MONITORING, tracing

# Our loop, each way it can be configured that matters to the tracer.
CONFIGS = {
    "epoll": {"poller": "epoll"},
    "selectors": {"poller": "selectors"},
    "pytask": {"python_tasks": True},
}


@pytest.fixture(params=list(CONFIGS))
def config(request) -> dict[str, Any]:
    return CONFIGS[request.param]


async def worker(n: int) -> int:
    for _ in range(n):
        await asyncio.sleep(0.01)
    return n


async def failing() -> None:
    await asyncio.sleep(0.025)
    raise ValueError("boom")


async def echo_once(line: bytes) -> bytes:
    """A line through a socketpair: the reader waits on the poll."""
    left, right = socket.socketpair()
    reader, writer = await asyncio.open_connection(sock=left)
    peer_reader, peer_writer = await asyncio.open_connection(sock=right)
    writer.write(line)
    got = await peer_reader.readline()
    for stream in (writer, peer_writer):
        stream.close()
        await stream.wait_closed()
    return got


async def program() -> list[Any]:
    """Timers, a failing task, a gather and I/O: every kind of arrow."""
    results = await asyncio.gather(
        worker(1), worker(3), failing(), echo_once(b"hello\n"), return_exceptions=True
    )
    return [type(r).__name__ if isinstance(r, BaseException) else r for r in results]


def shape(events: list[dict]) -> list[tuple]:
    """The slices and arrows in order, with each track named by its coroutine."""
    coroutine = {}
    for event in events:
        if event["ph"] == "X" and event.get("cat") == "task":
            coroutine[event["tid"]] = event["args"]["coroutine"]
    coroutine[1] = "loop"
    rows = []
    for event in events:
        if event["ph"] in ("X", "s", "f"):
            args = event.get("args", {})
            rows.append(
                (
                    event["ph"],
                    event.get("cat"),
                    event["name"] if event["tid"] == 1 else "",
                    coroutine.get(event["tid"], event["tid"]),
                    args.get("outcome"),
                    args.get("step"),
                )
            )
    return rows


def traced_twice(options: dict[str, Any], virtual: bool) -> tuple[Any, Any]:
    """Run program() traced with loop= and without; return both traces."""

    def new_loop() -> asyncio.AbstractEventLoop:
        clock = VirtualClock() if virtual else None
        return asynciodepth.EventLoop(clock=clock, **options)

    traces = []
    for given in (True, False):
        with asyncio.Runner(loop_factory=new_loop) as runner:
            loop = runner.get_loop()
            with tracing(loop=loop if given else None) as trace:
                result = runner.run(program())
            assert result == [1, 3, "ValueError", b"hello\n"]
            assert loop.get_observer() is None
        traces.append(trace)
    return tuple(traces)


def test_without_loop_the_trace_is_the_one_loop_gives(config) -> None:
    given, found = traced_twice(config, virtual=True)
    assert shape(found.events) == shape(given.events)
    # Under the virtual clock even the times are the same.
    times = [
        [e.get("ts") for e in trace.events if e["ph"] in "Xsf"]
        for trace in (given, found)
    ]
    assert times[0] == times[1]


def test_without_loop_on_the_real_clock_same_steps_and_arrows(config) -> None:
    given, found = traced_twice(config, virtual=False)

    def summary(events):
        rows = shape(events)
        steps = collections.Counter(r[3:5] for r in rows if r[1] == "step")
        arrows = collections.Counter(r[3] for r in rows if r[0] == "f")
        callbacks = collections.Counter(
            r[2] for r in rows if r[1] in ("callback", "timer")
        )
        return steps, arrows, callbacks

    assert summary(found.events) == summary(given.events)
    arrows = sum(1 for e in found.events if e["ph"] == "f")
    assert arrows >= 8  # timers, the gather, the I/O and the failing task
    polls = [e for e in found.events if e.get("cat") == "poll"]
    assert any(e["args"]["events"] for e in polls)  # the I/O wake-up


def test_asynciodepth_run_inside_tracing_draws_the_loops_arrows() -> None:
    with tracing() as trace:
        assert asynciodepth.run(program()) == [1, 3, "ValueError", b"hello\n"]
    kinds = collections.Counter(e["ph"] for e in trace.events)
    assert kinds["s"] == kinds["f"] >= 8
    # The loop's own track, with its polls and timers, and no coroutine tracks.
    categories = collections.Counter(e.get("cat") for e in trace.events)
    assert categories["poll"] and categories["timer"]
    starts = [e for e in trace.events if e.get("cat") == "task"]
    assert {e["args"]["coroutine"] for e in starts} >= {"program", "worker"}


def test_a_loop_with_another_observer_is_traced_by_the_coroutine_tracer() -> None:
    class Counting(LoopObserver):
        steps = 0

        def on_task_step(self, loop, task, woken_by, start, end) -> None:
            Counting.steps += 1

    observer = Counting()
    with tracing() as trace:
        asynciodepth.run(
            worker(2), loop_factory=lambda: asynciodepth.EventLoop(observer=observer)
        )
    assert Counting.steps >= 3  # the user's observer kept its loop
    steps = [e for e in trace.events if e.get("cat") == "step"]
    assert len(steps) >= 3  # and the coroutine tracer saw the tasks
    assert not any(e.get("cat") == "poll" for e in trace.events)


def test_the_stdlib_loop_before_ours_is_traced_by_its_coroutines() -> None:
    with tracing() as trace:
        assert asyncio.run(worker(2)) == 2
        assert asynciodepth.run(worker(1)) == 1
    lives = [e["args"]["coroutine"] for e in trace.events if e.get("cat") == "task"]
    assert lives.count("worker") == 2
    assert any(e.get("cat") == "timer" for e in trace.events)


@pytest.mark.skipif(not MONITORING, reason="3.11: the hooks stay off after our loop")
def test_after_our_loop_stops_the_coroutine_hooks_come_back() -> None:
    with tracing() as trace:
        assert asynciodepth.run(worker(1)) == 1
        assert asyncio.run(worker(3)) == 3
    lives = [e for e in trace.events if e.get("cat") == "task"]
    assert [e["args"]["coroutine"] for e in lives].count("worker") == 2
    steps = collections.Counter(
        e["tid"] for e in trace.events if e.get("cat") == "step"
    )
    assert sorted(steps.values())[-1] == 4  # worker(3) on the stdlib loop


@pytest.mark.skipif(MONITORING, reason="3.12+: the hooks come back")
def test_on_311_the_hooks_stay_off_after_our_loop() -> None:
    with tracing() as trace:
        asynciodepth.run(worker(1))
        asyncio.run(worker(3))
    assert sys.gettrace() is None
    lives = [e for e in trace.events if e.get("cat") == "task"]
    assert [e["args"]["coroutine"] for e in lives].count("worker") == 1


def test_tracing_inside_our_running_loop_uses_its_hook() -> None:
    async def main() -> Any:
        with tracing() as trace:
            await asyncio.gather(worker(1), worker(2))
        return trace

    loop = asynciodepth.EventLoop(clock=VirtualClock())
    try:
        trace = loop.run_until_complete(main())
        assert loop.get_observer() is None
    finally:
        loop.close()
    assert trace.kind == "loop"
    assert sum(1 for e in trace.events if e["ph"] == "f") >= 3


def test_the_hooks_are_released_and_the_loop_left_clean() -> None:
    loop = asynciodepth.EventLoop()
    try:
        with tracing():
            loop.run_until_complete(worker(1))
            assert loop.get_observer() is not None
        assert loop.get_observer() is None
        loop.run_until_complete(worker(1))  # runs untraced, no error
    finally:
        loop.close()
    if MONITORING:
        assert sys.monitoring.get_tool(sys.monitoring.PROFILER_ID) is None
        code = asynciodepth.BaseEventLoop.run_forever.__code__
        assert sys.monitoring.get_local_events(sys.monitoring.PROFILER_ID, code) == 0
    else:
        assert sys.gettrace() is None


def test_a_trace_file_without_loop_has_the_loops_track(tmp_path) -> None:
    path = tmp_path / "auto.json"
    with tracing(path) as trace:
        asynciodepth.run(worker(2))
    names = [e["args"]["name"] for e in trace.events if e["name"] == "thread_name"]
    assert "loop: callbacks and polls" in names
    assert sum(1 for e in trace.events if e["ph"] == "f") >= 2


def test_tracer_coroutines_records_our_loops_tasks_with_the_coroutine_tracer() -> None:
    with tracing(tracer="coroutines") as trace:
        asynciodepth.run(worker(2))
    assert trace.kind == "coroutines"
    assert not any(e.get("cat") == "poll" for e in trace.events)
    lives = [e["args"]["coroutine"] for e in trace.events if e.get("cat") == "task"]
    assert "worker" in lives


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"tracer": "loops"}, "tracer must be 'auto' or 'coroutines', not 'loops'"),
        ({"tracer": "coroutines", "loop": object()}, "does not take a loop"),
    ],
)
def test_a_bad_tracer_option_is_a_value_error(options, message) -> None:
    with pytest.raises(ValueError, match=message):
        tracing(**options)
