"""Summaries and timeline figures of traces: chapter "Tracing".

Builds on ``trace.format``: everything here reads the Chrome Trace Events the
tracers write, so it works as well on a trace loaded back from a file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from asynciodepth.trace.format import LOOP_TID

__all__ = ["TaskStats", "Summary", "summarize", "plot_timeline"]

_COLOURS = {
    "suspended": "tab:blue",
    "returned": "tab:green",
    "raised": "tab:red",
    "cancelled": "tab:orange",
    "interrupted": "tab:purple",
}


@dataclass
class TaskStats:
    """What one task did: its steps, and its time running against waiting."""

    name: str
    steps: int = 0
    running: float = 0.0  # µs inside steps
    lifetime: float = 0.0  # µs from the first step's start to the end
    longest: float = 0.0  # µs, the longest step
    outcome: str = "pending"

    @property
    def waiting(self) -> float:
        """Microseconds alive but not running: suspended, or ready but not run."""
        return max(self.lifetime - self.running, 0.0)


@dataclass
class Summary:
    """Per-task statistics and the longest steps of a trace."""

    tasks: list[TaskStats]
    longest: list[tuple[float, str, int]] = field(default_factory=list)
    polls: int = 0
    polled: float = 0.0  # µs the loop spent waiting in its poll

    def __str__(self) -> str:
        lines = [
            f"{'task':<24} {'steps':>5} {'running ms':>11} {'waiting ms':>11}"
            f"  {'outcome':<9}"
        ]
        for row in self.tasks:
            lines.append(
                f"{row.name[:24]:<24} {row.steps:>5} {row.running / 1000:>11.3f}"
                f" {row.waiting / 1000:>11.3f}  {row.outcome:<9}"
            )
        if self.polls:
            lines.append(f"loop waited in poll {self.polls} times, "
                         f"{self.polled / 1000:.3f} ms in all")
        if self.longest:
            lines.append("longest steps:")
            for duration, name, step in self.longest:
                lines.append(f"  {name} step {step}: {duration / 1000:.3f} ms")
        return "\n".join(lines)


def _tracks(events: list[dict[str, Any]]) -> dict[int, str]:
    names = {}
    for event in events:
        if event.get("ph") == "M" and event.get("name") == "thread_name":
            names[event["tid"]] = event["args"]["name"]
    return names


def summarize(events: list[dict[str, Any]], *, top: int = 3) -> Summary:
    """Compute per-task statistics from trace events."""
    stats: dict[int, TaskStats] = {}
    begins: dict[int, float] = {}
    steps: list[tuple[float, str, int]] = []
    polls, polled = 0, 0.0
    for event in events:
        phase, tid = event.get("ph"), event.get("tid")
        if phase == "B":
            stats[tid] = TaskStats(event["name"])
            begins[tid] = event["ts"]
        elif phase == "E" and tid in stats:
            stats[tid].lifetime = event["ts"] - begins[tid]
            stats[tid].outcome = event.get("args", {}).get("outcome", "?")
        elif phase == "X" and event.get("cat") == "step" and tid in stats:
            row = stats[tid]
            row.steps += 1
            row.running += event["dur"]
            row.longest = max(row.longest, event["dur"])
            steps.append((event["dur"], row.name, event["args"]["step"]))
        elif phase == "X" and event.get("cat") == "poll":
            polls += 1
            polled += event["dur"]
    # Why sort on (-duration, name, step): equal durations (the virtual
    # clock's one-microsecond steps) then come out in a stable order.
    steps.sort(key=lambda item: (-item[0], item[1], item[2]))
    return Summary([stats[tid] for tid in sorted(stats)], steps[:top], polls, polled)


def plot_timeline(
    events: list[dict[str, Any]],
    *,
    ax: Any = None,
    title: str | None = None,
    flows: bool = True,
    figsize: tuple[float, float] | None = None,
) -> Any:
    """Draw tasks against time: steps as bars, wake-ups as arrows; return the Figure."""
    import matplotlib.pyplot as plt

    names = _tracks(events)
    timed = [e for e in events if "ts" in e]
    if not timed:
        raise ValueError("the trace has no timed events to draw")
    t0 = min(e["ts"] for e in timed)
    t1 = max(e["ts"] + e.get("dur", 0) for e in timed)
    span = max(t1 - t0, 1.0)
    # Why a minimum width: a step may take a microsecond in a second-long
    # trace (under the virtual clock, exactly one); it must still show.
    minimum = span / 400
    order = sorted(names)
    has_loop = any(e.get("tid") == LOOP_TID and e.get("ph") == "X" for e in timed)
    if not has_loop and LOOP_TID in order:
        order.remove(LOOP_TID)
    rows = {tid: index for index, tid in enumerate(order)}
    if ax is None:
        height = 0.9 + 0.45 * len(rows)
        fig, ax = plt.subplots(figsize=figsize or (9, height), layout="constrained")
    else:
        fig = ax.figure
    ms = 1000.0
    begins: dict[int, float] = {}
    for event in timed:
        phase, tid = event["ph"], event.get("tid")
        if tid not in rows:
            continue
        y = rows[tid]
        x = (event["ts"] - t0) / ms
        if phase == "B":
            begins[tid] = x
        elif phase == "E" and tid in begins:
            ax.plot([begins[tid], x], [y, y], color="0.75", lw=1, zorder=1)
        elif phase == "X":
            width = max(event.get("dur", 0), minimum) / ms
            category = event.get("cat")
            if category == "poll":
                ax.broken_barh([(x, width)], (y - 0.15, 0.3), color="0.85",
                               hatch="///", edgecolor="0.6", zorder=2)
            elif category == "step":
                outcome = event.get("args", {}).get("outcome", "suspended")
                ax.broken_barh([(x, width)], (y - 0.3, 0.6),
                               color=_COLOURS.get(outcome, "tab:gray"), zorder=3)
            else:
                ax.broken_barh([(x, width)], (y - 0.2, 0.4), color="tab:gray",
                               zorder=3)
    if flows:
        starts = {e["id"]: e for e in timed if e["ph"] == "s"}
        for end in (e for e in timed if e["ph"] == "f"):
            start = starts.get(end["id"])
            if start is None or start["tid"] not in rows or end["tid"] not in rows:
                continue
            ax.annotate(
                "",
                xy=((end["ts"] - t0) / ms, rows[end["tid"]]),
                xytext=((start["ts"] - t0) / ms, rows[start["tid"]]),
                arrowprops={"arrowstyle": "->", "color": "0.35", "lw": 0.7,
                            "shrinkA": 2, "shrinkB": 6},
                zorder=4,
            )
    ax.set_yticks(range(len(order)), [names[tid] for tid in order])
    ax.set_ylim(len(order) - 0.4, -0.6)
    ax.set_xlim(-span / ms * 0.01, span / ms * 1.01)
    ax.set_xlabel("time (ms)")
    handles = [plt.Rectangle((0, 0), 1, 1, color=_COLOURS[k]) for k in
               ("suspended", "returned", "raised", "cancelled")]
    ax.legend(handles, ["step, then suspended", "last step: returned",
                        "last step: raised", "last step: cancelled"],
              loc="lower right", fontsize="small", framealpha=0.9)
    if title:
        ax.set_title(title)
    return fig
