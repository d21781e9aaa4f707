"""The loop's fast paths keep asyncio's semantics (chapter "The event loop").

call_soon and call_later make their handles without calling the class: every
slot must still be set. The fast path's countdown runs exactly the snapshot,
and a reader registered by a callback in the middle of a chain is polled for
on the next iteration, as on asyncio's loop.
"""

from __future__ import annotations

import asyncio
import contextvars
import socket
import threading
import time

import pytest

import asynciodepth
from asynciodepth.events import Handle, TimerHandle

LOOPS = ["stdlib", "epoll", "selectors", "epoll+pytask"]
OURS = LOOPS[1:]


def new_loop(name: str) -> asyncio.AbstractEventLoop:
    if name == "stdlib":
        return asyncio.SelectorEventLoop()
    poller, _, tasks = name.partition("+")
    return asynciodepth.EventLoop(poller=poller, python_tasks=bool(tasks))


@pytest.fixture(params=LOOPS)
def loop(request):
    loop = new_loop(request.param)
    yield loop
    loop.close()


@pytest.fixture(params=OURS)
def our_loop(request):
    loop = new_loop(request.param)
    yield loop
    loop.close()


def fields(handle: Handle) -> dict[str, object]:
    names = [n for cls in type(handle).__mro__ for n in getattr(cls, "__slots__", ())]
    return {n: getattr(handle, n, "unset") for n in names if n != "__weakref__"}


def test_call_soon_sets_every_slot(our_loop):
    context = contextvars.copy_context()
    made = our_loop.call_soon(print, 1, 2, context=context)
    assert type(made) is Handle
    assert fields(made) == fields(Handle(print, (1, 2), our_loop, context))
    default = our_loop.call_soon(print)
    assert isinstance(default.get_context(), contextvars.Context)
    assert default.get_context() is not made.get_context()


def test_call_later_sets_every_slot(our_loop):
    context = contextvars.copy_context()
    timer = our_loop.call_later(5, print, "x", context=context)
    assert type(timer) is TimerHandle
    expected = TimerHandle(timer.when(), print, ("x",), our_loop, context)
    expected._scheduled = True
    assert fields(timer) == fields(expected)
    timer.cancel()
    assert our_loop._timer_cancelled_count == 1


def test_call_soon_copies_the_context_per_call(loop):
    var = contextvars.ContextVar("var", default="outer")
    seen = []

    def set_and_record(value):
        var.set(value)
        seen.append(var.get())

    loop.call_soon(set_and_record, "first")
    loop.call_soon(lambda: seen.append(var.get()))
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert seen == ["first", "outer"]


def test_cancel_inside_the_snapshot(loop):
    """A callback cancelling a later one of its snapshot; what it schedules waits."""
    events = []
    handles = {}

    def first():
        events.append("first")
        handles["third"].cancel()
        loop.call_soon(events.append, "next iteration")
        loop.call_soon(loop.stop)

    loop.call_soon(first)
    loop.call_soon(events.append, "second")
    handles["third"] = loop.call_soon(events.append, "third")
    loop.call_soon(events.append, "fourth")
    loop.run_forever()
    assert events == ["first", "second", "fourth", "next iteration"]


def test_a_reader_added_mid_chain_is_polled_next_iteration(loop):
    """A chain of callbacks adds a reader with data waiting: it runs at once."""
    here, peer = socket.socketpair()
    peer.send(b"x")
    events = []

    def chain(n):
        events.append(n)
        if n == 3:
            loop.add_reader(here, lambda: events.append("reader"))
        if n < 8:
            loop.call_soon(chain, n + 1)
        else:
            loop.stop()

    try:
        loop.call_soon(chain, 0)
        loop.run_forever()
        loop.remove_reader(here)
    finally:
        here.close()
        peer.close()
    assert events.index("reader") == events.index(3) + 2, events


def test_a_long_chain_runs_in_order(loop):
    count = 0

    def step(i):
        nonlocal count
        assert i == count
        count += 1
        if count < 10_000:
            loop.call_soon(step, count)
        else:
            loop.stop()

    loop.call_soon(step, 0)
    loop.run_forever()
    assert count == 10_000


def test_threadsafe_posts_from_many_threads_all_run(loop):
    """Bursts from several threads while the loop sleeps in its poll: no post lost."""
    threads, per_thread = 4, 2000
    ran = []

    def record(i):
        ran.append(i)
        if len(ran) == threads * per_thread:
            loop.stop()

    def poster(start):
        for i in range(start, start + per_thread):
            loop.call_soon_threadsafe(record, i)
            if i % 97 == 0:
                time.sleep(0.0005)  # let the loop drain and block again

    # A lost wake-up would block the loop for ever: the guard fails the test instead.
    guard = threading.Timer(20, loop.call_soon_threadsafe, (loop.stop,))
    guard.start()
    workers = [
        threading.Thread(target=poster, args=(k * per_thread,)) for k in range(threads)
    ]
    loop.call_soon(lambda: [w.start() for w in workers])
    try:
        loop.run_forever()
    finally:
        guard.cancel()
        for w in workers:
            w.join()
    assert sorted(ran) == list(range(threads * per_thread))


def test_a_post_wakes_a_loop_blocked_in_its_poll(loop):
    """After a burst is drained, the loop blocks again; a single post must wake it."""
    ran = []

    def later():
        time.sleep(0.05)  # the loop is blocked in a poll with no timeout by now
        loop.call_soon_threadsafe(ran.append, "late")
        loop.call_soon_threadsafe(loop.stop)

    for i in range(100):
        loop.call_soon_threadsafe(ran.append, i)
    thread = threading.Thread(target=later)
    loop.call_soon(thread.start)
    guard = threading.Timer(10, loop.call_soon_threadsafe, (loop.stop,))
    guard.start()
    try:
        loop.run_forever()
    finally:
        guard.cancel()
        thread.join()
    assert ran == [*range(100), "late"]
