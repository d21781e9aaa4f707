"""Handles, the virtual clock and the observer hook: chapter "The event loop".

Builds on nothing of ours: these are the small objects the loop of
``base_events.py`` schedules (``Handle``, ``TimerHandle``), the clock it may
run on (``VirtualClock``) and the interface of its instrumentation hook
(``LoopObserver``). CPython keeps its handles in ``asyncio/events.py`` too.
"""

from __future__ import annotations

import contextvars
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    import asyncio

__all__ = ["Handle", "TimerHandle", "VirtualClock", "LoopObserver"]


def _format_callback(callback: Callable[..., object], args: tuple) -> str:
    """Describe a call as ``name(args)`` without addresses, for reprs and logs."""
    name = getattr(callback, "__qualname__", None) or repr(callback)
    shown = ", ".join(repr(arg) for arg in args[:3])
    if len(args) > 3:
        shown += ", ..."
    return f"{name}({shown})"


class Handle:
    """A callback scheduled on the loop, with its arguments and context."""

    __slots__ = ("_callback", "_args", "_cancelled", "_loop", "_context")

    def __init__(
        self,
        callback: Callable[..., object],
        args: tuple,
        loop: asyncio.AbstractEventLoop,
        context: contextvars.Context | None = None,
    ) -> None:
        # Why: every callback runs in a context. Copying the caller's context
        # here means changes the callback makes to ContextVars stay with it.
        if context is None:
            context = contextvars.copy_context()
        self._context = context
        self._callback = callback
        self._args = args
        self._loop = loop
        # Invariant: once True, stays True, and the loop skips this handle.
        self._cancelled = False

    def __repr__(self) -> str:
        state = " cancelled" if self._cancelled else ""
        return f"<{type(self).__name__}{state} {self._describe()}>"

    def _describe(self) -> str:
        if self._callback is None:
            return "(cleared)"
        return _format_callback(self._callback, self._args)

    def get_context(self) -> contextvars.Context:
        """Return the context the callback will run in."""
        return self._context

    def cancel(self) -> None:
        """Make the loop skip this callback; a no-op if it already ran."""
        if not self._cancelled:
            self._cancelled = True
            # Why: drop references now, so a cancelled handle waiting in a
            # queue does not keep large objects alive.
            self._callback = None
            self._args = None

    def cancelled(self) -> bool:
        """Return True if the handle was cancelled."""
        return self._cancelled

    def _run(self) -> None:
        """Run the callback in its context, reporting any exception to the loop."""
        try:
            self._context.run(self._callback, *self._args)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._loop.call_exception_handler(
                {
                    "message": f"Exception in callback {self._describe()}",
                    "exception": exc,
                    "handle": self,
                }
            )


class TimerHandle(Handle):
    """A callback scheduled for a moment of ``loop.time()``."""

    __slots__ = ("_when", "_scheduled")

    def __init__(
        self,
        when: float,
        callback: Callable[..., object],
        args: tuple,
        loop: asyncio.AbstractEventLoop,
        context: contextvars.Context | None = None,
    ) -> None:
        # Why not super().__init__(): one call less per timer (workload c).
        self._context = contextvars.copy_context() if context is None else context
        self._callback = callback
        self._args = args
        self._loop = loop
        self._cancelled = False
        self._when = when
        # Invariant: _scheduled is True exactly while the handle is in the
        # loop's timer heap.
        self._scheduled = False

    def __repr__(self) -> str:
        state = " cancelled" if self._cancelled else ""
        return f"<TimerHandle{state} when={self._when} {self._describe()}>"

    def when(self) -> float:
        """Return the loop time at which the callback is due."""
        return self._when

    def cancel(self) -> None:
        """Make the loop skip this callback and tell it one timer is dead."""
        if not self._cancelled:
            if self._scheduled:
                self._loop._timer_handle_cancelled(self)
            self._cancelled = True
            self._callback = None
            self._args = None

    # Timers compare by deadline, as asyncio's do.
    def __lt__(self, other: TimerHandle) -> bool:
        return self._when < other._when

    def __le__(self, other: TimerHandle) -> bool:
        return self._when <= other._when

    def __gt__(self, other: TimerHandle) -> bool:
        return self._when > other._when

    def __ge__(self, other: TimerHandle) -> bool:
        return self._when >= other._when

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TimerHandle):
            return NotImplemented
        return (
            self._when == other._when
            and self._callback == other._callback
            and self._args == other._args
            and self._cancelled == other._cancelled
        )

    __hash__ = Handle.__hash__


class VirtualClock:
    """A clock that only moves when the loop has nothing else to do.

    Give one to the loop (``EventLoop(clock=VirtualClock())``). When no
    callback is ready and no I/O or thread has anything for the loop, the loop
    does not sleep until the next timer: it moves this clock forward to the
    timer's deadline and goes on. Programs whose waiting is all timers then
    run in no wall time and give the same timeline on every run.
    """

    def __init__(self, start: float = 0.0) -> None:
        self._now = float(start)

    def __repr__(self) -> str:
        return f"VirtualClock(now={self._now})"

    def time(self) -> float:
        """Return the current virtual time in seconds."""
        return self._now

    def advance_to(self, when: float) -> None:
        """Move the clock forward to when; it never goes backwards."""
        if when > self._now:
            self._now = when


class LoopObserver:
    """What the loop tells an observer; subclass and override what you need.

    Set one with ``EventLoop(observer=...)`` or ``loop.set_observer(...)``.
    All times are ``loop.time()`` values (virtual time under a VirtualClock).
    With no observer the loop pays one ``is None`` test per iteration.

    Hooks are called synchronously from the loop's thread; an observer must
    not raise and should not schedule work of its own.
    """

    def on_callback(
        self, loop: asyncio.AbstractEventLoop, handle: Handle, start: float, end: float
    ) -> None:
        """A ready handle ran from start to end (task steps included)."""

    def on_task_step(
        self,
        loop: asyncio.AbstractEventLoop,
        task: Any,
        woken_by: Any,
        start: float,
        end: float,
    ) -> None:
        """One step of one of our Tasks ran.

        ``woken_by`` is the future whose completion resumed the task, or None
        when the step was scheduled directly (first step, ``sleep(0)``, a
        cancellation or an error thrown in).
        """

    def on_poll(
        self,
        loop: asyncio.AbstractEventLoop,
        timeout: float | None,
        start: float,
        end: float,
        nevents: int,
    ) -> None:
        """The loop polled for I/O with timeout and got nevents events.

        ``end - start`` is how long the loop waited, including a jump of the
        virtual clock to the next timer.
        """

    def on_timer_fired(
        self, loop: asyncio.AbstractEventLoop, handle: TimerHandle, now: float
    ) -> None:
        """A timer became due at now and moved to the ready queue."""
