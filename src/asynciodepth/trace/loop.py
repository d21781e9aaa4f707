"""The loop-level tracer: chapter "Tracing".

Builds on ``events.py`` (the ``LoopObserver`` hook of our loop) and on
``trace.format`` (the Recorder). A ``LoopTracer`` is an observer: our loop
tells it about every task step, callback, poll and timer, and it writes them as
Chrome Trace Events, one track per task, with arrows for wake-ups.
"""

from __future__ import annotations

from typing import Any

from asynciodepth.events import LoopObserver, TimerHandle
from asynciodepth.trace.format import FLUSH_EVERY, LOOP_TID, PID, Recorder, quote

__all__ = ["LoopTracer"]


def _callback_name(handle: Any) -> str:
    callback = getattr(handle, "_callback", None)
    if callback is None:
        return "callback"
    return getattr(callback, "__qualname__", None) or type(callback).__name__


def _is_done_future(obj: Any) -> bool:
    if getattr(type(obj), "_asyncio_future_blocking", None) is None:
        return False
    return obj.done()


def _outcome(task: Any) -> str:
    """Say how a step ended: the task is suspended, or it finished, and how."""
    if not task.done():
        return "suspended"
    if task.cancelled():
        return "cancelled"
    return "raised" if task.exception() is not None else "returned"


class LoopTracer(LoopObserver):
    """Record what our loop does as Chrome Trace Events.

    Install it with ``EventLoop(observer=tracer)`` or ``loop.set_observer``.
    Under a ``VirtualClock`` every step takes zero seconds; the tracer then
    lays events out one microsecond apart in the order they ran, so each has
    a width and the order survives in the viewer.
    """

    def __init__(self, recorder: Recorder, *, virtual: bool | None = None) -> None:
        self.recorder = recorder
        self._lines = recorder.pending
        self.virtual = virtual
        self._origin: float | None = None
        # Invariant: _cursor is the end (µs) of the last slice laid out; under
        # the virtual clock no slice starts before it.
        self._cursor: float = 0
        # id(task) -> [track, quoted name, steps so far, task]
        self._tracks: dict[int, list[Any]] = {}
        self._next_tid = LOOP_TID + 1
        self._flow_id = 0
        # Wake-up attribution: which slice put each ready handle in the queue.
        self._source: dict[int, tuple[int, float]] = {}  # id(handle) -> (tid, ts)
        self._marker: Any = None
        self._step_handle: Any = None

    # -- time -------------------------------------------------------------

    def _span(self, loop: Any, start: float, end: float) -> tuple[float, float]:
        """Turn loop times into (ts, dur) in microseconds."""
        if self._origin is None:
            self._origin = start
            if self.virtual is None:
                self.virtual = loop.get_clock() is not None
        if self.virtual:
            # Why round: virtual times are sums of sleeps; whole microseconds
            # keep the file identical on every run.
            ts = max(round((start - self._origin) * 1e6), self._cursor)
            dur = max(round((end - start) * 1e6), 1)
        else:
            # Nanoseconds are as fine as the clock goes, and keep lines short.
            ts = round((start - self._origin) * 1e6, 3)
            dur = round((end - start) * 1e6, 3)
        self._cursor = ts + dur if self.virtual else round(ts + dur, 3)
        return ts, dur

    # -- wake-up attribution ---------------------------------------------

    def _claim_new_handles(self, loop: Any, source: tuple[int, float]) -> None:
        """Attribute every handle queued since the last look to source."""
        # Why read loop._ready: the hook says what ran, not who scheduled it.
        # Handles queued since our last look sit at the right end of the FIFO,
        # after the rightmost one we saw (or all of them, if it already ran).
        ready = loop._ready
        if not ready:
            return
        marker = self._marker
        sources = self._source
        index = len(ready) - 1
        while index >= 0:
            handle = ready[index]
            if handle is marker:
                break
            sources[id(handle)] = source
            index -= 1
        self._marker = ready[-1]

    def _flow(self, source: tuple[int, float], tid: int, ts: float) -> None:
        self._flow_id += 1
        flow, (src_tid, src_ts) = self._flow_id, source
        self._lines.append(
            f'{{"ph":"s","id":{flow},"name":"wake-up","cat":"wakeup","pid":{PID},'
            f'"tid":{src_tid},"ts":{src_ts}}},\n'
            f'{{"ph":"f","bp":"e","id":{flow},"name":"wake-up","cat":"wakeup",'
            f'"pid":{PID},"tid":{tid},"ts":{ts}}},\n'
        )

    # -- the hook ---------------------------------------------------------

    def on_task_step(
        self, loop: Any, task: Any, woken_by: Any, start: float, end: float
    ) -> None:
        """Record one step of a task on the task's own track."""
        ts, dur = self._span(loop, start, end)
        track = self._tracks.get(id(task))
        if track is None:
            track = self._new_track(task, ts)
        tid, name = track[0], track[1]
        track[2] += 1
        done = task.done()
        outcome = _outcome(task) if done else "suspended"
        lines = self._lines
        lines.append(
            f'{{"ph":"X","name":{name},"cat":"step","pid":{PID},"tid":{tid},'
            f'"ts":{ts},"dur":{dur},"args":{{"step":{track[2]},'
            f'"outcome":"{outcome}"}}}},\n'
        )
        handle = loop._current_handle
        self._step_handle = handle
        source = self._source.pop(id(handle), None)
        if woken_by is not None and source is not None:
            self._flow(source, tid, ts)
        if loop._ready:
            self._claim_new_handles(loop, (tid, ts))
        if done:
            del self._tracks[id(task)]
            self.recorder.emit({"ph": "E", "name": task.get_name(), "cat": "task",
                                "pid": PID, "tid": tid, "ts": self._cursor,
                                "args": {"outcome": outcome}})
        if len(lines) >= FLUSH_EVERY:
            self.recorder.last_ts = self._cursor
            self.recorder.flush()

    def _new_track(self, task: Any, ts: float) -> list[Any]:
        tid = self._next_tid
        self._next_tid += 1
        name = task.get_name()
        coro = task.get_coro()
        qualname = getattr(coro, "__qualname__", type(coro).__name__)
        track = self._tracks[id(task)] = [tid, quote(name), 0, task]
        emit = self.recorder.emit
        emit({"ph": "M", "name": "thread_name", "pid": PID, "tid": tid,
              "args": {"name": f"{name} ({qualname})"}})
        emit({"ph": "M", "name": "thread_sort_index", "pid": PID, "tid": tid,
              "args": {"sort_index": tid}})
        emit({"ph": "B", "name": name, "cat": "task", "pid": PID, "tid": tid,
              "ts": ts,
              "args": {"coroutine": qualname}})
        return track

    def on_callback(self, loop: Any, handle: Any, start: float, end: float) -> None:
        """Record a plain callback (or a timer's) on the loop's track."""
        if handle is self._step_handle:
            # A task step: on_task_step recorded it already.
            self._step_handle = None
            return
        ts, dur = self._span(loop, start, end)
        kind = "timer" if isinstance(handle, TimerHandle) else "callback"
        self._lines.append(
            f'{{"ph":"X","name":{quote(_callback_name(handle))},"cat":"{kind}",'
            f'"pid":{PID},"tid":{LOOP_TID},"ts":{ts},"dur":{dur}}},\n'
        )
        source = self._source.pop(id(handle), None)
        args = handle._args
        if source is not None and args and _is_done_future(args[0]):
            # A future's done callback: an arrow from what completed the future.
            self._flow(source, LOOP_TID, ts)
        if loop._ready:
            self._claim_new_handles(loop, (LOOP_TID, ts))

    def on_poll(
        self, loop: Any, timeout: float | None, start: float, end: float,
        nevents: int,
    ) -> None:
        """Record a wait in the poll: how long the loop was blocked."""
        if end <= start and nevents == 0:
            return
        ts, dur = self._span(loop, start, end)
        shown = "null" if timeout is None else repr(round(timeout, 6))
        self._lines.append(
            f'{{"ph":"X","name":"poll","cat":"poll","pid":{PID},"tid":{LOOP_TID},'
            f'"ts":{ts},"dur":{dur},"args":{{"timeout":{shown},'
            f'"events":{nevents}}}}},\n'
        )
        if loop._ready:
            self._claim_new_handles(loop, (LOOP_TID, ts))

    def on_timer_fired(self, loop: Any, handle: Any, now: float) -> None:
        """Nothing to draw: the timer's callback is drawn when it runs."""

    # -- the beginning and the end ------------------------------------------

    def begin(self) -> None:
        """Write the metadata that names the process and the loop's track."""
        emit = self.recorder.emit
        emit({"ph": "M", "name": "process_name", "pid": PID,
              "args": {"name": "asynciodepth loop"}})
        emit({"ph": "M", "name": "thread_name", "pid": PID, "tid": LOOP_TID,
              "args": {"name": "loop: callbacks and polls"}})
        emit({"ph": "M", "name": "thread_sort_index", "pid": PID, "tid": LOOP_TID,
              "args": {"sort_index": 0}})

    def finish(self) -> None:
        """Forget the tasks still pending; the Recorder ends their tracks."""
        self.recorder.last_ts = self._cursor
        self._tracks.clear()
        self._source.clear()
