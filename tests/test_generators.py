"""Tests for the generator scheduler (book/09_generators.ipynb -> generators.py).

Also one test per error case that chapter 9 shows: the generator protocol's own
errors (PEP 255, 342, 380, 479, 492) and the scheduler's. Order is asserted with
event lists; time is the scheduler's virtual clock.
"""

from __future__ import annotations

import asyncio
import gc
import inspect
import io
import random
import types
import warnings

import pytest
from py_versions import not_awaitable

from asynciodepth import coroutines
from asynciodepth.coroutines import Sleep, await_chain, trap
from asynciodepth.generators import (
    Join,
    Scheduler,
    Spawn,
    Task,
    join,
    sleep,
    spawn,
    typist_generator,
)
from asynciodepth.hello import keystroke_pauses, typist

SEED = 2024


# -- The scheduler: order, time, spawn and join -------------------------------------


def test_sleep_zero_alternates_round_robin():
    events = []

    def task(name, steps):
        for i in range(steps):
            events.append(f"{name}{i}")
            yield from sleep(0)
        events.append(f"{name} done")

    Scheduler().run(task("a", 3), task("b", 2))
    assert events == ["a0", "b0", "a1", "b1", "a2", "b done", "a done"]


def test_sleepers_wake_by_deadline_and_ties_are_fifo():
    sched = Scheduler()
    events = []

    def task(name, delay):
        yield from sleep(delay)
        events.append((sched.time(), name))

    sched.run(
        task("late", 0.3), task("tie1", 0.1), task("early", 0.05), task("tie2", 0.1)
    )
    assert events == [(0.05, "early"), (0.1, "tie1"), (0.1, "tie2"), (0.3, "late")]
    assert sched.time() == 0.3


def test_run_returns_results_in_argument_order():
    def task(value, delay):
        yield from sleep(delay)
        return value

    assert Scheduler().run(task("x", 0.2), task("y", 0.1)) == ["x", "y"]
    assert Scheduler().run() == []


def test_spawn_and_join_hand_over_results_and_exceptions():
    sched = Scheduler()
    events = []

    def child(name, delay):
        yield from sleep(delay)
        events.append(f"{name} finishes at {sched.time()}")
        if name == "bad":
            raise ValueError("bad child")
        return name.upper()

    def parent():
        slow = yield from spawn(child("slow", 0.3))
        bad = yield from spawn(child("bad", 0.1))
        assert isinstance(slow, Task) and not slow.done
        events.append(f"joined {(yield from join(slow))} at {sched.time()}")
        with pytest.raises(ValueError, match="^bad child$"):
            yield from join(bad)
        events.append("caught bad")
        return slow, bad

    [(slow, bad)] = sched.run(parent())
    assert events == [
        "bad finishes at 0.1",
        "slow finishes at 0.3",
        "joined SLOW at 0.3",
        "caught bad",
    ]
    assert repr(slow) == "<Task task-2 result='SLOW'>"
    assert repr(bad) == "<Task task-3 exception=ValueError('bad child')>"


def test_several_joiners_are_all_woken_in_order():
    events = []

    def target():
        yield from sleep(0.5)
        return 7

    def joiner(name, task_box):
        events.append(f"{name} waits")
        events.append(f"{name} got {(yield from join(task_box[0]))}")

    def main():
        box = [(yield from spawn(target()))]
        yield from spawn(joiner("j1", box))
        yield from spawn(joiner("j2", box))

    Scheduler().run(main())
    assert events == ["j1 waits", "j2 waits", "j1 got 7", "j2 got 7"]


def test_current_is_the_running_task_only_while_it_runs():
    sched = Scheduler()
    seen = []

    def task():
        seen.append(sched.current)
        yield from sleep(0)

    sched.run(task())
    assert [t.name for t in seen] == ["task-1"]
    assert sched.current is None


def test_virtual_clock_moves_only_when_nothing_is_ready():
    sched = Scheduler()

    def busy():
        for _ in range(100):
            yield from sleep(0)
        return sched.time()

    assert sched.run(busy()) == [0.0]


def test_real_clock_waits_for_the_first_deadline():
    now = [100.0]
    waits = []

    def wait(seconds):
        waits.append(round(seconds, 6))
        now[0] += seconds

    sched = Scheduler(virtual=False, clock=lambda: now[0], wait=wait)

    def task():
        yield from sleep(0.25)
        yield from sleep(0.5)
        return sched.time()

    assert sched.run(task()) == [100.75]
    assert waits == [0.25, 0.5]


def test_scheduler_can_be_reused_after_a_run():
    sched = Scheduler()

    def task():
        yield from sleep(1)
        return "ok"

    assert sched.run(task()) == ["ok"]
    assert sched.run(task()) == ["ok"]
    assert sched.time() == 2


def test_traps_yield_their_requests():
    gen = sleep(0.5)
    assert gen.send(None) == Sleep(0.5)
    gen.close()
    gen = sleep(0)
    assert gen.send(None) is None
    gen.close()
    child = iter(())
    gen = spawn(child)
    assert gen.send(None) == Spawn(child)
    gen.close()
    task = Task(iter(()), "t")
    gen = join(task)
    assert gen.send(None) == Join(task)
    gen.close()


# -- The scheduler's errors, as chapter 9 shows them -----------------------------------


def test_unknown_request_is_thrown_into_the_task_at_its_yield():
    def rude():
        yield 5

    with pytest.raises(TypeError, match=r"^unknown request to the scheduler: 5$"):
        Scheduler().run(rude())


def test_a_task_may_catch_the_unknown_request_error_and_go_on():
    def careful():
        try:
            yield "hello"
        except TypeError as error:
            return str(error)

    assert Scheduler().run(careful()) == ["unknown request to the scheduler: 'hello'"]


def test_run_refuses_what_is_not_a_generator_or_coroutine():
    def not_a_generator():
        return "I never yield"

    with pytest.raises(
        TypeError, match=r"^a generator or coroutine was expected, got str$"
    ):
        Scheduler().run(not_a_generator())


def test_spawning_a_non_generator_throws_into_the_spawner():
    def parent():
        try:
            yield from spawn(42)
        except TypeError as error:
            return str(error)

    assert Scheduler().run(parent()) == [
        "a generator or coroutine was expected, got int"
    ]


def test_run_cannot_be_nested():
    sched = Scheduler()

    def nested():
        sched.run(iter(()))
        yield

    with pytest.raises(
        RuntimeError,
        match=r"^Scheduler.run\(\) cannot be called from a running scheduler$",
    ):
        sched.run(nested())


def test_deadlock_is_detected_and_the_stuck_tasks_are_closed():
    closed = []

    def pair():
        tasks = {}

        def wait_for(other):
            try:
                yield from sleep(0.1)
                return (yield from join(tasks[other]))
            finally:
                closed.append(other)

        tasks["a"] = yield from spawn(wait_for("b"))
        tasks["b"] = yield from spawn(wait_for("a"))
        return (yield from join(tasks["a"]))

    with pytest.raises(
        RuntimeError, match=r"^deadlock: task-1, task-2, task-3 wait for each other$"
    ):
        Scheduler().run(pair())
    assert closed == ["b", "a"]


def test_a_task_joining_itself_is_a_deadlock():
    sched = Scheduler()

    def selfish():
        yield from join(sched.current)

    with pytest.raises(RuntimeError, match=r"^deadlock: task-1 wait for each other$"):
        sched.run(selfish())


def test_keyboard_interrupt_propagates_and_closes_the_others():
    events = []

    def other():
        try:
            yield from sleep(10)
        finally:
            events.append("other closed")

    def interrupted():
        yield from sleep(0)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        Scheduler().run(other(), interrupted())
    assert events == ["other closed"]


# -- The typist, as a generator and as async def, on the same trap ---------------------


def test_typist_generator_types_and_returns_the_pauses():
    out = io.StringIO()
    sched = Scheduler()
    [waited] = sched.run(typist_generator(rng=random.Random(SEED), out=out))
    assert out.getvalue() == "Hello, world!\n"
    assert waited == pytest.approx(sum(keystroke_pauses(rng=random.Random(SEED))))
    assert sched.time() == pytest.approx(waited)


@pytest.mark.parametrize(
    "sleep_trap",
    [sleep, coroutines.sleep],
    ids=["generators.sleep", "coroutines.sleep"],
)
def test_async_typist_runs_on_the_generator_scheduler(sleep_trap):
    out = io.StringIO()
    sched = Scheduler()
    [waited] = sched.run(typist(rng=random.Random(SEED), out=out, sleep=sleep_trap))
    assert out.getvalue() == "Hello, world!\n"
    assert sched.time() == pytest.approx(waited)


def test_generator_and_async_typists_interleave_by_time():
    sched = Scheduler()
    keys = []

    class Log(io.StringIO):
        def __init__(self, name):
            super().__init__()
            self.name = name

        def write(self, text):
            if text.strip():
                keys.append((sched.time(), self.name))
            return super().write(text)

    sched.run(
        typist_generator("ab", rng=random.Random(1), out=Log("gen")),
        typist("ab", rng=random.Random(2), out=Log("async"), sleep=sleep),
    )
    arrivals = []
    for name, seed in [("gen", 1), ("async", 2)]:
        pauses = keystroke_pauses("ab", random.Random(seed))
        arrivals += [(pauses[0], name), (pauses[0] + pauses[1], name)]
    arrivals.sort()
    assert [name for _, name in keys] == [name for _, name in arrivals]
    assert [t for t, _ in keys] == pytest.approx([t for t, _ in arrivals])


def test_our_trap_is_a_bad_yield_for_the_stdlib_task():
    with pytest.raises(RuntimeError, match=r"^Task got bad yield: Sleep\(delay=0.5\)$"):
        asyncio.run(
            typist(
                "a",
                rng=random.Random(SEED),
                out=io.StringIO(),
                sleep=lambda _: sleep(0.5),
            )
        )


def test_types_coroutine_generator_style_runs_on_stdlib_asyncio():
    out = []

    @types.coroutine
    def old_style(n):
        for i in range(n):
            yield from asyncio.sleep(0)
            out.append(i)
        return "done"

    async def main():
        return await old_style(3)

    assert asyncio.run(main()) == "done"
    assert out == [0, 1, 2]


# -- gi_yieldfrom and cr_await ---------------------------------------------------------


def test_gi_yieldfrom_and_cr_await_lead_down_the_same_chain():
    @types.coroutine
    def nap(delay):
        yield from trap(Sleep(delay))

    def generator_task():
        yield from nap(0.25)

    async def coroutine_task():
        await nap(0.25)

    gen, coro = generator_task(), coroutine_task()
    assert gen.gi_yieldfrom is None and coro.cr_await is None  # not started
    assert gen.send(None) == coro.send(None) == Sleep(0.25)
    for top, below in [(gen, gen.gi_yieldfrom), (coro, coro.cr_await)]:
        assert await_chain(top)[1:] == [below, below.gi_yieldfrom]
        assert below.gi_code is nap.__code__
        assert below.gi_yieldfrom.gi_code is trap.__code__
        assert below.gi_yieldfrom.gi_yieldfrom is None  # the bottom: a plain yield
        top.close()


# -- The generator protocol's errors, as chapter 9 shows them --------------------------


def test_stopiteration_inside_a_generator_becomes_runtime_error():
    def leaky():
        yield next(iter([]))

    with pytest.raises(RuntimeError, match=r"^generator raised StopIteration$"):
        next(leaky())


def test_first_send_must_be_none():
    def averager():
        yield

    with pytest.raises(
        TypeError, match=r"^can't send non-None value to a just-started generator$"
    ):
        averager().send(10)


def test_yielding_in_finally_on_close_is_refused():
    def stubborn():
        try:
            yield "first"
        finally:
            yield "refuses to stop"

    s = stubborn()
    next(s)
    with pytest.raises(RuntimeError, match=r"^generator ignored GeneratorExit$"):
        s.close()


def test_a_generator_cannot_resume_itself():
    def selfish():
        yield next(me)

    me = selfish()
    with pytest.raises(ValueError, match=r"^generator already executing$"):
        next(me)


def test_a_native_coroutine_is_not_iterable():
    async def answer():
        return 42

    coro = answer()
    with pytest.raises(TypeError, match=r"^'coroutine' object is not iterable$"):
        iter(coro)
    coro.close()


def test_a_plain_generator_cannot_yield_from_a_native_coroutine():
    async def answer():
        return 42

    def old_style():
        return (yield from answer())

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(
            TypeError,
            match=r"^cannot 'yield from' a coroutine object "
            r"in a non-coroutine generator$",
        ):
            next(old_style())
        gc.collect()
    assert [str(w.message) for w in caught] == [
        f"coroutine '{answer.__qualname__}' was never awaited"
    ]


def test_await_refuses_a_plain_generator():
    def plain():
        yield

    async def awaits_plain():
        await plain()

    with pytest.raises(TypeError, match=not_awaitable("generator")):
        awaits_plain().send(None)


def test_types_coroutine_generator_may_yield_from_a_native_coroutine():
    async def answer():
        return 42

    @types.coroutine
    def bridge():
        result = yield from answer()
        yield f"bridge got {result}"

    async def awaits_bridge():
        await bridge()

    c = awaits_bridge()
    assert c.send(None) == "bridge got 42"
    c.close()


def test_a_generator_keeps_one_frame_across_resumptions():
    def steps():
        yield "first"
        yield "second"

    gen = steps()
    next(gen)
    frame, offset = gen.gi_frame, gen.gi_frame.f_lasti
    next(gen)
    assert gen.gi_frame is frame
    assert frame.f_lasti > offset  # the frame moved on, it was not rebuilt
    assert list(gen) == [] and gen.gi_frame is None


def _delegating(log):
    def inner():
        try:
            yield "inner paused"
        except BaseException as exc:  # noqa: BLE001 - catches even GeneratorExit
            log.append(f"inner caught {type(exc).__name__}")
            return "inner's result"

    def outer():
        try:
            result = yield from inner()
            log.append(f"outer goes on with {result!r}")
            yield "outer paused"
        finally:
            log.append("outer's finally")

    gen = outer()
    next(gen)
    return gen


def test_throw_caught_by_the_delegate_lets_the_caller_go_on():
    log = []
    gen = _delegating(log)
    assert gen.throw(ValueError()) == "outer paused"
    gen.close()
    assert log == [
        "inner caught ValueError",
        "outer goes on with \"inner's result\"",
        "outer's finally",
    ]


def test_close_reaches_the_caller_even_if_the_delegate_returns():
    log = []
    gen = _delegating(log)
    gen.close()  # PEP 380: close the delegate, then GeneratorExit in the caller
    assert log == ["inner caught GeneratorExit", "outer's finally"]
    assert inspect.getgeneratorstate(gen) == inspect.GEN_CLOSED
