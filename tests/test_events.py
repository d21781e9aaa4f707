"""Handles, the virtual clock and the observer base class."""

from __future__ import annotations

import contextvars

import pytest

from asynciodepth import EventLoop, LoopObserver, VirtualClock
from asynciodepth.events import Handle, TimerHandle

var = contextvars.ContextVar("var", default="unset")


@pytest.fixture
def loop():
    loop = EventLoop(clock=VirtualClock())
    yield loop
    loop.close()


def test_handle_runs_in_a_copy_of_the_callers_context(loop):
    seen = []
    token = var.set("caller")
    handle = Handle(lambda: (seen.append(var.get()), var.set("changed")), (), loop)
    var.reset(token)
    handle._run()
    assert seen == ["caller"]
    assert var.get() == "unset"
    assert handle.get_context().run(var.get) == "changed"


def test_handle_cancel_drops_references(loop):
    handle = Handle(print, ("x",), loop)
    assert not handle.cancelled()
    handle.cancel()
    handle.cancel()  # twice is fine
    assert handle.cancelled()
    assert handle._callback is None and handle._args is None
    assert repr(handle) == "<Handle cancelled (cleared)>"


def test_handle_repr_has_no_addresses(loop):
    def callback(a, b):
        pass

    handle = Handle(callback, (1, "two"), loop)
    assert repr(handle) == (
        "<Handle test_handle_repr_has_no_addresses.<locals>.callback(1, 'two')>"
    )
    assert "0x" not in repr(Handle(print, tuple(range(5)), loop))


def test_handle_exception_goes_to_the_loop(loop):
    contexts = []
    loop.set_exception_handler(lambda loop, context: contexts.append(context))

    def fail():
        raise ValueError("in handle")

    handle = Handle(fail, (), loop)
    handle._run()
    assert contexts[0]["handle"] is handle
    assert contexts[0]["message"].startswith("Exception in callback")


def test_timer_handles_compare_by_deadline(loop):
    early = TimerHandle(1.0, print, (), loop)
    late = TimerHandle(2.0, print, (), loop)
    assert early < late and early <= late and late > early and late >= early
    assert early == TimerHandle(1.0, print, (), loop)
    assert early != late
    assert early.when() == 1.0
    assert repr(early) == "<TimerHandle when=1.0 print()>"


def test_timer_cancel_tells_the_loop_only_once(loop):
    timer = loop.call_later(5, print)
    timer.cancel()
    timer.cancel()
    assert loop._timer_cancelled_count == 1


def test_virtual_clock():
    clock = VirtualClock()
    assert clock.time() == 0.0
    clock.advance_to(2.5)
    clock.advance_to(1.0)
    assert clock.time() == 2.5
    assert repr(clock) == "VirtualClock(now=2.5)"


def test_loop_time_follows_its_clock():
    clock = VirtualClock(100)
    loop = EventLoop(clock=clock)
    try:
        assert loop.time() == 100.0 and loop.get_clock() is clock
        clock.advance_to(150)
        assert loop.time() == 150.0
    finally:
        loop.close()
    real = EventLoop()
    try:
        assert real.get_clock() is None
    finally:
        real.close()


def test_observer_base_class_hooks_are_no_ops(loop):
    observer = LoopObserver()
    handle = Handle(print, (), loop)
    assert observer.on_callback(loop, handle, 0.0, 0.0) is None
    assert observer.on_task_step(loop, None, None, 0.0, 0.0) is None
    assert observer.on_poll(loop, None, 0.0, 0.0, 0) is None
    assert observer.on_timer_fired(loop, TimerHandle(0, print, (), loop), 0.0) is None
    loop.set_observer(observer)
    loop.call_soon(loop.stop)
    loop.run_forever()  # a no-op observer changes nothing
