"""Sphinx extension: two console errors that every page of the built book showed.

`make browser-check` (tools/browser_check.py) opens each page in Chromium and found:

- "Identifier 'THEBE_JS_URL' has already been declared", an uncaught SyntaxError on
  every page. sphinx-thebe registers an inline script (its configuration) after the
  HTML builder's init; Sphinx 7.4 then puts it into the page twice, once as the
  builder's own copy (file name None) and once from the registry (file name ''),
  which its duplicate test takes for two scripts. We drop the second copy.
- "Got invalid theme mode: . Resetting to auto.", on a reader's first page:
  pydata-sphinx-theme's layout starts from the context value `default_mode`, which
  sphinx-book-theme leaves unset. We set it to "auto", the value the theme resets to.
"""

from __future__ import annotations


def fix_page(app, pagename, templatename, context, doctree):
    scripts, seen = [], set()
    for script in context.get("script_files", []):
        filename = getattr(script, "filename", script) or ""  # None and "" alike
        attributes = getattr(script, "attributes", {})
        key = (str(filename), tuple(sorted((k, str(v)) for k, v in attributes.items())))
        if key not in seen:
            seen.add(key)
            scripts.append(script)
    if "script_files" in context:
        context["script_files"] = scripts
    if not context.get("default_mode"):
        context["default_mode"] = "auto"


def setup(app):
    app.connect("html-page-context", fix_page, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
