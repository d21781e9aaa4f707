"""asynciodepth.TaskGroup against asyncio.TaskGroup, on every loop setup.

Each scenario runs twice on the same setup (see conftest.py), once with
asyncio's TaskGroup and once with ours, and records what happened in a list
of events. The two lists must be equal, and equal to what the scenario
expects, so a test fails both when we drift from asyncio and when both
misbehave. The stdlib TaskGroup differs a little between 3.11, 3.12 and 3.13;
comparing with the running Python's checks each version's semantics.
"""

from __future__ import annotations

import asyncio
import sys

import pytest
from conftest import compare_with_asyncio, requires_312
from cpython_suite import run_with_ours

import asynciodepth
from asynciodepth import VirtualClock

IMPLS = {"asyncio": asyncio.TaskGroup, "ours": asynciodepth.TaskGroup}
PY313 = sys.version_info >= (3, 13)
PY314 = sys.version_info >= (3, 14)
PY315 = sys.version_info >= (3, 15)


def both_or_ours(setup, scenario, since: tuple[int, int]) -> list[str]:
    """Compare with asyncio's TaskGroup from Python `since` on; before, ours alone.

    Why: our TaskGroup has what asyncio added later (cancel() of 3.15) on every
    version, and behaves there as asyncio does on `since`.
    """
    if sys.version_info >= since:
        return both(setup, scenario)
    events: list[str] = []

    async def main():
        await asyncio.wait_for(scenario(asynciodepth.TaskGroup, events), 5)

    setup.run(main(), clock=VirtualClock())
    return events


def describe(exc: BaseException) -> str:
    """Type, message and, for groups, the members: what a user can observe."""
    if isinstance(exc, BaseExceptionGroup):
        inner = ", ".join(describe(e) for e in exc.exceptions)
        return f"{type(exc).__name__}({exc.message!r}, [{inner}])"
    return f"{type(exc).__name__}({', '.join(map(repr, exc.args))})"


def both(setup, scenario) -> list[str]:
    """Run scenario(TaskGroup, events) with both TaskGroups; return the events."""
    return compare_with_asyncio(setup, IMPLS, scenario)


async def crash(delay: float, exc: BaseException) -> None:
    await asyncio.sleep(delay)
    raise exc


def test_all_children_finish(setup):
    async def scenario(TG, events):
        async def child(name, delay):
            await asyncio.sleep(delay)
            events.append(f"{name} done")
            return name

        async with TG() as tg:
            a = tg.create_task(child("a", 0.02))
            b = tg.create_task(child("b", 0.01))
            events.append(repr(tg))
        events.append(repr(tg))
        events.append(f"results {a.result()} {b.result()}")

    assert both(setup, scenario) == [
        "<TaskGroup tasks=2 entered>",
        "b done",
        "a done",
        "<TaskGroup entered>",
        "results a b",
    ]


def test_failure_cancels_sibling_and_body(setup):
    async def scenario(TG, events):
        async def slow():
            try:
                await asyncio.sleep(1)
            except asyncio.CancelledError:
                events.append("sibling cancelled")
                raise

        task = asyncio.current_task()
        try:
            async with TG() as tg:
                tg.create_task(crash(0.01, ZeroDivisionError("boom")))
                tg.create_task(slow())
                try:
                    await asyncio.sleep(1)
                except asyncio.CancelledError:
                    events.append(f"body cancelled, cancelling={task.cancelling()}")
                    events.append(repr(tg))
                    raise
        except BaseException as exc:  # noqa: BLE001 (we record whatever it is)
            events.append(describe(exc))
            events.append(f"suppressed context: {exc.__suppress_context__}")
        events.append(f"after: cancelling={task.cancelling()}")
        await asyncio.sleep(0)
        events.append("parent goes on")

    assert both(setup, scenario) == [
        "sibling cancelled",
        "body cancelled, cancelling=1",
        "<TaskGroup tasks=1 errors=1 cancelling>",
        (
            "ExceptionGroup('unhandled errors in a TaskGroup', "
            "[ZeroDivisionError('boom')])"
        ),
        "suppressed context: True",
        "after: cancelling=0",
        "parent goes on",
    ]


def test_error_in_body_and_error_during_cleanup(setup):
    async def scenario(TG, events):
        async def stubborn():
            try:
                await asyncio.sleep(1)
            except asyncio.CancelledError:
                raise RuntimeError("cleanup failed") from None

        try:
            async with TG() as tg:
                tg.create_task(stubborn())
                await asyncio.sleep(0.01)
                raise ValueError("body")
        except* ValueError as group:
            events.append("body: " + describe(group))
        except* RuntimeError as group:
            events.append("child: " + describe(group))

    assert both(setup, scenario) == [
        "body: ExceptionGroup('unhandled errors in a TaskGroup', [ValueError('body')])",
        (
            "child: ExceptionGroup('unhandled errors in a TaskGroup', "
            "[RuntimeError('cleanup failed')])"
        ),
    ]


def test_errors_are_grouped_in_completion_order_body_last(setup):
    async def scenario(TG, events):
        async def stubborn(name):
            try:
                await asyncio.sleep(1)
            except asyncio.CancelledError:
                raise KeyError(name) from None

        try:
            async with TG() as tg:
                tg.create_task(crash(0.01, ZeroDivisionError("first")))
                tg.create_task(stubborn("late"))
                await asyncio.sleep(1)
        except BaseException as exc:  # noqa: BLE001 (we record whatever it is)
            events.append(describe(exc))

    assert both(setup, scenario) == [
        (
            "ExceptionGroup('unhandled errors in a TaskGroup', "
            "[ZeroDivisionError('first'), KeyError('late')])"
        )
    ]


def test_nested_groups_nest_their_exception_groups(setup):
    async def scenario(TG, events):
        try:
            async with TG() as outer:
                outer.create_task(asyncio.sleep(1))

                async def inner_group():
                    async with TG() as inner:
                        inner.create_task(crash(0.01, OSError("disk")))

                outer.create_task(inner_group())
        except BaseException as exc:  # noqa: BLE001 (we record whatever it is)
            events.append(describe(exc))

    assert both(setup, scenario) == [
        (
            "ExceptionGroup('unhandled errors in a TaskGroup', "
            "[ExceptionGroup('unhandled errors in a TaskGroup', [OSError('disk')])])"
        )
    ]


def test_cancelled_from_outside(setup):
    async def scenario(TG, events):
        async def child():
            try:
                await asyncio.sleep(1)
            except asyncio.CancelledError:
                events.append("child cancelled")
                raise

        async def parent():
            async with TG() as tg:
                tg.create_task(child())
            events.append("not reached")

        task = asyncio.create_task(parent())
        await asyncio.sleep(0.01)
        task.cancel("stop")
        try:
            await task
        except asyncio.CancelledError as exc:
            events.append(f"parent {describe(exc)}")
        events.append(f"cancelled={task.cancelled()} cancelling={task.cancelling()}")

    assert both(setup, scenario) == [
        "child cancelled",
        "parent CancelledError('stop')",
        "cancelled=True cancelling=1",
    ]


def test_cancelled_from_outside_while_a_child_fails(setup):
    """Errors win over an outside cancellation; 3.13 keeps the cancel pending."""

    async def scenario(TG, events):
        async def stubborn():
            try:
                await asyncio.sleep(1)
            except asyncio.CancelledError:
                raise ValueError("refused") from None

        async def parent():
            try:
                async with TG() as tg:
                    tg.create_task(stubborn())
            except BaseException as exc:  # noqa: BLE001 (we record whatever it is)
                events.append(describe(exc))
            events.append(f"cancelling={asyncio.current_task().cancelling()}")
            try:
                await asyncio.sleep(0.5)
                events.append("next await: ran")
            except asyncio.CancelledError:
                events.append("next await: cancelled")
                raise

        task = asyncio.create_task(parent())
        await asyncio.sleep(0.01)
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        events.append(f"task cancelled={task.cancelled()}")

    events = both(setup, scenario)
    assert events[0] == (
        "ExceptionGroup('unhandled errors in a TaskGroup', [ValueError('refused')])"
    )
    assert events[1] == "cancelling=1"
    if PY313:
        assert events[2:] == ["next await: cancelled", "task cancelled=True"]
    else:
        assert events[2:] == ["next await: ran", "task cancelled=False"]


def test_base_error_in_body_is_raised_ungrouped(setup):
    async def scenario(TG, events):
        async def child():
            try:
                await asyncio.sleep(1)
            except asyncio.CancelledError:
                events.append("child cancelled")
                raise

        try:
            async with TG() as tg:
                tg.create_task(child())
                await asyncio.sleep(0.01)
                raise SystemExit(3)
        except SystemExit as exc:
            events.append(describe(exc))

    assert both(setup, scenario) == ["child cancelled", "SystemExit(3)"]


def test_misuse_raises_asyncio_errors(setup):
    async def scenario(TG, events):
        def attempt(what, call):
            coro = asyncio.sleep(0)
            try:
                call(coro)
            except RuntimeError as exc:
                events.append(f"{what}: {exc}")
            finally:
                coro.close()

        tg = TG()
        attempt("before", tg.create_task)
        async with tg:
            try:
                async with tg:
                    pass
            except RuntimeError as exc:
                events.append(f"twice: {exc}")
            tg.create_task(crash(0, KeyError("k")))
            try:
                await asyncio.sleep(1)
            except asyncio.CancelledError:
                attempt("aborting", tg.create_task)
                raise
        events.append("not reached")

    results = {}
    for name, group_class in IMPLS.items():
        events: list[str] = []

        async def main(group_class=group_class, events=events):
            try:
                await scenario(group_class, events)
            except ExceptionGroup as exc:
                events.append(describe(exc))

        setup.run(main(), clock=VirtualClock())
        results[name] = events
    assert results["ours"] == results["asyncio"]
    assert results["ours"] == [
        "before: TaskGroup <TaskGroup> has not been entered",
        "twice: TaskGroup <TaskGroup entered> has already been entered",
        "aborting: TaskGroup <TaskGroup errors=1 cancelling> is shutting down",
        "ExceptionGroup('unhandled errors in a TaskGroup', [KeyError('k')])",
    ]


def test_finished_group_refuses_new_tasks(setup):
    async def scenario(TG, events):
        async with TG() as tg:
            pass
        coro = asyncio.sleep(0)
        try:
            tg.create_task(coro)
        except RuntimeError as exc:
            events.append(str(exc))
        finally:
            coro.close()

    assert both(setup, scenario) == ["TaskGroup <TaskGroup entered> is finished"]


def test_refused_coroutine_is_closed_on_313(setup):
    seen = {}
    for name, group_class in IMPLS.items():

        async def main(group_class=group_class):
            coro = asyncio.sleep(0)
            try:
                group_class().create_task(coro)
            except RuntimeError:
                pass
            return coro

        coro = setup.run(main())
        seen[name] = coro.cr_frame is None  # a closed coroutine has no frame
        coro.close()
    assert seen["ours"] == seen["asyncio"] == PY313


def test_no_parent_task(setup):
    loop = setup.new_loop()
    try:
        messages = []
        for group_class in IMPLS.values():
            coro = group_class().__aenter__()

            def step(coro=coro):
                try:
                    coro.send(None)
                except RuntimeError as exc:
                    messages.append(str(exc))

            loop.call_soon(step)
            loop.call_soon(loop.stop)
            loop.run_forever()
        assert (
            messages == ["TaskGroup <TaskGroup> cannot determine the parent task"] * 2
        )
    finally:
        loop.close()


@requires_312
def test_eager_child_that_finishes_at_once(setup):
    async def scenario(TG, events):
        async def instant(value):
            return value

        async with TG() as tg:
            task = tg.create_task(instant(7))
            events.append(f"{task.done()} {tg!r}")
        events.append(f"result {task.result()}")

    results = {}
    for name, group_class in IMPLS.items():
        events: list[str] = []
        loop = setup.new_loop(clock=VirtualClock())
        loop.set_task_factory(setup.eager_factory())
        try:
            loop.run_until_complete(scenario(group_class, events))
        finally:
            loop.close()
        results[name] = events
    assert results["ours"] == results["asyncio"]
    # 3.14 tracks the finished child until its done callback has run (gh-128550).
    tracked = " tasks=1" if PY314 else ""
    assert results["ours"] == [f"True <TaskGroup{tracked} entered>", "result 7"]


def test_works_with_our_timeout(setup):
    async def scenario(TG, events):
        task = asyncio.current_task()
        try:
            async with asynciodepth.timeout(0.05), TG() as tg:
                tg.create_task(asyncio.sleep(1))
                tg.create_task(asyncio.sleep(2))
        except TimeoutError:
            events.append(f"timed out, cancelling={task.cancelling()}")

    assert both(setup, scenario) == ["timed out, cancelling=0"]


def test_child_names_and_context(setup):
    import contextvars

    var = contextvars.ContextVar("var", default="unset")

    async def scenario(TG, events):
        async def show():
            events.append(f"{asyncio.current_task().get_name()} sees {var.get()}")

        context = contextvars.copy_context()
        context.run(var.set, "given")
        async with TG() as tg:
            tg.create_task(show(), name="named")
        async with TG() as tg:
            tg.create_task(show(), name="in-context", context=context)

    assert both(setup, scenario) == ["named sees unset", "in-context sees given"]


async def a_child_fails_while_the_parent_waits(TG):
    """A group whose second child fails while the parent waits in __aexit__."""
    async with TG() as tg:
        tg.create_task(asyncio.sleep(0.01))
        tg.create_task(crash(0.02, ValueError("late")))
        tg.create_task(asyncio.sleep(0.04))


def test_uncancel_when_a_child_fails_while_the_parent_waits_in_aexit(setup):
    """Before 3.13 the group's own cancellation stays counted in this case."""

    async def scenario(TG, events):
        try:
            await a_child_fails_while_the_parent_waits(TG)
        except* ValueError:
            pass
        events.append(f"cancelling={asyncio.current_task().cancelling()}")

    assert both(setup, scenario) == [f"cancelling={0 if PY313 else 1}"]


@pytest.mark.parametrize(
    "timeout", [asyncio.timeout, asynciodepth.timeout], ids=["asyncio", "ours"]
)
def test_the_count_left_at_1_defeats_a_timeout_around_the_group(setup, timeout):
    """Before 3.13 a timeout around such a group takes its cancellation for another's.

    The group leaves its parent's count at 1; the timeout, entered at 0, cancels
    (2) and uncancels (1), and lets the CancelledError through instead of raising
    TimeoutError. Chapter "Design patterns" shows it.
    """

    async def scenario(TG, events):
        try:
            async with timeout(0.1):
                try:
                    await a_child_fails_while_the_parent_waits(TG)
                except* ValueError:
                    pass
                await asyncio.sleep(1)  # the deadline passes here
        except TimeoutError:
            events.append("TimeoutError")
        except asyncio.CancelledError:  # caught only to record it
            events.append("CancelledError")

    assert both(setup, scenario) == ["TimeoutError" if PY313 else "CancelledError"]


# -- 3.15: TaskGroup.cancel(); ours has it on every version ----------------------


def test_cancel_stops_children_and_body_without_an_error(setup):
    async def scenario(TG, events):
        async def child(name, delay):
            try:
                await asyncio.sleep(delay)
                events.append(f"{name} done")
            except asyncio.CancelledError:
                events.append(f"{name} cancelled")
                raise

        async with TG() as tg:
            tg.create_task(child("fast", 0.01))
            tg.create_task(child("slow", 1))
            await asyncio.sleep(0.02)
            tg.cancel()
            events.append(repr(tg))
            try:
                await asyncio.sleep(1)
            except asyncio.CancelledError:
                events.append("body cancelled")
                raise
        events.append(f"after, cancelling={asyncio.current_task().cancelling()}")
        tg.cancel()  # idempotent, also after the exit
        events.append(repr(tg))

    assert both_or_ours(setup, scenario, (3, 15)) == [
        "fast done",
        "<TaskGroup tasks=1 cancelling>",
        "slow cancelled",
        "body cancelled",
        "after, cancelling=0",
        "<TaskGroup cancelling>",
    ]


def test_cancel_before_entering_cancels_on_entry(setup):
    async def scenario(TG, events):
        tg = TG()
        tg.cancel()
        async with tg:
            events.append(repr(tg))
            coro = asyncio.sleep(1)
            try:
                tg.create_task(coro)
            except RuntimeError as error:
                coro.close()  # 3.11 and 3.12 leave it open
                events.append(str(error))
            await asyncio.sleep(1)
            events.append("never")
        events.append("exited quietly")

    assert both_or_ours(setup, scenario, (3, 15)) == [
        "<TaskGroup cancelling>",
        "TaskGroup <TaskGroup cancelling> is shutting down",
        "exited quietly",
    ]


@pytest.mark.skipif(
    not PY313, reason="3.11 and 3.12 drop a cancellation that arrives while aborting"
)
def test_cancellation_from_outside_during_cancel_propagates(setup):
    """gh-155433 (3.15): the group takes back its own cancellation, not the other."""

    async def scenario(TG, events):
        parent = asyncio.current_task()
        loop = asyncio.get_running_loop()

        async def slow_cleanup():
            try:
                await asyncio.sleep(1)
            except asyncio.CancelledError:
                await asyncio.sleep(0.1)
                raise

        try:
            async with TG() as tg:
                tg.create_task(slow_cleanup())
                await asyncio.sleep(0.01)
                loop.call_later(0.05, parent.cancel)  # while __aexit__ waits
                tg.cancel()
                await asyncio.sleep(1)
        except asyncio.CancelledError:
            events.append(f"cancelled, cancelling={parent.cancelling()}")
            parent.uncancel()
        else:
            events.append("exited quietly")

    assert both_or_ours(setup, scenario, (3, 15)) == ["cancelled, cancelling=1"]


def test_generator_exit_from_the_body(setup):
    """3.15 lets a lone GeneratorExit through, so aclose() of a generator works."""

    async def scenario(TG, events):
        async def numbers():
            async with TG() as tg:
                tg.create_task(asyncio.sleep(0.01))
                yield 1
                yield 2

        gen = numbers()
        events.append(f"got {await anext(gen)}")
        try:
            await gen.aclose()
            events.append("closed quietly")
        except BaseException as error:  # noqa: BLE001 - the group, before 3.15
            events.append(describe(error))

    expected = (
        "closed quietly"
        if PY315
        else "BaseExceptionGroup('unhandled errors in a TaskGroup', [GeneratorExit()])"
    )
    assert both(setup, scenario) == ["got 1", expected]


def test_cpython_test_taskgroups_passes_with_ours():
    """CPython's own tests of TaskGroup, this version's, with ours as asyncio's."""
    outcome = run_with_ours("test_taskgroups")
    if outcome is None:
        pytest.skip("this Python has no test.test_asyncio")
    assert outcome["run"] > 30
    assert outcome["failed"] == []
