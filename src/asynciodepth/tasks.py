"""Tasks: chapter "The scheduler".

Builds on ``futures.py``: a Task is a Future whose result is the return value
of a coroutine, and the Task is the driver that the trap of chapter "await"
hands its requests to. It uses asyncio's own bookkeeping functions
(``_enter_task``, ``_leave_task``, ``_register_task``) so that
``asyncio.current_task()`` and ``asyncio.all_tasks()`` see our tasks.
"""

from __future__ import annotations

import asyncio
import asyncio.tasks as _aio_tasks
import contextvars
import inspect
import itertools
import reprlib
import sys
from asyncio import base_tasks as _aio_base_tasks
from typing import Any, Coroutine

from .futures import _PENDING, Future

__all__ = ["Task", "eager_task_factory"]

_enter_task = _aio_tasks._enter_task
_leave_task = _aio_tasks._leave_task
_register_task = _aio_tasks._register_task
# 3.12+ keep eagerly running tasks in a separate registry; 3.11 has none.
_register_eager_task = getattr(_aio_tasks, "_register_eager_task", None)
_unregister_eager_task = getattr(_aio_tasks, "_unregister_eager_task", None)

_UNCANCEL_RESETS_MUST_CANCEL = sys.version_info >= (3, 13)
_task_name_counter = itertools.count(1)


class Task(Future):
    """A coroutine driven step by step by the event loop, itself a Future."""

    # run_until_complete() clears this for the task it creates itself.
    _log_destroy_pending = True

    def __init__(
        self,
        coro: Coroutine[Any, Any, Any],
        *,
        loop: asyncio.AbstractEventLoop | None = None,
        name: str | None = None,
        context: contextvars.Context | None = None,
        eager_start: bool = False,
    ) -> None:
        """Wrap coro and schedule its first step (or run it now, if eager)."""
        super().__init__(loop=loop)
        if not asyncio.iscoroutine(coro):
            self._log_destroy_pending = False
            raise TypeError(f"a coroutine was expected, got {coro!r}")
        self._name = f"Task-{next(_task_name_counter)}" if name is None else str(name)
        self._coro = coro
        self._context = contextvars.copy_context() if context is None else context
        # Invariant: _fut_waiter is the future the coroutine is suspended on,
        # or None while the task is scheduled or running.
        self._fut_waiter: Any = None
        # Invariant: _must_cancel is True when a cancel() could not be passed
        # on to a waited-for future; the next step throws CancelledError in.
        self._must_cancel = False
        self._num_cancels_requested = 0
        if eager_start and self._loop.is_running():
            self._eager_start()
        else:
            self._loop.call_soon(self._step, context=self._context)
            _register_task(self)

    @reprlib.recursive_repr()
    def __repr__(self) -> str:
        coro = getattr(self._coro, "__qualname__", None) or "?"
        return (
            f"<{type(self).__name__} {self._repr_info()} "
            f"name={self._name!r} coro=<{coro}()>>"
        )

    def __del__(self) -> None:
        if self._state == _PENDING and self._log_destroy_pending:
            self._loop.call_exception_handler(
                {"task": self, "message": "Task was destroyed but it is pending!"}
            )
        super().__del__()

    # -- introspection -------------------------------------------------------

    def get_coro(self) -> Coroutine[Any, Any, Any] | None:
        """Return the wrapped coroutine."""
        return self._coro

    def get_context(self) -> contextvars.Context:
        """Return the context every step of the task runs in."""
        return self._context

    def get_name(self) -> str:
        """Return the task's name."""
        return self._name

    def set_name(self, value: object) -> None:
        """Rename the task."""
        self._name = str(value)

    def get_stack(self, *, limit: int | None = None) -> list[Any]:
        """Return the frames of the suspended coroutine (or of its traceback)."""
        return _aio_base_tasks._task_get_stack(self, limit)

    def print_stack(self, *, limit: int | None = None, file: Any = None) -> None:
        """Print get_stack() like a traceback."""
        return _aio_base_tasks._task_print_stack(self, limit, file)

    def set_result(self, result: Any) -> None:
        """Refuse: a task's result is what its coroutine returns."""
        raise RuntimeError("Task does not support set_result operation")

    def set_exception(self, exception: Any) -> None:
        """Refuse: a task's exception is what its coroutine raises."""
        raise RuntimeError("Task does not support set_exception operation")

    # -- cancellation --------------------------------------------------------

    def cancel(self, msg: Any = None) -> bool:
        """Ask the coroutine to stop: throw CancelledError in at its next step."""
        self._log_traceback = False
        if self._state != _PENDING:
            return False
        self._num_cancels_requested += 1
        # Why: cancelling what we wait for wakes us with a CancelledError, so
        # the coroutine sees the cancellation where it is suspended.
        if self._fut_waiter is not None and self._fut_waiter.cancel(msg=msg):
            return True
        self._must_cancel = True
        self._cancel_message = msg
        return True

    def cancelling(self) -> int:
        """Return how many cancellation requests are pending."""
        return self._num_cancels_requested

    def uncancel(self) -> int:
        """Withdraw one cancellation request; return how many remain."""
        if self._num_cancels_requested > 0:
            self._num_cancels_requested -= 1
            if _UNCANCEL_RESETS_MUST_CANCEL and self._num_cancels_requested == 0:
                self._must_cancel = False
        return self._num_cancels_requested

    # -- driving the coroutine: step and wakeup ---------------------------

    def _step(self, exc: BaseException | None = None, woken_by: Any = None) -> None:
        """Run the coroutine until its next trap, as the loop's current task."""
        if self._state != _PENDING:
            raise asyncio.InvalidStateError(
                f"_step(): already done: {self!r}, {exc!r}"
            )
        if self._must_cancel:
            if not isinstance(exc, asyncio.CancelledError):
                exc = self._make_cancelled_error()
            self._must_cancel = False
        self._fut_waiter = None
        loop = self._loop
        _enter_task(loop, self)
        try:
            observer = getattr(loop, "_observer", None)
            if observer is None:
                self._run_coroutine(exc)
            else:
                start = loop.time()
                try:
                    self._run_coroutine(exc)
                finally:
                    observer.on_task_step(loop, self, woken_by, start, loop.time())
        finally:
            _leave_task(loop, self)
            self = None  # Why: break the frame -> task cycle if exc holds us.

    def _run_coroutine(self, exc: BaseException | None) -> None:
        """Send into (or throw into) the coroutine and act on what it yields."""
        try:
            if exc is None:
                request = self._coro.send(None)
            else:
                request = self._coro.throw(exc)
        except StopIteration as stop:
            if self._must_cancel:
                # cancel() arrived during this very step: honour it.
                self._must_cancel = False
                Future.cancel(self, msg=self._cancel_message)
            else:
                Future.set_result(self, stop.value)
        except asyncio.CancelledError as cancelled:
            self._cancelled_exc = cancelled  # keeps message and traceback
            Future.cancel(self)
        except (KeyboardInterrupt, SystemExit) as fatal:
            Future.set_exception(self, fatal)
            raise
        except BaseException as error:
            Future.set_exception(self, error)
        else:
            self._handle_request(request)

    def _handle_request(self, request: Any) -> None:
        """Obey what the coroutine handed to the trap."""
        # Fast path first: a bare yield (sleep(0)) asks to run again soon.
        if request is None:
            self._loop.call_soon(self._step, context=self._context)
            return
        blocking = getattr(request, "_asyncio_future_blocking", None)
        if blocking is None:
            if inspect.isgenerator(request):
                message = (
                    "yield was used instead of yield from for generator "
                    f"in task {self!r} with {request!r}"
                )
            else:
                message = f"Task got bad yield: {request!r}"
        elif request.get_loop() is not self._loop:
            message = (
                f"Task {self!r} got Future {request!r} attached to a different loop"
            )
        elif not blocking:
            message = (
                f"yield was used instead of yield from in task {self!r} "
                f"with {request!r}"
            )
        elif request is self:
            message = f"Task cannot await on itself: {self!r}"
        else:
            # The normal case: a future (ours or anybody's) to wait for.
            request._asyncio_future_blocking = False
            request.add_done_callback(self._wakeup, context=self._context)
            self._fut_waiter = request
            if self._must_cancel and request.cancel(msg=self._cancel_message):
                self._must_cancel = False
            return
        self._loop.call_soon(self._step, RuntimeError(message), context=self._context)

    def _wakeup(self, future: Any) -> None:
        """Done callback of the awaited future: take the next step now."""
        try:
            future.result()
        except BaseException as exc:
            self._step(exc, future)
        else:
            # Why not pass the result: the coroutine's own await (the trap in
            # Future.__await__) reads it from the future.
            self._step(None, future)
        self = None

    def _eager_start(self) -> None:
        """Run the first step right now, inside the creator's step (3.12 style)."""
        loop = self._loop
        previous = asyncio.current_task(loop)
        if previous is not None:
            _leave_task(loop, previous)
        _enter_task(loop, self)
        if _register_eager_task is not None:
            _register_eager_task(self)
        try:
            observer = getattr(loop, "_observer", None)
            start = loop.time()
            try:
                self._context.run(self._run_coroutine, None)
            finally:
                if observer is not None:
                    observer.on_task_step(loop, self, None, start, loop.time())
        finally:
            if _unregister_eager_task is not None:
                _unregister_eager_task(self)
            _leave_task(loop, self)
            if previous is not None:
                _enter_task(loop, previous)
            if self.done():
                self._coro = None
            else:
                _register_task(self)


def eager_task_factory(
    loop: asyncio.AbstractEventLoop,
    coro: Coroutine[Any, Any, Any],
    *,
    name: str | None = None,
    context: contextvars.Context | None = None,
) -> Task:
    """Task factory that starts each new Task eagerly: loop.set_task_factory(this)."""
    return Task(coro, loop=loop, name=name, context=context, eager_start=True)
