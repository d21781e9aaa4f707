"""Sphinx extension: merge a cell's consecutive stream outputs by concatenation.

Why: myst-nb 1.4's `nb_merge_streams` strips each stream piece and appends a newline
(MyST-NB pull request 604), so text printed one character at a time with
`flush=True`, which is exactly what the typist does, renders one character per line.
Jupyter and nbval both concatenate the pieces; the book does the same.
"""

from __future__ import annotations

import myst_nb.core.render


def concatenate_streams(outputs):
    """Merge stream outputs of the same name into the first of them, keeping order."""
    merged = []
    streams = {}
    for output in outputs:
        if output["output_type"] != "stream":
            merged.append(output)
        elif output["name"] in streams:
            streams[output["name"]]["text"] += output["text"]
        else:
            output = output.copy()
            streams[output["name"]] = output
            merged.append(output)
    return merged


def setup(app):
    myst_nb.core.render.coalesce_streams = concatenate_streams
    return {"parallel_read_safe": True, "parallel_write_safe": True}
