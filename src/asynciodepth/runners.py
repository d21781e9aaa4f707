"""The finished loop and the ways to run it: chapter "The scheduler".

Builds on ``base_events.py`` (the loop core) and ``tasks.py`` (our Task):
``EventLoop`` is the loop core whose ``create_task`` makes our Task. This
module also gives what ``asyncio`` offers around a loop: ``new_event_loop``,
an event loop policy, and ``run``, which, unlike ``asyncio.run``, also works
from a Jupyter cell, where ipykernel's own loop is already running.
"""

from __future__ import annotations

import asyncio
from asyncio import events as _aio_events
from typing import Any, Callable, Coroutine

from .base_events import BaseEventLoop
from .tasks import Task

__all__ = ["EventLoop", "EventLoopPolicy", "new_event_loop", "run"]


class EventLoop(BaseEventLoop):
    """asynciodepth's event loop: pure Python, with our own Task."""

    _task_class = Task


def new_event_loop(**options: Any) -> EventLoop:
    """Return a new EventLoop; options are EventLoop's (clock=, observer=)."""
    return EventLoop(**options)


# Why the base class: asyncio.DefaultEventLoopPolicy on Unix also manages
# child watchers for subprocesses, which our loop does not have (yet).
_BasePolicy = getattr(_aio_events, "BaseDefaultEventLoopPolicy", None) or getattr(
    _aio_events, "_BaseDefaultEventLoopPolicy"
)


class EventLoopPolicy(_BasePolicy):
    """Event loop policy whose loops are EventLoops.

    ``asyncio.set_event_loop_policy(asynciodepth.EventLoopPolicy())`` makes
    ``asyncio.run()`` and ``asyncio.new_event_loop()`` use our loop.
    """

    _loop_factory = EventLoop


def run(
    main: Coroutine[Any, Any, Any],
    *,
    debug: bool | None = None,
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
) -> Any:
    """Run main on a new EventLoop and return its result, like asyncio.run().

    Inside Jupyter, where ipykernel's loop is running in this thread, the
    kernel's loop is set aside while ours runs (it is frozen meanwhile, as it
    is during any cell) and restored afterwards.
    """
    outer = _aio_events._get_running_loop()
    if outer is not None:
        _aio_events._set_running_loop(None)
    try:
        with asyncio.Runner(debug=debug, loop_factory=loop_factory or EventLoop) as runner:
            return runner.run(main)
    finally:
        if outer is not None:
            _aio_events._set_running_loop(outer)
