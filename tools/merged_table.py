"""Markdown tables of a merged run (tools/run_merged.sh) against the main baseline.

Usage: python3 tools/merged_table.py [--before baseline] [--after baseline-merged]
       [--ids]

Prints: the per-version totals, before (--before, the run on main) and after
(--after); the done-when modules, passed/run per version on the default
configuration (test_pep492 from ours-base-loop/) and with python_tasks=True
(python_tasks/), with the failures by cause; with --ids, every failure, error
and hang of those modules that is not a refused feature (TLS, UDP, subprocess,
pipes, sendfile), with its reason.
"""

from __future__ import annotations

import argparse
import collections
import json
import os

from baseline_table import read_failures, read_summary
from run_test_asyncio import cause_of

DONE_WHEN = [
    "test_taskgroups",
    "test_timeouts",
    "test_waitfor",
    "test_queues",
    "test_locks",
    "test_futures2",
    "test_context",
    "test_pep492",
    "test_eager_task_factory",
    "test_events",
    "test_streams",
    "test_sock_lowlevel",
]
FEATURES = {"TLS", "UDP", "subprocess", "pipes", "sendfile"}


def versions_of(top: str) -> list[str]:
    return sorted(os.listdir(top), key=lambda v: tuple(int(x) for x in v.split(".")))


def totals(before: str, after: str) -> None:
    print(
        "| Python | tests (before, after) | passed | failed | errors | hang | skipped "
        "| not skipped: on ours / TestLoop only / internal only / no loop / "
        "made asyncio's loop |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for v in versions_of(after):
        b = read_summary(os.path.join(before, v, "SUMMARY.txt")).get("TOTAL")
        a = read_summary(os.path.join(after, v, "SUMMARY.txt")).get("TOTAL")
        if a is None:
            continue
        cells = []
        for i in (0, 1, 2, 3, 5, 4):
            cells.append(f"{b[i]} → {a[i]}" if b else a[i])
        loops = " → ".join(
            " / ".join(r[i] for i in (7, 8, 9, 10, 11)) for r in (b, a) if r
        )
        print(f"| {v} | " + " | ".join(cells) + f" | {loops} |")


def cell(top: str, module: str) -> str:
    path = os.path.join(top, "SUMMARY.txt")
    row = read_summary(path).get(module) if os.path.exists(path) else None
    if row is None:
        return "-"
    bad = collections.Counter(
        c for _, c, _ in read_failures(os.path.join(top, f"{module}.txt")).values()
    )
    text = f"{row[1]}/{row[0]}"
    if bad:
        text += " (" + ", ".join(f"{c} {n}" for c, n in bad.most_common()) + ")"
    return text


def where(after: str, v: str, module: str, part: str) -> str:
    if part == "python_tasks":
        return os.path.join(after, v, "python_tasks")
    if module == "test_pep492":
        return os.path.join(after, v, "ours-base-loop")
    return os.path.join(after, v)


def done_when(after: str, ids: bool) -> None:
    cols = []
    for part in ("default", "python_tasks"):
        vs = [
            v
            for v in versions_of(after)
            if part == "default"
            or os.path.exists(os.path.join(after, v, part, "SUMMARY.txt"))
        ]
        cols += [(v, part) for v in vs]
        if not vs:
            continue
        print(f"| module ({part}) | " + " | ".join(vs) + " |")
        print("|---|" + "---|" * len(vs))
        for m in DONE_WHEN:
            cells = [cell(where(after, v, m, part), m) for v in vs]
            print(f"| {m} | " + " | ".join(cells) + " |")
        print()
    if not ids:
        return
    for v, p in cols:
        for m in DONE_WHEN:
            f = read_failures(os.path.join(where(after, v, m, p), f"{m}.txt"))
            for t, (outcome, cause, reason) in sorted(f.items()):
                if cause not in FEATURES:
                    print(f"{v} {p}\t{t}\t{outcome}\t{cause}\t{reason[:160]}")


def epoll(json_dirs: list[str]) -> None:
    """test_events' EPollEventLoopTests alone, from the runs' --json files."""

    print("| test_events.EPollEventLoopTests | passed/run | not passed, by cause |")
    print("|---|---|---|")
    files = [
        os.path.join(d, name)
        for d in json_dirs
        for name in os.listdir(d)
        if name.startswith("merged-")
        and name.endswith(".json")
        and not name.endswith("-obl.json")
    ]

    def key(path: str) -> tuple[int, ...]:
        version, _, rest = os.path.basename(path)[7:-5].partition("-")
        return (*(int(x) for x in version.split(".")), bool(rest))

    for path in sorted(files, key=key):
        with open(path) as f:
            run = json.load(f)
        tests = [
            t
            for m in run["modules"]
            if m["module"] == "test_events"
            for i, t in m["tests"].items()
            if i.startswith("test_events.EPollEventLoopTests.")
        ]
        ok = sum(t["outcome"] in ("success", "xfail") for t in tests)
        bad = collections.Counter(
            cause_of(t)
            for t in tests
            if t["outcome"] not in ("success", "xfail", "skip")
        )
        label = run["python"] + (" python_tasks" if run["loop_options"] else "")
        causes = ", ".join(f"{c} {n}" for c, n in bad.most_common())
        print(f"| {label} | {ok}/{len(tests)} | {causes} |")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--before", default="baseline")
    parser.add_argument("--after", default="baseline-merged")
    parser.add_argument("--ids", action="store_true")
    parser.add_argument(
        "--json-dir",
        action="append",
        default=[],
        help="where the runs' merged-<version>[-pt].json files are (repeatable)",
    )
    args = parser.parse_args()
    totals(args.before, args.after)
    print()
    done_when(args.after, args.ids)
    if args.json_dir:
        epoll(args.json_dir)


if __name__ == "__main__":
    main()
