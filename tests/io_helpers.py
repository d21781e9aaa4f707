"""Helpers shared by the I/O tests of chapter "epoll" (not a test module).

Every I/O test runs on both pollers of our loop, ``epoll`` and the ``selectors``
fallback; tests that compare behaviour with asyncio also run on ``stdlib``.
Every run is bounded by a timeout, so a bug fails a test instead of hanging it.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import os
import resource
import warnings
from typing import Any, Callable

import asynciodepth

IMPLS = ["epoll", "selectors"]
# Tests that pin down asyncio's behaviour also run on asyncio's loop, and on
# ours with asyncio's C Task (chosen with set_task_factory).
WITH_STDLIB = ["stdlib", *IMPLS, "epoll+ctask"]


def c_task_factory(loop, coro, **kwargs):
    """Task factory making the stdlib's (C) Task."""
    return asyncio.Task(coro, loop=loop, **kwargs)


def loop_factory(impl: str) -> Callable[[], asyncio.AbstractEventLoop]:
    """The loop of one implementation: 'stdlib', 'epoll', 'selectors', 'epoll+ctask'."""
    if impl == "stdlib":
        return asyncio.new_event_loop
    if impl == "epoll+ctask":

        def factory() -> asyncio.AbstractEventLoop:
            loop = asynciodepth.EventLoop(poller="epoll")
            loop.set_task_factory(c_task_factory)
            return loop

        return factory
    return functools.partial(asynciodepth.EventLoop, poller=impl)


def run(impl: str, main: Any, timeout: float = 10.0) -> Any:
    """Run the coroutine main on a fresh loop of impl, failing after timeout s."""

    async def bounded() -> Any:
        async with asyncio.timeout(timeout):
            return await main

    with asyncio.Runner(loop_factory=loop_factory(impl)) as runner:
        return runner.run(bounded())


def open_fds() -> int:
    """How many file descriptors this process has open (Linux)."""
    return len(os.listdir("/proc/self/fd"))


class raised_fd_limit:
    """Context manager: raise the soft RLIMIT_NOFILE to at least n, then restore."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __enter__(self) -> None:
        self.saved = resource.getrlimit(resource.RLIMIT_NOFILE)
        soft, hard = self.saved
        if soft != resource.RLIM_INFINITY and soft < self.n:
            wanted = self.n if hard == resource.RLIM_INFINITY else min(self.n, hard)
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))

    def __exit__(self, *exc: Any) -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, self.saved)


async def echo_handler(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """A stream echo server's handler: echo until EOF, then close."""
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    finally:
        writer.close()


class resource_warnings:
    """Context manager: record the ResourceWarnings raised inside, after a gc.

    ``messages`` holds their texts once the block is left; a leaked socket or
    transport shows up as "unclosed ..." when the garbage collector finds it.
    """

    def __enter__(self) -> resource_warnings:
        gc.collect()  # what earlier code left is not this block's leak
        self._catcher = warnings.catch_warnings(record=True)
        self._caught = self._catcher.__enter__()
        warnings.simplefilter("always", ResourceWarning)
        self.messages: list[str] = []
        return self

    def __exit__(self, *exc: Any) -> None:
        gc.collect()
        gc.collect()
        self._catcher.__exit__(*exc)
        self.messages = [
            str(w.message) for w in self._caught if w.category is ResourceWarning
        ]
