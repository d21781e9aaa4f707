"""Chrome Trace Event output for the tracers: chapter "Tracing".

Builds on nothing of ours. It knows the few event kinds the tracers write
(complete slices, begin/end of a task's life, flows, instants, metadata), a
``Recorder`` that keeps them in memory and, optionally, streams them to a file
that stays loadable when the program dies, and ``load_trace``, which reads such
a file back, even a truncated one.
"""

from __future__ import annotations

import json
import os
import warnings
from typing import Any, Iterable

__all__ = [
    "Recorder",
    "quote",
    "TraceSizeWarning",
    "load_trace",
    "LOOP_TID",
    "FLUSH_EVERY",
    "PID",
]

# Every event of our traces belongs to one process; the loop's own track is
# thread 1 and each task gets a thread of its own, from 2 upwards.
PID = 1
LOOP_TID = 1

FLUSH_EVERY = 2048


class TraceSizeWarning(UserWarning):
    """A trace reached its size limit and stopped recording."""


def _encode(event: dict[str, Any]) -> str:
    # Why ensure_ascii: then every line has as many bytes as characters, and
    # the size limit can count characters.
    return json.dumps(event, separators=(",", ":")) + ",\n"


def quote(text: str) -> str:
    """Return text as a JSON string literal, for lines formatted by hand."""
    return json.dumps(text)


class Recorder:
    """Collect trace events; optionally stream them to a JSON file as they come.

    The file is in the Trace Event "JSON Array" format: ``[``, then one event
    per line, each line ending in a comma, and a closing ``{}]`` from close().
    Tracers hand over events as dicts (``emit``) or, on their hot paths, as
    lines they formatted themselves: they append ASCII JSON plus ",\n" to
    ``pending`` and call ``flush()`` once it holds ``FLUSH_EVERY`` items.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        max_bytes: int | None = None,
        keep: bool = True,
    ) -> None:
        if max_bytes is not None and max_bytes < 64:
            raise ValueError(f"max_bytes must be at least 64, got {max_bytes!r}")
        self.path = None if path is None else os.fspath(path)
        self.max_bytes = max_bytes
        self.keep = keep or path is None
        # Invariant: lines holds every recorded line in order (when keep);
        # _pending holds what is not yet encoded, counted and written.
        self.lines: list[str] = []
        self.pending: list[str | dict[str, Any]] = []
        self.bytes = 2  # "[\n"
        self.truncated = False
        self.closed = False
        # Invariant: _open_tracks holds the tracks whose "B" event was written
        # and whose "E" was not; close() ends them, so every track closes.
        self._open_tracks: dict[int, str] = {}
        # The end of the last event; the tracers keep it up to date.
        self.last_ts: float = 0
        self._events: list[dict[str, Any]] | None = None
        self._file = None
        if self.path is not None:
            self._file = open(self.path, "w", encoding="ascii")
            self._file.write("[\n")
            self._file.flush()

    def emit(self, event: dict[str, Any]) -> None:
        """Record one event, unless the size limit has stopped recording."""
        pending = self.pending
        pending.append(event)
        if len(pending) >= FLUSH_EVERY:
            self.flush()

    def emit_final(self, events: Iterable[dict[str, Any]]) -> None:
        """Record closing events (ends of open tracks), even past the size limit."""
        # Why: a trace cut off by the limit must still close what it opened,
        # or viewers show every open task as running forever. These events are
        # bounded by the number of tasks, never by the program's run time.
        if self.closed:
            return
        self.flush()
        self._write(list(events), final=True)

    def flush(self) -> None:
        """Encode pending events, count their bytes, and write them out."""
        pending = self.pending
        if pending:
            batch = pending[:]
            pending.clear()
            if not (self.truncated or self.closed):
                self._write(batch, final=False)

    def _write(self, batch: list[str | dict[str, Any]], *, final: bool) -> None:
        lines = []
        size = self.bytes
        limit = None if final else self.max_bytes
        open_tracks = self._open_tracks
        for item in batch:
            if isinstance(item, str):
                line = item
            else:
                phase = item.get("ph")
                if final and phase in ("X", "E") and item["tid"] not in open_tracks:
                    continue  # its track was never written: the limit cut it off
                if phase == "B":
                    open_tracks[item["tid"]] = item["name"]
                elif phase == "E":
                    open_tracks.pop(item["tid"], None)
                line = _encode(item)
            size += len(line)
            if limit is not None and size > limit:
                self._stop(lines, batch)
                return
            lines.append(line)
        self.bytes = size
        self._output(lines)

    def _stop(self, lines: list[str], batch: list[Any]) -> None:
        """The limit is reached: keep what fits, undo the rest, stop recording."""
        for item in batch[len(lines):]:
            if isinstance(item, dict) and item.get("ph") == "B":
                self._open_tracks.pop(item["tid"], None)
            elif isinstance(item, dict) and item.get("ph") == "E":
                self._open_tracks.setdefault(item["tid"], item["name"])
        self.bytes += sum(len(line) for line in lines)
        self._output(lines)
        self.truncated = True
        warnings.warn(
            f"trace reached its size limit of {self.max_bytes} bytes; "
            "recording stopped",
            TraceSizeWarning,
            stacklevel=5,
        )

    def _output(self, lines: list[str]) -> None:
        if self.keep:
            self.lines.extend(lines)
            self._events = None
        if self._file is not None and lines:
            self._file.write("".join(lines))
            self._file.flush()

    @property
    def events(self) -> list[dict[str, Any]]:
        """The recorded events as dicts (parsed once, after recording)."""
        if self._events is None:
            self.flush()
            self._events = json.loads("[" + "".join(self.lines) + "{}]")[:-1]
        return self._events

    def close(self) -> None:
        """End the open tracks, finish the file as strict JSON; idempotent."""
        if self.closed:
            return
        self.flush()
        outcome = "truncated" if self.truncated else "pending"
        self._write(
            [
                {"ph": "E", "name": name, "cat": "task", "pid": PID, "tid": tid,
                 "ts": self.last_ts, "args": {"outcome": outcome}}
                for tid, name in sorted(self._open_tracks.items())
            ],
            final=True,
        )
        self.closed = True
        if self._file is not None:
            # Why "{}": every event line ends in a comma, so the array needs one
            # more element before "]". An empty object is ignored by viewers.
            self._file.write("{}]\n")
            self._file.close()
            self._file = None

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write every kept event to path as strict JSON."""
        self.flush()
        with open(path, "w", encoding="ascii") as file:
            file.write("[\n")
            file.writelines(self.lines)
            file.write("{}]\n")


def load_trace(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Read a trace file back as a list of events, repairing a truncated one.

    A file our Recorder was still writing when the process died ends after
    some complete line (or in the middle of one): drop the partial line and
    close the array. Viewers do the same; the Trace Event format allows it.
    """
    with open(path, encoding="utf-8") as file:
        text = file.read()
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        complete = text[: text.rfind(",\n") + 1] if ",\n" in text else "["
        data = json.loads(complete.rstrip(",") + "]")
    if isinstance(data, dict):
        data = data.get("traceEvents", [])
    return [event for event in data if event]
