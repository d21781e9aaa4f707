"""RateLimiter, backoff_delays and retry (asynciodepth.patterns), on every setup.

asyncio has no counterpart to compare with, so these tests state the
schedule itself. On our loop with a VirtualClock the times are exact; on
the stdlib loop, with a real clock, the same schedule is checked with small
intervals, as lower bounds (a timer never fires early) and order.
"""

from __future__ import annotations

import asyncio
import random

import pytest

import asynciodepth
from asynciodepth import RateLimiter, VirtualClock, backoff_delays, retry


def run(setup, main):
    return setup.run(asyncio.wait_for(main(), 10), clock=VirtualClock())


def exact(setup) -> bool:
    """True when the loop runs on a VirtualClock (our loop in these tests)."""
    return setup.ours


def relative(times):
    return [t - times[0] for t in times]


@pytest.mark.parametrize("burst", [1, 3])
def test_rate_limiter_schedule(setup, burst):
    period = 1.0 if exact(setup) else 0.05
    limiter = RateLimiter(4, period, burst=burst)
    order = []

    async def caller(i):
        async with limiter:
            order.append((i, asyncio.get_running_loop().time()))

    async def main():
        await asyncio.gather(*(caller(i) for i in range(7)))

    run(setup, main)
    assert [i for i, _ in order] == list(range(7))  # first come, first served
    times = relative([t for _, t in order])
    interval = period / 4
    expected = [0.0] * burst + [interval * k for k in range(1, 7 - burst + 1)]
    if exact(setup):
        assert times == pytest.approx(expected)
    else:
        assert all(t >= e - 1e-3 for t, e in zip(times, expected))
        assert times[-1] < expected[-1] + 0.5


def test_rate_limiter_recovers_burst_after_quiet_spell(setup):
    if not exact(setup):
        pytest.skip("exact times need the virtual clock")
    limiter = RateLimiter(2, 1.0, burst=2)

    async def main():
        loop = asyncio.get_running_loop()
        times = []
        for pause in (0, 0, 0, 5, 0, 0):
            await asyncio.sleep(pause)
            await limiter.acquire()
            times.append(loop.time())
        return times

    assert run(setup, main) == pytest.approx([0, 0, 0.5, 5.5, 5.5, 6.0])


def test_cancelled_caller_gives_its_slot_back(setup):
    if not exact(setup):
        pytest.skip("exact times need the virtual clock")
    limiter = RateLimiter(1, 1.0)

    async def main():
        loop = asyncio.get_running_loop()
        await limiter.acquire()  # t=0, next slot at 1
        waiter = asyncio.create_task(limiter.acquire())  # takes the slot at 1
        await asyncio.sleep(0.5)
        waiter.cancel()
        await asyncio.gather(waiter, return_exceptions=True)
        await limiter.acquire()  # gets slot 1 back
        after_cancel = loop.time()
        # With a caller queued behind, a cancelled caller's slot is lost.
        first = asyncio.create_task(limiter.acquire())  # slot 2
        second = asyncio.create_task(limiter.acquire())  # slot 3
        await asyncio.sleep(0)
        first.cancel()
        await second
        return after_cancel, loop.time(), first.cancelled()

    assert run(setup, main) == pytest.approx((1.0, 3.0, True))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"rate": 0}, "rate must be > 0, got 0"),
        ({"rate": 1, "period": -1}, "period must be > 0, got -1"),
        ({"rate": 1, "burst": 0}, "burst must be an int >= 1, got 0"),
        ({"rate": 1, "burst": 1.5}, "burst must be an int >= 1, got 1.5"),
    ],
)
def test_rate_limiter_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError) as info:
        RateLimiter(**kwargs)
    assert str(info.value) == message


def test_backoff_delays_without_jitter_double_up_to_the_cap():
    delays = backoff_delays(base=0.5, factor=2, max_delay=3, jitter="none")
    assert [next(delays) for _ in range(6)] == [0.5, 1.0, 2.0, 3, 3, 3]


def test_backoff_delays_never_overflow():
    delays = backoff_delays(base=1, factor=10, max_delay=60, jitter="none")
    assert [next(delays) for _ in range(2000)][-1] == 60


@pytest.mark.parametrize("jitter", ["full", "equal"])
def test_backoff_jitter_bounds_and_seed(jitter):
    def take(seed):
        delays = backoff_delays(
            base=1, max_delay=8, jitter=jitter, rng=random.Random(seed)
        )
        return [next(delays) for _ in range(200)]

    values = take(7)
    assert values == take(7)  # seeded: reproducible
    assert values != take(8)
    ceilings = [min(8, 2**n) for n in range(200)]
    low = 0 if jitter == "full" else 0.5
    assert all(low * c <= v <= c for v, c in zip(values, ceilings))
    assert len(set(values)) == len(values)  # actually random


def test_backoff_rejects_unknown_jitter():
    with pytest.raises(ValueError, match="jitter must be one of"):
        next(backoff_delays(jitter="some"))


class Flaky:
    """Fails with the given errors, in order, then returns 'ok'."""

    def __init__(self, *errors):
        self.errors = list(errors)
        self.calls = []

    async def __call__(self, arg):
        self.calls.append((arg, asyncio.get_running_loop().time()))
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


def test_retry_succeeds_after_failures_with_backoff(setup):
    base = 1.0 if exact(setup) else 0.02
    flaky = Flaky(OSError("one"), OSError("two"))
    retries = []
    result = run(
        setup,
        lambda: retry(
            flaky,
            "x",
            base=base,
            rng=random.Random(3),
            on_retry=lambda n, e, pause: retries.append((n, str(e), pause)),
        ),
    )
    assert result == "ok"
    assert [arg for arg, _ in flaky.calls] == ["x"] * 3
    expected_pauses = backoff_delays(base=base, rng=random.Random(3))
    pauses = [next(expected_pauses) for _ in range(2)]
    assert retries == [(1, "one", pauses[0]), (2, "two", pauses[1])]
    starts = relative([t for _, t in flaky.calls])
    if exact(setup):
        assert starts == pytest.approx([0, pauses[0], pauses[0] + pauses[1]])
    else:
        assert starts[1] >= pauses[0] - 1e-3
        assert starts[2] - starts[1] >= pauses[1] - 1e-3


def test_retry_gives_up_with_the_last_error(setup):
    flaky = Flaky(*(KeyError(i) for i in range(5)))
    with pytest.raises(KeyError) as info:
        run(setup, lambda: retry(flaky, 0, attempts=3, base=0.001, jitter="none"))
    assert info.value.args == (2,)
    assert info.value.__notes__ == ["retry: gave up after 3 attempts"]
    assert len(flaky.calls) == 3


def test_retry_only_retries_what_it_is_told(setup):
    flaky = Flaky(KeyError("a"), ValueError("b"))
    with pytest.raises(ValueError):
        run(setup, lambda: retry(flaky, 0, retry_on=KeyError, base=0.001))
    assert len(flaky.calls) == 2


def test_retry_never_retries_a_cancellation(setup):
    calls = []

    async def slow():
        calls.append("call")
        await asyncio.sleep(10)

    async def main():
        task = asyncio.create_task(retry(slow, retry_on=BaseException, base=0.001))
        await asyncio.sleep(0.01)
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            return task.cancelled()

    assert run(setup, main) is True
    assert calls == ["call"]


def test_retry_cancelled_during_backoff_pause(setup):
    flaky = Flaky(*(OSError() for _ in range(10)))

    async def main():
        task = asyncio.create_task(retry(flaky, 0, base=10, jitter="none"))
        await asyncio.sleep(0.01)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return task.cancelled()

    assert run(setup, main) is True
    assert len(flaky.calls) == 1


def test_retry_rejects_bad_attempts():
    async def never():
        raise AssertionError

    with pytest.raises(ValueError, match="attempts must be an int >= 1, got 0"):
        asynciodepth.run(retry(never, attempts=0))
