"""Per-notebook size figures for the book: largest cells, prose words, exported lines.

Usage: python tools/book_stats.py [--markdown] [NOTEBOOK ...]
Checks the limits of the literate rebuild: no exported cell over 60 lines, no
visible code cell over 60 lines, every figure cell collapsed or under 25 lines.
Exit status 1 when a limit is broken.
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

DIRECTIVE = re.compile(r"#\|\s*(\w+)")
FIGURE = re.compile(r"\b(plt\.|matplotlib|\.savefig|fig,|ax\.|axes\[|subplots)")


def code_lines(source: str) -> int:
    return len([l for l in source.splitlines() if not DIRECTIVE.match(l.strip())])


def stats(path: Path) -> dict:
    nb = json.loads(path.read_text(encoding="utf-8"))
    out = dict(name=path.stem, largest=0, largest_visible=0, largest_export=0, exported=0,
               words=0, over60_export=[], over60_visible=[], fig_open=[],
               cells_over_100=0)
    for i, cell in enumerate(nb["cells"]):
        src = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        if cell["cell_type"] == "markdown":
            out["words"] += len(re.sub(r"```.*?```", " ", src, flags=re.S).split())
            continue
        if cell["cell_type"] != "code":
            continue
        n = code_lines(src)
        tags = set(cell.get("metadata", {}).get("tags", []))
        hidden = bool(tags & {"hide-input", "remove-input", "remove-cell"})
        exported = any(DIRECTIVE.match(l.strip()) and l.strip().split()[1:2] == ["export"]
                       for l in src.splitlines()[:3]) or src.lstrip().startswith("#| export")
        out["largest"] = max(out["largest"], n)
        if n > 100:
            out["cells_over_100"] += 1
        if not hidden:
            out["largest_visible"] = max(out["largest_visible"], n)
            if n > 60:
                out["over60_visible"].append((i, n))
        if exported:
            out["exported"] += n
            out["largest_export"] = max(out["largest_export"], n)
            if n > 60:
                out["over60_export"].append((i, n))
        outputs = cell.get("outputs", [])
        draws = any("image/png" in o.get("data", {}) or "image/svg+xml" in o.get("data", {})
                    for o in outputs) or (FIGURE.search(src) and not exported)
        if draws and not hidden and n >= 25:
            out["fig_open"].append((i, n))
    return out


def main(argv: list[str]) -> int:
    md = "--markdown" in argv
    paths = [Path(a) for a in argv if not a.startswith("--")] or sorted(Path("book").glob("*.ipynb"))
    bad = False
    if md:
        print("| notebook | largest cell | largest visible | largest exported | cells > 100 | prose words | exported lines |")
        print("|---|---:|---:|---:|---:|---:|---:|")
    for p in paths:
        s = stats(p)
        broken = s["over60_export"] or s["over60_visible"] or s["fig_open"]
        bad = bad or bool(broken)
        if md:
            print(f"| {s['name']} | {s['largest']} | {s['largest_visible']} | {s['largest_export']} | {s['cells_over_100']} | {s['words']} | {s['exported']} |")
        else:
            print(f"{s['name']:28} largest {s['largest']:4} visible {s['largest_visible']:4} "
                  f">100 {s['cells_over_100']:2} words {s['words']:6} exported {s['exported']:5}")
            for key in ("over60_export", "over60_visible", "fig_open"):
                if s[key]:
                    print(f"    {key}: " + ", ".join(f"cell {i} ({n})" for i, n in s[key]))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
