"""The Markdown tables of a results file of benchmarks/suite.py (``--report``)."""

from __future__ import annotations

import statistics

CONFIGS = ["stdlib", "uvloop", "ours", "ours-py", "compiled", "compiled-py"]
HTTP_ROUTES = {"plaintext": "/", "json": "/json"}


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def ratio_of(data: dict, group: str, workload: str, config: str, clock: str = "cpu"):
    """median(stdlib) / median(config) of one clock, or None."""
    rows = {(r["group"], r["workload"], r["config"]): r for r in data["results"]}
    base = rows.get((group, workload, "stdlib"))
    this = rows.get((group, workload, config))
    if not base or not this or not base[clock] or not this[clock]:
        return None
    return median(base[clock]) / median(this[clock])


def report(data: dict) -> str:
    meta = data["meta"]
    configs = meta.get("configs") or CONFIGS
    lines = [
        f"Commit {meta['commit']}, {meta['date']}, Python {meta['python']}, "
        f"uvloop {meta['uvloop']}, aiohttp {meta['aiohttp']}; "
        f"{meta['machine']['cpu']}, {meta['machine']['cores']} cores, load "
        f"{meta['machine']['loadavg_start']} at the start; {meta['repeats']} "
        f"interleaved repeats, scale {meta.get('scale', 1)}; "
        f"{meta.get('elapsed_s', '?')} s in all.",
        "",
        f"Command: `{meta['command']}`",
    ]
    groups = list(dict.fromkeys(r["group"] for r in data["results"]))
    for clock, title in (("cpu", "CPU"), ("wall", "wall")):
        lines += ["", f"### Ratios to stdlib, {title} medians (higher is faster)", ""]
        shown = [c for c in configs if c != "stdlib"]
        lines.append("| group | workload | stdlib s | " + " | ".join(shown) + " |")
        lines.append("|---|---|---:|" + "---:|" * len(shown))
        for group in groups:
            if group == "trace":
                continue
            names = dict.fromkeys(
                r["workload"] for r in data["results"] if r["group"] == group
            )
            for workload in names:
                base = next((r for r in data["results"] if r["group"] == group and
                             r["workload"] == workload and r["config"] == "stdlib"),
                            None)  # fmt: skip
                seconds = f"{median(base[clock]):.3f}" if base and base[clock] else "-"
                cells = []
                for config in shown:
                    value = ratio_of(data, group, workload, config, clock)
                    cells.append("-" if value is None else f"{value:.2f}")
                lines.append(f"| {group} | {workload} | {seconds} | "
                             + " | ".join(cells) + " |")  # fmt: skip
    http = [r for r in data["results"] if r["group"] == "http"]
    if http:
        lines += ["", "### HTTP server (aiohttp, wrk -t1): medians", "",
                  "| route | loop | requests/s | p50 ms | p99 ms | rps ratio | "
                  "CPU per 10k req, s |",
                  "|---|---|---:|---:|---:|---:|---:|"]  # fmt: skip
        for row in http:
            extra = row["extra"]
            base = next(r for r in http if r["workload"] == row["workload"]
                        and r["config"] == "stdlib")  # fmt: skip
            rps = median(extra.get("rps", []))
            base_rps = median(base["extra"].get("rps", []))
            cells = [
                f"{rps:,.0f}" if rps else "-",
                f"{median(extra.get('p50_ms', [])) or 0:.2f}",
                f"{median(extra.get('p99_ms', [])) or 0:.2f}",
                f"{rps / base_rps:.2f}" if rps and base_rps else "-",
                f"{median(row['cpu']):.3f}" if row["cpu"] else "-",
            ]
            lines.append(f"| {row['workload']} | {row['config']} | "
                         + " | ".join(cells) + " |")  # fmt: skip
    trace = [r for r in data["results"] if r["group"] == "trace"]
    if trace:
        keys = list(dict.fromkeys(k for r in trace for k in r["extra"]))
        lines += ["", "### Tracer overhead (bench_trace.py --json)", "",
                  "| configuration | " + " | ".join(keys) + " |",
                  "|---|" + "---:|" * len(keys)]  # fmt: skip
        for row in trace:
            cells = [row["extra"].get(k) for k in keys]
            lines.append(f"| {row['config']} | " + " | ".join(
                "-" if v is None else f"{v:.3g}" if isinstance(v, float) else str(v)
                for v in cells) + " |")  # fmt: skip
    lines += ["", "### The issue's targets (default configuration, CPU medians)", ""]
    lines += targets(data)
    if meta.get("failures"):
        lines += ["", "Failed runs:", ""] + [f"- {f}" for f in meta["failures"]]
    return "\n".join(lines) + "\n"


def targets(data: dict) -> list[str]:
    lines = ["| target | figure | met |", "|---|---:|---|"]

    def add(name: str, value: float | None, goal: float) -> None:
        if value is None:
            lines.append(f"| {name} | - | not measured |")
        else:
            met = "yes" if value >= goal else "no"
            lines.append(f"| {name} | {value:.2f} | {met} |")

    for workload, goal in (("a", 2.2), ("a'", 1.15), ("b", 1.6), ("c", 1.15)):
        add(f"({workload}) >= {goal}", ratio_of(data, "micro", workload, "ours"), goal)
    add("streams echo 1 KiB 10 clients >= 1.15",
        ratio_of(data, "streams", "1KiB-10c", "ours"), 1.15)  # fmt: skip
    rows = {(r["workload"], r["config"]): r for r in data["results"]
            if r["group"] == "http"}  # fmt: skip
    for route in HTTP_ROUTES:
        base, ours = rows.get((route, "stdlib")), rows.get((route, "ours"))
        if base and ours and base["extra"].get("rps") and ours["extra"].get("rps"):
            value = median(ours["extra"]["rps"]) / median(base["extra"]["rps"])
            p99 = median(ours["extra"]["p99_ms"]) / median(base["extra"]["p99_ms"])
            met = "yes" if value >= 1.1 and p99 <= 1.0 else "no"
            lines.append(f"| HTTP {route} requests/s >= 1.1 at no worse p99 | "
                         f"{value:.2f} (p99 x {p99:.2f}) | {met} |")  # fmt: skip
        else:
            lines.append(f"| HTTP {route} requests/s >= 1.1 | - | not measured |")
    for workload, goal in (("c", 1.0), ("a", 0.8), ("b", 0.8)):
        compiled = ratio_of(data, "micro", workload, "compiled")
        uvloop = ratio_of(data, "micro", workload, "uvloop")
        value = compiled / uvloop if compiled and uvloop else None
        word = "level with" if goal == 1.0 else "within 1.25x of"
        add(f"compiled {word} uvloop on ({workload}): compiled/uvloop speed >= {goal}",
            value, goal)  # fmt: skip
    return lines
