"""Tasks: steps, cancellation, contexts, names, current_task, eager start."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import sys
import types
import weakref

import pytest
from conftest import requires_312

import asynciodepth

var = contextvars.ContextVar("var", default="unset")


def test_task_runs_coroutine_and_returns_result(setup):
    async def child():
        await asyncio.sleep(0)
        return "child"

    async def main():
        task = asyncio.get_running_loop().create_task(child())
        assert isinstance(task, setup.task_class)
        return await task

    assert setup.run(main()) == "child"


def test_steps_interleave_in_order(setup):
    events = []

    async def worker(name):
        for i in range(3):
            events.append((name, i))
            await asyncio.sleep(0)

    async def main():
        await asyncio.gather(worker("a"), worker("b"))

    setup.run(main())
    assert events == [("a", 0), ("b", 0), ("a", 1), ("b", 1), ("a", 2), ("b", 2)]


def test_current_task_and_all_tasks(setup):
    async def child():
        return asyncio.current_task()

    async def main():
        me = asyncio.current_task()
        task = asyncio.create_task(child(), name="child")
        assert task in asyncio.all_tasks() and me in asyncio.all_tasks()
        assert await task is task
        return me

    main_task = setup.run(main())
    assert isinstance(main_task, setup.task_class)
    assert asyncio.current_task is not None


def test_task_names(setup):
    async def main():
        loop = asyncio.get_running_loop()
        named = loop.create_task(asyncio.sleep(0), name="explicit")
        numbered = loop.create_task(asyncio.sleep(0))
        named.set_name(42)
        await asyncio.gather(named, numbered)
        return named.get_name(), numbered.get_name()

    explicit, numbered = setup.run(main())
    assert explicit == "42"
    assert numbered.startswith("Task-")


def test_create_task_rejects_non_coroutines(setup, loop):
    with pytest.raises(TypeError) as info:
        loop.create_task(1)
    assert str(info.value) == "a coroutine was expected, got 1"


def test_create_task_with_an_awaited_coroutine(setup):
    """The task is created; it fails when it first runs the coroutine."""

    async def child():
        return 1

    async def main():
        coro = child()
        await coro
        task = asyncio.get_running_loop().create_task(coro)
        with pytest.raises(RuntimeError) as info:
            await task
        return str(info.value)

    assert setup.run(main()) == "cannot reuse already awaited coroutine"


def test_exception_propagates_through_await(setup):
    async def child():
        raise KeyError("deep")

    async def main():
        with pytest.raises(KeyError, match="deep"):
            await asyncio.create_task(child())
        return "ok"

    assert setup.run(main()) == "ok"


def test_task_refuses_set_result(setup):
    async def main():
        task = asyncio.current_task()
        for method in ("set_result", "set_exception"):
            with pytest.raises(RuntimeError) as info:
                getattr(task, method)(None)
            assert str(info.value) == f"Task does not support {method} operation"

    setup.run(main())


def test_task_exception_never_retrieved(setup):
    contexts = []

    async def fail():
        raise ValueError("forgotten")

    async def main():
        asyncio.get_running_loop().set_exception_handler(
            lambda loop, context: contexts.append(context)
        )
        asyncio.create_task(fail())
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        gc.collect()

    setup.run(main())
    gc.collect()
    messages = [c["message"] for c in contexts]
    assert messages == ["Task exception was never retrieved"]
    assert isinstance(contexts[0]["exception"], ValueError)


def test_task_awaiting_itself(setup):
    async def main():
        await asyncio.current_task()

    with pytest.raises(RuntimeError, match="^Task cannot await on itself"):
        setup.run(main())


def test_bad_yields(setup):
    @types.coroutine
    def yield_value(value):
        yield value

    async def main():
        errors = []
        for value in (42, asyncio.get_running_loop().create_future()):
            try:
                await yield_value(value)
            except RuntimeError as exc:
                errors.append(str(exc).split(" ")[:4])
        return errors

    assert setup.run(main()) == [
        ["Task", "got", "bad", "yield:"],
        ["yield", "was", "used", "instead"],
    ]


def test_future_of_another_loop(setup):
    other = setup.new_loop()

    async def main():
        await other.create_future()

    try:
        with pytest.raises(RuntimeError, match="attached to a different loop"):
            setup.run(main())
    finally:
        other.close()


# -- cancellation --------------------------------------------------------------


def test_cancel_with_message_travels_to_the_awaiter(setup):
    events = []

    async def child():
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError as exc:
            events.append(("child saw", exc.args))
            raise

    async def main():
        task = asyncio.create_task(child())
        await asyncio.sleep(0)
        assert task.cancel("stop it") is True
        assert task.cancelling() == 1
        try:
            await task
        except asyncio.CancelledError as exc:
            events.append(("main saw", exc.args))
        assert task.cancelled()
        assert task.cancel() is False

    setup.run(main())
    assert events == [("child saw", ("stop it",)), ("main saw", ("stop it",))]


def test_cancel_before_first_step(setup):
    events = []

    async def child():
        events.append("never runs")

    async def main():
        task = asyncio.create_task(child())
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    setup.run(main())
    assert events == []


def test_cancellation_can_be_refused(setup):
    async def stubborn():
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            return "refused"

    async def main():
        task = asyncio.create_task(stubborn())
        await asyncio.sleep(0)
        task.cancel()
        result = await task
        return result, task.cancelled(), task.cancelling()

    assert setup.run(main()) == ("refused", False, 1)


def test_cancel_during_the_step_that_returns(setup):
    """cancel() called while the task runs wins over its return value."""

    async def child():
        asyncio.current_task().cancel()
        return "too late"

    async def main():
        task = asyncio.create_task(child())
        with pytest.raises(asyncio.CancelledError):
            await task
        return task.cancelled()

    assert setup.run(main()) is True


def test_uncancel_counting(setup):
    async def main():
        task = asyncio.current_task()
        task.cancel()
        task.cancel()
        counts = [task.cancelling()]
        counts.append(task.uncancel())
        counts.append(task.uncancel())
        counts.append(task.uncancel())  # never below zero
        try:
            await asyncio.sleep(0)
        except asyncio.CancelledError:
            counts.append("still cancelled")
        return counts

    expected = [2, 1, 0, 0]
    if sys.version_info < (3, 13):
        # Before 3.13 uncancel() does not withdraw the pending CancelledError.
        expected.append("still cancelled")
    assert setup.run(main()) == expected


def test_cancel_during_wait_for(setup):
    events = []

    async def slow():
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            events.append("inner cancelled")
            raise

    async def waiter():
        try:
            await asyncio.wait_for(slow(), timeout=5)
        except asyncio.CancelledError:
            events.append("waiter cancelled")
            raise

    async def main():
        task = asyncio.create_task(waiter())
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return task.cancelling()

    assert setup.run(main()) == 1
    assert events == ["inner cancelled", "waiter cancelled"]


def test_wait_for_timeout_uncancels(setup):
    async def main():
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(asyncio.sleep(10), timeout=0.01)
        return asyncio.current_task().cancelling()

    assert setup.run(main()) == 0


def test_cancelled_error_keeps_its_traceback_origin(setup):
    async def child():
        raise asyncio.CancelledError("from inside")

    async def main():
        task = asyncio.create_task(child())
        with pytest.raises(asyncio.CancelledError) as info:
            await task
        return task.cancelled(), info.value.args

    assert setup.run(main()) == (True, ("from inside",))


# -- contexts ------------------------------------------------------------------


def test_each_task_gets_a_copy_of_the_context(setup):
    async def child(value):
        before = var.get()
        var.set(value)
        await asyncio.sleep(0)
        return before, var.get()

    async def main():
        var.set("parent")
        results = await asyncio.gather(child("a"), child("b"))
        return results, var.get()

    assert setup.run(main()) == ([("parent", "a"), ("parent", "b")], "parent")


def test_create_task_with_explicit_context(setup):
    async def child():
        return var.get()

    async def main():
        context = contextvars.copy_context()
        context.run(var.set, "explicit")
        return await asyncio.get_running_loop().create_task(child(), context=context)

    assert setup.run(main()) == "explicit"


def test_exception_handler_sees_task_context(setup):
    """On 3.12+ a handler runs in the context of the task it reports on."""
    seen = []

    async def fail():
        var.set("task's")
        raise ValueError

    async def main():
        asyncio.get_running_loop().set_exception_handler(
            lambda loop, context: seen.append(var.get())
        )
        asyncio.create_task(fail())
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        gc.collect()

    setup.run(main())
    gc.collect()
    assert seen == ["task's" if sys.version_info >= (3, 12) else "unset"]


# -- interoperation --------------------------------------------------------------


def test_our_task_awaits_a_stdlib_future():
    loop = asynciodepth.EventLoop(python_tasks=True)

    async def main():
        fut = asyncio.Future(loop=loop)
        loop.call_soon(fut.set_result, "stdlib future")
        return await fut

    try:
        task = loop.create_task(main())
        assert isinstance(task, asynciodepth.Task)
        assert loop.run_until_complete(task) == "stdlib future"
    finally:
        loop.close()


def test_stdlib_task_awaits_our_future():
    loop = asyncio.new_event_loop()

    async def main():
        fut = asynciodepth.Future(loop=loop)
        loop.call_soon(fut.set_result, "our future")
        return await fut

    try:
        assert loop.run_until_complete(main()) == "our future"
    finally:
        loop.close()


def test_stdlib_task_awaits_our_task():
    loop = asynciodepth.EventLoop()  # its default Task is asyncio's

    async def ours():
        await asyncio.sleep(0)
        return "ours"

    async def main():
        return await asynciodepth.Task(ours(), loop=loop)

    try:
        assert loop.run_until_complete(main()) == "ours"
    finally:
        loop.close()


def test_our_task_on_the_stdlib_loop():
    loop = asyncio.new_event_loop()

    async def main():
        await asyncio.sleep(0.001)
        return asyncio.current_task()

    try:
        task = asynciodepth.Task(main(), loop=loop)
        assert loop.run_until_complete(task) is task
    finally:
        loop.close()


def test_repr_has_no_addresses():
    loop = asynciodepth.EventLoop(python_tasks=True)

    async def main():
        return 1

    try:
        task = loop.create_task(main(), name="t")
        assert (
            repr(task)
            == "<Task pending name='t' coro=<test_repr_has_no_addresses.<locals>.main()>>"
        )
        loop.run_until_complete(task)
        assert repr(task).startswith("<Task finished result=1 name='t'")
    finally:
        loop.close()


def test_get_stack_of_a_suspended_task(setup):
    async def child(event):
        await event.wait()

    async def main():
        event = asyncio.Event()
        task = asyncio.create_task(child(event))
        await asyncio.sleep(0)
        frames = task.get_stack()
        event.set()
        await task
        return [frame.f_code.co_name for frame in frames], task.get_stack()

    assert setup.run(main()) == (["child"], [])


# -- eager start -----------------------------------------------------------------


@requires_312
def test_eager_tasks_start_at_once(setup):
    events = []

    async def child(name):
        events.append(f"{name} starts")
        await asyncio.sleep(0)
        events.append(f"{name} resumes")
        return name

    async def main():
        asyncio.get_running_loop().set_task_factory(setup.eager_factory())
        task = asyncio.create_task(child("eager"))
        events.append("created")
        assert asyncio.current_task() is not task
        return await task

    assert setup.run(main()) == "eager"
    assert events == ["eager starts", "created", "eager resumes"]


@requires_312
def test_eager_task_that_finishes_at_once(setup):
    async def child():
        return asyncio.current_task()

    async def main():
        asyncio.get_running_loop().set_task_factory(setup.eager_factory())
        task = asyncio.create_task(child())
        assert task.done()
        return task, task.result()

    task, seen = setup.run(main())
    assert seen is task


def test_our_eager_start_on_311_too():
    events = []

    async def child():
        events.append(("child", asyncio.current_task()))

    async def main():
        asyncio.get_running_loop().set_task_factory(asynciodepth.eager_task_factory)
        task = asyncio.create_task(child())
        events.append(("main", asyncio.current_task(), task))

    asynciodepth.run(main())
    (_, in_child), (_, in_main, task) = events
    assert in_child is task and in_main is not task and task.done()


# -- reference cycles --------------------------------------------------------------


class _Boom(Exception):
    pass


def _run_with_gc_disabled(setup, main):
    gc.collect()
    gc.disable()
    try:
        return setup.run(main())
    finally:
        gc.enable()


def test_failed_task_and_its_exception_are_freed_without_the_gc(setup):
    """No cycle through the task's frames (step, wakeup, result) keeps them."""

    async def fail():
        await asyncio.sleep(0)
        raise _Boom("lost")

    async def main():
        task = asyncio.create_task(fail())
        try:
            await task
        except _Boom as exc:
            refs = weakref.ref(task), weakref.ref(exc)
        del task  # Why: the traceback holds this frame, so its locals too.
        return refs

    task_ref, exc_ref = _run_with_gc_disabled(setup, main)
    assert (task_ref(), exc_ref()) == (None, None)


def test_cancelled_task_is_freed_without_the_gc(setup):
    async def sleeper():
        await asyncio.sleep(10)

    async def main():
        task = asyncio.create_task(sleeper())
        await asyncio.sleep(0)
        task.cancel("stop")
        try:
            await task
        except asyncio.CancelledError as exc:
            refs = weakref.ref(task), weakref.ref(exc)
        del task
        return refs

    task_ref, exc_ref = _run_with_gc_disabled(setup, main)
    assert (task_ref(), exc_ref()) == (None, None)


@pytest.mark.skipif(
    sys.version_info < (3, 14), reason="asyncio's TaskGroup has cycles before 3.14"
)
def test_exception_refcycles_parent_task_wr(setup):
    """CPython's test_taskgroups test of the same name, with gc disabled."""

    async def main():
        tg = asyncio.TaskGroup()

        async def coro_fn():
            async with tg:
                raise _Boom

        try:
            async with asyncio.TaskGroup() as tg2:
                task_ref = weakref.ref(tg2.create_task(coro_fn()))
        except* _Boom as excs:
            exc = excs.exceptions[0].exceptions[0]
        # The only referrer left is this coroutine (its frame's locals).
        return task_ref() is None, [type(r).__name__ for r in gc.get_referrers(exc)]

    assert _run_with_gc_disabled(setup, main) == (True, ["coroutine"])


# -- eager task factories, per version -------------------------------------------------


@requires_312
def test_eager_factory_keywords_follow_asyncio(setup):
    """3.14+: the factory passes keywords on, eager_start=False included."""
    ours = asynciodepth.create_eager_task_factory(asynciodepth.Task)
    theirs = asyncio.create_eager_task_factory(asyncio.Task)

    async def child(events):
        events.append("child runs")

    async def main():
        loop = asyncio.get_running_loop()
        seen = {}
        for name, factory in [("ours", ours), ("asyncio", theirs)]:
            events = []
            coro = child(events)
            try:
                task = factory(loop, coro, eager_start=False, name="n")
            except TypeError:
                coro.close()
                seen[name] = "TypeError"
                continue
            events.append("created")
            await task
            seen[name] = events, task.get_name()
        return seen

    seen = setup.run(main())
    assert seen["ours"] == seen["asyncio"]
    if sys.version_info >= (3, 14):
        assert seen["ours"] == (["created", "child runs"], "n")
    else:
        assert seen["ours"] == "TypeError"


def test_eager_task_factory_passes_name_and_context():
    async def child():
        return asyncio.current_task().get_name(), var.get()

    async def main():
        context = contextvars.copy_context()
        context.run(var.set, "in context")
        loop = asyncio.get_running_loop()
        task = asynciodepth.eager_task_factory(
            loop, child(), name="eager", context=context
        )
        assert task.done()
        return task.result()

    assert asynciodepth.run(main()) == ("eager", "in context")


# -- debug mode: where futures and tasks were made ---------------------------------------


def _last_frame_name(future):
    return future._source_traceback[-1].name


def test_source_traceback_only_in_debug_mode(setup):
    async def main():
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        task = setup.task_class(asyncio.sleep(0), loop=loop)
        await task
        return fut._source_traceback, task._source_traceback

    assert setup.run(main()) == (None, None)


def test_source_traceback_names_the_creator_in_debug_mode(setup):
    async def main():
        loop = asyncio.get_running_loop()
        assert loop.get_debug()
        fut = loop.create_future()
        task = setup.task_class(asyncio.sleep(0), loop=loop)
        await task
        return _last_frame_name(fut), _last_frame_name(task)

    with asyncio.Runner(debug=True, loop_factory=setup.new_loop) as runner:
        # create_future is the loop's; the task was made right here.
        assert runner.run(main()) == ("create_future", "main")


def test_never_retrieved_report_carries_the_source_traceback(setup):
    reports = []

    async def main():
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda loop, context: reports.append(context))
        fut = loop.create_future()
        fut.set_exception(KeyError("lost"))
        del fut
        gc.collect()

    with asyncio.Runner(debug=True, loop_factory=setup.new_loop) as runner:
        runner.run(main())
    [report] = reports
    assert report["message"].endswith("exception was never retrieved")
    assert report["source_traceback"][-1].name == "create_future"


# -- 3.14's call graph ---------------------------------------------------------------------


@pytest.mark.skipif(
    sys.version_info < (3, 14), reason="asyncio.capture_call_graph: 3.14"
)
def test_capture_call_graph_sees_our_loops_tasks(setup):
    """With the default Task; our Python Task is no asyncio.Future, and is refused."""

    async def leaf(ready):
        ready.set()
        await asyncio.sleep(1)

    async def main():
        ready = asyncio.Event()
        async with asyncio.TaskGroup() as tg:
            child = tg.create_task(leaf(ready), name="leaf")
            await ready.wait()
            if setup.python_tasks:
                with pytest.raises(TypeError, match="compatible with asyncio.Future"):
                    asyncio.capture_call_graph(child)
                child.cancel()
                return None
            graph = asyncio.capture_call_graph(child)
            text = asyncio.format_call_graph(child)
            child.cancel()
        return (
            graph.future.get_name(),
            [frame.frame.f_code.co_name for frame in graph.call_stack],
            [parent.future is asyncio.current_task() for parent in graph.awaited_by],
            "leaf" in text and "main" in text,
        )

    result = setup.run(main())
    if not setup.python_tasks:
        assert result == ("leaf", ["sleep", "leaf"], [True], True)


def test_a_future_without_get_loop_is_asked_for_its_loop(setup):
    """CPython's test_foobar: get_loop raising AttributeError falls back to _loop."""

    class Fut(asyncio.Future):
        @property
        def get_loop(self):
            raise AttributeError

    loop = setup.new_loop()
    try:
        fut = Fut(loop=loop)

        async def coro():
            await fut
            return "spam"

        task = loop.create_task(coro())
        loop.call_soon(fut.set_result, 1)  # after the task's first step
        task.add_done_callback(lambda task: loop.stop())
        # Bounded: a Task that trips over get_loop never wakes up again.
        loop.call_later(5, loop.stop)
        loop.run_forever()
        assert task.done() and task.result() == "spam"
    finally:
        loop.close()


# -- Making it drop-in: the checks chapter "The scheduler" shows ----------------


def test_keyboard_interrupt_in_a_task_comes_out_of_the_loop(setup):
    tasks = []

    async def interrupted():
        raise KeyboardInterrupt

    async def main():
        tasks.append(asyncio.create_task(interrupted()))
        await asyncio.sleep(1)

    with pytest.raises(KeyboardInterrupt):
        setup.run(main())
    assert tasks[0].done()
    assert isinstance(tasks[0].exception(), KeyboardInterrupt)


def test_tasks_accept_attributes_of_any_name(setup):
    """asyncio's C Task has an instance dict; ours keeps __dict__ among its slots."""

    async def main():
        task = asyncio.current_task()
        task.request_id = "req-7"
        return task.request_id

    assert setup.run(main()) == "req-7"


def test_a_pending_task_collected_is_reported(setup):
    messages = []

    async def wait_forever():
        await asyncio.get_running_loop().create_future()  # nobody else holds it

    async def main():
        asyncio.get_running_loop().set_exception_handler(
            lambda loop, context: messages.append(context["message"])
        )
        asyncio.create_task(wait_forever())
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        gc.collect()

    setup.run(main())
    assert messages == ["Task was destroyed but it is pending!"]


def test_a_done_task_refuses_another_step():
    """A stray second wakeup must not resume a finished coroutine (as _PyTask)."""

    async def main():
        task = asyncio.create_task(asyncio.sleep(0))
        await task
        already_done = r"^_step\(\): already done"
        with pytest.raises(asyncio.InvalidStateError, match=already_done):
            task._step()

    loop = asynciodepth.EventLoop(python_tasks=True)
    try:
        loop.run_until_complete(main())
    finally:
        loop.close()
