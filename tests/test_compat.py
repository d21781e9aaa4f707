"""asyncio's high-level API on every setup: our loop must be a drop-in."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading

import pytest


def test_timeout_context_manager(setup):
    async def main():
        events = []
        try:
            async with asyncio.timeout(0.01) as cm:
                await asyncio.sleep(10)
        except TimeoutError:
            events.append(("timed out", cm.expired()))
        async with asyncio.timeout(10):
            await asyncio.sleep(0)
            events.append("in time")
        events.append(asyncio.current_task().cancelling())
        return events

    assert setup.run(main()) == [("timed out", True), "in time", 0]


def test_nested_timeouts_uncancel_correctly(setup):
    async def main():
        try:
            # Why: the outer deadline is set first; a wide gap keeps the order even
            # when a loaded machine runs the two lines far apart.
            async with asyncio.timeout(0.3):
                try:
                    async with asyncio.timeout(0.01):
                        await asyncio.sleep(10)
                except TimeoutError:
                    inner = "inner expired"
                await asyncio.sleep(10)
        except TimeoutError:
            return inner, "outer expired", asyncio.current_task().cancelling()

    assert setup.run(main()) == ("inner expired", "outer expired", 0)


def test_wait_for(setup):
    async def main():
        result = await asyncio.wait_for(asyncio.sleep(0, "fast"), 10)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(asyncio.sleep(10), 0.01)
        return result

    assert setup.run(main()) == "fast"


def test_task_group(setup):
    events = []

    async def child(name, delay, fail=False):
        try:
            await asyncio.sleep(delay)
        except asyncio.CancelledError:
            events.append(f"{name} cancelled")
            raise
        if fail:
            raise ValueError(name)
        events.append(f"{name} done")

    async def main():
        async with asyncio.TaskGroup() as group:
            group.create_task(child("a", 0))
            group.create_task(child("b", 0.01))
        with pytest.raises(ExceptionGroup) as info:
            async with asyncio.TaskGroup() as group:
                group.create_task(child("fails", 0, fail=True))
                group.create_task(child("slow", 10))
        return [type(e).__name__ for e in info.value.exceptions]

    assert setup.run(main()) == ["ValueError"]
    assert events == ["a done", "b done", "slow cancelled"]


def test_gather(setup):
    async def value(x):
        await asyncio.sleep(0)
        return x

    async def fail():
        raise KeyError("gathered")

    async def main():
        results = await asyncio.gather(value(1), value(2), asyncio.sleep(0.01, 3))
        mixed = await asyncio.gather(value(4), fail(), return_exceptions=True)
        with pytest.raises(KeyError):
            await asyncio.gather(value(5), fail())
        return results, [type(r).__name__ for r in mixed]

    assert setup.run(main()) == ([1, 2, 3], ["int", "KeyError"])


def test_gather_cancelled(setup):
    async def main():
        outer = asyncio.gather(asyncio.sleep(10), asyncio.sleep(10))
        await asyncio.sleep(0)
        outer.cancel()
        with pytest.raises(asyncio.CancelledError):
            await outer
        return outer.cancelled(), outer.done()

    # gather's future finishes with the children's CancelledError as its
    # exception, so it is done but (surprisingly) not cancelled().
    assert setup.run(main()) == (False, True)


def test_shield(setup):
    events = []

    async def precious():
        await asyncio.sleep(0.01)
        events.append("precious finished")
        return "kept"

    async def main():
        inner = asyncio.ensure_future(precious())
        outer = asyncio.shield(inner)
        await asyncio.sleep(0)
        outer.cancel()
        with pytest.raises(asyncio.CancelledError):
            await outer
        return await inner

    assert setup.run(main()) == "kept"
    assert events == ["precious finished"]


def test_wait_and_as_completed(setup):
    async def main():
        # Why: the slow timer is set first; a gap of 0.3 s, not 0.01 s, keeps the
        # order on a loaded machine, where two task starts can be far apart.
        slow = asyncio.ensure_future(asyncio.sleep(0.3, "slow"))
        fast = asyncio.ensure_future(asyncio.sleep(0.01, "fast"))
        done, pending = await asyncio.wait(
            {slow, fast}, return_when=asyncio.FIRST_COMPLETED
        )
        first = [t.result() for t in done]
        order = [
            await f
            for f in asyncio.as_completed(
                [asyncio.sleep(0.3, "b"), asyncio.sleep(0.01, "a")]
            )
        ]
        await slow
        done, pending = await asyncio.wait(
            {asyncio.ensure_future(asyncio.sleep(10))}, timeout=0.01
        )
        for task in pending:
            task.cancel()
        return first, order, len(done), len(pending)

    assert setup.run(main()) == (["fast"], ["a", "b"], 0, 1)


def test_queue(setup):
    events = []

    async def producer(queue):
        for i in range(3):
            await queue.put(i)
            events.append(f"put {i}")
        await queue.put(None)

    async def consumer(queue):
        while (item := await queue.get()) is not None:
            events.append(f"got {item}")
            queue.task_done()
        queue.task_done()

    async def main():
        queue = asyncio.Queue(maxsize=1)
        await asyncio.gather(producer(queue), consumer(queue))
        await queue.join()

    setup.run(main())
    assert events == ["put 0", "got 0", "put 1", "got 1", "put 2", "got 2"]


def test_lock_event_semaphore_condition(setup):
    events = []

    async def locked(lock, name):
        async with lock:
            events.append(f"{name} in")
            await asyncio.sleep(0)
            events.append(f"{name} out")

    async def limited(semaphore, name):
        async with semaphore:
            events.append(f"sem {name}")
            await asyncio.sleep(0)

    async def main():
        lock = asyncio.Lock()
        await asyncio.gather(locked(lock, "a"), locked(lock, "b"))
        event = asyncio.Event()
        waiter = asyncio.ensure_future(event.wait())
        await asyncio.sleep(0)
        event.set()
        events.append(f"event {await waiter}")
        semaphore = asyncio.Semaphore(1)
        await asyncio.gather(limited(semaphore, 1), limited(semaphore, 2))
        condition = asyncio.Condition()

        async def notify():
            async with condition:
                condition.notify_all()

        async with condition:
            asyncio.ensure_future(notify())
            await condition.wait()
            events.append("notified")

    setup.run(main())
    assert events == [
        "a in",
        "a out",
        "b in",
        "b out",
        "event True",
        "sem 1",
        "sem 2",
        "notified",
    ]


def test_to_thread_and_wrap_future(setup):
    async def main():
        in_thread = await asyncio.wait_for(
            asyncio.to_thread(lambda: threading.current_thread().name), 10
        )
        with concurrent.futures.ThreadPoolExecutor(1) as executor:
            wrapped = asyncio.wrap_future(executor.submit(pow, 2, 10))
            value = await asyncio.wait_for(wrapped, 10)
        return in_thread != threading.current_thread().name, value

    assert setup.run(main()) == (True, 1024)


def test_run_coroutine_threadsafe(setup):
    async def main():
        loop = asyncio.get_running_loop()

        def from_thread():
            future = asyncio.run_coroutine_threadsafe(asyncio.sleep(0, "cross"), loop)
            return future.result(timeout=10)

        return await asyncio.wait_for(asyncio.to_thread(from_thread), 10)

    assert setup.run(main()) == "cross"


def test_async_generators_and_comprehensions(setup):
    async def ticker(n):
        for i in range(n):
            await asyncio.sleep(0)
            yield i

    async def main():
        return [i async for i in ticker(3)]

    assert setup.run(main()) == [0, 1, 2]
