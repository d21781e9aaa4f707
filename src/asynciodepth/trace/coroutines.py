"""A tracer for any asyncio program on any loop: chapter "Tracing".

Builds on ``trace.format`` (the Recorder) and on the interpreter's own hooks,
not on our loop: ``sys.monitoring`` on Python 3.12 and later, ``sys.setprofile``
on 3.11. It records each step of each task: the time from when the task's
outermost coroutine starts or resumes to when it suspends or finishes.
"""

from __future__ import annotations

import asyncio
import dis
import sys
import threading
import time
from typing import Any

from asynciodepth.trace.format import FLUSH_EVERY, LOOP_TID, PID, Recorder, quote

__all__ = ["CoroutineTracer", "TracingError", "MONITORING"]

# True where sys.monitoring exists (3.12+); the 3.11 path uses sys.setprofile.
MONITORING = hasattr(sys, "monitoring")
_CO_COROUTINE = 0x80  # inspect.CO_COROUTINE: code of an `async def` function
# Why only on 3.11: these opcodes end a 3.11 coroutine frame. 3.12 changed the
# bytecode (RETURN_CONST, a different await loop), which is what broke
# Panopticon; there we use sys.monitoring's PY_YIELD/PY_RETURN events instead.
_YIELD_VALUE = dis.opmap.get("YIELD_VALUE")
_RETURN_VALUE = dis.opmap.get("RETURN_VALUE")


class TracingError(RuntimeError):
    """Tracing could not start: it is already running, or the hook is taken."""


class CoroutineTracer:
    """Record the steps of every task, on whatever loop runs them."""

    TOOL_NAME = "asynciodepth.trace"

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self._lines = recorder.pending
        self._origin = 0
        self._thread = 0
        # Invariant: _stack holds, innermost last, the outermost coroutine
        # frames that are running right now (more than one only when a step
        # runs another coroutine to completion inside itself, e.g. eager tasks).
        self._stack: list[tuple[int, int, int]] = []  # (id(frame), tid, start)
        self._tids: dict[int, int] = {}  # id(frame) -> track
        self._task_tids: dict[int, int] = {}  # id(task) -> track
        self._names: dict[int, str] = {}  # track -> name
        self._quoted: dict[int, str] = {}  # track -> name as a JSON string
        self._steps: dict[int, int] = {}  # track -> steps so far
        self._awaiting: dict[int, int] = {}  # track -> id(task) it awaits
        self._final: dict[int, tuple[int, float]] = {}  # id(task) -> last slice
        self._next_tid = LOOP_TID + 1
        self._flow_id = 0
        self.tool_id: int | None = None

    # -- switching on and off -------------------------------------------------

    def start(self) -> None:
        """Install the hook; raise TracingError if it is in use."""
        self._origin = time.perf_counter_ns()
        self._thread = threading.get_ident()
        self.recorder.emit({"ph": "M", "name": "process_name", "pid": PID,
                            "args": {"name": "asyncio tasks"}})
        if MONITORING:
            self._start_monitoring()
        else:
            if sys.getprofile() is not None:
                raise TracingError(
                    "sys.setprofile() is already in use (a profiler or debugger?)"
                )
            sys.setprofile(self._profile)

    def stop(self) -> None:
        """Remove the hook; record the steps that were running as interrupted."""
        if MONITORING:
            mon = sys.monitoring
            if self.tool_id is not None:
                mon.set_events(self.tool_id, 0)
                for event in self._callbacks():
                    mon.register_callback(self.tool_id, event, None)
                mon.free_tool_id(self.tool_id)
                self.tool_id = None
        elif sys.getprofile() == self._profile:
            sys.setprofile(None)
        now = (time.perf_counter_ns() - self._origin) / 1000
        closing = [
            {"ph": "X", "name": self._names[tid], "cat": "step", "pid": PID,
             "tid": tid, "ts": start / 1000, "dur": now - start / 1000,
             "args": {"step": self._steps[tid] + 1, "outcome": "interrupted"}}
            for _frame_id, tid, start in reversed(self._stack)
        ]
        self._stack.clear()
        self.recorder.last_ts = now
        # Tasks still pending keep their tracks open: the Recorder ends them.
        self._tids.clear()
        self.recorder.emit_final(closing)

    def _callbacks(self) -> dict[int, Any]:
        events = sys.monitoring.events
        return {
            events.PY_START: self._on_start,
            events.PY_RESUME: self._on_resume,
            events.PY_THROW: self._on_resume,
            events.PY_YIELD: self._on_yield,
            events.PY_RETURN: self._on_return,
            events.PY_UNWIND: self._on_unwind,
        }

    def _start_monitoring(self) -> None:
        mon = sys.monitoring
        tool_id = None
        for candidate in (mon.PROFILER_ID, 4, 3):
            if mon.get_tool(candidate) is None:
                tool_id = candidate
                break
        if tool_id is None:
            raise TracingError("no free sys.monitoring tool id for the tracer")
        mon.use_tool_id(tool_id, self.TOOL_NAME)
        self.tool_id = tool_id
        events = 0
        for event, callback in self._callbacks().items():
            mon.register_callback(tool_id, event, callback)
            events |= event
        # Why restart: DISABLE is remembered per code location; a previous
        # tracing session may have disabled code that is a coroutine now.
        mon.restart_events()
        mon.set_events(tool_id, events)

    # -- the 3.12+ hook: sys.monitoring ---------------------------------------

    def _on_start(self, code: Any, offset: int) -> Any:
        if not code.co_flags & _CO_COROUTINE:
            # Plain functions and generators: never call us here again.
            return sys.monitoring.DISABLE
        frame = sys._getframe(1)
        back = frame.f_back
        if back is not None and back.f_code.co_flags & _CO_COROUTINE:
            return None  # awaited by a coroutine: part of that task's step
        if threading.get_ident() != self._thread:
            return None
        self._enter(frame, True)
        return None

    def _on_resume(self, code: Any, offset: int, *exc: Any) -> Any:
        if not code.co_flags & _CO_COROUTINE:
            return sys.monitoring.DISABLE
        frame = sys._getframe(1)
        back = frame.f_back
        if back is not None and back.f_code.co_flags & _CO_COROUTINE:
            return None
        if threading.get_ident() != self._thread:
            return None
        self._enter(frame, False)
        return None

    def _on_yield(self, code: Any, offset: int, value: Any) -> Any:
        if not code.co_flags & _CO_COROUTINE:
            return sys.monitoring.DISABLE
        stack = self._stack
        if stack and stack[-1][0] == id(sys._getframe(1)):
            self._leave("suspended", value)
        return None

    def _on_return(self, code: Any, offset: int, value: Any) -> Any:
        if not code.co_flags & _CO_COROUTINE:
            return sys.monitoring.DISABLE
        stack = self._stack
        if stack and stack[-1][0] == id(sys._getframe(1)):
            self._leave("returned", None)
        return None

    def _on_unwind(self, code: Any, offset: int, exc: BaseException) -> Any:
        # Why no DISABLE: PY_UNWIND cannot be disabled per code location.
        stack = self._stack
        if stack and stack[-1][0] == id(sys._getframe(1)):
            cancelled = isinstance(exc, asyncio.CancelledError)
            self._leave("cancelled" if cancelled else "raised", None)

    # -- the 3.11 hook: sys.setprofile ---------------------------------------

    def _profile(self, frame: Any, event: str, arg: Any) -> None:
        # Why this costs more than sys.monitoring: setprofile calls us for
        # every call and return of every function, C functions included; we
        # can only return early, never switch a location off.
        code = frame.f_code
        if not code.co_flags & _CO_COROUTINE:
            return
        stack = self._stack
        if event == "call":
            back = frame.f_back
            if back is not None and back.f_code.co_flags & _CO_COROUTINE:
                return
            if threading.get_ident() != self._thread:
                return
            self._enter(frame, id(frame) not in self._tids)
        elif event == "return" and stack and stack[-1][0] == id(frame):
            # On 3.11 a coroutine frame leaves at a YIELD_VALUE when it
            # suspends, at a RETURN_VALUE when it returns, and anywhere else
            # when an exception unwinds it.
            opcode = code.co_code[frame.f_lasti]
            if opcode == _YIELD_VALUE:
                self._leave("suspended", arg)
            elif opcode == _RETURN_VALUE:
                self._leave("returned", None)
            else:
                self._leave("raised", None)

    # -- recording -------------------------------------------------------------

    def _enter(self, frame: Any, first: bool) -> None:
        start = time.perf_counter_ns() - self._origin
        frame_id = id(frame)
        tid = None if first else self._tids.get(frame_id)
        if tid is None:
            tid = self._new_track(frame, start / 1000)
        self._stack.append((frame_id, tid, start))
        awaited = self._awaiting.pop(tid, None)
        if awaited is not None and awaited in self._final:
            self._flow_id += 1
            flow = self._flow_id
            src_tid, src_ts = self._final[awaited]
            self._lines.append(
                f'{{"ph":"s","id":{flow},"name":"wake-up","cat":"wakeup",'
                f'"pid":{PID},"tid":{src_tid},"ts":{src_ts}}},\n'
                f'{{"ph":"f","bp":"e","id":{flow},"name":"wake-up","cat":"wakeup",'
                f'"pid":{PID},"tid":{tid},"ts":{start / 1000}}},\n'
            )

    def _new_track(self, frame: Any, ts: float) -> int:
        tid = self._next_tid
        self._next_tid += 1
        self._tids[id(frame)] = tid
        self._steps[tid] = 0
        try:
            task = asyncio.current_task()
        except RuntimeError:
            task = None
        qualname = frame.f_code.co_qualname
        if task is not None and task.get_coro() is not None:
            name = task.get_name()
            self._task_tids[id(task)] = tid
        else:
            name = qualname
        self._names[tid] = name
        self._quoted[tid] = quote(name)
        emit = self.recorder.emit
        emit({"ph": "M", "name": "thread_name", "pid": PID, "tid": tid,
              "args": {"name": f"{name} ({qualname})"}})
        emit({"ph": "M", "name": "thread_sort_index", "pid": PID, "tid": tid,
              "args": {"sort_index": tid}})
        emit({"ph": "B", "name": name, "cat": "task", "pid": PID, "tid": tid,
              "ts": ts, "args": {"coroutine": qualname}})
        return tid

    def _leave(self, outcome: str, value: Any) -> None:
        frame_id, tid, start = self._stack.pop()
        end = time.perf_counter_ns() - self._origin
        steps = self._steps[tid] = self._steps[tid] + 1
        lines = self._lines
        lines.append(
            f'{{"ph":"X","name":{self._quoted[tid]},"cat":"step","pid":{PID},'
            f'"tid":{tid},"ts":{start / 1000},"dur":{(end - start) / 1000},'
            f'"args":{{"step":{steps},"outcome":"{outcome}"}}}},\n'
        )
        if len(lines) >= FLUSH_EVERY:
            self.recorder.flush()
        if outcome == "suspended":
            if isinstance(value, asyncio.Task):
                self._awaiting[tid] = id(value)
            return
        self._tids.pop(frame_id, None)
        try:
            task = asyncio.current_task()
        except RuntimeError:
            task = None
        if task is not None and self._task_tids.get(id(task)) == tid:
            self._final[id(task)] = (tid, start / 1000)
        self.recorder.emit({"ph": "E", "name": self._names[tid], "cat": "task",
                            "pid": PID, "tid": tid, "ts": end / 1000,
                            "args": {"outcome": outcome}})
