#!/usr/bin/env python3
"""Open every page of the built book in headless Chromium, offline, and check it.

`make browser-check` runs it on _build/html (build it first with `make book`).
The book is served from 127.0.0.1 by a small HTTP server in a thread, and each
HTML page is opened in Debian's Chromium (/usr/bin/chromium) through Playwright;
Playwright's own browser download is not used. Every request that is not to
127.0.0.1 is blocked and recorded, so the check shows whether the book works
offline. On every page it checks:

- images: every <img> has loaded, with naturalWidth > 0;
- internal links: every same-site href resolves to a file of the build, and its
  #fragment to an element with that id in the target page;
- local assets: no request to the server answers 404 (or any error status);
- console: no console error and no uncaught exception;
- figures: every <img>, <svg> and <figure> of the content (the page's <main>)
  has a non-zero rendered size, unless it sits in a closed <details>;
- network: the requests that were blocked. A blocked image, stylesheet or font,
  or a blocked script that the page's content needs (MathJax on a page that has
  math, require.js on a page with widget outputs, any other script), fails the
  page; a blocked script that nothing on the page uses is only reported.

Then it opens search.html?q=epoll and checks that the search lists results.
With --self-test it checks, instead of the book, a two-page site with one planted
fault of each kind, and fails unless it reports exactly those (`make browser-check`
runs it first, so a check that has gone blind fails).
It writes one full-page screenshot per page (OUT/<page>.png, plus
OUT/search-<term>.png), OUT/report.json, and prints a summary table.
Exit status: 0 when every page passes, 1 when one fails, 2 when it cannot run.

Requirements: tools/requirements-browser.txt (Playwright), and
`apt-get install chromium` for /usr/bin/chromium.
"""

from __future__ import annotations

import argparse
import base64
import functools
import html
import http.server
import json
import re
import shutil
import socket
import sys
import threading
from pathlib import Path
from urllib.parse import unquote, urlsplit

PAGE_JS = """() => {
  const main = document.querySelector('article') || document.querySelector('main') || document.body;
  const inClosedDetails = e => { for (let d = e.closest('details'); d; d = d.parentElement && d.parentElement.closest('details'))
      if (!d.open) return true; return false; };
  const box = e => { const r = e.getBoundingClientRect(); return [Math.round(r.width), Math.round(r.height)]; };
  const imgs = Array.from(document.images).map(i => ({
    src: i.currentSrc || i.src, complete: i.complete, natural: i.naturalWidth,
    size: box(i), content: main.contains(i), hidden: inClosedDetails(i)}));
  // Figures: the content's images and <figure>s, and its SVG drawings (not icons).
  const figures = Array.from(main.querySelectorAll('figure, svg, img'))
    .filter(e => !(e.tagName.toLowerCase() === 'svg' && (e.closest('button, a, label, .headerlink')
                   || /svg-inline--fa|icon/.test(e.getAttribute('class') || ''))))
    .map(e => ({tag: e.tagName.toLowerCase(), size: box(e), hidden: inClosedDetails(e),
                what: (e.getAttribute('src') || e.getAttribute('class') || '').slice(0, 80)}));
  const links = Array.from(document.querySelectorAll('a[href]')).map(a => a.href);
  const math = document.querySelectorAll('.math, span.math, div.math').length;
  const mathRendered = document.querySelectorAll('mjx-container, .MathJax').length;
  const widgets = document.querySelectorAll(
    'script[type="application/vnd.jupyter.widget-view+json"], .jupyter-widgets').length;
  return {title: document.title, imgs, figures, links, math, mathRendered, widgets};
}"""

SEARCH_DONE_JS = """() => {
  const s = document.querySelector('#search-results .search-summary, #search-results p');
  return s && /found|match/i.test(s.textContent) && !/Preparing/i.test(s.textContent);
}"""

SEARCH_JS = """() => ({
  summary: (document.querySelector('#search-results .search-summary, #search-results p') || {}).textContent || '',
  hits: Array.from(document.querySelectorAll('#search-results ul.search li a')).map(a => a.getAttribute('href')),
})"""


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "no-store")
        super().end_headers()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pages_of(root: Path) -> list[str]:
    """Every HTML page of the build, as a path relative to root (not _static etc.)."""
    return sorted(
        p.relative_to(root).as_posix()
        for p in root.rglob("*.html")
        if not any(part.startswith("_") for part in p.relative_to(root).parts[:-1])
    )


class Site:
    """The files of the build, and the ids each HTML page defines (for #fragments)."""

    ID = re.compile(r"""\s(?:id|name)\s*=\s*["']([^"']+)["']""")

    def __init__(self, root: Path, origin: str) -> None:
        self.root, self.origin, self._ids = root, origin, {}

    def file_for(self, path: str) -> Path | None:
        target = self.root / unquote(path).lstrip("/")
        if path.endswith("/") or target.is_dir():
            target = target / "index.html"
        return target if target.is_file() else None

    def ids(self, target: Path) -> set[str]:
        if target not in self._ids:
            text = target.read_text(encoding="utf-8", errors="replace")
            self._ids[target] = {html.unescape(m) for m in self.ID.findall(text)}
        return self._ids[target]

    def broken(self, url: str) -> str | None:
        """Why the same-site url does not resolve, or None if it does."""
        parts = urlsplit(url)
        target = self.file_for(parts.path)
        if target is None:
            return "no such file"
        fragment = unquote(parts.fragment)
        if fragment and target.suffix == ".html" and fragment not in self.ids(target):
            return f"no id '{fragment}' in {target.relative_to(self.root).as_posix()}"
        return None


def needed_by_page(request: dict, facts: dict) -> bool:
    """Whether the page's content depends on this blocked request (see the docstring)."""
    kind, url = request["type"], request["url"]
    if kind in ("image", "media", "stylesheet", "font"):
        return True
    if kind == "script":
        if "mathjax" in url.lower():
            return facts.get("math", 0) > 0
        if "require" in url.lower():
            return facts.get("widgets", 0) > 0
        return True
    return kind in ("document", "fetch", "xhr")


def check_page(context, state: dict, site: Site, page_path: str, out: Path,
               blocked_log: list) -> dict:
    url = f"{site.origin}/{page_path}"
    res: dict = {"page": page_path, "console_errors": [], "page_errors": [],
                 "bad_responses": [], "blocked": []}
    mine = []  # the blocked requests of this page
    page = context.new_page()

    def on_console(msg):
        if msg.type != "error":
            return
        where = (msg.location or {}).get("url", "")
        if any(where == b["url"] for b in mine) or any(b["url"] in msg.text for b in mine):
            return  # the consequence of a blocked request: reported with it
        res["console_errors"].append(msg.text[:300])

    page.on("console", on_console)
    page.on("pageerror", lambda e: res["page_errors"].append(str(e)[:300]))
    # Why favicon.ico is left out: the browser asks for it by itself; no page links it.
    page.on("response", lambda r: r.status >= 400 and r.url.startswith(site.origin)
            and not r.url.endswith("/favicon.ico")
            and res["bad_responses"].append(f"{r.status} {r.url[len(site.origin):]}"))
    page.on("requestfailed", lambda r: r.url.startswith(site.origin)
            and res["bad_responses"].append(f"failed {r.url[len(site.origin):]}"))
    state["blocked"] = mine  # the route handler appends this page's blocked requests
    page.goto(url, wait_until="load")
    try:
        page.wait_for_load_state("networkidle", timeout=5000)
    except Exception:  # noqa: BLE001 - a page that keeps polling still gets checked
        pass
    page.evaluate("() => Promise.all(Array.from(document.images).map("
                  "i => i.decode().catch(() => null)))")
    facts = page.evaluate(PAGE_JS)
    shot = out / (page_path.replace("/", "__").removesuffix(".html") + ".png")
    page.screenshot(path=str(shot), full_page=True)
    page.close()

    res["title"] = facts["title"]
    res["screenshot"] = shot.as_posix()
    res["images"] = len(facts["imgs"])
    res["missing_images"] = [i["src"] for i in facts["imgs"] if not i["complete"] or not i["natural"]]
    res["figures"] = len([f for f in facts["figures"] if not f["hidden"]])
    res["zero_size"] = [f"{f['tag']} {f['what']}" for f in facts["figures"]
                        if not f["hidden"] and (not f["size"][0] or not f["size"][1])]
    internal = sorted({u.split("#")[0] + ("#" + u.split("#", 1)[1] if "#" in u else "")
                       for u in facts["links"] if u.startswith(site.origin + "/")})
    res["internal_links"] = len(internal)
    res["external_links"] = len({u for u in facts["links"]
                                 if u.startswith(("http:", "https:")) and not u.startswith(site.origin)})
    res["broken_links"] = [f"{u[len(site.origin):]}: {why}" for u in internal
                           if (why := site.broken(u))]
    res["math"], res["math_rendered"], res["widgets"] = (facts["math"], facts["mathRendered"],
                                                         facts["widgets"])
    for b in mine:
        b["needed"] = needed_by_page(b, facts)
    res["blocked"] = mine
    blocked_log.extend({"page": page_path, **b} for b in mine)
    res["blocked_needed"] = [f"{b['type']} {b['url']}" for b in mine if b["needed"]]
    failures = [k for k in ("missing_images", "zero_size", "broken_links", "console_errors",
                            "page_errors", "bad_responses", "blocked_needed") if res[k]]
    res["status"] = "FAIL" if failures else "ok"
    res["failures"] = failures
    return res


def check_search(context, site: Site, term: str, out: Path) -> dict:
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)[:300]))
    page.on("console", lambda m: m.type == "error" and errors.append(m.text[:300]))
    page.goto(f"{site.origin}/search.html?q={term}", wait_until="load")
    try:
        page.wait_for_function(SEARCH_DONE_JS, timeout=20000)
        found = page.evaluate(SEARCH_JS)
    except Exception as error:  # noqa: BLE001 - reported as a failed search
        found = {"summary": f"search did not finish: {type(error).__name__}", "hits": []}
    shot = out / f"search-{term}.png"
    page.screenshot(path=str(shot), full_page=True)
    page.close()
    return {"term": term, "hits": found["hits"], "summary": found["summary"].strip(),
            "errors": errors, "screenshot": shot.as_posix(),
            "status": "ok" if found["hits"] and not errors else "FAIL"}


# A two-page site with one fault of each kind, for --self-test: the check must find
# each of them (and only them), so a check that has stopped seeing a fault fails.
FIXTURE = {
    "index.html": """<html><head><title>faults</title>
<script src="https://cdn.example.org/mathjax/tex-chtml.js"></script>
<link rel="stylesheet" href="https://fonts.example.org/font.css"></head>
<body><main><article><p class="math">x</p>
<img src="https://img.example.org/a.png"><img src="missing.png">
<img src="dot.png" style="width:0"><img src="dot.png">
<a href="sub/page.html#there">ok</a> <a href="sub/page.html#nothere">bad</a>
<a href="nope.html">bad</a> <a href="#top">ok</a><span id="top"></span>
<script>console.error("boom")</script></article></main></body></html>""",
    "sub/page.html": """<html><head><title>fine</title></head><body><main><article>
<h1 id="there">fine</h1><script src="https://cdn.example.org/require.min.js"></script>
<a href="../index.html">home</a></article></main></body></html>""",
}
DOT_PNG = base64.b64decode(  # one pixel
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)
EXPECTED = {  # page: the fault kinds the check must report, and how many of each
    "index.html": {"missing_images": 2, "zero_size": 1, "broken_links": 2,
                   "console_errors": 2, "bad_responses": 1, "blocked_needed": 3},
    "sub/page.html": {},
}


def self_test(run_check) -> int:
    """Check the fixture; return 0 if exactly the expected faults were found."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "html"
        for name, text in FIXTURE.items():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_text(text, encoding="utf-8")
        (root / "dot.png").write_bytes(DOT_PNG)
        results, _search, blocked = run_check(root, Path(tmp) / "out")
    wrong = []
    for r in results:
        found = {k: len(r[k]) for k in EXPECTED[r["page"]] | dict.fromkeys(
            ("missing_images", "zero_size", "broken_links", "console_errors",
             "page_errors", "bad_responses", "blocked_needed"), 0) if r[k]}
        if found != EXPECTED[r["page"]]:
            wrong.append(f"{r['page']}: found {found}, expected {EXPECTED[r['page']]}")
    reported = [b["url"] for b in blocked if not b["needed"]]
    if reported != ["https://cdn.example.org/require.min.js"]:
        wrong.append(f"blocked but not needed: {reported}")
    print("\nself-test:", "; ".join(wrong) if wrong else "every planted fault found")
    return 1 if wrong else 0


def run_check(root: Path, out: Path, chromium: str, term: str | None):
    """Check every page under root (and the search for term); return the results."""
    from playwright.sync_api import sync_playwright

    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    port = free_port()
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", port), functools.partial(QuietHandler, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    site = Site(root, f"http://127.0.0.1:{port}")
    results, blocked_log, search = [], [], None
    state: dict = {"blocked": []}  # the route handler appends the page's blocked requests
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, headless=True,
                                        args=["--no-sandbox"])

            def fresh_context():
                """A new profile per page: each page is checked as a reader's first."""
                context = browser.new_context(viewport={"width": 1280, "height": 900},
                                              service_workers="block")

                def route(route_, request):
                    if request.url.startswith(site.origin + "/"):
                        return route_.continue_()
                    state["blocked"].append({"url": request.url,
                                             "type": request.resource_type})
                    return route_.abort("blockedbyclient")

                context.route("**/*", route)
                return context

            print(f"chromium {browser.version}, serving {root} at {site.origin}")
            for page_path in pages_of(root):
                context = fresh_context()
                results.append(
                    check_page(context, state, site, page_path, out, blocked_log))
                context.close()
            if term:
                state["blocked"] = []
                context = fresh_context()
                search = check_search(context, site, term, out)
                context.close()
            browser.close()
    finally:
        server.shutdown()
        server.server_close()
    report(results, search, blocked_log)
    (out / "report.json").write_text(json.dumps(
        {"pages": results, "search": search}, indent=1) + "\n", encoding="utf-8")
    return results, search, blocked_log


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--html", default="_build/html", type=Path, help="the built book")
    ap.add_argument("--out", default="_build/browser-check", type=Path,
                    help="screenshots and report.json")
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    ap.add_argument("--search", default="epoll", help="the word the search must find")
    ap.add_argument("--self-test", action="store_true",
                    help="check a small site with planted faults instead of the book")
    args = ap.parse_args()
    if not Path(args.chromium).exists():
        print(f"browser-check: {args.chromium} is missing: apt-get install chromium")
        return 2
    try:
        import playwright  # noqa: F401
    except ImportError:
        print("browser-check: pip install -r tools/requirements-browser.txt")
        return 2
    if args.self_test:
        return self_test(lambda root, out: run_check(root, out, args.chromium, None))
    if not (args.html / "index.html").is_file():
        print(f"browser-check: no built book in {args.html}: run `make book` first")
        return 2
    results, search, _ = run_check(args.html.resolve(), args.out, args.chromium,
                                   args.search)
    failed = [r for r in results if r["status"] != "ok"]
    return 1 if failed or search["status"] != "ok" else 0


def report(results: list[dict], search: dict | None, blocked_log: list[dict]) -> None:
    head = ("page", "images", "figures", "links", "errors", "blocked", "status")
    rows = [(r["page"], f"{r['images'] - len(r['missing_images'])}/{r['images']}",
             f"{r['figures'] - len(r['zero_size'])}/{r['figures']}",
             f"{r['internal_links'] - len(r['broken_links'])}/{r['internal_links']}",
             str(len(r["console_errors"]) + len(r["page_errors"])),
             f"{len(r['blocked'])} ({len(r['blocked_needed'])} needed)",
             r["status"] if r["status"] == "ok" else "FAIL: " + ", ".join(r["failures"]))
            for r in results]
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
    for row in (head, *rows):
        print("  ".join(str(x).ljust(w) for x, w in zip(row, widths)).rstrip())
    for r in results:
        for key in ("missing_images", "zero_size", "broken_links", "console_errors",
                    "page_errors", "bad_responses", "blocked_needed"):
            for item in r[key]:
                print(f"  {r['page']}: {key.replace('_', ' ')}: {item}")
    total = lambda key: sum(len(r[key]) if isinstance(r[key], list) else r[key] for r in results)
    urls = sorted({b["url"] for b in blocked_log})
    print(f"\npages {len(results)}, failed {sum(r['status'] != 'ok' for r in results)}; "
          f"images {total('images')} (missing {total('missing_images')}); "
          f"figures {total('figures')} (zero size {total('zero_size')}); "
          f"internal links {total('internal_links')} (broken {total('broken_links')}); "
          f"external links {total('external_links')} (not followed: offline); "
          f"console errors {total('console_errors') + total('page_errors')}; "
          f"screenshots {len(results) + (search is not None)}")
    print(f"blocked network requests: {len(blocked_log)} on "
          f"{len({b['page'] for b in blocked_log})} pages, {len(urls)} distinct URLs"
          + "".join(f"\n  {u}  ({', '.join(sorted({b['type'] for b in blocked_log if b['url'] == u}))}; "
                    f"needed on {len({b['page'] for b in blocked_log if b['url'] == u and b['needed']})} "
                    f"of {len({b['page'] for b in blocked_log if b['url'] == u})} pages)"
                    for u in urls))
    if search is not None:
        print(f"search '{search['term']}': {len(search['hits'])} results "
              f"({search['summary']}) {search['status']}"
              + "".join(f"\n  error: {e}" for e in search["errors"]))


if __name__ == "__main__":
    sys.exit(main())
