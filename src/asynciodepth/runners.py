"""The finished loop and the ways to run it: chapter "The scheduler".

Builds on ``selector_events.py`` (the loop core with its poll) and
``tasks.py`` (our Task). ``EventLoop`` adds what a runner needs to finish a
program cleanly: the default thread pool behind ``run_in_executor`` and
``asyncio.to_thread``, and the shutdown of executor and async generators.
Around it: ``new_event_loop``, an event loop policy, and ``run``, which,
unlike ``asyncio.run``, also works from a Jupyter cell, where ipykernel's own
loop is already running.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import socket
import threading
import warnings
from asyncio import events as _aio_events
from typing import Any, Callable, Coroutine

from .futures import Future
from .selector_events import BaseSelectorEventLoop
from .tasks import Task

__all__ = ["EventLoop", "EventLoopPolicy", "new_event_loop", "run"]


class EventLoop(BaseSelectorEventLoop):
    """asynciodepth's event loop: pure Python, with our own Task."""

    _task_class = Task

    def run_in_executor(
        self,
        executor: concurrent.futures.Executor | None,
        func: Callable[..., Any],
        *args: Any,
    ) -> Future:
        """Run func(*args) in executor (default: a thread pool); return a Future."""
        self._check_closed()
        if self._debug:
            self._check_callback(func, "run_in_executor")
        if executor is None:
            if self._executor_shutdown_called:
                raise RuntimeError("Executor shutdown has been called")
            executor = self._default_executor
            if executor is None:
                executor = concurrent.futures.ThreadPoolExecutor(
                    thread_name_prefix="asyncio"
                )
                self._default_executor = executor
        future = asyncio.wrap_future(executor.submit(func, *args), loop=self)
        self._external_work += 1
        future.add_done_callback(self._external_work_done)
        return future

    def _external_work_done(self, future: Any) -> None:
        self._external_work -= 1

    def set_default_executor(
        self, executor: concurrent.futures.ThreadPoolExecutor
    ) -> None:
        """Use executor for run_in_executor(None, ...)."""
        if not isinstance(executor, concurrent.futures.ThreadPoolExecutor):
            raise TypeError("executor must be ThreadPoolExecutor instance")
        self._default_executor = executor

    async def shutdown_default_executor(self, timeout: float | None = None) -> None:
        """Wait (in a helper thread) until the default executor's threads end."""
        self._executor_shutdown_called = True
        if self._default_executor is None:
            return
        future = self.create_future()
        thread = threading.Thread(target=self._do_shutdown, args=(future,))
        self._external_work += 1
        future.add_done_callback(self._external_work_done)
        thread.start()
        try:
            async with asyncio.timeout(timeout):
                await future
        except TimeoutError:
            warnings.warn(
                "The executor did not finishing joining "
                f"its threads within {timeout} seconds.",
                RuntimeWarning,
                stacklevel=2,
            )
            self._default_executor.shutdown(wait=False)
        else:
            thread.join()

    def _do_shutdown(self, future: Future) -> None:
        try:
            self._default_executor.shutdown(wait=True)
            if not self.is_closed():
                self.call_soon_threadsafe(_set_result_if_pending, future, None)
        except Exception as exc:
            if not self.is_closed():
                self.call_soon_threadsafe(future.set_exception, exc)

    async def shutdown_asyncgens(self) -> None:
        """Close every async generator that is still suspended."""
        self._asyncgens_shutdown_called = True
        if not len(self._asyncgens):
            return
        closing = list(self._asyncgens)
        self._asyncgens.clear()
        results = await asyncio.gather(
            *[agen.aclose() for agen in closing], return_exceptions=True
        )
        for result, agen in zip(results, closing):
            if isinstance(result, Exception):
                self.call_exception_handler(
                    {
                        "message": "an error occurred during closing of "
                        f"asynchronous generator {agen!r}",
                        "exception": result,
                        "asyncgen": agen,
                    }
                )

    async def getaddrinfo(
        self,
        host: Any,
        port: Any,
        *,
        family: int = 0,
        type: int = 0,
        proto: int = 0,
        flags: int = 0,
    ) -> Any:
        """Resolve host and port in the default executor."""
        return await self.run_in_executor(
            None, socket.getaddrinfo, host, port, family, type, proto, flags
        )

    async def getnameinfo(self, sockaddr: Any, flags: int = 0) -> Any:
        """Reverse-resolve sockaddr in the default executor."""
        return await self.run_in_executor(None, socket.getnameinfo, sockaddr, flags)


def _set_result_if_pending(future: Any, result: Any) -> None:
    if not future.done():
        future.set_result(result)


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
        factory = loop_factory or EventLoop
        with asyncio.Runner(debug=debug, loop_factory=factory) as runner:
            return runner.run(main)
    finally:
        if outer is not None:
            _aio_events._set_running_loop(outer)
