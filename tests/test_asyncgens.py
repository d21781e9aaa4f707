"""Tests for async generators (book/10_async_generators.ipynb -> asyncgens.py).

Finalisation runs on every loop setup of conftest.py (the `setup` fixture): the
stdlib loop, asynciodepth's own `EventLoop`, and ours with asyncio's C Task, so that
an abandoned generator's `finally` is shown to run on all alike, also at shutdown.
Each error case that chapter 10 shows is a test here.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import sys
import threading
import weakref

import pytest

from asynciodepth.asyncgens import Keystrokes, asyncgen_hooks, keystrokes
from asynciodepth.generators import Scheduler
from asynciodepth.generators import sleep as scheduler_sleep
from asynciodepth.hello import keystroke_pauses

SEED = 2024


def run_like_asyncio_run(loop_factory, main, log=None):
    """Run `main()` as asyncio.run does: then shutdown_asyncgens, then close."""
    loop = loop_factory()
    try:
        return loop.run_until_complete(main())
    finally:
        if log is not None:
            log.append("shutdown_asyncgens")
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


def in_fresh_thread(experiment):
    """Run `experiment()` in a new thread (no asyncgen hooks yet); return its result."""
    result = []
    errors = []

    def target():
        try:
            result.append(experiment())
        except BaseException as error:  # noqa: BLE001 - re-raised in the caller
            errors.append(error)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return result[0]


def fast_sleep(delay):
    return asyncio.sleep(delay / 100)


# -- The stream, as an async generator and as a class ----------------------------------


@pytest.mark.parametrize("make", [keystrokes, Keystrokes], ids=["generator", "class"])
def test_stream_yields_the_keys_at_the_typists_times(make):
    sched = Scheduler()

    async def reader():
        return [
            (key, sched.time())
            async for key in make(rng=random.Random(SEED), sleep=scheduler_sleep)
        ]

    [arrivals] = sched.run(reader())
    pauses = keystroke_pauses(rng=random.Random(SEED))
    assert "".join(key for key, _ in arrivals) == "Hello, world!"
    assert [t for _, t in arrivals] == pytest.approx(
        [sum(pauses[: i + 1]) for i in range(len(pauses))]
    )


@pytest.mark.parametrize("make", [keystrokes, Keystrokes], ids=["generator", "class"])
def test_stream_on_an_event_loop(setup, make):
    async def main():
        return "".join(
            [key async for key in make("abc", rng=random.Random(1), sleep=fast_sleep)]
        )

    assert run_like_asyncio_run(setup.new_loop, main) == "abc"


def test_class_step_cancelled_in_its_pause_loses_no_key(setup):
    async def main():
        keys = Keystrokes("ab", rng=random.Random(1), sleep=lambda _: asyncio.sleep(10))
        step = asyncio.ensure_future(keys.__anext__())
        await asyncio.sleep(0)
        step.cancel()
        with pytest.raises(asyncio.CancelledError):
            await step
        keys._sleep = lambda _: asyncio.sleep(0)
        return [key async for key in keys]

    assert run_like_asyncio_run(setup.new_loop, main) == ["a", "b"]


def test_asend_athrow_aclose_drive_the_body():
    events = []

    async def averager():
        total, count, average = 0.0, 0, None
        try:
            while True:
                try:
                    value = yield average
                except ValueError as error:
                    events.append(f"ignored {error}")
                    continue
                total, count = total + value, count + 1
                average = total / count
        finally:
            events.append("closed")

    async def main():
        avg = averager()
        results = [await avg.asend(None), await avg.asend(10), await avg.asend(20)]
        results.append(await avg.athrow(ValueError("nan")))
        results.append(await avg.asend(60))
        await avg.aclose()
        return results

    assert asyncio.run(main()) == [None, 10.0, 15.0, 15.0, 30.0]
    assert events == ["ignored nan", "closed"]


# -- The protocol's errors, as chapter 10 shows them -----------------------------------


def test_first_asend_must_be_none():
    async def main():
        async def gen():
            yield

        with pytest.raises(
            TypeError,
            match=r"^can't send non-None value to a just-started async generator$",
        ):
            await gen().asend(10)

    asyncio.run(main())


def test_return_with_value_in_async_generator_is_a_syntax_error():
    with pytest.raises(SyntaxError, match=r"^'return' with value in async generator"):
        compile("async def f():\n    yield 1\n    return 2\n", "<cell>", "exec")


def test_plain_for_refuses_an_async_generator():
    gen = keystrokes()
    with pytest.raises(TypeError, match=r"^'async_generator' object is not iterable$"):
        for _ in gen:  # type: ignore[attr-defined]
            pass


def test_async_for_refuses_what_has_no_aiter():
    async def main():
        async for _ in 42:  # type: ignore[attr-defined]
            pass

    with pytest.raises(
        TypeError,
        match=r"^'async for' requires an object with __aiter__ method, got int$",
    ):
        asyncio.run(main())


def test_async_for_refuses_an_aiter_without_anext():
    class BadAiter:
        def __aiter__(self):
            return 42

    async def main():
        async for _ in BadAiter():
            pass

    with pytest.raises(
        TypeError,
        match=r"^'async for' received an object from __aiter__ that does not "
        r"implement __anext__: int$",
    ):
        asyncio.run(main())


def test_a_second_anext_while_the_first_runs_is_refused(setup):
    async def main():
        keys = keystrokes(rng=random.Random(SEED), sleep=fast_sleep)
        first = asyncio.ensure_future(keys.__anext__())
        await asyncio.sleep(0)
        with pytest.raises(
            RuntimeError,
            match=r"^anext\(\): asynchronous generator is already running$",
        ):
            await keys.__anext__()
        key = await first
        await keys.aclose()
        return key

    assert run_like_asyncio_run(setup.new_loop, main) == "H"


def test_aclose_refuses_a_body_that_yields_again(setup):
    async def stubborn():
        try:
            yield "first"
        finally:
            yield "refuses to stop"

    async def main():
        s = stubborn()
        await s.__anext__()
        with pytest.raises(
            RuntimeError, match=r"^async generator ignored GeneratorExit$"
        ):
            await s.aclose()

    run_like_asyncio_run(setup.new_loop, main)


def test_asynccontextmanager_is_an_async_generator_in_disguise():
    events = []

    @contextlib.asynccontextmanager
    async def session():
        events.append("enter")
        try:
            yield "seat"
        finally:
            events.append("exit")

    async def main():
        cm = session()
        assert type(cm.gen).__name__ == "async_generator"
        async with cm as seat:
            events.append(seat)
        with pytest.raises(KeyError):
            async with session():
                raise KeyError("thrown in with athrow")

    asyncio.run(main())
    assert events == ["enter", "seat", "exit", "enter", "exit"]


def test_asynccontextmanager_that_yields_twice():
    @contextlib.asynccontextmanager
    async def yields_twice():
        yield 1
        yield 2

    async def main():
        async with yields_twice():
            pass

    with pytest.raises(RuntimeError, match=r"^generator didn't stop$"):
        asyncio.run(main())


def test_asynccontextmanager_that_never_yields():
    @contextlib.asynccontextmanager
    async def never_yields():
        if False:
            yield

    async def main():
        async with never_yields():
            pass

    with pytest.raises(RuntimeError, match=r"^generator didn't yield$"):
        asyncio.run(main())


# -- Hooks and finalisation ------------------------------------------------------------


def test_asyncgen_hooks_installs_and_restores_even_on_error():
    def experiment():
        def first(agen):
            pass

        def final(agen):
            pass

        seen = [sys.get_asyncgen_hooks()]
        with pytest.raises(KeyError):
            with asyncgen_hooks(firstiter=first, finalizer=final):
                seen.append(sys.get_asyncgen_hooks())
                raise KeyError("inside")
        seen.append(sys.get_asyncgen_hooks())
        return seen, first, final

    (before, during, after), first, final = in_fresh_thread(experiment)
    assert before == after == (None, None)
    assert during == (first, final)


def _typed_keys(log, sleep):
    async def typed_keys():
        try:
            async for key in keystrokes(rng=random.Random(SEED), sleep=sleep):
                yield key
        finally:
            log.append("finally starts")
            await sleep(0)
            log.append("finally done")

    return typed_keys()


async def _reader(log, sleep, keep=None):
    typed = ""
    keys = _typed_keys(log, sleep)
    if keep is not None:
        keep.append(keys)
    async for key in keys:
        typed += key
        if typed == "Hello":
            break
    del keys
    log.append(f"reader breaks with {typed!r}")


def test_without_hooks_the_abandoned_finally_cannot_await():
    def experiment():
        log = []
        previous = sys.unraisablehook
        sys.unraisablehook = lambda u: log.append(
            f"unraisable {type(u.exc_value).__name__}: {u.exc_value}"
        )
        try:
            Scheduler().run(_reader(log, scheduler_sleep))
        finally:
            sys.unraisablehook = previous
        return log

    assert in_fresh_thread(experiment) == [
        "finally starts",
        "unraisable RuntimeError: async generator ignored GeneratorExit",
        "reader breaks with 'Hello'",
    ]


def test_loop_hooks_finish_an_abandoned_generator(setup):
    def experiment():
        log = []

        async def main():
            hooks = sys.get_asyncgen_hooks()
            assert hooks.firstiter is not None and hooks.finalizer is not None

            def finalizer(agen):
                log.append("finalizer hook")
                hooks.finalizer(agen)

            sys.set_asyncgen_hooks(firstiter=hooks.firstiter, finalizer=finalizer)
            await _reader(log, asyncio.sleep)
            for _ in range(3):
                await asyncio.sleep(0)
            log.append("main returns")

        run_like_asyncio_run(setup.new_loop, main)
        log.append(f"hooks after: {tuple(sys.get_asyncgen_hooks())}")
        return log

    assert in_fresh_thread(experiment) == [
        "finalizer hook",
        "reader breaks with 'Hello'",
        "finalizer hook",
        "finally starts",
        "finally done",
        "main returns",
        "hooks after: (None, None)",
    ]


def test_shutdown_asyncgens_finishes_a_generator_still_alive(setup):
    kept = []

    def experiment():
        log = []

        async def main():
            await _reader(log, asyncio.sleep, keep=kept)

        run_like_asyncio_run(setup.new_loop, main, log)
        return log

    assert in_fresh_thread(experiment) == [
        "reader breaks with 'Hello'",
        "shutdown_asyncgens",
        "finally starts",
        "finally done",
    ]


def test_our_hooks_on_the_generator_scheduler():
    def experiment():
        log = []
        sched = Scheduler()
        alive = weakref.WeakSet()
        kept = []

        def finalizer(agen):
            log.append("finalizer hook")
            sched.spawn(agen.aclose())

        with asyncgen_hooks(firstiter=alive.add, finalizer=finalizer):
            sched.run(_reader(log, scheduler_sleep))
            sched.run(_reader(log, scheduler_sleep, keep=kept))
            log.append(f"alive after the runs: {len(alive)}")
            sched.run(*(agen.aclose() for agen in alive))
        return log

    assert in_fresh_thread(experiment) == [
        "finalizer hook",
        "reader breaks with 'Hello'",
        "finalizer hook",
        "finally starts",
        "finally done",
        "reader breaks with 'Hello'",
        "alive after the runs: 2",
        "finally starts",
        "finally done",
    ]


# -- Closing it yourself, and what the hooks cost ---------------------------------------


def test_aclosing_finishes_the_finally_before_the_reader_goes_on_without_hooks():
    async def closing_reader(log):
        typed = ""
        async with contextlib.aclosing(_typed_keys(log, scheduler_sleep)) as keys:
            async for key in keys:
                typed += key
                if typed == "Hello":
                    break
        log.append(f"reader goes on after {typed!r}")

    def experiment():
        log = []
        Scheduler().run(closing_reader(log))  # no hooks in this thread
        return log

    assert in_fresh_thread(experiment) == [
        "finally starts",
        "finally done",
        "reader goes on after 'Hello'",
    ]


@pytest.mark.parametrize("close", [False, True], ids=["abandoned", "aclosing"])
def test_where_an_abandoned_generators_finally_runs_and_who_sees_its_error(setup, close):
    def experiment():
        log = []

        async def main():
            loop = asyncio.get_running_loop()
            loop.set_exception_handler(
                lambda loop, context: log.append(f"handler: {context['message']}")
            )
            reader = asyncio.current_task()

            async def stream():
                try:
                    yield "key"
                    yield "never"
                finally:
                    log.append(f"in the reader's task: {asyncio.current_task() is reader}")
                    await asyncio.sleep(0)
                    raise KeyError("flush failed")

            try:
                if close:
                    async with contextlib.aclosing(stream()) as keys:
                        async for _ in keys:
                            break
                else:
                    async for _ in stream():
                        break
            except KeyError as error:
                log.append(f"reader sees {error!r}")
            for _ in range(3):
                await asyncio.sleep(0)  # a moment for the aclose() task

        run_like_asyncio_run(setup.new_loop, main)
        return log

    expected = (
        ["in the reader's task: True", "reader sees KeyError('flush failed')"]
        if close
        else ["in the reader's task: False", "handler: Task exception was never retrieved"]
    )
    assert in_fresh_thread(experiment) == expected
