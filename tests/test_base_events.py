"""The loop core: scheduling order, running, errors, threads, executor, asyncgens."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import gc
import inspect
import logging
import selectors
import socket
import sys
import threading
import warnings

import pytest

import asynciodepth
from asynciodepth import EventLoop, LoopObserver, VirtualClock
from asynciodepth.events import Handle
from asynciodepth.selector_events import BaseSelectorEventLoop

# -- ordering ----------------------------------------------------------------


def test_call_soon_is_fifo(loop):
    events = []
    for i in range(5):
        loop.call_soon(events.append, i)
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert events == [0, 1, 2, 3, 4]


def test_only_the_snapshot_runs_in_one_iteration(loop):
    """Callbacks scheduled by a callback run in the next iteration, after stop."""
    events = []

    def first():
        events.append("first")
        loop.call_soon(events.append, "scheduled by first")
        loop.stop()

    loop.call_soon(first)
    loop.call_soon(events.append, "second")
    loop.run_forever()
    assert events == ["first", "second"]
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert events == ["first", "second", "scheduled by first"]


def test_snapshot_gives_fairness(loop):
    """Two self-rescheduling callbacks alternate; neither starves the other."""
    events = []

    def ping(name, n):
        events.append(name)
        if n > 1:
            loop.call_soon(ping, name, n - 1)

    loop.call_soon(ping, "a", 3)
    loop.call_soon(ping, "b", 3)
    loop.call_later(0.001, loop.stop)
    loop.run_forever()
    assert events == ["a", "b", "a", "b", "a", "b"]


def test_timers_run_in_deadline_order(loop):
    events = []
    now = loop.time()
    for delay in (0.03, 0.01, 0.02):
        loop.call_at(now + delay, events.append, delay)
    loop.call_at(now + 0.04, loop.stop)
    loop.run_forever()
    assert events == [0.01, 0.02, 0.03]


def test_timers_with_equal_deadlines(setup, loop):
    """Ours runs equal deadlines in call_at order; asyncio leaves it undefined."""
    events = []
    when = loop.time() + 0.01
    for i in range(20):
        loop.call_at(when, events.append, i)
    loop.call_at(when + 0.01, loop.stop)
    loop.run_forever()
    assert sorted(events) == list(range(20))
    if setup.ours:
        assert events == list(range(20))


def test_cancelled_handles_do_not_run(loop):
    events = []
    loop.call_soon(events.append, "kept")
    loop.call_soon(events.append, "dropped").cancel()
    timer = loop.call_later(0.001, events.append, "dropped timer")
    assert not timer.cancelled()
    timer.cancel()
    assert timer.cancelled()
    loop.call_later(0.002, loop.stop)
    loop.run_forever()
    assert events == ["kept"]


def test_many_cancelled_timers_are_dropped(loop):
    events = []
    timers = [loop.call_later(10 + i, events.append, i) for i in range(300)]
    for timer in timers[:250]:
        timer.cancel()
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert events == []
    if isinstance(loop, EventLoop):
        assert len(loop._scheduled) == 50
        assert loop._timer_cancelled_count == 0


def test_timer_handle_when_and_call_later_relative(loop):
    before = loop.time()
    timer = loop.call_later(5, print)
    assert before + 5 <= timer.when() <= loop.time() + 5
    timer.cancel()


def test_nan_delay_runs_at_once(setup, loop):
    """call_later has no NaN check: a NaN deadline is always due.

    On 3.13 the stdlib loop then hands a NaN timeout to the selector, which
    raises ValueError; ours keeps NaN out of the heap and runs it at once.
    """
    events = []
    loop.call_later(float("nan"), events.append, "nan")
    loop.call_later(0.01, loop.stop)
    if sys.version_info >= (3, 13) and not setup.ours:
        with pytest.raises(ValueError, match="NaN"):
            loop.run_forever()
        return
    loop.run_forever()
    assert events == ["nan"]


def test_a_nan_deadline_leaves_the_other_timers_in_order(setup, loop):
    """asyncio's heap disorders the timers around a NaN; ours runs the NaN first."""
    order = []
    for delay in (0.024, 0.010, float("nan"), 0.040, 0.015, 0.007, 0.041):
        loop.call_later(delay, order.append, delay)
    loop.call_later(0.06, loop.stop)
    loop.run_forever()
    finite = [delay for delay in order if delay == delay]
    assert len(order) == 7
    if setup.ours:
        assert order[0] != order[0] and finite == sorted(finite)
    else:  # what the notebook shows of asyncio's loop
        assert finite != sorted(finite)


def test_asyncio_sleep_nan(setup):
    """asyncio.sleep(nan) raises ValueError from 3.13 on, and completes before."""

    async def main():
        await asyncio.sleep(float("nan"))
        return "slept"

    if sys.version_info >= (3, 13):
        with pytest.raises(ValueError) as info:
            setup.run(main())
        assert str(info.value) == "Invalid delay: NaN (not a number)"
    else:
        assert setup.run(main()) == "slept"


# -- running and stopping ----------------------------------------------------


def test_run_until_complete_returns_result(loop):
    async def answer():
        return 42

    assert loop.run_until_complete(answer()) == 42
    assert not loop.is_running()


def test_run_until_complete_raises_exception(loop):
    async def fail():
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        loop.run_until_complete(fail())


def test_run_until_complete_rejects_non_awaitable(loop):
    with pytest.raises(TypeError) as info:
        loop.run_until_complete(1)
    assert str(info.value) == (
        "An asyncio.Future, a coroutine or an awaitable is required"
    )


def test_run_until_complete_stopped_early(loop):
    fut = loop.create_future()
    loop.call_soon(loop.stop)
    with pytest.raises(RuntimeError) as info:
        loop.run_until_complete(fut)
    assert str(info.value) == "Event loop stopped before Future completed."


def test_run_forever_while_running(loop):
    async def nested():
        loop.run_forever()

    with pytest.raises(RuntimeError) as info:
        loop.run_until_complete(nested())
    assert str(info.value) == "This event loop is already running"


def test_run_while_another_loop_runs(setup):
    outer = setup.new_loop()
    inner = setup.new_loop()

    async def nested():
        inner.run_forever()

    try:
        with pytest.raises(RuntimeError) as info:
            outer.run_until_complete(nested())
        assert str(info.value) == (
            "Cannot run the event loop while another loop is running"
        )
    finally:
        inner.close()
        outer.close()


def test_is_running_and_running_loop(loop):
    seen = []

    def check():
        seen.append((loop.is_running(), asyncio.get_running_loop() is loop))
        loop.stop()

    loop.call_soon(check)
    loop.run_forever()
    assert seen == [(True, True)]
    assert not loop.is_running()
    assert asyncio._get_running_loop() is None


def test_closed_loop_refuses_work(loop):
    loop.close()
    loop.close()  # a second close is a no-op
    assert loop.is_closed()
    for call in (
        lambda: loop.call_soon(print),
        lambda: loop.call_later(1, print),
        lambda: loop.call_at(1, print),
        lambda: loop.call_soon_threadsafe(print),
        loop.run_forever,
        lambda: loop.run_in_executor(None, print),
    ):
        with pytest.raises(RuntimeError) as info:
            call()
        assert str(info.value) == "Event loop is closed"
    coro = asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="^Event loop is closed$"):
        loop.create_task(coro)
    coro.close()


def test_a_loop_collected_unclosed_warns_and_closes(setup):
    """As asyncio's: a ResourceWarning names the loop; a closed loop says nothing."""
    for close_it in (False, True):
        loop = setup.new_loop()
        if close_it:
            loop.close()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            del loop
            gc.collect()
        unclosed = [
            (w.category, str(w.message).split(" <")[0])
            for w in caught
            if "unclosed event loop" in str(w.message)
        ]
        assert unclosed == ([] if close_it else [(ResourceWarning, "unclosed event loop")])


def test_close_running_loop(loop):
    errors = []

    def close():
        try:
            loop.close()
        except RuntimeError as exc:
            errors.append(str(exc))
        loop.stop()

    loop.call_soon(close)
    loop.run_forever()
    assert errors == ["Cannot close a running event loop"]


def test_none_deadlines(loop):
    with pytest.raises(TypeError, match="^delay must not be None$"):
        loop.call_later(None, print)
    with pytest.raises(TypeError, match="^when cannot be None$"):
        loop.call_at(None, print)


def test_non_callable_callback(loop):
    """Without debug mode asyncio accepts it and the call fails later."""
    errors = []
    loop.set_exception_handler(lambda loop, context: errors.append(context))
    handle = loop.call_soon(1)
    assert not handle.cancelled()
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert [type(context["exception"]) for context in errors] == [TypeError]
    assert errors[0]["handle"] is handle
    assert errors[0]["message"].startswith("Exception in callback")


def test_non_callable_callback_in_debug_mode(loop):
    loop.set_debug(True)

    async def coroutine_function():
        pass

    for method in ("call_soon", "call_soon_threadsafe"):
        with pytest.raises(TypeError) as info:
            getattr(loop, method)(1)
        assert str(info.value) == f"a callable object was expected by {method}(), got 1"
        with pytest.raises(TypeError) as info:
            getattr(loop, method)(coroutine_function)
        assert str(info.value) == f"coroutines cannot be used with {method}()"
    with pytest.raises(TypeError) as info:
        loop.call_later(1, 1)
    assert str(info.value) == "a callable object was expected by call_at(), got 1"


def test_set_task_factory_rejects_non_callable(loop):
    with pytest.raises(TypeError, match="^task factory must be a callable or None$"):
        loop.set_task_factory(1)


# -- contexts, exceptions and the exception handler --------------------------

var = contextvars.ContextVar("var", default="unset")


def test_callback_runs_in_given_context(loop):
    seen = []
    context = contextvars.copy_context()
    context.run(var.set, "given")
    loop.call_soon(lambda: seen.append(var.get()), context=context)
    var_token = var.set("caller")
    loop.call_soon(lambda: seen.append(var.get()))
    var.reset(var_token)
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert seen == ["given", "caller"]


def test_callback_changes_stay_in_its_context(loop):
    seen = []

    def setter():
        var.set("changed")

    loop.call_soon(setter)
    loop.call_soon(lambda: seen.append(var.get()))
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert seen == ["unset"]


def test_exception_in_callback_goes_to_handler(loop):
    contexts = []
    loop.set_exception_handler(lambda loop, context: contexts.append(context))
    assert loop.get_exception_handler() is not None

    def fail():
        raise ValueError("in callback")

    handle = loop.call_soon(fail)
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert len(contexts) == 1
    assert contexts[0]["handle"] is handle
    assert isinstance(contexts[0]["exception"], ValueError)
    assert contexts[0]["message"].startswith("Exception in callback")


def test_set_exception_handler_rejects_non_callable(loop):
    with pytest.raises(TypeError) as info:
        loop.set_exception_handler(1)
    assert str(info.value) == "A callable object or None is expected, got 1"


def test_default_exception_handler_logs(loop, caplog):
    def fail():
        raise ValueError("logged")

    loop.call_soon(fail)
    loop.call_soon(loop.stop)
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        loop.run_forever()
    assert len(caplog.records) == 1
    record = caplog.records[0]
    assert record.getMessage().startswith("Exception in callback")
    assert record.exc_info[0] is ValueError


def test_failing_exception_handler_is_logged(loop, caplog):
    def handler(loop, context):
        raise KeyError("handler broke")

    loop.set_exception_handler(handler)
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        loop.call_exception_handler({"message": "original"})
    assert [r.getMessage().splitlines()[0] for r in caplog.records] == [
        "Unhandled error in exception handler"
    ]


def test_exception_handler_context(setup, loop):
    """3.12+ run a custom handler in the failing handle's context; 3.11 doesn't."""
    seen = []
    loop.set_exception_handler(lambda loop, context: seen.append(var.get()))
    context = contextvars.copy_context()
    context.run(var.set, "handle's")

    def fail():
        raise ValueError

    loop.call_soon(fail, context=context)
    loop.call_soon(loop.stop)
    loop.run_forever()
    expected = "handle's" if sys.version_info >= (3, 12) else "unset"
    assert seen == [expected]


def test_keyboard_interrupt_in_callback_propagates(loop):
    def interrupt():
        raise KeyboardInterrupt

    loop.call_soon(interrupt)
    with pytest.raises(KeyboardInterrupt):
        loop.run_forever()
    assert not loop.is_running()


# -- debug mode --------------------------------------------------------------


def test_debug_mode_logs_slow_callbacks(loop, caplog):
    loop.set_debug(True)
    assert loop.get_debug()
    loop.slow_callback_duration = 0.0  # every callback is "slow": no timing
    loop.call_soon(loop.stop)
    with caplog.at_level(logging.WARNING, logger="asyncio"):
        loop.run_forever()
    assert any(r.getMessage().startswith("Executing") for r in caplog.records)


def test_debug_mode_refuses_calls_from_other_threads(loop):
    loop.set_debug(True)
    errors = []
    done = threading.Event()

    def from_thread():
        try:
            loop.call_soon(print)
        except RuntimeError as exc:
            errors.append(str(exc))
        finally:
            loop.call_soon_threadsafe(loop.stop)
            done.set()

    def start_thread():
        threading.Thread(target=from_thread).start()

    loop.call_soon(start_thread)
    loop.call_later(10, loop.stop)  # safety net: never hang
    loop.run_forever()
    assert done.wait(10)
    assert errors == [
        "Non-thread-safe operation invoked on an event loop other than the current one"
    ]


# -- threads -----------------------------------------------------------------


def test_call_soon_threadsafe_wakes_a_sleeping_loop(loop):
    events = []

    def worker():
        events.append("worker")
        loop.call_soon_threadsafe(events.append, "woken")
        loop.call_soon_threadsafe(loop.stop)

    # The loop has nothing to do: it blocks in its poll until the thread
    # writes to the wake-up socket. The 10 s timer is only a safety net.
    safety = loop.call_later(10, loop.stop)
    thread = threading.Thread(target=worker)
    loop.call_soon(thread.start)
    loop.run_forever()
    thread.join(10)
    assert events == ["worker", "woken"]
    assert not safety.cancelled()
    safety.cancel()


def test_run_in_executor(loop):
    async def main():
        return await loop.run_in_executor(None, sum, [1, 2, 3])

    assert loop.run_until_complete(asyncio.wait_for(main(), 10)) == 6
    loop.run_until_complete(loop.shutdown_default_executor())


def test_run_in_given_executor_and_exception(loop):
    def fail():
        raise ValueError("in thread")

    with concurrent.futures.ThreadPoolExecutor(1) as executor:
        fut = loop.run_in_executor(executor, fail)
        with pytest.raises(ValueError, match="in thread"):
            loop.run_until_complete(asyncio.wait_for(fut, 10))


def test_set_default_executor(loop):
    with pytest.raises(TypeError) as info:
        loop.set_default_executor(1)
    assert str(info.value) == "executor must be ThreadPoolExecutor instance"
    executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="mine")
    loop.set_default_executor(executor)

    def name():
        return threading.current_thread().name

    thread_name = loop.run_until_complete(
        asyncio.wait_for(loop.run_in_executor(None, name), 10)
    )
    assert thread_name.startswith("mine")
    loop.run_until_complete(loop.shutdown_default_executor())
    with pytest.raises(RuntimeError) as info:
        loop.run_in_executor(None, name)
    assert str(info.value) == "Executor shutdown has been called"


def test_executor_under_virtual_clock_waits_for_the_thread():
    """Virtual time does not jump over a timer while a thread works."""
    loop = EventLoop(clock=VirtualClock())
    gate = threading.Event()

    def slow():
        gate.wait(10)
        return "done"

    async def main():
        fut = loop.run_in_executor(None, slow)
        loop.call_later(0.5, gate.set)  # only fires if virtual time jumps
        threading.Timer(0.05, gate.set).start()
        return await asyncio.wait_for(fut, 60)

    try:
        assert loop.run_until_complete(main()) == "done"
        loop.run_until_complete(loop.shutdown_default_executor())
    finally:
        loop.close()


# -- async generators --------------------------------------------------------


def test_shutdown_asyncgens_closes_suspended_generators(loop):
    events = []

    async def agen():
        try:
            yield 1
            yield 2
        finally:
            events.append("closed")

    async def main():
        gen = agen()
        assert await gen.__anext__() == 1
        return gen

    gen = loop.run_until_complete(main())
    assert events == []
    loop.run_until_complete(loop.shutdown_asyncgens())
    assert events == ["closed"]
    del gen


def test_asyncgen_finalizer_hook_schedules_aclose(loop):
    events = []

    async def agen():
        try:
            yield 1
            yield 2
        finally:
            events.append("closed")

    async def main():
        gen = agen()
        await gen.__anext__()
        del gen  # the finalizer hook schedules aclose() on the loop
        await asyncio.sleep(0)
        await asyncio.sleep(0)

    loop.run_until_complete(main())
    assert events == ["closed"]


# -- our loop only: virtual clock and observer --------------------------------


def test_virtual_clock_jumps_to_next_timer():
    clock = VirtualClock()
    loop = EventLoop(clock=clock)
    seen = []
    loop.call_later(3600, lambda: seen.append(loop.time()))
    loop.call_later(7200, loop.stop)
    loop.run_forever()
    loop.close()
    assert seen == [3600.0]
    assert clock.time() == 7200.0


def test_virtual_clock_never_goes_back():
    clock = VirtualClock(10)
    clock.advance_to(5)
    assert clock.time() == 10.0
    clock.advance_to(12.5)
    assert clock.time() == 12.5


def test_typist_on_virtual_clock_is_reproducible(capsys):
    import random

    async def typist(rng):
        for ch in "Hello, world!":
            await asyncio.sleep(max(0, rng.gauss(0.08, 0.03)))
            print(ch, end="")
        print()
        return asyncio.get_running_loop().time()

    ends = []
    for _ in range(2):
        ends.append(
            asynciodepth.run(
                typist(random.Random(7)),
                loop_factory=lambda: EventLoop(clock=VirtualClock()),
            )
        )
    assert capsys.readouterr().out == "Hello, world!\n" * 2
    assert ends[0] == ends[1] > 0.5


class Recorder(LoopObserver):
    def __init__(self):
        self.events = []

    def on_callback(self, loop, handle, start, end):
        self.events.append(
            ("callback", getattr(handle._callback, "__name__", "?"), start)
        )

    def on_task_step(self, loop, task, woken_by, start, end):
        self.events.append(("step", task.get_name(), type(woken_by).__name__, start))

    def on_poll(self, loop, timeout, start, end, nevents):
        self.events.append(("poll", timeout, start, end))

    def on_timer_fired(self, loop, handle, now):
        self.events.append(("timer", now))


def test_observer_sees_callbacks_steps_polls_and_timers():
    # Our Python Task: its steps (_step, _wakeup) are named handles. The
    # steps of asyncio's Task are reported too: see the test after this one.
    recorder = Recorder()
    loop = EventLoop(clock=VirtualClock(), observer=recorder, python_tasks=True)
    assert loop.get_observer() is recorder

    async def sleeper():
        await asyncio.sleep(0)
        await asyncio.sleep(2)

    loop.run_until_complete(loop.create_task(sleeper(), name="sleeper"))
    loop.close()
    steps = [e for e in recorder.events if e[0] == "step"]
    assert steps == [
        ("step", "sleeper", "NoneType", 0.0),  # first step
        ("step", "sleeper", "NoneType", 0.0),  # after sleep(0): rescheduled
        ("step", "sleeper", "Future", 2.0),  # woken by the sleep's future
    ]
    assert ("poll", 2.0, 0.0, 2.0) in recorder.events
    assert ("timer", 2.0) in [e[:2] for e in recorder.events if e[0] == "timer"]
    # Each handle is reported once: the handles that ran steps (_step, _wakeup)
    # went to on_task_step above, not to on_callback as well.
    callbacks = [e[1] for e in recorder.events if e[0] == "callback"]
    assert callbacks == ["_set_result_unless_cancelled", "_run_until_complete_cb"]


TASK_CLASSES = {
    "ours": asynciodepth.Task,
    "asyncio-c": asyncio.Task,
    "asyncio-py": asyncio.tasks._PyTask,
}


@pytest.mark.parametrize("kind", list(TASK_CLASSES))
def test_observer_sees_the_same_steps_with_every_task_class(kind):
    recorder = Recorder()
    loop = EventLoop(clock=VirtualClock(), observer=recorder)
    task_class = TASK_CLASSES[kind]
    loop.set_task_factory(lambda loop, coro, **kw: task_class(coro, loop=loop, **kw))

    async def child():
        await asyncio.sleep(1)
        raise ValueError("boom")

    async def parent():
        await asyncio.sleep(0)
        try:
            await asyncio.create_task(child(), name="child")
        except ValueError:
            pass
        victim = asyncio.create_task(asyncio.sleep(5), name="victim")
        await asyncio.sleep(0)
        victim.cancel()
        await asyncio.sleep(0)

    main = loop.create_task(parent(), name="parent")
    assert type(main) is task_class
    loop.run_until_complete(main)
    loop.close()
    assert [e[1:] for e in recorder.events if e[0] == "step"] == [
        ("parent", "NoneType", 0.0),  # first step
        ("parent", "NoneType", 0.0),  # after sleep(0)
        ("child", "NoneType", 0.0),
        ("child", "Future", 1.0),  # woken by its sleep: raises
        ("parent", task_class.__name__, 1.0),  # woken by the child
        ("victim", "NoneType", 1.0),
        ("parent", "NoneType", 1.0),
        ("victim", "Future", 1.0),  # woken by its cancelled sleep
        ("parent", "NoneType", 1.0),
    ]
    # Each handle once: no step of any Task class shows up as a callback.
    callbacks = [e[1] for e in recorder.events if e[0] == "callback"]
    assert set(callbacks) == {"_set_result_unless_cancelled", "_run_until_complete_cb"}


class ScheduleRecorder(LoopObserver):
    def __init__(self):
        self.events = []

    def on_schedule(self, loop, handle, scheduled_by):
        if isinstance(scheduled_by, Handle):
            scheduled_by = scheduled_by._callback.__name__
        self.events.append(("schedule", handle._callback.__name__, scheduled_by))

    def on_callback(self, loop, handle, start, end):
        assert loop.current_handle() is handle
        self.events.append(("callback", handle._callback.__name__))

    def on_task_step(self, loop, task, woken_by, start, end):
        self.events.append(("step", loop.current_handle()._callback.__name__))


def test_observer_is_told_who_scheduled_each_handle():
    recorder = ScheduleRecorder()
    # Our Python Task: its step and wakeup are named handles (see above).
    loop = EventLoop(clock=VirtualClock(), observer=recorder, python_tasks=True)

    def first():
        loop.call_soon(second)

    def second():
        loop.call_later(1, third)

    def third():
        loop.stop()

    loop.call_soon(first)
    loop.run_forever()
    assert loop.current_handle() is None
    assert recorder.events == [
        ("schedule", "first", None),
        ("schedule", "second", "first"),  # reported while first runs
        ("callback", "first"),
        ("callback", "second"),
        ("schedule", "third", "timer"),
        ("callback", "third"),
    ]

    async def sleeper():
        await asyncio.sleep(1)

    recorder.events.clear()
    loop.run_until_complete(loop.create_task(sleeper()))
    loop.close()
    assert recorder.events == [
        ("schedule", "_step", None),
        ("step", "_step"),
        ("schedule", "_set_result_unless_cancelled", "timer"),
        ("schedule", "_wakeup", "_set_result_unless_cancelled"),
        ("callback", "_set_result_unless_cancelled"),
        ("schedule", "_run_until_complete_cb", "_wakeup"),
        ("step", "_wakeup"),
        ("callback", "_run_until_complete_cb"),
    ]


def test_observer_can_be_removed():
    recorder = Recorder()
    loop = EventLoop()
    loop.set_observer(recorder)
    loop.call_soon(loop.stop)
    loop.run_forever()
    loop.set_observer(None)
    loop.call_soon(loop.stop)
    loop.run_forever()
    loop.close()
    assert [e[1] for e in recorder.events if e[0] == "callback"] == ["stop"]


def test_io_methods_say_they_are_not_there_yet():
    """The scheduler chapter's loop has no I/O; chapter 'epoll' subclasses it."""
    loop = asynciodepth.runners.TaskEventLoop()
    try:
        with pytest.raises(NotImplementedError, match="add_reader.*epoll"):
            loop.add_reader(0, print)
        with pytest.raises(NotImplementedError, match="create_connection"):
            loop.run_until_complete(loop.create_connection(object, "localhost", 1))
    finally:
        loop.close()


def test_io_stubs_keep_the_signature_and_kind_of_asyncio_s_methods():
    """Each stub is made from AbstractEventLoop's: same parameters, async or not."""
    loop = BaseSelectorEventLoop()
    try:
        for name in ("add_reader", "remove_signal_handler", "sock_recv", "create_server"):
            ours = getattr(loop, name)
            theirs = getattr(asyncio.AbstractEventLoop, name).__get__(loop)
            assert ours.__name__ == name
            assert inspect.signature(ours) == inspect.signature(theirs)
            assert inspect.iscoroutinefunction(ours) == inspect.iscoroutinefunction(theirs)
        assert inspect.iscoroutinefunction(loop.sock_recv)
        assert not inspect.iscoroutinefunction(loop.add_reader)
    finally:
        loop.close()


def test_getaddrinfo_uses_the_executor(loop):
    infos = loop.run_until_complete(
        asyncio.wait_for(loop.getaddrinfo("127.0.0.1", 80), 10)
    )
    assert infos[0][4][0] == "127.0.0.1"
    loop.run_until_complete(loop.shutdown_default_executor())


def test_a_subclass_may_open_no_selector():
    """_make_selector() is the seam for loops that poll by other means."""
    from asynciodepth.selector_events import BaseSelectorEventLoop

    class NoSelectorLoop(BaseSelectorEventLoop):
        def _make_selector(self):
            return None

        def _poll(self, timeout):
            return []

    loop = NoSelectorLoop(clock=VirtualClock())
    assert loop._selector is None
    events = []
    loop.call_soon(events.append, "soon")
    loop.call_later(1, events.append, "later")
    loop.call_later(2, loop.stop)
    loop.run_forever()
    loop.close()
    assert events == ["soon", "later"]
    assert loop._ssock.fileno() == -1 and loop._csock.fileno() == -1


# -- polling: skipped only when nothing can arrive -----------------------------


def sleeps_until_peer_data(loop: asyncio.AbstractEventLoop) -> int:
    """Count the sleep(0) a task makes before a reader sees data its peer sent."""
    here, peer = socket.socketpair()
    seen = []

    def on_readable():
        seen.append(here.recv(16))

    async def main() -> int:
        loop.add_reader(here, on_readable)
        peer.send(b"x")
        count = 0
        while not seen:
            await asyncio.sleep(0)
            count += 1
        loop.remove_reader(here)
        return count

    try:
        return loop.run_until_complete(asyncio.wait_for(main(), 10))
    finally:
        here.close()
        peer.close()
        loop.close()


def test_peer_data_is_seen_after_as_many_sleeps_as_on_asyncio(setup):
    """A task spinning on sleep(0) sees I/O as soon as asyncio's loop would."""
    expected = sleeps_until_peer_data(asyncio.new_event_loop())
    assert expected == 2
    assert sleeps_until_peer_data(setup.new_loop()) == expected


class ReaderLoop(BaseSelectorEventLoop):
    """The chapter's loop plus a minimal add_reader on its own selector."""

    def add_reader(self, sock, callback):
        self._selector.register(sock, selectors.EVENT_READ, callback)

    def remove_reader(self, sock):
        self._selector.unregister(sock)

    def _process_events(self, events):
        for key, _mask in events:
            if key.fileobj is self._ssock:
                self._read_from_self()
            else:
                self._ready.append(Handle(key.data, (), self))


def busy_loop_with_a_peer(loop: asyncio.AbstractEventLoop) -> list[str]:
    """Callbacks keep the loop busy; the second one makes the peer send."""
    here, peer = socket.socketpair()
    events = []

    def tick(n):
        events.append(f"tick {n}")
        if n == 1:
            peer.send(b"x")
        if n < 4:
            loop.call_soon(tick, n + 1)
        else:
            loop.stop()

    loop.add_reader(here, lambda: events.append(f"data {here.recv(16)!r}"))
    loop.call_soon(tick, 0)
    try:
        loop.run_forever()
        loop.remove_reader(here)
    finally:
        here.close()
        peer.close()
        loop.close()
    return events


def test_busy_loop_with_a_registered_fd_sees_it_on_the_next_iteration():
    expected = ["tick 0", "tick 1", "tick 2", "data b'x'", "tick 3", "tick 4"]
    assert busy_loop_with_a_peer(asyncio.new_event_loop()) == expected
    assert busy_loop_with_a_peer(ReaderLoop()) == expected
    assert busy_loop_with_a_peer(EventLoop()) == expected


class PollCounter(LoopObserver):
    def __init__(self):
        self.polls = 0

    def on_poll(self, loop, timeout, start, end, nevents):
        self.polls += 1


def chain_of_callbacks(loop, n: int) -> None:
    def step(left):
        if left:
            loop.call_soon(step, left - 1)
        else:
            loop.stop()

    loop.call_soon(step, n)
    loop.run_forever()


def test_busy_loop_skips_the_poll_only_while_nothing_can_arrive():
    counter = PollCounter()
    loop = ReaderLoop(observer=counter)
    assert not loop._io_can_arrive()
    chain_of_callbacks(loop, 100)
    assert counter.polls == 0
    here, peer = socket.socketpair()
    loop.add_reader(here, print)
    assert loop._io_can_arrive()
    chain_of_callbacks(loop, 100)
    assert counter.polls == 101  # one per iteration, as asyncio
    loop.remove_reader(here)
    assert not loop._io_can_arrive()
    loop.close()
    here.close()
    peer.close()


@pytest.mark.parametrize("make_loop", [BaseSelectorEventLoop, EventLoop])
def test_threadsafe_wakeups_are_drained_while_the_loop_is_busy(make_loop):
    """Each byte call_soon_threadsafe writes is read by the next iteration's poll."""
    loop = make_loop()
    left = []

    def step(n):
        if n == 1:
            for _ in range(10):
                loop.call_soon_threadsafe(int)
        if n == 3:
            try:
                left.append(loop._ssock.recv(4096))
            except BlockingIOError:
                left.append("drained")
        if n < 3:
            loop.call_soon(step, n + 1)
        else:
            loop.stop()

    loop.call_soon(step, 0)
    loop.run_forever()
    loop.close()
    assert left == ["drained"]


# -- debug mode, as asyncio's ---------------------------------------------------


def test_debug_handles_remember_where_they_were_scheduled(loop):
    loop.set_debug(True)
    this_file = __file__
    line = sys._getframe().f_lineno
    handles = [
        loop.call_soon(print),
        loop.call_later(1, print),
        loop.call_at(loop.time() + 1, print),
        loop.call_soon_threadsafe(print),
    ]
    for offset, handle in enumerate(handles, start=2):
        frame = handle._source_traceback[-1]
        assert (frame.filename, frame.lineno) == (this_file, line + offset)
        assert f"created at {this_file}:{line + offset}" in repr(handle)
    loop.set_debug(False)
    assert loop.call_soon(print)._source_traceback is None


def test_task_made_by_create_task_remembers_its_creator():
    """create_task() drops its own frame from the Task's stack, as asyncio does."""

    async def coro():
        pass

    for loop in (asyncio.new_event_loop(), BaseSelectorEventLoop()):
        loop.set_debug(True)
        line = sys._getframe().f_lineno + 1
        task = loop.create_task(coro())
        assert task._source_traceback[-1].lineno == line, loop
        loop.run_until_complete(task)
        loop.close()


def test_handles_can_be_weakly_referenced(loop):
    import weakref

    for handle in (loop.call_soon(print), loop.call_later(1, print)):
        assert weakref.ref(handle)() is handle


def test_slow_callback_warning_names_the_task(setup, caplog):
    async def main():
        await asyncio.sleep(0)

    loop = setup.new_loop()
    loop.set_debug(True)
    loop.slow_callback_duration = 0.0  # every callback is "slow"
    with caplog.at_level(logging.WARNING, logger="asyncio"):
        loop.run_until_complete(main())
    loop.close()
    messages = [r.getMessage() for r in caplog.records]
    steps = [m for m in messages if m.startswith("Executing <Task ")]
    assert len(steps) >= 2, messages  # the first step and the one after sleep(0)
    assert all("name='Task-" in m and ".main()" in m for m in steps), steps
    for wrapper in ("_step", "_wakeup", "TaskStepMethWrapper", "task_wakeup"):
        assert not any(wrapper in m for m in messages), messages


def test_errors_in_debug_mode_log_where_the_callback_was_scheduled(loop, caplog):
    def fail():
        raise ValueError("oops")

    def report():
        loop.call_exception_handler({"message": "reported"})

    loop.set_debug(True)
    loop.call_soon(fail)
    loop.call_soon(report)
    loop.call_soon(loop.stop)
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        loop.run_forever()
    failed, reported = [r.getMessage() for r in caplog.records]
    assert failed.startswith("Exception in callback")
    assert "source_traceback: Object created at (most recent call last):" in failed
    assert __file__ in failed
    assert "handle_traceback: Handle created at (most recent call last):" in reported
    assert __file__ in reported


@pytest.mark.parametrize(
    "flags, env, expected",
    [
        ([], {}, False),
        ([], {"PYTHONASYNCIODEBUG": "1"}, True),
        (["-X", "dev"], {}, True),
        (["-E"], {"PYTHONASYNCIODEBUG": "1"}, False),
    ],
)
def test_debug_mode_from_the_environment(flags, env, expected):
    import os
    import subprocess

    code = (
        "import asyncio, asynciodepth\n"
        "loops = [asyncio.new_event_loop(), asynciodepth.EventLoop()]\n"
        "print([loop.get_debug() for loop in loops])\n"
        "for loop in loops: loop.close()\n"
    )
    environ = {k: v for k, v in os.environ.items() if k != "PYTHONASYNCIODEBUG"}
    environ.update(env)
    if "-E" in flags:  # -E ignores PYTHONPATH too: say where the package is
        code = f"import sys; sys.path[:0] = {sys.path!r}\n" + code
    out = subprocess.run(
        [sys.executable, *flags, "-c", code],
        env=environ,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.strip() == str([expected, expected])


@pytest.mark.parametrize("method", ["call_soon", "call_later", "call_at"])
def test_debug_mode_refuses_each_scheduling_call_from_other_threads(loop, method):
    loop.set_debug(True)
    errors = []
    args = {"call_soon": (), "call_later": (0,), "call_at": (0,)}[method]

    def from_thread():
        try:
            getattr(loop, method)(*args, print)
        except RuntimeError as exc:
            errors.append(str(exc))
        finally:
            loop.call_soon_threadsafe(loop.stop)

    loop.call_soon(lambda: threading.Thread(target=from_thread).start())
    loop.call_later(10, loop.stop)  # safety net: never hang
    loop.run_forever()
    assert errors == [
        "Non-thread-safe operation invoked on an event loop other than the current one"
    ]


# -- call_soon_threadsafe handles (3.14+: asyncio's _ThreadSafeHandle) ----------

requires_314 = pytest.mark.skipif(
    sys.version_info < (3, 14), reason="thread-safe handles arrived in 3.14"
)


def test_call_soon_threadsafe_handle_type_follows_the_version(loop):
    handle = loop.call_soon_threadsafe(print)
    if sys.version_info >= (3, 14):
        assert isinstance(handle, asyncio.events._ThreadSafeHandle)
    else:
        assert not hasattr(handle, "_lock")
    assert not handle.cancelled()
    handle.cancel()
    assert handle.cancelled()


def test_cancelled_threadsafe_handle_does_not_run(loop):
    events = []
    loop.call_soon_threadsafe(events.append, "cancelled").cancel()
    loop.call_soon_threadsafe(events.append, "runs")
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert events == ["runs"]


@requires_314
def test_cancel_from_another_thread_waits_for_the_running_callback(loop):
    events = []
    started = threading.Event()
    handles = []

    def callback():
        events.append("callback starts")
        started.set()
        threading.Event().wait(0.2)  # long enough for the cancel to be tried
        events.append("callback ends")

    def other_thread():
        handles.append(loop.call_soon_threadsafe(callback))
        assert started.wait(10)
        handles[0].cancel()
        events.append("cancel returns")
        loop.call_soon_threadsafe(loop.stop)

    thread = threading.Thread(target=other_thread)
    thread.start()
    loop.call_later(10, loop.stop)  # safety net: never hang
    loop.run_forever()
    thread.join(10)
    assert events == ["callback starts", "callback ends", "cancel returns"]
    assert handles[0].cancelled()


@requires_314
def test_threadsafe_handle_cancelled_after_the_loop_checked_it_does_not_run(loop):
    """The callback queued before it is cancelled, in the same iteration."""
    events = []
    handles = []

    def cancel_the_next():
        handles[0].cancel()

    loop.call_soon(cancel_the_next)
    handles.append(loop.call_soon_threadsafe(events.append, "ran"))
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert events == []


# -- create_task(**kwargs), as each version's asyncio --------------------------

CREATE_TASK_KWARGS = sys.version_info >= (3, 13, 3)


def test_create_task_eager_start_as_each_version(setup):
    async def coro(events):
        events.append("ran")

    async def main():
        events = []
        if not CREATE_TASK_KWARGS:
            unstarted = coro(events)
            with pytest.raises(TypeError, match="eager_start"):
                loop.create_task(unstarted, eager_start=True)
            unstarted.close()
            return None
        task = loop.create_task(coro(events), eager_start=True)
        return events, task.done()

    loop = setup.new_loop()
    loop.set_task_factory(None)  # the loop's own Task class
    outcome = loop.run_until_complete(main())
    loop.close()
    assert outcome == ((["ran"], True) if CREATE_TASK_KWARGS else None)


def test_create_task_hands_keywords_to_the_task_factory(setup):
    """Which keywords a factory gets, and with which values, per version."""
    seen = []

    def factory(loop, coro, **kwargs):
        seen.append(sorted(kwargs))
        return asyncio.Task(coro, loop=loop, **kwargs)

    async def coro():
        pass

    loop = setup.new_loop()
    loop.set_task_factory(factory)
    tasks = [
        loop.create_task(coro()),
        loop.create_task(coro(), name="named"),
        loop.create_task(coro(), context=contextvars.copy_context()),
    ]
    loop.run_until_complete(asyncio.gather(*tasks))
    loop.close()
    if sys.version_info >= (3, 14) or sys.version_info[:3] == (3, 13, 3):
        assert seen == [[], ["name"], ["context"]]
    else:
        assert seen == [[], [], ["context"]]
    assert tasks[1].get_name() == "named"


def test_create_future_uses_the_future_class():
    class MyFuture(asyncio.Future):
        pass

    class MyLoop(BaseSelectorEventLoop):
        _future_class = MyFuture

    for loop, expected in [(MyLoop(), MyFuture), (BaseSelectorEventLoop(), None)]:
        expected = expected or asynciodepth.Future
        assert type(loop.create_future()) is expected
        loop.close()


# -- the base class on its own (chapter "The event loop", "The smallest loop") --


def test_the_base_class_runs_callbacks_and_timers_without_a_selector():
    """BaseEventLoop's own _poll sleeps: it runs timers and callbacks by itself."""
    from asynciodepth.base_events import BaseEventLoop

    for clock in (VirtualClock(), None):
        loop = BaseEventLoop(clock=clock)
        events = []
        loop.call_later(0.02, events.append, "timer")
        loop.call_soon(events.append, "soon")
        loop.call_later(0.03, loop.stop)
        loop.run_forever()
        assert events == ["soon", "timer"]
        assert loop.time() >= 0.03 if clock else True
        result = loop.run_until_complete(asyncio.sleep(0.01, "slept"))
        assert result == "slept"
        loop.close()


def test_the_base_class_refuses_to_wait_for_nothing():
    """With nothing scheduled and no I/O, nothing could ever wake it: an error."""
    from asynciodepth.base_events import BaseEventLoop

    loop = BaseEventLoop()
    try:
        with pytest.raises(RuntimeError, match="nothing is scheduled"):
            loop.run_forever()
        assert not loop.is_running()
    finally:
        loop.close()


def test_debug_mode_and_the_observer_come_from_loop_instrumentation():
    from asynciodepth.base_events import BaseEventLoop
    from asynciodepth.instrumentation import LoopInstrumentation

    assert issubclass(BaseEventLoop, LoopInstrumentation)
    assert issubclass(BaseEventLoop, asyncio.AbstractEventLoop)
    for name in ("set_debug", "set_observer", "_run_ready_instrumented"):
        assert name in vars(LoopInstrumentation) and name not in vars(BaseEventLoop)
    # the asyncgen hooks stay on the loop class: chapter 10 shows their names
    assert BaseEventLoop._asyncgen_firstiter_hook.__qualname__ == (
        "BaseEventLoop._asyncgen_firstiter_hook"
    )
    loop = EventLoop()
    assert loop.slow_callback_duration == 0.1 and loop.get_observer() is None
    loop.close()


def test_create_task_refuses_a_positional_name(setup, loop):
    async def nothing():
        pass

    coro = nothing()
    with pytest.raises(TypeError):
        loop.create_task(coro, "name")
    coro.close()
