"""Execute notebooks in place, deterministically, or check that re-execution changes nothing.

Usage:
    .venv/bin/python tools/execute.py book/06_event_loop.ipynb ...   # run, write back
    .venv/bin/python tools/execute.py --check book/*.ipynb           # run, compare only

Each notebook runs in a fresh kernel from the book directory, as nbval and the book build
run it. Cell execution timestamps (metadata "execution") are dropped, so a notebook's file
depends only on its sources and outputs. --check exits 1 and names every cell whose
outputs differ from the file's: the book's outputs must be byte-identical on re-execution.
"""
from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient


def merge_streams(outputs: list[dict]) -> list[dict]:
    merged: list[dict] = []
    for output in outputs:
        last = merged[-1] if merged else None
        if (output.get("output_type") == "stream" and last is not None
                and last.get("output_type") == "stream"
                and last["name"] == output["name"]):
            text = "".join(last["text"]) + "".join(output["text"])
            last["text"] = text.splitlines(keepends=True)
        else:
            merged.append(copy.deepcopy(output))
    for output in merged:
        if output.get("output_type") == "stream" and isinstance(output["text"], str):
            output["text"] = output["text"].splitlines(keepends=True)
    return merged


def strip(nb: dict) -> dict:
    for cell in nb["cells"]:
        cell.get("metadata", {}).pop("execution", None)
        if "outputs" in cell:
            cell["outputs"] = merge_streams(cell["outputs"])
    return nb


def execute(path: Path) -> dict:
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    return strip(json.loads(nbformat.writes(nb)))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true")
    parser.add_argument("notebooks", nargs="+", type=Path)
    args = parser.parse_args(argv)
    failed = False
    for path in args.notebooks:
        before = json.loads(path.read_text(encoding="utf-8"))
        after = execute(path)
        if args.check:
            bad = [i for i, (a, b) in enumerate(zip(before["cells"], after["cells"]))
                   if merge_streams(a.get("outputs", [])) != b.get("outputs", [])]
            meta = [i for i, c in enumerate(before["cells"])
                    if "execution" in c.get("metadata", {})]
            if bad or meta:
                failed = True
                print(f"{path}: outputs differ in cells {bad}" if bad else f"{path}:", end="")
                print(f" (timestamps in {len(meta)} cells: run tools/execute.py)" if meta else "")
            else:
                print(f"{path}: outputs identical on re-execution")
        else:
            text = json.dumps(after, indent=1, ensure_ascii=False) + "\n"
            path.write_text(text, encoding="utf-8")
            print(f"{path}: executed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
