"""The loop's clock is ``loop.time()``: timers follow an overridden or mocked time.

asyncio's loop reads ``self.time()`` in ``call_later`` and ``_run_once``, so code
that replaces ``loop.time`` (aiohttp's tests patch it with ``mock.patch.object``)
or a subclass that defines ``time()`` moves every timer with it. Ours must too.
"""

from __future__ import annotations

import asyncio
import threading
from unittest import mock

import pytest

import asynciodepth
from asynciodepth import LoopObserver

LOOPS = ["stdlib", "epoll", "selectors", "epoll+pytask"]


def new_loop(name: str, cls: type | None = None) -> asyncio.AbstractEventLoop:
    if name == "stdlib":
        return (cls or asyncio.SelectorEventLoop)()
    poller, _, tasks = name.partition("+")
    return (cls or asynciodepth.EventLoop)(poller=poller, python_tasks=bool(tasks))


@pytest.fixture(params=LOOPS)
def loop(request):
    loop = new_loop(request.param)
    yield loop
    loop.close()


def run_iterations(loop: asyncio.AbstractEventLoop, n: int) -> None:
    """Run the loop for exactly n iterations (the stop is scheduled n-1 deep)."""

    def step(left: int) -> None:
        if left:
            loop.call_soon(step, left - 1)
        else:
            loop.stop()

    loop.call_soon(step, n - 1)
    loop.run_forever()


def test_call_later_reads_an_assigned_time(loop):
    loop.time = lambda: 1000.0
    timer = loop.call_later(5, print)
    assert timer.when() == 1005.0
    timer.cancel()


def test_timers_fire_when_an_assigned_time_reaches_them(loop):
    """A timer 1000 s away fires at once when loop.time() jumps past it."""
    now = loop.time()
    fired = []
    with mock.patch.object(loop, "time") as time_mock:
        time_mock.return_value = now
        timer = loop.call_later(1000, fired.append, "timer")
        assert timer.when() == now + 1000
        run_iterations(loop, 2)
        assert fired == []
        time_mock.return_value = now + 1000
        run_iterations(loop, 2)
        assert fired == ["timer"]
    # The patch is gone: real time again, and timers follow it.
    assert abs(loop.time() - now) < 100
    timer = loop.call_later(0, fired.append, "after")
    run_iterations(loop, 2)
    assert fired == ["timer", "after"]


def test_the_poll_timeout_follows_an_assigned_time(loop):
    """With time mocked at the deadline, a timer far away in real time is due now."""
    real = loop.time()
    loop.time = lambda: real + 3600
    fired = []
    loop.call_at(real + 3600, fired.append, "due")
    loop.call_at(real + 3600, loop.stop)
    # A wrong timeout would block for an hour: the guard fails the test instead.
    guard = threading.Timer(5, loop.call_soon_threadsafe, (loop.stop,))
    guard.start()
    try:
        loop.run_forever()
    finally:
        guard.cancel()
        guard.join()
    assert fired == ["due"]


def test_aiohttp_keepalive_pattern(loop):
    """aiohttp's test_keepalive_expires_on_time: time patched inside a coroutine."""

    async def main():
        now = loop.time()
        fired = []
        with mock.patch.object(loop, "time") as time_mock:
            time_mock.return_value = now
            loop.call_later(75, fired.append, "keepalive")
            await asyncio.sleep(0)
            time_mock.return_value = now + 75
            await asyncio.sleep(0)
            await asyncio.sleep(0)
        return fired

    assert loop.run_until_complete(main()) == ["keepalive"]


@pytest.mark.parametrize("name", LOOPS)
def test_a_subclass_time_is_followed(name):
    base = asyncio.SelectorEventLoop if name == "stdlib" else asynciodepth.EventLoop

    class ShiftedLoop(base):
        shift = 0.0

        def time(self):
            return super().time() + self.shift

    loop = new_loop(name, ShiftedLoop)
    try:
        loop.shift = 500.0
        fired = []
        timer = loop.call_later(500, fired.append, "shifted")
        loop.shift = 1000.0
        run_iterations(loop, 2)
        assert fired == ["shifted"]
        assert timer.when() > loop.time() - 1000 + 400
    finally:
        loop.close()


def test_the_observer_sees_the_assigned_time():
    times = []

    class Callbacks(LoopObserver):
        def on_callback(self, loop, handle, start, end):
            times.append((start, end))

    loop = asynciodepth.EventLoop(observer=Callbacks())
    try:
        loop.time = lambda: 42.0
        run_iterations(loop, 2)
        assert len(times) == 2 and set(times) == {(42.0, 42.0)}
    finally:
        loop.close()
