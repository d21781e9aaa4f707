"""Markdown tables of the test_asyncio baselines written by tools/run_baselines.sh.

Usage: python3 tools/baseline_table.py [baseline] [--modules m1,m2,...] [--ids]

For each Python version under the baseline directory: per module, the counts of
the run on our loop (from SUMMARY.txt), how many failures also fail on asyncio's own
loop (the environment: stdlib/<module>.txt), and the failures on ours only, by
cause. With --ids, the failing ids (ours only) of the chosen modules are listed.
"""

from __future__ import annotations

import argparse
import collections
import os
import re


def read_failures(path: str) -> dict[str, tuple[str, str, str]]:
    out = {}
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                parts = line.rstrip("\n").split("\t")
                if len(parts) >= 4:
                    out[parts[0]] = (parts[1], parts[2], parts[3])
    return out


def read_summary(path: str) -> dict[str, list[str]]:
    rows = {}
    with open(path) as f:
        for line in f:
            m = re.match(
                r"(test_\w+|TOTAL)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)"
                r"\s+(\d+) \|\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+) \|",
                line,
            )
            if m:
                rows[m.group(1)] = list(m.groups()[1:])
    return rows


def matrix(baseline: str, versions: list[str], chosen: list[str]) -> None:
    """passed/run on ours, and what fails on ours only, per module and version."""
    summaries = {
        v: read_summary(os.path.join(baseline, v, "SUMMARY.txt")) for v in versions
    }
    modules = chosen or sorted({m for s in summaries.values() for m in s} - {"TOTAL"})
    print("| module | " + " | ".join(versions) + " |")
    print("|---|" + "---|" * len(versions))
    for module in modules + ["TOTAL"]:
        cells = []
        for v in versions:
            row = summaries[v].get(module)
            if row is None:
                cells.append("-")
                continue
            top = os.path.join(baseline, v)
            names = (
                [module]
                if module != "TOTAL"
                else [m for m in summaries[v] if m != "TOTAL"]
            )
            bad = collections.Counter()
            for name in names:
                o = read_failures(os.path.join(top, f"{name}.txt"))
                s = read_failures(os.path.join(top, "stdlib", f"{name}.txt"))
                bad.update(c for t, (_, c, _) in o.items() if t not in s)
            text = f"{row[1]}/{row[0]}"
            if bad:
                text += " (" + ", ".join(f"{c} {n}" for c, n in bad.most_common()) + ")"
            cells.append(text)
        name = f"**{module}**" if module == "TOTAL" else module
        print(f"| {name} | " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("baseline", nargs="?", default="baseline")
    parser.add_argument("--modules", default="")
    parser.add_argument("--ids", action="store_true")
    parser.add_argument(
        "--matrix",
        action="store_true",
        help="one table: module x version, passed/run on ours",
    )
    args = parser.parse_args()
    chosen = [m for m in args.modules.split(",") if m]
    versions = sorted(
        os.listdir(args.baseline), key=lambda v: tuple(int(x) for x in v.split("."))
    )
    if args.matrix:
        matrix(args.baseline, versions, chosen)
        return
    for version in versions:
        top = os.path.join(args.baseline, version)
        summary = read_summary(os.path.join(top, "SUMMARY.txt"))
        stdlib = (
            read_summary(os.path.join(top, "stdlib", "SUMMARY.txt"))
            if os.path.exists(os.path.join(top, "stdlib", "SUMMARY.txt"))
            else {}
        )
        print(f"\n### Python {version}\n")
        print(
            "| module | run | pass | fail | err | skip | hang | ours | TestLoop | "
            "internal | none | stdlib loop | bad on stdlib too | bad on ours only "
            "(by cause) |"
        )
        print("|---|" + "---:|" * 13 + "---|")
        for module, row in summary.items():
            if chosen and module not in chosen and module != "TOTAL":
                continue
            (
                run,
                passed,
                failed,
                errors,
                skipped,
                hang,
                crash,
                ours,
                tloop,
                intern,
                none,
                std,
            ) = row
            if module == "TOTAL":
                ours_only = collections.Counter()
                both = 0
                for name in summary:
                    if name == "TOTAL":
                        continue
                    o = read_failures(os.path.join(top, f"{name}.txt"))
                    s = read_failures(os.path.join(top, "stdlib", f"{name}.txt"))
                    both += sum(1 for t in o if t in s)
                    ours_only.update(c for t, (_, c, _) in o.items() if t not in s)
            else:
                o = read_failures(os.path.join(top, f"{module}.txt"))
                s = read_failures(os.path.join(top, "stdlib", f"{module}.txt"))
                both = sum(1 for t in o if t in s)
                ours_only = collections.Counter(
                    c for t, (_, c, _) in o.items() if t not in s
                )
            causes = ", ".join(f"{c} {n}" for c, n in ours_only.most_common()) or "0"
            name = f"**{module}**" if module == "TOTAL" else module
            print(
                f"| {name} | {run} | {passed} | {failed} | {errors} | {skipped} | "
                f"{int(hang) + int(crash)} | {ours} | {tloop} | {intern} | {none} | "
                f"{std} | {both} | {causes} |"
            )
        if stdlib.get("TOTAL"):
            r = stdlib["TOTAL"]
            print(
                f"\nOn asyncio's own loop: run {r[0]}, pass {r[1]}, fail {r[2]}, "
                f"err {r[3]}, skip {r[4]}, hang+crash {int(r[5]) + int(r[6])}."
            )
        if args.ids:
            for module in chosen:
                o = read_failures(os.path.join(top, f"{module}.txt"))
                s = read_failures(os.path.join(top, "stdlib", f"{module}.txt"))
                bad = [(t, v) for t, v in sorted(o.items()) if t not in s]
                if not bad:
                    continue
                print(f"\n{module} (fails on ours only):\n")
                for tid, (outcome, cause, reason) in bad:
                    print(f"- `{tid}` {outcome}, {cause}: {reason[:140]}")


if __name__ == "__main__":
    main()
