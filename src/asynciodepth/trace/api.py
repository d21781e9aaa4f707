"""``tracing()``, ``traced`` and ``Trace``: chapter "Tracing".

Builds on the two tracers (``trace.loop`` for our loop, ``trace.coroutines``
for any loop), the Recorder of ``trace.format`` and the figures and summaries
of ``trace.timeline``. This is the part a user touches.
"""

from __future__ import annotations

import functools
import inspect
import io
import os
from typing import Any, Callable

from asynciodepth.trace.coroutines import CoroutineTracer, TracingError
from asynciodepth.trace.format import LOOP_TID, PID, Recorder
from asynciodepth.trace.loop import LoopTracer
from asynciodepth.trace.timeline import Summary, plot_timeline, summarize

__all__ = ["Trace", "tracing", "traced"]

# Invariant: at most one trace records at a time in a process; this is it.
_active: Trace | None = None


class Trace:
    """One tracing session: use it as a context manager, then save, plot, summarize."""

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        loop: Any = None,
        max_bytes: int | None = None,
        display: bool = False,
    ) -> None:
        self.path = path
        self.loop = loop
        self.display = display
        self.recorder: Recorder | None = None
        self._max_bytes = max_bytes
        self.error: BaseException | None = None
        self._tracer: Any = None
        self._previous_observer: Any = None

    @property
    def kind(self) -> str:
        """Which tracer records: "loop" (our loop's hook) or "coroutines"."""
        return "loop" if self.loop is not None else "coroutines"

    @property
    def events(self) -> list[dict[str, Any]]:
        """The recorded Chrome Trace Events."""
        return [] if self.recorder is None else self.recorder.events

    @property
    def truncated(self) -> bool:
        """True if the size limit stopped the recording."""
        return self.recorder is not None and self.recorder.truncated

    # -- starting and stopping ---------------------------------------------

    def __enter__(self) -> Trace:
        global _active
        if _active is not None:
            raise TracingError(
                "tracing() is already active in this process; nested tracing is "
                "not supported: end the outer trace first"
            )
        self.recorder = Recorder(self.path, max_bytes=self._max_bytes)
        if self.loop is not None:
            if self.loop.get_observer() is not None:
                raise TracingError(f"the loop already has an observer: "
                                   f"{type(self.loop.get_observer()).__name__}")
            self._tracer = LoopTracer(self.recorder)
            self._tracer.begin()
            self.loop.set_observer(self._tracer)
        else:
            self._tracer = CoroutineTracer(self.recorder)
            self._tracer.start()
        _active = self
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        global _active
        _active = None
        if self.loop is not None:
            self.loop.set_observer(None)
            self._tracer.finish()
        else:
            self._tracer.stop()
        if exc is not None:
            # The trace says why it ends; the exception still propagates.
            self.error = exc
            self.recorder.emit_final([{
                "ph": "i", "s": "g", "name": f"{exc_type.__name__}: {exc}",
                "cat": "error", "pid": PID, "tid": LOOP_TID,
                "ts": self.recorder.last_ts,
            }])
        self.recorder.close()
        if self.display and exc is None:
            _display(self)

    # -- results ---------------------------------------------------------------

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the trace as JSON that Perfetto and vizviewer load."""
        self.recorder.save(path)

    def summary(self, *, top: int = 3) -> Summary:
        """Steps per task, time running against waiting, the longest steps."""
        return summarize(self.events, top=top)

    def plot(self, **options: Any) -> Any:
        """Draw the timeline with matplotlib and return the Figure."""
        return plot_timeline(self.events, **options)

    def _repr_png_(self) -> bytes:
        import matplotlib.pyplot as plt

        fig = self.plot()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png")
        plt.close(fig)
        return buffer.getvalue()

    def __repr__(self) -> str:
        tasks = sum(1 for e in self.events if e.get("ph") == "B")
        steps = sum(1 for e in self.events if e.get("cat") == "step")
        return f"<Trace {self.kind}: {tasks} tasks, {steps} steps>"


def _display(trace: Trace) -> None:
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:
        return
    if get_ipython() is not None:
        import matplotlib.pyplot as plt

        fig = trace.plot()
        display(fig)
        plt.close(fig)


def tracing(
    path: str | os.PathLike[str] | None = None,
    *,
    loop: Any = None,
    max_bytes: int | None = None,
    display: bool = False,
) -> Trace:
    """Trace what runs inside ``with``: one of our loops, or every task anywhere.

    Args:
        path: stream the events to this JSON file as they come.
        loop: an asynciodepth loop to trace through its observer hook; without
            it the coroutine tracer records every task on any loop.
        max_bytes: stop recording, with a TraceSizeWarning, at this size.
        display: in Jupyter, show the timeline when the block ends.
    """
    return Trace(path, loop=loop, max_bytes=max_bytes, display=display)


def traced(
    path: str | os.PathLike[str] | None = None, **options: Any
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorate a function, sync or async, so that each call is traced."""

    def decorate(function: Callable[..., Any]) -> Callable[..., Any]:
        if inspect.iscoroutinefunction(function):

            @functools.wraps(function)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                with tracing(path, **options) as trace:
                    async_wrapper.last_trace = trace
                    return await function(*args, **kwargs)

            return async_wrapper

        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with tracing(path, **options) as trace:
                wrapper.last_trace = trace
                return function(*args, **kwargs)

        return wrapper

    return decorate
