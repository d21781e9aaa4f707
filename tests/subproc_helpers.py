"""Loops and leak checks shared by tests/test_pipes.py and tests/test_subprocesses.py."""

from __future__ import annotations

import asyncio
import gc
import os
import time
from typing import Any

from asynciodepth.subprocesses import SubprocessEventLoop

# Each of ours with both pollers, both child watchers, and our Python Task once.
LOOPS = {
    "stdlib": asyncio.new_event_loop,
    "epoll-pidfd": lambda: SubprocessEventLoop(poller="epoll", child_watcher="pidfd"),
    "selectors-thread": lambda: SubprocessEventLoop(
        poller="selectors", child_watcher="thread"
    ),
    "epoll-thread-pytask": lambda: SubprocessEventLoop(
        poller="epoll", child_watcher="thread", python_tasks=True
    ),
}
OURS = [name for name in LOOPS if name != "stdlib"]


def run(name: str, main: Any, timeout: float = 15.0) -> Any:
    """Run the coroutine main on a fresh loop named name; fail after timeout s."""

    async def bounded() -> Any:
        async with asyncio.timeout(timeout):
            return await main

    with asyncio.Runner(loop_factory=LOOPS[name]) as runner:
        return runner.run(bounded())


def open_fds() -> int:
    """How many file descriptors this process has open (Linux)."""
    return len(os.listdir("/proc/self/fd"))


def has_children() -> bool:
    """True if a child of ours is alive or a zombie."""
    try:
        # WNOWAIT: look without reaping, so a zombie left behind is seen, not fixed.
        os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return False
    return True


def settle(before: int, deadline: float = 3.0) -> tuple[int, bool]:
    """Wait for reaper threads and GC; return (fds leaked, children left)."""
    end = time.monotonic() + deadline
    while True:
        gc.collect()
        leaked, children = open_fds() - before, has_children()
        if (leaked <= 0 and not children) or time.monotonic() > end:
            return leaked, children
        time.sleep(0.02)
