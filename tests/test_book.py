"""The notebooks keep the book's size limits (tools/book_stats.py).

No exported cell over 60 lines, no visible code cell over 60 lines, and every cell
that draws a figure collapsed (``hide-input``) or under 25 lines.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "book").glob("*.ipynb"))

spec = importlib.util.spec_from_file_location("book_stats", REPO / "tools" / "book_stats.py")
book_stats = importlib.util.module_from_spec(spec)
spec.loader.exec_module(book_stats)


def broken(stats: dict) -> dict:
    keys = ("over60_export", "over60_visible", "fig_open")
    return {key: stats[key] for key in keys if stats[key]}


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda path: path.stem)
def test_notebook_keeps_the_limits(notebook: Path):
    assert broken(book_stats.stats(notebook)) == {}


def write(path: Path, *cells: tuple[str, str, list[str]]) -> Path:
    path.write_text(json.dumps({"cells": [
        {"cell_type": "code", "source": source, "metadata": {"tags": tags},
         "outputs": [{"output_type": "display_data", "data": {"image/png": "x"}}]
         if kind == "figure" else []}
        for kind, source, tags in cells
    ]}))
    return path


def test_the_limits_catch_a_long_exported_cell_and_an_open_figure(tmp_path: Path):
    long_code = "#| export\n" + "x = 1\n" * 61
    figure = "\n".join(f"y{i} = {i}" for i in range(30))
    stats = book_stats.stats(write(
        tmp_path / "nb.ipynb",
        ("code", long_code, []),
        ("figure", figure, []),
        ("figure", figure, ["hide-input"]),
        ("code", "#| export\n" + "x = 1\n" * 60, []),
    ))
    assert broken(stats) == {
        "over60_export": [(0, 61)],
        "over60_visible": [(0, 61)],
        "fig_open": [(1, 30)],
    }
