"""Future: the same tests on asyncio's C Future, its Python Future and ours."""

from __future__ import annotations

import asyncio
import gc
import weakref
import sys

import pytest

import asynciodepth
from asynciodepth.futures import isfuture

FUTURES = {
    "c": asyncio.Future,
    "py": asyncio.futures._PyFuture,
    "ours": asynciodepth.Future,
}


@pytest.fixture(params=list(FUTURES))
def future_class(request):
    return FUTURES[request.param]


@pytest.fixture
def new_future(future_class, loop):
    return lambda: future_class(loop=loop)


def run_pending(loop):
    """Run the loop for one iteration plus the callbacks it schedules."""
    loop.call_soon(loop.stop)
    loop.run_forever()


def test_result(new_future):
    fut = new_future()
    assert not fut.done() and not fut.cancelled()
    fut.set_result(42)
    assert fut.done() and fut.result() == 42 and fut.exception() is None


def test_exception(new_future):
    fut = new_future()
    fut.set_exception(ValueError("bad"))
    assert isinstance(fut.exception(), ValueError)
    with pytest.raises(ValueError, match="bad"):
        fut.result()


def test_exception_class_is_instantiated(new_future):
    fut = new_future()
    fut.set_exception(ValueError)
    assert type(fut.exception()) is ValueError


def test_pending_result_and_exception(new_future, future_class):
    fut = new_future()
    with pytest.raises(asyncio.InvalidStateError) as info:
        fut.result()
    messages = [str(info.value)]
    with pytest.raises(asyncio.InvalidStateError) as info:
        fut.exception()
    messages.append(str(info.value))
    if future_class is not asyncio.futures._PyFuture:  # it words them differently
        assert messages == ["Result is not set.", "Exception is not set."]


@pytest.mark.parametrize("first", ["result", "exception", "cancel"])
def test_resolved_twice(new_future, future_class, first):
    fut = new_future()
    {
        "result": lambda: fut.set_result(1),
        "exception": lambda: fut.set_exception(ValueError()),
        "cancel": fut.cancel,
    }[first]()
    for again in (lambda: fut.set_result(2), lambda: fut.set_exception(KeyError())):
        with pytest.raises(asyncio.InvalidStateError) as info:
            again()
        if future_class is not asyncio.futures._PyFuture:
            assert str(info.value) == "invalid state"
    assert fut.cancel() is False
    if first == "exception":
        fut.exception()


@pytest.mark.parametrize("bad", [42, "boom", int, object], ids=repr)
def test_set_exception_refuses_a_non_exception(new_future, future_class, bad):
    """asyncio's (C) Future: TypeError('invalid exception object'), the future pending."""
    if future_class is asyncio.futures._PyFuture:
        pytest.skip("asyncio's pure-Python Future fails later, with AttributeError")
    fut = new_future()
    with pytest.raises(TypeError, match="invalid exception object"):
        fut.set_exception(bad)
    assert not fut.done()


def test_stop_iteration_cannot_be_set(new_future):
    fut = new_future()
    message = (
        "StopIteration interacts badly with generators and cannot be raised "
        "into a Future"
    )
    if sys.version_info < (3, 13):
        with pytest.raises(TypeError) as info:
            fut.set_exception(StopIteration)
        assert str(info.value) == message
        assert not fut.done()
    else:
        fut.set_exception(StopIteration())
        with pytest.raises(RuntimeError) as info:
            fut.result()
        assert str(info.value) == message
        assert isinstance(info.value.__cause__, StopIteration)


def test_stop_iteration_subclass(new_future):
    """3.11/3.12 refuse exactly StopIteration (type() is); 3.13 wraps any subclass."""

    class StopSubclass(StopIteration):
        pass

    fut = new_future()
    fut.set_exception(StopSubclass())
    if sys.version_info < (3, 13):
        assert type(fut.exception()) is StopSubclass
    else:
        assert type(fut.exception()) is RuntimeError
        assert isinstance(fut.exception().__cause__, StopSubclass)


def test_cancel_with_message(new_future):
    fut = new_future()
    assert fut.cancel("why") is True
    assert fut.cancelled() and fut.done()
    with pytest.raises(asyncio.CancelledError) as info:
        fut.result()
    assert info.value.args == ("why",)
    with pytest.raises(asyncio.CancelledError):
        fut.exception()


def test_callbacks_run_in_order_via_the_loop(new_future, loop):
    events = []
    fut = new_future()
    fut.add_done_callback(lambda f: events.append(("first", f.result())))
    fut.add_done_callback(lambda f: events.append(("second", f.result())))
    fut.set_result("x")
    assert events == []  # never called from inside set_result()
    run_pending(loop)
    assert events == [("first", "x"), ("second", "x")]


def test_callback_added_when_done_is_scheduled(new_future, loop):
    events = []
    fut = new_future()
    fut.set_result(1)
    fut.add_done_callback(events.append)
    assert events == []
    run_pending(loop)
    assert events == [fut]


def test_remove_done_callback(new_future, loop):
    events = []
    fut = new_future()
    fut.add_done_callback(events.append)
    fut.add_done_callback(print)
    fut.add_done_callback(events.append)
    assert fut.remove_done_callback(events.append) == 2
    assert fut.remove_done_callback(events.append) == 0
    fut.set_result(None)
    fut.remove_done_callback(print)
    run_pending(loop)
    assert events == []


def test_callback_order_after_removing_the_first(new_future, loop):
    """A callback added after the first was removed runs after those still registered
    (ours keeps the first callback in a slot: a new one must not take the empty slot)."""
    events = []
    fut = new_future()
    first, second, third = (lambda f, n=n: events.append(n) for n in "abc")
    fut.add_done_callback(first)
    fut.add_done_callback(second)
    assert fut.remove_done_callback(first) == 1
    fut.add_done_callback(third)
    fut.set_result(None)
    run_pending(loop)
    assert events == ["b", "c"]


def test_callbacks_run_in_their_context(new_future, loop):
    import contextvars

    var = contextvars.ContextVar("v", default="default")
    context = contextvars.copy_context()
    context.run(var.set, "callback's")
    seen = []
    fut = new_future()
    fut.add_done_callback(lambda f: seen.append(var.get()), context=context)
    fut.set_result(None)
    run_pending(loop)
    assert seen == ["callback's"]


def test_await_outside_a_task_protocol(new_future):
    """The trap: __await__ yields the future itself, then returns its result."""
    fut = new_future()
    gen = fut.__await__()
    assert next(gen) is fut
    assert fut._asyncio_future_blocking is True
    fut.set_result("done")
    with pytest.raises(StopIteration) as info:
        next(gen)
    assert info.value.value == "done"


def test_await_not_used_with_future(new_future):
    fut = new_future()
    gen = fut.__await__()
    next(gen)
    with pytest.raises(RuntimeError) as info:
        next(gen)
    assert str(info.value) == "await wasn't used with future"


def test_spurious_resume_after_a_task_took_the_future(new_future, future_class):
    """Once a Task took the future (blocking reset), resuming while pending yields it
    again on the C Future and ours (iterators); the generator of _PyFuture raises."""
    fut = new_future()
    it = fut.__await__()
    assert next(it) is fut
    fut._asyncio_future_blocking = False  # what a Task does when it subscribes
    if future_class is asyncio.futures._PyFuture:
        with pytest.raises(RuntimeError, match="await wasn't used with future"):
            next(it)
    else:
        assert next(it) is fut
        fut.set_result("late")
        with pytest.raises(StopIteration) as info:
            next(it)
        assert info.value.value == "late"


def test_isfuture(new_future):
    fut = new_future()
    assert asyncio.isfuture(fut) and isfuture(fut)
    assert not asyncio.isfuture(asynciodepth.Future)
    assert fut.get_loop() is fut._loop


def test_isfuture_is_asyncios_test():
    """The class must have the mark, whatever its value; the object's must not be None."""

    class MarkedPerObject:
        _asyncio_future_blocking = None  # the class has the mark...

        def __init__(self) -> None:
            self._asyncio_future_blocking = False  # ...and each object sets it

    class Unmarked:
        pass

    unmarked_instance = MarkedPerObject()
    unmarked_instance._asyncio_future_blocking = None
    for obj in (MarkedPerObject(), unmarked_instance, MarkedPerObject, Unmarked(), 1):
        assert isfuture(obj) == asyncio.isfuture(obj), obj
    assert isfuture(MarkedPerObject())


def test_a_future_whose_init_failed_is_freed_quietly(future_class, monkeypatch):
    """__del__ runs on a half-made future too (here the loop has no get_debug())."""
    unraisable = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    with pytest.raises(AttributeError):
        future_class(loop=object())
    gc.collect()
    assert unraisable == []


def test_exception_never_retrieved_is_reported(new_future, loop):
    contexts = []
    loop.set_exception_handler(lambda loop, context: contexts.append(context))
    fut = new_future()
    fut.set_exception(ValueError("lost"))
    del fut
    gc.collect()
    assert len(contexts) == 1
    assert contexts[0]["message"].endswith("exception was never retrieved")
    assert isinstance(contexts[0]["exception"], ValueError)


def test_exception_retrieved_is_not_reported(new_future, loop):
    contexts = []
    loop.set_exception_handler(lambda loop, context: contexts.append(context))
    fut = new_future()
    fut.set_exception(ValueError("seen"))
    fut.exception()
    del fut
    gc.collect()
    assert contexts == []


def test_generic_alias():
    assert asynciodepth.Future[int].__origin__ is asynciodepth.Future


def test_repr(loop):
    fut = asynciodepth.Future(loop=loop)
    assert repr(fut) == "<Future pending>"
    fut.set_result(3)
    assert repr(fut) == "<Future finished result=3>"
    fut = asynciodepth.Future(loop=loop)
    fut.cancel()
    assert repr(fut) == "<Future cancelled>"


# -- our sleep --------------------------------------------------------------


def test_our_sleep_on_every_setup(setup):
    events = []

    async def sleeper(name, delay):
        result = await asynciodepth.sleep(delay, name)
        events.append(result)

    async def main():
        # 50 ms apart on a real clock: a loaded machine cannot swap them.
        await asyncio.gather(sleeper("b", 0.06), sleeper("a", 0.01), sleeper("z", 0))

    setup.run(main())
    assert events == ["z", "a", "b"]


def test_our_sleep_zero_is_one_bare_yield():
    gen = asynciodepth.sleep(0).__await__()
    assert next(gen) is None
    with pytest.raises(StopIteration):
        next(gen)


def test_our_sleep_rejects_nan(setup):
    with pytest.raises(ValueError) as info:
        setup.run(asynciodepth.sleep(float("nan")))
    assert str(info.value) == "Invalid delay: NaN (not a number)"


def test_our_sleep_cancelled_cancels_its_timer():
    loop = asynciodepth.EventLoop(clock=asynciodepth.VirtualClock())

    async def main():
        task = asyncio.ensure_future(asynciodepth.sleep(100))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return [entry[2] for entry in loop._scheduled if not entry[2].cancelled()]

    try:
        assert loop.run_until_complete(main()) == []  # no live timer left
        assert loop.time() == 0.0  # the 100 s timer never fired
    finally:
        loop.close()


# -- reference cycles: a raised exception is freed by reference counting alone ---------


class gc_disabled:
    """With the cyclic collector off, an object in a cycle is never freed."""

    def __enter__(self) -> None:
        self.was_enabled = gc.isenabled()
        gc.collect()
        gc.disable()

    def __exit__(self, *exc_info: object) -> None:
        if self.was_enabled:
            gc.enable()


@pytest.mark.parametrize("method", ["result", "exception"])
def test_cancelled_error_has_no_referrers(future_class, new_future, method):
    """CPython's test_future_cancelled_{result,exception}_refcycles."""
    if future_class is asyncio.futures._PyFuture and sys.version_info < (3, 14):
        pytest.skip("asyncio's pure-Python Future keeps this cycle on 3.11-3.13")
    fut = new_future()
    fut.cancel()
    exc = None
    with gc_disabled():
        try:
            getattr(fut, method)()
        except asyncio.CancelledError as error:
            exc = error
        assert exc is not None
        assert gc.get_referrers(exc) == []


def test_raised_exception_does_not_keep_its_future_alive(future_class, new_future):
    """result() re-raises with a traceback that holds its frame; not its future."""
    if future_class is asyncio.futures._PyFuture:
        pytest.skip("asyncio's pure-Python Future keeps this cycle (its result frame)")

    class Boom(Exception):
        pass

    with gc_disabled():
        fut = new_future()
        fut.set_exception(Boom())
        try:
            fut.result()
        except Boom as error:
            exc = error
        alive = weakref.ref(fut)
        del fut
        assert alive() is None
        assert gc.get_referrers(exc) == []
