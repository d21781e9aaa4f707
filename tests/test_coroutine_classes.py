"""Tests for coroutine classes (book/11_coroutine_classes.ipynb -> coroutine_classes).

Behaviour under asyncio runs on every loop setup of conftest.py (the `setup` fixture:
the stdlib loop, asynciodepth's own `EventLoop`, and ours with asyncio's C Task) and
over TASK_FACTORIES (the `task_factory` fixture). Each error case that chapter 11
shows is a test here, next to the native coroutine's behaviour.
"""

from __future__ import annotations

import asyncio
import collections.abc
import gc
import inspect
import io
import random
import sys
import types
import warnings

import pytest
from py_versions import bad_await_result, not_awaitable

from asynciodepth.coroutine_classes import (
    FutureIter,
    IteratorFuture,
    Trap,
    TrapIter,
    TypistCoroutine,
    get_awaitable_iter,
)
from asynciodepth.coroutines import Driver, Sleep, await_chain
from asynciodepth.coroutines import sleep as coroutine_sleep
from asynciodepth.futures import Future
from asynciodepth.generators import Scheduler
from asynciodepth.generators import sleep as generator_sleep
from asynciodepth.hello import keystroke_pauses, typist

SEED = 2024

TASK_FACTORIES = [
    pytest.param(lambda loop, coro: loop.create_task(coro), id="loop.create_task"),
    pytest.param(lambda loop, coro: asyncio.Task(coro, loop=loop), id="asyncio.Task"),
    pytest.param(
        lambda loop, coro: asyncio.tasks._PyTask(coro, loop=loop), id="asyncio._PyTask"
    ),
]


@pytest.fixture(params=TASK_FACTORIES)
def task_factory(request):
    """Each way of wrapping a coroutine in a Task, in turn."""
    return request.param


def run(loop_factory, main):
    """Run the coroutine function `main(loop)` to completion on a new loop."""
    loop = loop_factory()
    try:
        return loop.run_until_complete(main(loop))
    finally:
        loop.close()


def fast_sleep(delay):
    """asyncio.sleep scaled down a hundredfold, so the tests stay quick."""
    return asyncio.sleep(delay / 100)


# -- Under asyncio: await, Tasks, cancellation -----------------------------------------


@pytest.mark.parametrize("make", [typist, TypistCoroutine], ids=["native", "class"])
def test_typist_types_under_a_task(setup, task_factory, make):
    out = io.StringIO()

    async def main(loop):
        task = task_factory(
            loop, make(rng=random.Random(SEED), out=out, sleep=fast_sleep)
        )
        return await task

    waited = run(setup.new_loop, main)
    assert out.getvalue() == "Hello, world!\n"
    assert waited == pytest.approx(sum(keystroke_pauses(rng=random.Random(SEED))))


def test_class_under_await_returns_like_native(setup):
    async def main(loop):
        outs = [io.StringIO(), io.StringIO()]
        results = [
            await make("ab", rng=random.Random(1), out=out, sleep=fast_sleep)
            for make, out in zip([typist, TypistCoroutine], outs)
        ]
        return results, [out.getvalue() for out in outs]

    results, texts = run(setup.new_loop, main)
    assert results[0] == results[1]
    assert texts == ["ab\n", "ab\n"]


def test_class_and_native_alternate_round_robin_under_gather(setup):
    events = []

    class Log(io.StringIO):
        def __init__(self, name):
            super().__init__()
            self.name = name

        def write(self, text):
            if text.strip():
                events.append(f"{self.name}:{text}")
            return super().write(text)

    async def main(loop):
        return await asyncio.gather(
            typist(
                "abc",
                rng=random.Random(1),
                out=Log("n"),
                sleep=lambda _: asyncio.sleep(0),
            ),
            TypistCoroutine(
                "abc",
                rng=random.Random(1),
                out=Log("c"),
                sleep=lambda _: asyncio.sleep(0),
            ),
        )

    run(setup.new_loop, main)
    assert events == ["n:a", "c:a", "n:b", "c:b", "n:c", "c:c"]


def test_task_cancels_the_class_at_its_await(setup, task_factory):
    out = io.StringIO()

    async def main(loop):
        task = None

        class CancelAfter(io.StringIO):
            def write(self, text):
                written = super().write(text)
                if len(self.getvalue()) == 3:
                    task.cancel()
                return written

        out_ = CancelAfter()
        task = task_factory(
            loop, TypistCoroutine(rng=random.Random(SEED), out=out_, sleep=fast_sleep)
        )
        with pytest.raises(asyncio.CancelledError):
            await task
        out.write(out_.getvalue())
        return task

    task = run(setup.new_loop, main)
    assert task.cancelled()
    assert out.getvalue() == "Hel"
    assert task.get_coro().state == inspect.CORO_CLOSED


def test_task_refuses_an_awaitable_that_is_not_a_coroutine(setup):
    async def main(loop):
        with pytest.raises(
            TypeError, match=r"^a coroutine was expected, got Trap\(None\)$"
        ):
            loop.create_task(Trap(None))
        return "refused"

    assert run(setup.new_loop, main) == "refused"


def test_task_repr_names_the_class(setup):
    async def main(loop):
        task = loop.create_task(TypistCoroutine("", out=io.StringIO()))
        text = repr(task)
        await task
        return text

    assert "coro=<TypistCoroutine()" in run(setup.new_loop, main)


# -- On the drivers of chapters 4 and 9 ------------------------------------------------


@pytest.mark.parametrize(
    "driver", [Scheduler, lambda: Driver(virtual=True)], ids=["Scheduler", "Driver"]
)
def test_trap_class_replaces_trap_on_our_drivers(driver):
    events = []
    d = driver()

    async def napper(name):
        events.append((name, "asks", d.time()))
        reply = await Trap(Sleep(0.5))
        events.append((name, "woke", d.time(), reply))
        return name

    assert d.run(napper("a"), napper("b")) == ["a", "b"]
    assert events == [
        ("a", "asks", 0.0),
        ("b", "asks", 0.0),
        ("a", "woke", 0.5, None),
        ("b", "woke", 0.5, None),
    ]


@pytest.mark.parametrize(
    "driver, driver_sleep",
    [(Scheduler, generator_sleep), (lambda: Driver(virtual=True), coroutine_sleep)],
    ids=["Scheduler", "Driver"],
)
def test_class_typist_on_our_drivers_matches_native(driver, driver_sleep):
    outs = {}
    for make in [typist, TypistCoroutine]:
        d = driver()
        outs[make.__name__] = io.StringIO()
        [waited] = d.run(
            make(rng=random.Random(SEED), out=outs[make.__name__], sleep=driver_sleep)
        )
        assert d.time() == pytest.approx(waited)
    assert outs["typist"].getvalue() == "Hello, world!\n"
    assert outs["TypistCoroutine"].getvalue() == "Hello, world!\n"


def test_trap_iter_yields_once_then_returns_the_reply():
    it = Trap("request").__await__()
    assert isinstance(it, TrapIter) and iter(it) is it
    assert next(it) == "request"
    with pytest.raises(StopIteration) as stop:
        it.send("reply")
    assert stop.value.value == "reply"
    with pytest.raises(KeyError, match="thrown"):
        Trap(1).__await__().throw(KeyError("thrown"))


# -- The coroutine protocol: the class against native ----------------------------------


@types.coroutine
def _yield_once(delay):
    yield


def _run_to_end(coro):
    try:
        while True:
            coro.send(None)
    except StopIteration as stop:
        return stop.value


MAKERS = pytest.mark.parametrize(
    "make", [typist, TypistCoroutine], ids=["native", "class"]
)


@MAKERS
def test_first_send_must_be_none(make):
    coro = make("ab", out=io.StringIO(), sleep=_yield_once)
    with pytest.raises(
        TypeError, match=r"^can't send non-None value to a just-started coroutine$"
    ):
        coro.send("hello")
    coro.close()


@MAKERS
def test_send_after_the_end_is_refused(make):
    coro = make("ab", rng=random.Random(1), out=io.StringIO(), sleep=_yield_once)
    assert _run_to_end(coro) == pytest.approx(
        sum(keystroke_pauses("ab", random.Random(1)))
    )
    with pytest.raises(RuntimeError, match=r"^cannot reuse already awaited coroutine$"):
        coro.send(None)
    with pytest.raises(RuntimeError, match=r"^cannot reuse already awaited coroutine$"):
        coro.throw(ValueError("late"))


@MAKERS
def test_send_while_running_is_refused(make):
    def reentrant_sleep(delay):
        return coro.send(None)

    coro = make("ab", out=io.StringIO(), sleep=reentrant_sleep)
    with pytest.raises(ValueError, match=r"^coroutine already executing$"):
        coro.send(None)
    state = inspect.getcoroutinestate(coro) if make is typist else coro.state
    assert state == inspect.CORO_CLOSED


@MAKERS
def test_throw_before_the_start_closes_without_running(make):
    out = io.StringIO()
    coro = make("ab", out=out, sleep=_yield_once)
    with pytest.raises(KeyError):
        coro.throw(KeyError("early"))
    with pytest.raises(RuntimeError, match=r"^cannot reuse already awaited coroutine$"):
        coro.send(None)
    assert out.getvalue() == ""


@MAKERS
def test_throw_is_raised_at_the_await_and_accepts_three_arguments(make):
    coro = make("ab", out=io.StringIO(), sleep=_yield_once)
    coro.send(None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # 3-arg throw, 3.12+
        with pytest.raises(KeyError, match="three"):
            coro.throw(KeyError, KeyError("three"), None)


@MAKERS
def test_close_closes_the_awaited_coroutine_without_warnings(make):
    closed = []

    async def watched_sleep(delay):
        try:
            await _yield_once(delay)
        finally:
            closed.append(delay)

    coro = make("ab", rng=random.Random(1), out=io.StringIO(), sleep=watched_sleep)
    coro.send(None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        coro.close()
        coro.close()  # a second close does nothing
        gc.collect()
    assert closed == keystroke_pauses("a", random.Random(1))
    assert caught == []


def test_class_close_on_an_awaitable_that_ignores_generator_exit():
    class Stubborn:
        def __await__(self):
            return self

        def __next__(self):
            return "still here"

        def send(self, value):
            return "still here"

        def throw(self, exc):
            return "still here"

    coro = TypistCoroutine("a", out=io.StringIO(), sleep=lambda d: Stubborn())
    coro.send(None)
    # Why: PEP 380: GeneratorExit closes the delegate if it can; Stubborn has no
    # close(), so the GeneratorExit is raised in the class and close() succeeds.
    coro.close()
    assert coro.state == inspect.CORO_CLOSED


def test_native_coroutine_ignoring_generator_exit_is_refused():
    async def stubborn():
        try:
            await _yield_once(0)
        finally:
            await _yield_once(0)

    coro = stubborn()
    coro.send(None)
    with pytest.raises(RuntimeError, match=r"^coroutine ignored GeneratorExit$"):
        coro.close()


def test_class_states_follow_the_native_lifecycle():
    coro = TypistCoroutine("a", out=io.StringIO(), sleep=_yield_once)
    native = typist("a", out=io.StringIO(), sleep=_yield_once)
    seen = {"class": [], "native": []}
    for name, c, state in [
        ("class", coro, lambda: coro.state),
        ("native", native, lambda: inspect.getcoroutinestate(native)),
    ]:
        seen[name].append(state())
        c.send(None)
        seen[name].append(state())
        with pytest.raises(StopIteration):
            c.send(None)
        seen[name].append(state())
    assert (
        seen["class"]
        == seen["native"]
        == [
            inspect.CORO_CREATED,
            inspect.CORO_SUSPENDED,
            inspect.CORO_CLOSED,
        ]
    )


# -- What `await` accepts: the interpreter against get_awaitable_iter ------------------


class ReturnsNumber:
    def __await__(self):
        return 42


class ReturnsCoroutine:
    def __await__(self):
        return asyncio.sleep(0)


class ReturnsTypesCoroutineGenerator:
    def __await__(self):
        return _yield_once(0)


BAD_AWAITABLES = [
    pytest.param(
        ReturnsNumber,
        bad_await_result("test_coroutine_classes.ReturnsNumber", "int"),
        id="non-iterator",
    ),
    pytest.param(
        ReturnsCoroutine,
        bad_await_result("test_coroutine_classes.ReturnsCoroutine", "coroutine"),
        id="coroutine",
    ),
    pytest.param(
        ReturnsTypesCoroutineGenerator,
        bad_await_result(
            "test_coroutine_classes.ReturnsTypesCoroutineGenerator", "coroutine"
        ),
        id="types.coroutine",
    ),
    pytest.param(
        lambda: 42,
        not_awaitable("int"),
        id="no __await__",
    ),
]


@pytest.mark.parametrize("make, message", BAD_AWAITABLES)
def test_await_refuses_bad_awaitables(make, message):
    async def awaits():
        await make()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with pytest.raises(TypeError, match=message):
            awaits().send(None)


@pytest.mark.parametrize("make, message", BAD_AWAITABLES)
def test_get_awaitable_iter_refuses_them_alike(make, message):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with pytest.raises(TypeError, match=message):
            get_awaitable_iter(make())


def test_get_awaitable_iter_accepts_what_await_accepts():
    async def native():
        pass

    coro = native()
    assert get_awaitable_iter(coro) is coro
    coro.close()
    gen = _yield_once(0)
    assert get_awaitable_iter(gen) is gen
    it = get_awaitable_iter(Trap(1))
    assert isinstance(it, TrapIter)
    typist_class = TypistCoroutine()
    assert get_awaitable_iter(typist_class) is typist_class


# -- Where the class differs from a native coroutine -----------------------------------


def test_the_checks_that_tell_them_apart():
    coro, cls = typist(), TypistCoroutine()
    assert (asyncio.iscoroutine(coro), inspect.iscoroutine(coro)) == (True, True)
    assert (asyncio.iscoroutine(cls), inspect.iscoroutine(cls)) == (True, False)
    assert inspect.isawaitable(cls) and isinstance(cls, collections.abc.Coroutine)
    assert not asyncio.iscoroutine(Trap(None)) and inspect.isawaitable(Trap(None))
    coro.close()


def test_types_coroutine_generators_and_asyncio_iscoroutine_by_version():
    gen, plain = _yield_once(0), (x for x in ())
    assert inspect.isawaitable(gen) and not isinstance(gen, collections.abc.Coroutine)
    # Why: asyncio.iscoroutine accepted every generator until Python 3.12.
    expected = sys.version_info < (3, 12)
    assert asyncio.iscoroutine(gen) is expected
    assert asyncio.iscoroutine(plain) is expected


def test_types_coroutine_wraps_a_function_returning_a_generator():
    def plain_generator():
        yield "x"

    wrapped = types.coroutine(lambda: plain_generator())()
    assert type(wrapped).__name__ == "_GeneratorWrapper"
    assert isinstance(wrapped, collections.abc.Coroutine) and inspect.isawaitable(
        wrapped
    )
    wrapped.close()


def test_await_chain_stops_at_the_class_and_no_never_awaited_warning():
    async def outer(inner):
        return await inner

    chains = []
    for inner in [
        typist(out=io.StringIO(), sleep=generator_sleep),
        TypistCoroutine(sleep=generator_sleep),
    ]:
        top = outer(inner)
        top.send(None)
        chains.append([type(link).__name__ for link in await_chain(top)])
        top.close()
    assert chains == [
        ["coroutine", "coroutine", "generator", "generator"],
        ["coroutine", "TypistCoroutine"],
    ]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        typist()
        TypistCoroutine()
        gc.collect()
    assert [str(w.message) for w in caught] == ["coroutine 'typist' was never awaited"]


# -- Our Future, awaited through a generator or through FutureIter ---------------------

FUTURE_CLASSES = pytest.mark.parametrize(
    "future_class", [Future, IteratorFuture], ids=["Future", "IteratorFuture"]
)


@FUTURE_CLASSES
@pytest.mark.parametrize("how", ["result", "exception", "cancel"])
def test_a_task_awaits_our_future_either_way(setup, task_factory, future_class, how):
    events = []

    async def main(loop):
        future = future_class(loop=loop)

        async def waiter():
            events.append("waits")
            result = await future
            events.append(f"got {result!r}")
            return result

        task = task_factory(loop, waiter())
        await asyncio.sleep(0)
        assert future._asyncio_future_blocking is False  # reset by the Task
        if how == "result":
            future.set_result("ready")
        elif how == "exception":
            future.set_exception(KeyError("lost"))
        else:
            task.cancel()
        try:
            return await task
        except (KeyError, asyncio.CancelledError) as error:
            events.append(type(error).__name__)
            return task

    result = run(setup.new_loop, main)
    expected = {
        "result": ["waits", "got 'ready'"],
        "exception": ["waits", "KeyError"],
        "cancel": ["waits", "CancelledError"],
    }[how]
    assert events == expected
    if how == "cancel":
        assert result.cancelled()


@FUTURE_CLASSES
def test_a_done_future_is_awaited_without_yielding(future_class):
    loop = asyncio.new_event_loop()
    try:
        future = future_class(loop=loop)
        future.set_result(7)
        steps = future.__await__()
        with pytest.raises(StopIteration) as stop:
            next(steps)
        assert stop.value.value == 7
    finally:
        loop.close()


@FUTURE_CLASSES
def test_resuming_a_pending_future_by_hand_is_refused(future_class):
    loop = asyncio.new_event_loop()
    try:
        steps = future_class(loop=loop).__await__()
        first = next(steps)
        assert isinstance(first, future_class) and first._asyncio_future_blocking
        with pytest.raises(RuntimeError, match=r"^await wasn't used with future$"):
            next(steps)
    finally:
        loop.close()


def test_future_iter_throw_and_close_finish_it():
    loop = asyncio.new_event_loop()
    try:
        future = IteratorFuture(loop=loop)
        steps = future.__await__()
        assert isinstance(steps, FutureIter) and iter(steps) is steps
        next(steps)
        with pytest.raises(KeyError, match="thrown"):
            steps.throw(KeyError("thrown"))
        future.set_result(1)
        with pytest.raises(StopIteration) as stop:
            next(steps)
        assert stop.value.value is None  # finished: no second result
        other = IteratorFuture(loop=loop).__await__()
        next(other)
        other.close()
        with pytest.raises(StopIteration):
            next(other)
    finally:
        loop.close()


def test_future_iter_yields_the_future_again_once_a_task_took_it():
    """Like asyncio's C FutureIter: the flag, not a field of the iterator, decides."""
    loop = asyncio.new_event_loop()
    try:
        for future in [loop.create_future(), IteratorFuture(loop=loop)]:
            steps = future.__await__()
            assert next(steps) is future
            future._asyncio_future_blocking = False  # as a Task does
            assert next(steps) is future
            with pytest.raises(RuntimeError, match=r"^await wasn't used with future$"):
                next(steps)
            future.set_result(3)
            with pytest.raises(StopIteration) as stop:
                next(steps)
            assert stop.value.value == 3
    finally:
        loop.close()


@pytest.mark.parametrize("kind", ["native", "TypistCoroutine", "Trap", "FutureIter"])
def test_three_argument_throw_warns_from_312_on(kind):
    loop = asyncio.new_event_loop()
    try:
        if kind == "native":
            steps = typist("ab", out=io.StringIO(), sleep=_yield_once)
        elif kind == "TypistCoroutine":
            steps = TypistCoroutine("ab", out=io.StringIO(), sleep=_yield_once)
        elif kind == "Trap":
            steps = Trap(1).__await__()
        else:
            steps = IteratorFuture(loop=loop).__await__()
        steps.send(None)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with pytest.raises(KeyError):
                steps.throw(KeyError, KeyError("three"), None)
        messages = [str(w.message) for w in caught if w.category is DeprecationWarning]
        if sys.version_info >= (3, 12):
            assert messages == [
                "the (type, exc, tb) signature of throw() is deprecated, "
                "use the single-arg signature instead."
            ]
        else:
            assert messages == []
    finally:
        loop.close()
