"""Tests for asynciodepth.coroutines (chapter 4) and the coroutine errors of chapters 2-4.

Behaviour that should match asyncio runs against both drivers: stdlib `asyncio.run`
and our `Driver`. Scheduling order is asserted with event lists.
"""

from __future__ import annotations

import asyncio
import gc
import inspect
import itertools
import random
import sys
import types
import warnings

import pytest
from py_versions import bad_await_result, not_awaitable, run_refuses_non_awaitable

from asynciodepth import coroutines
from asynciodepth.coroutines import Driver, Job, Sleep, await_chain, sleep, trap

# -- Two implementations of "run these coroutines concurrently, give me results" --


def run_asyncio(*coros):
    async def main():
        return await asyncio.gather(*coros)

    return asyncio.run(main())


def run_driver(*coros):
    return Driver(virtual=True).run(*coros)


IMPLEMENTATIONS = [
    pytest.param((run_asyncio, asyncio.sleep), id="asyncio"),
    pytest.param((run_driver, coroutines.sleep), id="driver"),
]


@pytest.fixture(params=IMPLEMENTATIONS)
def impl(request):
    return request.param


# -- trap -------------------------------------------------------------------------


def test_trap_is_a_generator_based_coroutine():
    assert inspect.isgeneratorfunction(trap)
    assert trap.__code__.co_flags & inspect.CO_ITERABLE_COROUTINE
    assert inspect.isawaitable(trap("x"))


def test_trap_hands_request_up_and_value_down_through_a_chain():
    async def inner():
        return await trap("request") * 2

    async def outer():
        return await inner() + 1

    coro = outer()
    assert coro.send(None) == "request"  # came up through both awaits
    assert coro.cr_await.__name__ == "inner"
    with pytest.raises(StopIteration) as stop:
        coro.send(20)  # went down to the trap, which returned it
    assert stop.value.value == 41


def test_trap_none_is_a_bare_yield_that_stdlib_asyncio_accepts():
    events = []

    async def worker(name):
        events.append(f"{name} before")
        await trap(None)
        events.append(f"{name} after")

    run_asyncio(worker("a"), worker("b"))
    assert events == ["a before", "b before", "a after", "b after"]


def test_sleep_request_is_a_bad_yield_for_a_stdlib_task():
    async def main():
        await trap(Sleep(1))

    with pytest.raises(RuntimeError, match=r"^Task got bad yield: Sleep\(delay=1\)$"):
        asyncio.run(main())


# -- sleep ------------------------------------------------------------------------


@pytest.mark.parametrize("delay", [0, -1, 0.0])
def test_sleep_zero_or_negative_makes_a_bare_request(delay):
    coro = sleep(delay)
    assert coro.send(None) is None
    with pytest.raises(StopIteration):
        coro.send(None)


def test_sleep_makes_a_sleep_request_and_returns_result():
    coro = sleep(1.5, result="done")
    assert coro.send(None) == Sleep(1.5)
    with pytest.raises(StopIteration) as stop:
        coro.send(None)
    assert stop.value.value == "done"


def test_sleep_rejects_a_non_number(impl):
    run, sleep_ = impl
    with pytest.raises(TypeError, match="'<=' not supported between instances"):
        run(sleep_("soon"))


# -- behaviour shared with asyncio --------------------------------------------------


def test_results_come_back_in_argument_order(impl):
    run, sleep_ = impl

    async def value(x, delay):
        await sleep_(delay)
        return x

    assert run(value("slow", 0.03), value("fast", 0.01)) == ["slow", "fast"]


def test_sleep_zero_round_robin_order(impl):
    run, sleep_ = impl
    events = []

    async def worker(name, steps):
        for i in range(steps):
            events.append(f"{name}{i}")
            await sleep_(0)

    run(worker("a", 3), worker("b", 2), worker("c", 1))
    assert events == ["a0", "b0", "c0", "a1", "b1", "a2"]


def test_timers_wake_in_deadline_order(impl):
    run, sleep_ = impl
    events = []

    async def sleeper(name, delay):
        await sleep_(delay)
        events.append(name)

    run(sleeper("c", 0.03), sleeper("a", 0.01), sleeper("b", 0.02))
    assert events == ["a", "b", "c"]


def test_exception_propagates_out_of_run(impl):
    run, sleep_ = impl

    async def fails():
        await sleep_(0)
        raise ValueError("boom")

    with pytest.raises(ValueError, match="^boom$"):
        run(fails())


def test_cannot_reuse_already_awaited_coroutine(impl):
    run, sleep_ = impl

    async def once():
        await sleep_(0)
        return 1

    async def twice(coro):
        await coro
        await coro

    with pytest.raises(RuntimeError, match="^cannot reuse already awaited coroutine$"):
        run(twice(once()))


def test_run_rejects_a_non_coroutine():
    error, message = run_refuses_non_awaitable("42")
    with pytest.raises(error, match=message):
        Driver().run(42)
    with pytest.raises(error, match=message):
        asyncio.run(42)


class Later:
    """An awaitable that is not a coroutine."""

    def __await__(self):
        return sleep(0).__await__()

    def __repr__(self):
        return "Later()"


def test_run_rejects_an_awaitable_that_is_not_a_coroutine():
    valid = sleep(0)
    # Up to 3.13 asyncio.run refuses it as it refuses 42; 3.14's would run it.
    error = ValueError if sys.version_info < (3, 14) else TypeError
    with pytest.raises(error, match=r"^a coroutine was expected, got Later\(\)$"):
        Driver().run(valid, Later())
    # The valid coroutine was closed, not left to warn "never awaited".
    assert inspect.getcoroutinestate(valid) == inspect.CORO_CLOSED


# -- the driver's own behaviour -----------------------------------------------------


def test_virtual_clock_jumps_to_deadlines_without_waiting():
    def no_waiting(seconds):
        raise AssertionError("a virtual driver must not wait")

    driver = Driver(virtual=True, wait=no_waiting)
    seen = []

    async def sleeper(delay):
        await sleep(delay)
        seen.append((delay, driver.time()))

    driver.run(sleeper(2.5), sleeper(1.0), sleeper(1.0))
    assert seen == [(1.0, 1.0), (1.0, 1.0), (2.5, 2.5)]
    assert driver.time() == 2.5


def test_virtual_clock_keeps_running_across_runs():
    driver = Driver(virtual=True)
    driver.run(sleep(1))
    driver.run(sleep(2))
    assert driver.time() == 3


def test_real_clock_waits_for_the_first_deadline():
    now = [100.0]
    waits = []

    def wait(seconds):
        waits.append(seconds)
        now[0] += seconds

    driver = Driver(clock=lambda: now[0], wait=wait)
    assert driver.run(sleep(0.5, "x"), sleep(0.25, "y")) == ["x", "y"]
    assert waits == [0.25, 0.25]
    assert driver.time() == 100.5


def test_interleaving_of_steps_with_equal_deadlines_is_first_come_first_served():
    driver = Driver(virtual=True)
    events = []

    async def worker(name):
        for i in range(2):
            await sleep(1)
            events.append((driver.time(), name, i))

    driver.run(worker("a"), worker("b"), worker("c"))
    assert events == [
        (1, "a", 0), (1, "b", 0), (1, "c", 0),
        (2, "a", 1), (2, "b", 1), (2, "c", 1),
    ]  # fmt: skip


def test_current_names_the_running_job():
    driver = Driver(virtual=True)
    seen = []

    async def who():
        seen.append(driver.current)
        await sleep(0)
        seen.append(driver.current)

    coro = who()
    driver.run(coro)
    assert [type(job) for job in seen] == [Job, Job]
    assert seen[0] is seen[1] and seen[0].coro is coro and seen[0].done
    assert driver.current is None


def test_bad_request_is_thrown_into_the_coroutine():
    async def asks_nonsense():
        try:
            await trap("nonsense")
        except RuntimeError as error:
            return str(error)

    assert run_driver(asks_nonsense()) == ["Driver got bad request: 'nonsense'"]


def test_unhandled_bad_request_propagates_out_of_run():
    with pytest.raises(RuntimeError, match=r"^Driver got bad request: 42$"):
        run_driver(trap_forever(42))


async def trap_forever(request):
    while True:
        await trap(request)


def test_failure_closes_the_other_coroutines():
    events = []

    async def long_runner():
        try:
            await sleep(10)
        finally:
            events.append("long_runner cleaned up")

    async def fails():
        await sleep(1)
        raise KeyError("k")

    other = long_runner()
    with pytest.raises(KeyError):
        run_driver(other, fails())
    assert events == ["long_runner cleaned up"]
    assert inspect.getcoroutinestate(other) == inspect.CORO_CLOSED


def test_invalid_argument_closes_the_valid_coroutines():
    async def fine():
        pass

    coro = fine()
    error, message = run_refuses_non_awaitable("'nope'")
    with pytest.raises(error, match=message):
        Driver().run(coro, "nope")
    assert inspect.getcoroutinestate(coro) == inspect.CORO_CLOSED


def test_run_from_a_running_driver_is_refused():
    driver = Driver(virtual=True)

    async def nested():
        inner = sleep(0)
        try:
            driver.run(inner)
        finally:
            inner.close()

    with pytest.raises(
        RuntimeError, match=r"^Driver.run\(\) cannot be called from a running driver$"
    ):
        driver.run(nested())


def test_driver_stays_usable_after_an_error():
    driver = Driver(virtual=True)

    async def fails():
        raise ValueError("first")

    with pytest.raises(ValueError):
        driver.run(fails(), sleep(5))
    assert driver.run(sleep(1, "again")) == ["again"]


def test_run_with_nothing_returns_nothing():
    assert Driver().run() == []


# -- the coroutine errors the chapters show -----------------------------------------


def test_never_awaited_warning():
    async def typist():
        pass

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        coro = typist()
        del coro
        gc.collect()
    assert [(w.category, str(w.message)) for w in caught] == [
        (
            RuntimeWarning,
            "coroutine 'test_never_awaited_warning.<locals>.typist' was never awaited",
        )
    ]


def test_send_non_none_to_a_just_started_coroutine():
    async def f():
        pass

    coro = f()
    with pytest.raises(
        TypeError, match="^can't send non-None value to a just-started coroutine$"
    ):
        coro.send("hello")
    coro.close()


def test_return_value_travels_in_stop_iteration():
    async def answer():
        return 42

    with pytest.raises(StopIteration) as stop:
        answer().send(None)
    assert stop.value.value == 42
    assert stop.value.args == (42,)


def test_send_after_finishing():
    async def f():
        return 1

    coro = f()
    with pytest.raises(StopIteration):
        coro.send(None)
    with pytest.raises(RuntimeError, match="^cannot reuse already awaited coroutine$"):
        coro.send(None)


def test_throw_lands_at_the_innermost_await_and_can_be_handled_there():
    events = []

    async def inner():
        try:
            await trap("waiting")
        except ValueError as error:
            events.append(f"inner caught {error}")
            return "recovered"

    async def outer():
        return await inner()

    coro = outer()
    coro.send(None)
    with pytest.raises(StopIteration) as stop:
        coro.throw(ValueError("boom"))
    assert events == ["inner caught boom"]
    assert stop.value.value == "recovered"


def test_throw_unhandled_propagates_up_the_chain():
    async def inner():
        await trap("waiting")

    async def outer():
        try:
            await inner()
        finally:
            events.append("outer finally")

    events = []
    coro = outer()
    coro.send(None)
    with pytest.raises(ValueError, match="^boom$"):
        coro.throw(ValueError("boom"))
    assert events == ["outer finally"]
    assert inspect.getcoroutinestate(coro) == inspect.CORO_CLOSED


def test_throw_into_a_finished_coroutine():
    async def f():
        pass

    coro = f()
    with pytest.raises(StopIteration):
        coro.send(None)
    with pytest.raises(RuntimeError, match="^cannot reuse already awaited coroutine$"):
        coro.throw(ValueError("late"))


def test_close_raises_generator_exit_at_the_await():
    events = []

    async def typist():
        try:
            await trap("waiting")
        except GeneratorExit:
            events.append("GeneratorExit")
            raise
        finally:
            events.append("finally")

    coro = typist()
    coro.send(None)
    assert coro.close() is None
    assert events == ["GeneratorExit", "finally"]
    assert inspect.getcoroutinestate(coro) == inspect.CORO_CLOSED
    with pytest.raises(RuntimeError, match="^cannot reuse already awaited coroutine$"):
        coro.send(None)


def test_coroutine_ignoring_generator_exit():
    async def stubborn():
        try:
            await trap("first")
        except GeneratorExit:
            pass
        await trap("second")  # suspending again after GeneratorExit is the sin

    coro = stubborn()
    coro.send(None)
    with pytest.raises(RuntimeError, match="^coroutine ignored GeneratorExit$"):
        coro.close()
    assert inspect.getcoroutinestate(coro) == inspect.CORO_SUSPENDED
    coro.close()  # now it does not catch it, so this close succeeds
    assert inspect.getcoroutinestate(coro) == inspect.CORO_CLOSED


def test_coroutine_already_executing():
    async def selfish():
        coro.send(None)

    coro = selfish()
    with pytest.raises(ValueError, match="^coroutine already executing$"):
        coro.send(None)


def test_await_a_non_awaitable():
    async def f():
        await 5

    with pytest.raises(TypeError, match=not_awaitable("int")):
        f().send(None)


def test_await_returning_a_non_iterator():
    class Bad:
        def __await__(self):
            return 5

    async def f():
        await Bad()

    owner = "test_coroutines.test_await_returning_a_non_iterator.<locals>.Bad"
    with pytest.raises(TypeError, match=bad_await_result(owner, "int")):
        f().send(None)


def test_coroutine_states():
    async def f():
        states.append(inspect.getcoroutinestate(coro))
        await trap(None)

    states = []
    coro = f()
    states.append(inspect.getcoroutinestate(coro))
    coro.send(None)
    states.append(inspect.getcoroutinestate(coro))
    with pytest.raises(StopIteration):
        coro.send(None)
    states.append(inspect.getcoroutinestate(coro))
    assert states == ["CORO_CREATED", "CORO_RUNNING", "CORO_SUSPENDED", "CORO_CLOSED"]


def test_types_coroutine_wraps_a_plain_generator_to_be_awaitable():
    def plain():
        yield "up"

    assert not inspect.isawaitable(plain())
    wrapped = types.coroutine(plain)
    assert inspect.isawaitable(wrapped())


def test_await_a_plain_generator():
    def plain():
        yield "up"

    async def f():
        await plain()

    with pytest.raises(TypeError, match=not_awaitable("generator")):
        f().send(None)


def test_stop_iteration_escaping_a_coroutine_becomes_runtime_error():
    async def careless():
        return next(iter([]))

    with pytest.raises(RuntimeError, match="^coroutine raised StopIteration$") as info:
        careless().send(None)
    assert type(info.value.__cause__) is StopIteration


def test_asyncio_sleep_outside_a_running_loop():
    coro = asyncio.sleep(0.1)
    with pytest.raises(RuntimeError, match="^no running event loop$"):
        coro.send(None)


def test_cancel_throws_cancelled_error_at_the_innermost_await():
    events = []

    async def worker():
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            events.append("cancelled at the sleep")
            raise

    async def main():
        task = asyncio.create_task(worker())
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return task.cancelled()

    assert asyncio.run(main()) is True
    assert events == ["cancelled at the sleep"]


def test_throw_into_a_created_coroutine_never_runs_the_body():
    events = []

    async def f():
        events.append("body ran")

    coro = f()
    with pytest.raises(KeyError, match="'k'"):
        coro.throw(KeyError("k"))
    assert events == []
    assert inspect.getcoroutinestate(coro) == inspect.CORO_CLOSED


def test_close_on_a_created_coroutine_does_not_warn():
    async def f():
        pass

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        coro = f()
        coro.close()
        del coro
        gc.collect()
    assert caught == []


def test_calling_a_coroutine_function_runs_nothing():
    events = []

    async def f():
        events.append("ran")

    assert f.__code__.co_flags & inspect.CO_COROUTINE
    coro = f()
    assert events == [] and inspect.getcoroutinestate(coro) == inspect.CORO_CREATED
    coro.close()


# -- await_chain ----------------------------------------------------------------------


def test_await_chain_follows_cr_await_down_to_the_trap():
    async def inner():
        return await trap("request")

    async def outer():
        return await inner()

    coro = outer()
    assert await_chain(coro) == [coro]  # not started: awaits nothing yet
    coro.send(None)
    chain = await_chain(coro)
    assert [link.__qualname__.rsplit(".", 1)[-1] for link in chain] == [
        "outer",
        "inner",
        "trap",
    ]
    assert chain[0] is coro and inspect.isgenerator(chain[-1])
    coro.close()
    assert await_chain(coro) == [coro]


def test_await_chain_stops_at_an_iterator_it_cannot_see_into():
    class Twice:
        def __await__(self):
            return iter(["tick", "tock"])

    async def f():
        await Twice()

    coro = f()
    assert coro.send(None) == "tick"
    chain = await_chain(coro)
    assert len(chain) == 2 and type(chain[1]).__name__ == "list_iterator"
    coro.close()


# -- the typist on the driver ---------------------------------------------------------


def test_three_typists_strike_every_key_on_time():
    from asynciodepth.hello import keystroke_pauses, typist

    driver = Driver(virtual=True)
    log = []

    class Keystrokes:
        def __init__(self, name):
            self.name = name

        def write(self, text):
            log.extend((driver.time(), self.name, ch) for ch in text)

        def flush(self):
            pass

    texts = {"ada": "Hello, world!", "bob": "Hi there!", "cy": "Good morning!"}
    coros = [
        typist(text, rng=random.Random(i), out=Keystrokes(name), sleep=sleep)
        for i, (name, text) in enumerate(texts.items())
    ]
    waited = driver.run(*coros)
    for i, (name, text) in enumerate(texts.items()):
        expected = list(itertools.accumulate(keystroke_pauses(text, random.Random(i))))
        assert [t for t, who, ch in log if who == name and ch != "\n"] == expected
        assert "".join(ch for _, who, ch in log if who == name) == text + "\n"
    assert log == sorted(log, key=lambda entry: entry[0])
    assert driver.time() == max(waited)
    # the typists really interleave: nobody types all of their text in one go
    names = [who for _, who, _ in log]
    assert names != sorted(names, key=list(texts).index)


def test_a_busy_coroutine_cannot_starve_a_sleeper():
    now = [0.0]
    events = []

    async def spinner():
        for i in range(3):
            now[0] += 1.0  # each step of work takes a second of (fake) real time
            events.append(f"spin{i}")
            await sleep(0)

    async def sleeper():
        await sleep(0.5)
        events.append("sleeper")

    driver = Driver(clock=lambda: now[0], wait=lambda seconds: None)
    driver.run(sleeper(), spinner())
    # Expired timers join the ready queue between rounds, behind the jobs already there.
    assert events == ["spin0", "spin1", "sleeper", "spin2"]
