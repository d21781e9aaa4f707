"""asynciodepth.timeout/timeout_at against asyncio's, on every loop setup.

As in test_taskgroups.py, each scenario runs with asyncio's functions and
with ours on the same setup; the event lists must match each other and the
expectation. Deadlines are shown relative to the start, so that the real
clock of the stdlib loop gives the same text as the virtual clock.
"""

from __future__ import annotations

import asyncio
import sys
from types import SimpleNamespace

import pytest
from conftest import compare_with_asyncio
from cpython_suite import run_with_ours

import asynciodepth

IMPLS = {
    "asyncio": SimpleNamespace(timeout=asyncio.timeout, timeout_at=asyncio.timeout_at),
    "ours": SimpleNamespace(
        timeout=asynciodepth.timeout, timeout_at=asynciodepth.timeout_at
    ),
}
PY313 = sys.version_info >= (3, 13)


def both(setup, scenario) -> list[str]:
    """Run scenario(impl, events) with asyncio's timeouts and ours."""
    return compare_with_asyncio(setup, IMPLS, scenario)


def state(cm, start: float) -> str:
    """repr() with the deadline made relative to start."""
    text = repr(cm)
    if " when=" in text and cm.when() is not None:
        text = text.split(" when=")[0] + f" when=+{cm.when() - start:.2f}>"
    return text


def test_expires(setup):
    async def scenario(impl, events):
        task = asyncio.current_task()
        start = asyncio.get_running_loop().time()
        cm = impl.timeout(0.05)
        events.append(state(cm, start))
        try:
            async with cm:
                events.append(state(cm, start))
                try:
                    await asyncio.sleep(1)
                except asyncio.CancelledError:
                    events.append(f"{state(cm, start)} expired={cm.expired()}")
                    raise
        except TimeoutError as exc:
            events.append(f"TimeoutError cause={type(exc.__cause__).__name__}")
        events.append(f"{state(cm, start)} expired={cm.expired()}")
        events.append(f"cancelling={task.cancelling()}")

    assert both(setup, scenario) == [
        "<Timeout [created]>",
        "<Timeout [active] when=+0.05>",
        "<Timeout [expiring]> expired=True",
        "TimeoutError cause=CancelledError",
        "<Timeout [expired]> expired=True",
        "cancelling=0",
    ]


def test_finishes_in_time_and_none_never_expires(setup):
    async def scenario(impl, events):
        start = asyncio.get_running_loop().time()
        for cm in (impl.timeout(1), impl.timeout(None), impl.timeout_at(None)):
            async with cm:
                events.append(state(cm, start))
                await asyncio.sleep(0.01)
            events.append(f"{state(cm, start)} expired={cm.expired()}")

    assert both(setup, scenario) == [
        "<Timeout [active] when=+1.00>",
        "<Timeout [finished]> expired=False",
        "<Timeout [active] when=None>",
        "<Timeout [finished]> expired=False",
        "<Timeout [active] when=None>",
        "<Timeout [finished]> expired=False",
    ]


def test_reschedule(setup):
    async def scenario(impl, events):
        loop = asyncio.get_running_loop()
        start = loop.time()
        try:
            async with impl.timeout(None) as cm:
                cm.reschedule(start + 0.02)
                events.append(state(cm, start))
                cm.reschedule(start + 5)
                events.append(state(cm, start))
                cm.reschedule(None)
                events.append(state(cm, start))
                await asyncio.sleep(0.03)
                events.append("survived the first deadline")
                cm.reschedule(loop.time() - 1)  # in the past: next iteration
                await asyncio.sleep(1)
        except TimeoutError:
            events.append(f"timed out at once, expired={cm.expired()}")

    assert both(setup, scenario) == [
        "<Timeout [active] when=+0.02>",
        "<Timeout [active] when=+5.00>",
        "<Timeout [active] when=None>",
        "survived the first deadline",
        "timed out at once, expired=True",
    ]


def test_timeout_at_in_the_past(setup):
    async def scenario(impl, events):
        loop = asyncio.get_running_loop()
        try:
            async with impl.timeout_at(loop.time() - 10):
                events.append("entered")
                await asyncio.sleep(0)
                events.append("not reached")
        except TimeoutError:
            events.append("TimeoutError")

    assert both(setup, scenario) == ["entered", "TimeoutError"]


def test_misuse_messages(setup):
    async def scenario(impl, events):
        def attempt(what, call):
            try:
                call()
            except RuntimeError as exc:
                events.append(f"{what}: {exc}")

        cm = impl.timeout(1)
        attempt("before", lambda: cm.reschedule(None))
        async with cm:
            try:
                async with cm:
                    pass
            except RuntimeError as exc:
                events.append(f"twice: {exc}")
        attempt("finished", lambda: cm.reschedule(None))
        expired = impl.timeout(0)
        try:
            async with expired:
                await asyncio.sleep(1)
        except TimeoutError:
            pass
        attempt("expired", lambda: expired.reschedule(None))

    assert both(setup, scenario) == [
        "before: Timeout has not been entered",
        "twice: Timeout has already been entered",
        "finished: Cannot change state of finished Timeout",
        "expired: Cannot change state of expired Timeout",
    ]


def test_outside_a_task(setup):
    loop = setup.new_loop()
    try:
        messages = []
        for impl in IMPLS.values():

            def step(impl=impl):
                coro = impl.timeout(1).__aenter__()
                try:
                    coro.send(None)
                except RuntimeError as exc:
                    messages.append(str(exc))

            loop.call_soon(step)
            loop.call_soon(loop.stop)
            loop.run_forever()
        assert messages == ["Timeout should be used inside a task"] * 2
    finally:
        loop.close()


def test_outside_cancellation_stays_a_cancellation(setup):
    async def scenario(impl, events):
        async def victim(delay):
            async with impl.timeout(delay):
                await asyncio.sleep(1)
            events.append("not reached")

        for delay in (5, 0.02):
            task = asyncio.create_task(victim(delay))
            await asyncio.sleep(0.01)
            task.cancel()
            if delay == 0.02:
                await asyncio.sleep(0)
            try:
                await task
            except asyncio.CancelledError:
                events.append(
                    f"cancelled={task.cancelled()} cancelling={task.cancelling()}"
                )

    assert both(setup, scenario) == [
        "cancelled=True cancelling=1",
        "cancelled=True cancelling=1",
    ]


def test_cancelled_from_outside_while_expiring(setup):
    """Both cancellations arrive in the same step: the outside one wins."""

    async def scenario(impl, events):
        async def victim():
            async with impl.timeout(0.02):
                await asyncio.sleep(1)

        task = asyncio.create_task(victim())
        loop = asyncio.get_running_loop()
        # Cancel from outside right after the timeout's own timer fires.
        loop.call_at(loop.time() + 0.02, lambda: loop.call_soon(task.cancel))
        try:
            await task
            events.append("finished")
        except asyncio.CancelledError:
            events.append(f"CancelledError cancelling={task.cancelling()}")
        except TimeoutError:
            events.append("TimeoutError")

    result = both(setup, scenario)
    assert result in (["CancelledError cancelling=1"], ["TimeoutError"])


def test_nested_timeouts(setup):
    async def scenario(impl, events):
        for outer_delay, inner_delay in ((0.05, 0.02), (0.02, 0.05)):
            try:
                async with impl.timeout(outer_delay) as outer:
                    try:
                        async with impl.timeout(inner_delay) as inner:
                            await asyncio.sleep(1)
                    except TimeoutError:
                        events.append("inner TimeoutError")
                        raise
                    except asyncio.CancelledError:
                        events.append("inner passes CancelledError on")
                        raise
            except TimeoutError:
                events.append(
                    f"outer TimeoutError, expired: inner={inner.expired()} "
                    f"outer={outer.expired()}"
                )

    assert both(setup, scenario) == [
        "inner TimeoutError",
        "outer TimeoutError, expired: inner=True outer=False",
        "inner passes CancelledError on",
        "outer TimeoutError, expired: inner=False outer=True",
    ]


def test_swallowed_cancellation_means_no_timeout_error(setup):
    async def scenario(impl, events):
        task = asyncio.current_task()
        async with impl.timeout(0.01) as cm:
            try:
                await asyncio.sleep(1)
            except asyncio.CancelledError:
                events.append("swallowed")
            await asyncio.sleep(0.02)
            events.append("block ran to its end")
        events.append(f"expired={cm.expired()} cancelling={task.cancelling()}")

    assert both(setup, scenario) == [
        "swallowed",
        "block ran to its end",
        "expired=True cancelling=0",
    ]


def test_other_error_while_expiring(setup):
    """3.13+ thread a TimeoutError into the context chain; 3.11 does not."""

    async def scenario(impl, events):
        try:
            async with impl.timeout(0.01):
                try:
                    await asyncio.sleep(1)
                except asyncio.CancelledError:
                    raise ValueError("cleanup failed")
        except ValueError as exc:
            chain = []
            link = exc.__context__
            while link is not None:
                chain.append(type(link).__name__)
                link = link.__context__
            events.append(" <- ".join(["ValueError", *chain]))

    expected = "ValueError <- TimeoutError <- CancelledError"
    if not PY313:
        expected = "ValueError <- CancelledError"
    assert both(setup, scenario) == [expected]


def test_timeout_error_from_a_group(setup):
    async def scenario(impl, events):
        try:
            async with impl.timeout(0.01), asynciodepth.TaskGroup() as tg:
                tg.create_task(asyncio.sleep(1))
        except TimeoutError:
            events.append("TimeoutError")

    assert both(setup, scenario) == ["TimeoutError"]


def test_group_raised_while_expiring(setup):
    """3.13+ also thread the TimeoutError into each member of an ExceptionGroup."""

    async def scenario(impl, events):
        async def refuses():
            try:
                await asyncio.sleep(1)
            except asyncio.CancelledError:
                raise ValueError("refused") from None

        def chain(exc):
            names = []
            while exc is not None:
                names.append(type(exc).__name__)
                exc = exc.__context__
            return " <- ".join(names)

        try:
            async with impl.timeout(0.01), asyncio.TaskGroup() as tg:
                tg.create_task(refuses())
                try:
                    await asyncio.sleep(1)
                except asyncio.CancelledError:
                    raise KeyError("body") from None
        except ExceptionGroup as group:
            events.append(f"group: {chain(group)}")
            events.extend(f"member: {chain(exc)}" for exc in group.exceptions)

    # The body's KeyError is in the group's chain and is a member as well, so
    # 3.13 walks it twice and threads a TimeoutError in twice: asyncio's own
    # behaviour, which ours reproduces.
    expected = [
        "group: ExceptionGroup <- KeyError <- CancelledError",
        "member: ValueError <- CancelledError",
        "member: KeyError <- CancelledError",
    ]
    if PY313:
        expected = [
            (
                "group: ExceptionGroup <- KeyError <- TimeoutError <- TimeoutError"
                " <- CancelledError"
            ),
            "member: ValueError <- TimeoutError <- CancelledError",
            "member: KeyError <- TimeoutError <- TimeoutError <- CancelledError",
        ]
    assert both(setup, scenario) == expected


def test_cpython_test_timeouts_passes_with_ours():
    """CPython's own tests of timeout(), this version's, with ours as asyncio's."""
    outcome = run_with_ours("test_timeouts")
    if outcome is None:
        pytest.skip("this Python has no test.test_asyncio")
    assert outcome["run"] > 30
    assert outcome["failed"] == []
