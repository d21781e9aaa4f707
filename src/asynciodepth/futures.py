"""Futures and our own ``sleep``: chapter "asyncio.sleep".

Builds on the coroutine layer (chapter "await"): ``Future.__await__`` is the
trap of that chapter inlined, ``yield self``. Whoever drives the coroutine (a
Task) receives the future and arranges to resume the coroutine once the future
is done. Only the stdlib's ``asyncio`` is imported; this module knows nothing
about our event loop, so our Future works on any asyncio loop.
"""

from __future__ import annotations

import asyncio
import contextvars
import reprlib
import sys
import types
from types import GenericAlias
from typing import Any, Callable, Generator

__all__ = ["Future", "sleep", "isfuture"]

# The three states, spelled like asyncio's, so stdlib helpers that read
# ``fut._state`` see what they expect.
_PENDING = "PENDING"
_CANCELLED = "CANCELLED"
_FINISHED = "FINISHED"

_STOP_ITERATION_MESSAGE = (
    "StopIteration interacts badly with generators and cannot be raised into a Future"
)


def isfuture(obj: object) -> bool:
    """Return True if obj follows asyncio's Future protocol (ours or the stdlib's)."""
    # Why: asyncio recognises futures by this class attribute, not by type, so
    # its Task, gather, wait_for... accept ours and we accept theirs.
    return (
        getattr(obj.__class__, "_asyncio_future_blocking", None) is not None
        and obj._asyncio_future_blocking is not None
    )


class Future:
    """A placeholder for a result that an event loop callback will set later."""

    # Invariant: _state moves PENDING -> FINISHED or PENDING -> CANCELLED, once.
    _state = _PENDING
    _result: Any = None
    _exception: BaseException | None = None
    _exception_tb = None
    _loop: asyncio.AbstractEventLoop
    _source_traceback = None
    _cancel_message: Any = None
    _cancelled_exc: BaseException | None = None
    # True while a Task that received this future from the trap has not yet
    # subscribed to it. The class attribute marks us as a future for asyncio.
    _asyncio_future_blocking = False
    # Invariant: _log_traceback is True iff an exception was set and nobody has
    # looked at it yet; __del__ reports it then.
    _log_traceback = False

    def __init__(self, *, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Create a pending future attached to loop (default: the current loop)."""
        if loop is None:
            loop = asyncio.get_event_loop()
        self._loop = loop
        # Invariant: while pending, _callbacks holds (callback, context) pairs
        # in registration order; once done it is empty for good.
        self._callbacks: list[tuple[Callable[..., object], contextvars.Context]] = []

    __class_getitem__ = classmethod(GenericAlias)

    @reprlib.recursive_repr()  # Why: a future may hold itself as its result.
    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._repr_info()}>"

    def _repr_info(self) -> str:
        if self._state == _FINISHED:
            if self._exception is not None:
                return f"finished exception={reprlib.repr(self._exception)}"
            return f"finished result={reprlib.repr(self._result)}"
        return self._state.lower()

    def __del__(self) -> None:
        if not self._log_traceback:
            return
        exc = self._exception
        self._loop.call_exception_handler(
            {
                "message": f"{type(self).__name__} exception was never retrieved",
                "exception": exc,
                "future": self,
            }
        )

    # -- reading ----------------------------------------------------------

    def get_loop(self) -> asyncio.AbstractEventLoop:
        """Return the event loop the future is bound to."""
        return self._loop

    def done(self) -> bool:
        """Return True if the future has a result, an exception or was cancelled."""
        return self._state != _PENDING

    def cancelled(self) -> bool:
        """Return True if the future was cancelled."""
        return self._state == _CANCELLED

    def result(self) -> Any:
        """Return the result, or raise the exception or CancelledError."""
        if self._state == _CANCELLED:
            raise self._make_cancelled_error()
        if self._state != _FINISHED:
            raise asyncio.InvalidStateError("Result is not set.")
        self._log_traceback = False
        if self._exception is not None:
            # Why with_traceback: re-raising would otherwise grow the stored
            # traceback by our frame every time somebody asks.
            raise self._exception.with_traceback(self._exception_tb)
        return self._result

    def exception(self) -> BaseException | None:
        """Return the exception that was set, or None if a result was set."""
        if self._state == _CANCELLED:
            raise self._make_cancelled_error()
        if self._state != _FINISHED:
            raise asyncio.InvalidStateError("Exception is not set.")
        self._log_traceback = False
        return self._exception

    def _make_cancelled_error(self) -> asyncio.CancelledError:
        """Return the CancelledError to raise, carrying the cancel message."""
        # Why: a Task cancelled by the CancelledError that its coroutine raised
        # keeps that very exception (and its traceback) in _cancelled_exc.
        if self._cancelled_exc is not None:
            exc, self._cancelled_exc = self._cancelled_exc, None
            return exc
        if self._cancel_message is None:
            return asyncio.CancelledError()
        return asyncio.CancelledError(self._cancel_message)

    # -- callbacks --------------------------------------------------------

    def add_done_callback(
        self,
        fn: Callable[[Future], object],
        *,
        context: contextvars.Context | None = None,
    ) -> None:
        """Call fn(self) from the loop, in context, once the future is done."""
        if context is None:
            context = contextvars.copy_context()
        if self._state != _PENDING:
            self._loop.call_soon(fn, self, context=context)
        else:
            self._callbacks.append((fn, context))

    def remove_done_callback(self, fn: Callable[[Future], object]) -> int:
        """Remove every registration of fn; return how many were removed."""
        kept = [(f, ctx) for (f, ctx) in self._callbacks if f != fn]
        removed = len(self._callbacks) - len(kept)
        if removed:
            self._callbacks[:] = kept
        return removed

    def _schedule_callbacks(self) -> None:
        # Why call_soon and not a direct call: a callback must never run in
        # the middle of set_result(); the caller finishes first, and each
        # callback gets its own turn of the loop, in registration order.
        callbacks = self._callbacks
        if not callbacks:
            return
        self._callbacks = []
        call_soon = self._loop.call_soon
        for fn, context in callbacks:
            call_soon(fn, self, context=context)

    # -- writing ----------------------------------------------------------

    def set_result(self, result: Any) -> None:
        """Mark the future done with result and schedule its callbacks."""
        if self._state != _PENDING:
            raise asyncio.InvalidStateError("invalid state")
        self._result = result
        self._state = _FINISHED
        # Inlined _schedule_callbacks(): set_result is on every sleep's path.
        callbacks = self._callbacks
        if callbacks:
            self._callbacks = []
            call_soon = self._loop.call_soon
            for fn, context in callbacks:
                call_soon(fn, self, context=context)

    def set_exception(self, exception: BaseException | type[BaseException]) -> None:
        """Mark the future done with exception and schedule its callbacks."""
        if self._state != _PENDING:
            raise asyncio.InvalidStateError("invalid state")
        if isinstance(exception, type):
            exception = exception()
        if isinstance(exception, StopIteration):
            # Why: a StopIteration raised out of __await__ would end the
            # generator instead of propagating. 3.11/3.12 refuse it; 3.13
            # wraps it in a RuntimeError. We do what the running Python does.
            if sys.version_info < (3, 13):
                raise TypeError(_STOP_ITERATION_MESSAGE)
            wrapped = RuntimeError(_STOP_ITERATION_MESSAGE)
            wrapped.__cause__ = wrapped.__context__ = exception
            exception = wrapped
        self._exception = exception
        self._exception_tb = exception.__traceback__
        self._state = _FINISHED
        self._log_traceback = True
        self._schedule_callbacks()

    def cancel(self, msg: Any = None) -> bool:
        """Cancel the future; return False if it was already done."""
        self._log_traceback = False
        if self._state != _PENDING:
            return False
        self._state = _CANCELLED
        self._cancel_message = msg
        self._schedule_callbacks()
        return True

    # -- awaiting: the trap -------------------------------------------------

    def __await__(self) -> Generator[Future, None, Any]:
        """Suspend the awaiting coroutine until the future is done."""
        if self._state == _PENDING:
            self._asyncio_future_blocking = True
            yield self  # The trap: hand ourselves to whoever drives the chain.
        if self._state == _PENDING:
            raise RuntimeError("await wasn't used with future")
        return self.result()

    __iter__ = __await__


def _set_result_unless_cancelled(fut: Future, result: Any) -> None:
    """Timer callback of sleep(): wake the sleeper unless it gave up."""
    if not fut.cancelled():
        fut.set_result(result)


@types.coroutine
def _yield_once() -> Generator[None, None, None]:
    """Suspend once with a bare yield: the Task reschedules us at once."""
    yield


async def sleep(delay: float, result: Any = None) -> Any:
    """Coroutine that completes after delay seconds, returning result."""
    if delay != delay:
        raise ValueError("Invalid delay: NaN (not a number)")
    if delay <= 0:
        await _yield_once()
        return result
    loop = asyncio.get_running_loop()
    future = Future(loop=loop)
    timer = loop.call_later(delay, _set_result_unless_cancelled, future, result)
    try:
        return await future
    finally:
        # Why: if we were cancelled, the timer would otherwise keep the loop's
        # heap (and the future) alive until it fires for nothing.
        timer.cancel()
