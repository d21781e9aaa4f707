"""The event loop core: chapter "The event loop".

Builds on ``events.py`` (handles, the virtual clock, the observer interface)
and ``futures.py`` (``create_future`` returns our Future). The Task arrives in
chapter "The scheduler": until then ``create_task`` makes the stdlib's Task,
which is happy to run on any loop that keeps asyncio's loop contract. How the
loop waits (``_poll``) is left to ``selector_events.py``.

One iteration of the loop, ``_run_once``, has four sections:

1. decide how long the loop may block (0 if callbacks are ready, else until
   the next timer, else forever);
2. poll for I/O with that timeout, through the ``_poll``/``_process_events``
   seam (a virtual clock jumps instead of sleeping);
3. move the timers that are due onto the ready queue;
4. run the callbacks that were ready at that point, and no others.
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import heapq
import itertools
import logging
import math
import os
import sys
import threading
import time
import warnings
import weakref
from asyncio import events as _aio_events
from typing import Any, Awaitable, Callable

from .events import Handle, LoopObserver, TimerHandle, VirtualClock
from .futures import Future, isfuture

__all__ = ["BaseEventLoop"]

logger = logging.getLogger("asyncio")  # Why: users configure asyncio's logger.

# Why: select() rejects huge timeouts on some platforms; asyncio caps at a day.
_MAXIMUM_POLL_TIMEOUT = 24 * 3600
# When callbacks keep the loop busy, it still polls after this many callbacks
# ran since the last poll, so I/O and wake-ups are never starved. Polling on
# every iteration (as asyncio does) costs a system call per iteration; see
# benchmarks/bench_loop.py, workload (a).
_POLL_EVERY_CALLBACKS = 64
# Rebuild the heap when more than half of at least this many timers are dead.
_MIN_SCHEDULED_TIMER_HANDLES = 100
_MIN_CANCELLED_TIMER_HANDLES_FRACTION = 0.5
_NEGATIVE_INFINITY = -math.inf


def _run_until_complete_cb(fut: Any) -> None:
    """Done callback of run_until_complete(): stop the future's loop."""
    if not fut.cancelled():
        exc = fut.exception()
        if isinstance(exc, (SystemExit, KeyboardInterrupt)):
            # Why: the exception is already propagating out of the loop; a
            # stop() now would leak into the next run of the loop.
            return
    fut.get_loop().stop()


class BaseEventLoop(asyncio.AbstractEventLoop):
    """A pure-Python asyncio event loop: ready queue, timer heap and a poll."""

    # The Task class create_task() uses when no task factory is set. The
    # scheduler chapter's EventLoop replaces it with our own Task.
    _task_class: Callable[..., Any] = asyncio.Task

    def __init__(
        self,
        *,
        clock: VirtualClock | None = None,
        observer: LoopObserver | None = None,
    ) -> None:
        # Invariant: _ready holds the Handles to run, in call_soon order.
        self._ready: collections.deque[Handle] = collections.deque()
        # Invariant: _scheduled is a heap of (deadline, sequence, TimerHandle);
        # the sequence number makes equal deadlines fire in call_at order.
        self._scheduled: list[tuple[float, int, TimerHandle]] = []
        self._timer_sequence = itertools.count()
        # Invariant: _timer_cancelled_count counts the cancelled handles that
        # are still in _scheduled.
        self._timer_cancelled_count = 0
        self._callbacks_since_poll = 0
        self._stopping = False
        self._closed = False
        # Invariant: _thread_id is not None exactly while run_forever() runs.
        self._thread_id: int | None = None
        self._clock = clock
        self._now = time.monotonic if clock is None else clock.time
        self._clock_resolution = time.get_clock_info("monotonic").resolution
        self._observer = observer
        self._debug = False
        self.set_debug(_debug_from_environment())
        self.slow_callback_duration = 0.1
        self._current_handle: Handle | None = None
        self._exception_handler: Callable[..., object] | None = None
        self._task_factory: Callable[..., Any] | None = None
        self._default_executor: Any = None  # see runners.EventLoop
        self._executor_shutdown_called = False
        # Invariant: _external_work counts executor jobs still running; while
        # it is positive a virtual clock waits for real (see _run_once).
        self._external_work = 0
        self._asyncgens: weakref.WeakSet = weakref.WeakSet()
        self._asyncgens_shutdown_called = False
        self._coroutine_origin_tracking_saved_depth: int | None = None

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} running={self.is_running()} "
            f"closed={self.is_closed()} debug={self.get_debug()}>"
        )

    # ------------------------------------------------------------------
    # Time
    # ------------------------------------------------------------------

    def time(self) -> float:
        """Return the loop's clock: monotonic seconds, or the virtual clock."""
        return self._now()

    def get_clock(self) -> VirtualClock | None:
        """Return the VirtualClock the loop runs on, or None for real time."""
        return self._clock

    # ------------------------------------------------------------------
    # Scheduling callbacks
    # ------------------------------------------------------------------

    def call_soon(
        self,
        callback: Callable[..., object],
        *args: Any,
        context: contextvars.Context | None = None,
    ) -> Handle:
        """Run callback(*args) on the next iteration, after those already queued."""
        if self._closed:  # Why inline: see _check_closed() and benchmark (a).
            raise RuntimeError("Event loop is closed")
        if self._debug:
            self._check_thread()
            self._check_callback(callback, "call_soon")
        handle = Handle(callback, args, self, context)
        self._ready.append(handle)
        return handle

    def call_later(
        self,
        delay: float,
        callback: Callable[..., object],
        *args: Any,
        context: contextvars.Context | None = None,
    ) -> TimerHandle:
        """Run callback(*args) delay seconds from now."""
        if delay is None:
            raise TypeError("delay must not be None")
        # Why not self.call_at(...): this is the hot path of every sleep;
        # skipping one call with *args and keywords is ~4% of workload (c).
        when = self._now() + delay
        if self._closed:
            raise RuntimeError("Event loop is closed")
        if self._debug:
            self._check_thread()
            self._check_callback(callback, "call_at")
        timer = TimerHandle(when, callback, args, self, context)
        key = when if when == when else _NEGATIVE_INFINITY
        heapq.heappush(self._scheduled, (key, next(self._timer_sequence), timer))
        timer._scheduled = True
        return timer

    def call_at(
        self,
        when: float,
        callback: Callable[..., object],
        *args: Any,
        context: contextvars.Context | None = None,
    ) -> TimerHandle:
        """Run callback(*args) when loop.time() reaches when."""
        if when is None:
            raise TypeError("when cannot be None")
        self._check_closed()
        if self._debug:
            self._check_thread()
            self._check_callback(callback, "call_at")
        timer = TimerHandle(when, callback, args, self, context)
        # Why: asyncio runs a NaN deadline at once (every comparison with NaN
        # is false). We keep that behaviour but make it explicit, so that NaN
        # never sits inside the heap and breaks its order.
        key = when if when == when else _NEGATIVE_INFINITY
        heapq.heappush(self._scheduled, (key, next(self._timer_sequence), timer))
        timer._scheduled = True
        return timer

    def call_soon_threadsafe(
        self,
        callback: Callable[..., object],
        *args: Any,
        context: contextvars.Context | None = None,
    ) -> Handle:
        """Like call_soon(), callable from any thread; wakes a sleeping loop."""
        self._check_closed()
        if self._debug:
            self._check_callback(callback, "call_soon_threadsafe")
        handle = Handle(callback, args, self, context)
        # Why this is safe: deque.append is atomic, and the loop only pops
        # from the left the number of handles it counted beforehand.
        self._ready.append(handle)
        self._write_to_self()
        return handle

    def _write_to_self(self) -> None:
        """Wake the loop if it is blocked in _poll(); see selector_events.py."""
        raise NotImplementedError

    def _timer_handle_cancelled(self, handle: TimerHandle) -> None:
        """Called by TimerHandle.cancel() for a timer still in the heap."""
        self._timer_cancelled_count += 1

    def _check_callback(self, callback: object, method: str) -> None:
        if asyncio.iscoroutine(callback) or asyncio.iscoroutinefunction(callback):
            raise TypeError(f"coroutines cannot be used with {method}()")
        if not callable(callback):
            raise TypeError(
                f"a callable object was expected by {method}(), got {callback!r}"
            )

    def _check_thread(self) -> None:
        """In debug mode: refuse calls from a thread other than the loop's."""
        if self._thread_id is None:
            return
        if threading.get_ident() != self._thread_id:
            raise RuntimeError(
                "Non-thread-safe operation invoked on an event loop other "
                "than the current one"
            )

    def _check_closed(self) -> None:
        if self._closed:
            raise RuntimeError("Event loop is closed")

    # ------------------------------------------------------------------
    # Futures and tasks
    # ------------------------------------------------------------------

    def create_future(self) -> Future:
        """Create one of our Futures attached to this loop."""
        return Future(loop=self)

    def create_task(
        self,
        coro: Any,
        *,
        name: str | None = None,
        context: contextvars.Context | None = None,
    ) -> Any:
        """Wrap coro in a Task (or what the task factory makes) and schedule it."""
        self._check_closed()
        if self._task_factory is None:
            return self._task_class(coro, loop=self, name=name, context=context)
        if context is None:
            task = self._task_factory(self, coro)
        else:
            task = self._task_factory(self, coro, context=context)
        if name is not None:
            task.set_name(name)
        return task

    def set_task_factory(self, factory: Callable[..., Any] | None) -> None:
        """Use factory(loop, coro[, context=...]) in create_task(); None resets."""
        if factory is not None and not callable(factory):
            raise TypeError("task factory must be a callable or None")
        self._task_factory = factory

    def get_task_factory(self) -> Callable[..., Any] | None:
        """Return the task factory, or None for the default one."""
        return self._task_factory

    # ------------------------------------------------------------------
    # Running and stopping
    # ------------------------------------------------------------------

    def is_running(self) -> bool:
        """Return True while run_forever() runs."""
        return self._thread_id is not None

    def is_closed(self) -> bool:
        """Return True once close() was called."""
        return self._closed

    def _check_running(self) -> None:
        if self.is_running():
            raise RuntimeError("This event loop is already running")
        if _aio_events._get_running_loop() is not None:
            raise RuntimeError(
                "Cannot run the event loop while another loop is running"
            )

    def run_forever(self) -> None:
        """Run iterations until stop() is called."""
        self._check_closed()
        self._check_running()
        self._set_coroutine_origin_tracking(self._debug)
        old_hooks = sys.get_asyncgen_hooks()
        try:
            self._thread_id = threading.get_ident()
            sys.set_asyncgen_hooks(
                firstiter=self._asyncgen_firstiter_hook,
                finalizer=self._asyncgen_finalizer_hook,
            )
            _aio_events._set_running_loop(self)
            while True:
                self._run_once()
                if self._stopping:
                    break
        finally:
            self._stopping = False
            self._thread_id = None
            _aio_events._set_running_loop(None)
            self._set_coroutine_origin_tracking(False)
            sys.set_asyncgen_hooks(*old_hooks)

    def run_until_complete(self, future: Awaitable[Any]) -> Any:
        """Run until future (a coroutine, future or awaitable) is done; return its result."""
        self._check_closed()
        self._check_running()
        new_task = not isfuture(future)
        future = asyncio.ensure_future(future, loop=self)
        if new_task:
            # The caller never sees this task; its result is returned below.
            future._log_destroy_pending = False
        future.add_done_callback(_run_until_complete_cb)
        try:
            self.run_forever()
        except BaseException:
            if new_task and future.done() and not future.cancelled():
                # The coroutine raised a BaseException that is propagating
                # now: mark it retrieved, nobody else can.
                future.exception()
            raise
        finally:
            future.remove_done_callback(_run_until_complete_cb)
        if not future.done():
            raise RuntimeError("Event loop stopped before Future completed.")
        return future.result()

    def stop(self) -> None:
        """Stop after the current iteration; callbacks already queued still run."""
        self._stopping = True

    def close(self) -> None:
        """Drop pending callbacks, close the wake-up socket and the executor."""
        if self.is_running():
            raise RuntimeError("Cannot close a running event loop")
        if self._closed:
            return
        self._closed = True
        self._ready.clear()
        self._scheduled.clear()
        self._timer_cancelled_count = 0
        self._executor_shutdown_called = True
        executor = self._default_executor
        if executor is not None:
            self._default_executor = None
            executor.shutdown(wait=False)

    def __del__(self, _warn: Callable[..., None] = warnings.warn) -> None:
        if not getattr(self, "_closed", True):
            _warn(f"unclosed event loop {self!r}", ResourceWarning, source=self)
            if not self.is_running():
                self.close()

    # ------------------------------------------------------------------
    # One iteration
    # ------------------------------------------------------------------

    def _poll(self, timeout: float | None) -> list[tuple[Any, int]]:
        """Wait up to timeout seconds (None: forever) for I/O; return the events.

        The seam between the loop and the operating system: selector_events.py
        implements it with a selector, and the epoll chapter replaces it.
        """
        raise NotImplementedError

    def _process_events(self, events: list[tuple[Any, int]]) -> None:
        """Turn the events _poll() returned into ready callbacks."""
        raise NotImplementedError

    def _run_once(self) -> None:
        """Run one iteration: poll, move due timers, run the ready snapshot."""
        ready = self._ready
        scheduled = self._scheduled

        # ---- 1. How long may we block? ----------------------------------
        if self._timer_cancelled_count:
            self._drop_cancelled_timers()
        if ready or self._stopping:
            timeout: float | None = 0.0
        elif scheduled:
            timeout = min(max(0.0, scheduled[0][0] - self._now()), _MAXIMUM_POLL_TIMEOUT)
        else:
            timeout = None

        # ---- 2. Poll for I/O and wake-ups ---------------------------------
        # Why skip: when callbacks are ready the poll cannot block, and a
        # zero-timeout poll on every iteration is a system call per callback.
        # Threadsafe callbacks are already in _ready; only I/O can wait, and
        # it waits for at most _POLL_EVERY_CALLBACKS callbacks.
        if timeout != 0.0 or self._callbacks_since_poll >= _POLL_EVERY_CALLBACKS:
            self._callbacks_since_poll = 0
            observer = self._observer
            if observer is None:
                self._poll_and_wait(timeout)
            else:
                start = self._now()
                nevents = self._poll_and_wait(timeout)
                observer.on_poll(self, timeout, start, self._now(), nevents)

        # ---- 3. Timers that are due become ready --------------------------
        if scheduled:
            now = self._now()
            end_time = now + self._clock_resolution
            observer = self._observer
            while scheduled:
                if scheduled[0][0] >= end_time:
                    break
                timer = heapq.heappop(scheduled)[2]
                timer._scheduled = False
                if timer._cancelled:
                    self._timer_cancelled_count -= 1
                    continue
                ready.append(timer)
                if observer is not None:
                    observer.on_timer_fired(self, timer, now)

        # ---- 4. Run what was ready at this point, and nothing else -------
        # Invariant: callbacks scheduled by these callbacks wait for the next
        # iteration. This is the only place where callbacks are called.
        ntodo = len(ready)
        self._callbacks_since_poll += ntodo
        if self._observer is None and not self._debug:
            popleft = ready.popleft
            for _ in range(ntodo):
                handle = popleft()
                if handle._cancelled:
                    continue
                try:
                    handle._context.run(handle._callback, *handle._args)
                except (SystemExit, KeyboardInterrupt):
                    raise
                except BaseException as exc:
                    self._callback_failed(handle, exc)
        else:
            self._run_ready_instrumented(ntodo)
        handle = None  # Why: don't keep the last callback's arguments alive.

    def _poll_and_wait(self, timeout: float | None) -> int:
        """Poll with timeout; under a virtual clock jump instead of sleeping."""
        clock = self._clock
        if clock is None or timeout is None or timeout == 0.0:
            events = self._poll(timeout)
            self._process_events(events)
            return len(events)
        # Virtual time: nothing is ready, a timer is pending. Look for I/O
        # without blocking; if there is none, the next timer is due "now".
        # Exception: while executor jobs run, wait for them for real.
        events = self._poll(timeout if self._external_work else 0.0)
        if events:
            self._process_events(events)
        else:
            clock.advance_to(self._scheduled[0][0])
        return len(events)

    def _drop_cancelled_timers(self) -> None:
        scheduled = self._scheduled
        if (
            len(scheduled) > _MIN_SCHEDULED_TIMER_HANDLES
            and self._timer_cancelled_count / len(scheduled)
            > _MIN_CANCELLED_TIMER_HANDLES_FRACTION
        ):
            alive = []
            for entry in scheduled:
                if entry[2]._cancelled:
                    entry[2]._scheduled = False
                else:
                    alive.append(entry)
            heapq.heapify(alive)
            self._scheduled = scheduled = alive
            self._timer_cancelled_count = 0
        else:
            while scheduled and scheduled[0][2]._cancelled:
                self._timer_cancelled_count -= 1
                heapq.heappop(scheduled)[2]._scheduled = False

    def _run_ready_instrumented(self, ntodo: int) -> None:
        """Run ntodo ready handles, telling the observer and timing slow ones."""
        ready = self._ready
        observer = self._observer
        debug = self._debug
        for _ in range(ntodo):
            handle = ready.popleft()
            if handle._cancelled:
                continue
            self._current_handle = handle
            start = self._now()
            wall_start = time.perf_counter() if debug else 0.0
            try:
                handle._context.run(handle._callback, *handle._args)
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self._callback_failed(handle, exc)
            finally:
                self._current_handle = None
            if debug:
                duration = time.perf_counter() - wall_start
                if duration >= self.slow_callback_duration:
                    logger.warning(
                        "Executing %s took %.3f seconds", handle, duration
                    )
            if observer is not None:
                observer.on_callback(self, handle, start, self._now())

    def _callback_failed(self, handle: Handle, exc: BaseException) -> None:
        self.call_exception_handler(
            {
                "message": f"Exception in callback {handle._describe()}",
                "exception": exc,
                "handle": handle,
            }
        )

    # ------------------------------------------------------------------
    # Observer, debug mode
    # ------------------------------------------------------------------

    def set_observer(self, observer: LoopObserver | None) -> None:
        """Install observer (or None to remove it); see events.LoopObserver."""
        self._observer = observer

    def get_observer(self) -> LoopObserver | None:
        """Return the installed observer, or None."""
        return self._observer

    def get_debug(self) -> bool:
        """Return True if debug mode is on."""
        return self._debug

    def set_debug(self, enabled: bool) -> None:
        """Turn debug mode on or off: slow callbacks logged, thread checks."""
        self._debug = enabled
        if self.is_running():
            self.call_soon_threadsafe(self._set_coroutine_origin_tracking, enabled)

    def _set_coroutine_origin_tracking(self, enabled: bool) -> None:
        if bool(enabled) == (self._coroutine_origin_tracking_saved_depth is not None):
            return
        if enabled:
            self._coroutine_origin_tracking_saved_depth = (
                sys.get_coroutine_origin_tracking_depth()
            )
            sys.set_coroutine_origin_tracking_depth(10)
        else:
            sys.set_coroutine_origin_tracking_depth(
                self._coroutine_origin_tracking_saved_depth
            )
            self._coroutine_origin_tracking_saved_depth = None

    # ------------------------------------------------------------------
    # Errors
    # ------------------------------------------------------------------

    def get_exception_handler(self) -> Callable[..., object] | None:
        """Return the custom exception handler, or None."""
        return self._exception_handler

    def set_exception_handler(self, handler: Callable[..., object] | None) -> None:
        """Use handler(loop, context) for errors nobody else can see; None resets."""
        if handler is not None and not callable(handler):
            raise TypeError(f"A callable object or None is expected, got {handler!r}")
        self._exception_handler = handler

    def default_exception_handler(self, context: dict[str, Any]) -> None:
        """Log context['message'], the other keys and the exception to 'asyncio'."""
        message = context.get("message") or "Unhandled exception in event loop"
        exception = context.get("exception")
        exc_info: Any = False
        if exception is not None:
            exc_info = (type(exception), exception, exception.__traceback__)
        lines = [message]
        for key in sorted(context):
            if key in {"message", "exception"}:
                continue
            lines.append(f"{key}: {context[key]!r}")
        logger.error("\n".join(lines), exc_info=exc_info)

    def call_exception_handler(self, context: dict[str, Any]) -> None:
        """Hand an error context to the custom handler, or to the default one."""
        if self._exception_handler is None:
            try:
                self.default_exception_handler(context)
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException:
                logger.error("Exception in default exception handler", exc_info=True)
            return
        try:
            owner = context.get("task") or context.get("future") or context.get(
                "handle"
            )
            get_context = getattr(owner, "get_context", None)
            if _HANDLER_RUNS_IN_CONTEXT and get_context is not None:
                # 3.12+: the handler sees the ContextVars of the failing code.
                get_context().run(self._exception_handler, self, context)
            else:
                self._exception_handler(self, context)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            try:
                self.default_exception_handler(
                    {
                        "message": "Unhandled error in exception handler",
                        "exception": exc,
                        "context": context,
                    }
                )
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException:
                logger.error(
                    "Exception in default exception handler while handling an "
                    "unexpected error in custom exception handler",
                    exc_info=True,
                )

    # ------------------------------------------------------------------
    # Async generators
    # ------------------------------------------------------------------

    def _asyncgen_firstiter_hook(self, agen: Any) -> None:
        if self._asyncgens_shutdown_called:
            warnings.warn(
                f"asynchronous generator {agen!r} was scheduled after "
                "loop.shutdown_asyncgens() call",
                ResourceWarning,
                source=self,
            )
        self._asyncgens.add(agen)

    def _asyncgen_finalizer_hook(self, agen: Any) -> None:
        # Called by the garbage collector, perhaps from another thread.
        self._asyncgens.discard(agen)
        if not self.is_closed():
            self.call_soon_threadsafe(self.create_task, agen.aclose())


_HANDLER_RUNS_IN_CONTEXT = sys.version_info >= (3, 12)


def _debug_from_environment() -> bool:
    """Debug mode as asyncio decides it: -X dev or PYTHONASYNCIODEBUG."""
    return sys.flags.dev_mode or (
        not sys.flags.ignore_environment and bool(os.environ.get("PYTHONASYNCIODEBUG"))
    )
