"""Run real asyncio libraries' own test suites on asyncio's loop and on ours, and compare.

Usage::

    python3 tools/run_library_suites.py --src PATH/TO/src --setup            # once
    python3 tools/run_library_suites.py --src PATH/TO/src [LIBRARY ...] [-v]
    python3 tools/run_library_suites.py --src PATH/TO/src --beyond-tcp [--stdlib-only]
        [--suites-dir DIR] [--logs-dir DIR]

``--beyond-tcp`` runs only each suite's tests of TLS, UDP, subprocesses and
sendfile (``BEYOND_TCP`` below), and says which selection each regression is in;
``--stdlib-only`` runs asyncio's loop only (the baseline: outcomes per suite and per
feature); ``--suites-dir`` uses suites set up elsewhere (e.g. by another checkout),
``--logs-dir`` keeps this run's logs apart from theirs.

LIBRARY is one of the keys of SUITES below (default: all of them). Each suite runs
twice, on Python 3.11 (the interpreter of its venv): once on asyncio's own loop and
once on asynciodepth's, one run at a time, each bounded by pytest-timeout per test
(``--timeout``, default 60 s) and by ``--run-timeout`` (default 1800 s) for the whole
run. Our loop is injected by tools/compat_pytest_plugin.py (``-p compat_pytest_plugin``):
asyncio's default policy makes our loop, ``asyncio.SelectorEventLoop`` and
``asyncio.EventLoop`` are ours (the patch of tools/run_test_asyncio.py), so whatever
loop the library's fixtures make -- ``asyncio.new_event_loop()``, ``asyncio.Runner``,
``IsolatedAsyncioTestCase``, pytest-asyncio, anyio's plugin, aiohttp's ``loop``
fixture -- is ours; the plugin counts the loops each test made.

``--setup`` makes, under ``.suites/`` (not committed): each library's source with
its tests (its PyPI sdist; websockets' sdist has no tests, so its source comes from
the git mirror made by the ``fetch`` tool, /work/.mirror/python-websockets+websockets,
or ``--websockets-src DIR``), and a venv per library with the library and its test
dependencies.

Printed per library: tests, passed on both, failed on both, passed on stdlib only
(regressions), passed on ours only, skipped, and the loops made in the run on ours
(tests that made ours / asyncio's real loop / none). Then the regressions, grouped
by cause: TLS, UDP, subprocess, pipes, sendfile (features our loop refuses with
NotImplementedError), network (the machine), or behaviour (a difference to
diagnose), each with its reason on our loop. ``--json FILE`` writes everything.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass, field
from typing import Any

TOOLS = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(TOOLS)
SUITES_DIR = os.path.join(TOP, ".suites")
sys.path.insert(0, TOOLS)
from run_test_asyncio import cause_of  # noqa: E402


@dataclass
class Suite:
    version: str
    # What goes into the venv besides the library (its test dependencies).
    test_deps: list[str]
    # pytest's arguments, run in the source tree (cwd).
    args: list[str]
    # "sdist": the PyPI sdist, unpacked; "git": websockets' source (see --setup).
    source: str = "sdist"
    # The directory (under the unpacked source) pytest runs in, when not its top:
    # aiohttp's tests run from a copy, so that the installed wheel (with its C
    # extensions) is imported rather than the sdist's uncompiled package.
    copy_tests: list[str] = field(default_factory=list)
    pip_name: str = ""
    # pytest's config file, relative to the directory it runs in.
    config: str = "pyproject.toml"


SUITES: dict[str, Suite] = {
    "anyio": Suite(
        "4.16.0",
        [
            "blockbuster",
            "hypothesis",
            "psutil",
            "pytest>=9.0",
            "pytest-mock",
            "pytest-timeout",
            "trustme",
            "truststore",
        ],
        # Only the plain asyncio backend: trio and uvloop are not installed (their
        # parametrizations would be skipped anyway).
        ["tests", "-k", "not trio and not uvloop"],
    ),
    "websockets": Suite(
        "17.1.dev0 (git)",
        ["pytest", "pytest-timeout", "python-socks[asyncio]"],
        # The asyncio implementation and the legacy one (also asyncio); the sync
        # and trio implementations and the sans-I/O core make no asyncio loop.
        ["tests/asyncio", "tests/legacy"],
        source="git",
    ),
    "aiohttp": Suite(
        "3.14.5",
        [
            "pytest",
            "pytest-mock",
            "pytest-timeout",
            "freezegun",
            "trustme",
            "blockbuster",
            "proxy.py>=2.4.4rc5",
            "pytest_codspeed",
            "isal",
            "zlib_ng",
            "gunicorn",
            "aiodns",
            "brotli",
            "backports.zstd",
            "coverage",
            "pytest-cov",
            "re-assert",
            "python-on-whales",
        ],
        # Its pytest.ini asks for xdist, coverage and doctests of the package: off.
        [
            "-o",
            "addopts=",
            "-m",
            "not dev_mode and not autobahn and not internal",
            "tests",
        ],
        copy_tests=["tests", "pytest.ini"],
        config="pytest.ini",
    ),
    "janus": Suite(
        "2.0.0",
        ["pytest", "pytest-asyncio", "pytest-timeout", "pytest-codspeed"],
        ["-o", "addopts=", "tests"],
        config="setup.cfg",
    ),
    "async_timeout": Suite(
        "5.0.1",
        ["pytest", "pytest-asyncio", "pytest-timeout"],
        ["-o", "addopts=", "tests"],
        pip_name="async-timeout",
        config="setup.cfg",
    ),
}


# The tests of each suite that exercise what chapter "Beyond TCP" adds (TLS, UDP,
# subprocesses, pipes, sendfile through the loop): pytest paths, relative to the
# directory the suite runs in. Found by grepping the suites for ssl=, start_tls,
# create_datagram_endpoint, create_subprocess_*, connect_*_pipe and sendfile, and
# checked against the run on ours of main (every test that failed there with the
# refusal's NotImplementedError is in here). ``--beyond-tcp`` runs only these.
# Why janus and async_timeout have none: they never touch those loop methods.
BEYOND_TCP: dict[str, dict[str, list[str]]] = {
    "anyio": {
        "UDP": [
            "tests/test_sockets.py::TestUDPSocket",
            "tests/test_sockets.py::TestConnectedUDPSocket",
            "tests/test_sockets.py::TestUDPSocketBackpressure",
            "tests/test_sockets.py::TestUNIXDatagramSocket",
            "tests/test_sockets.py::TestConnectedUNIXDatagramSocket",
        ],
        "subprocess": ["tests/test_subprocesses.py", "tests/test_to_process.py"],
        # anyio's own TLS (ssl.MemoryBIO over a plain TCP stream of the loop).
        "TLS": ["tests/streams/test_tls.py"],
    },
    "websockets": {
        "TLS": [
            "tests/asyncio/test_client.py",
            "tests/asyncio/test_server.py",
            "tests/asyncio/test_router.py",
            "tests/legacy/test_client_server.py",
        ],
    },
    "aiohttp": {
        "TLS": [
            "tests/test_client_functional.py",
            "tests/test_connector.py",
            "tests/test_proxy_functional.py",
            "tests/test_client_ws_functional.py",
            "tests/test_run_app.py",
        ],
        "subprocess": ["tests/test_loop.py"],
        "sendfile": ["tests/test_web_sendfile_functional.py"],
    },
}


def beyond_tcp_feature(name: str, tid: str) -> str | None:
    """The feature of BEYOND_TCP[name] whose selection holds test id tid, if any.

    The ids the plugin writes are relative to the test directory pytest found
    (e.g. ``streams/test_tls.py::...`` for ``tests/streams/test_tls.py``).
    """
    tfile, _, trest = tid.partition("::")
    for feature, selected in BEYOND_TCP.get(name, {}).items():
        for path in selected:
            pfile, _, pclass = path.partition("::")
            if not (pfile == tfile or pfile.endswith("/" + tfile)):
                continue
            if not pclass or trest == pclass or trest.startswith(pclass + "::"):
                return feature
    return None


# Suites that --beyond-tcp still runs whole (their selection only classifies).
# Why websockets: run without the rest of tests/asyncio, its test_client.py
# ClientTests.test_reconnect loops forever reconnecting (after the rest it fails at
# once), and pytest-timeout did not end it: the run hung for 10 minutes on stdlib
# (a guess, not checked: its signal landed in a loop callback, whose exception the
# loop's handler logs; alone, outside the runner, the timeout ended it). The whole
# suite takes 6 s on stdlib.
RUN_WHOLE = {"websockets"}


def pytest_args(name: str, suite: Suite, beyond_tcp: bool) -> list[str]:
    """The suite's pytest arguments; with beyond_tcp, its BEYOND_TCP paths only."""
    if not beyond_tcp or name in RUN_WHOLE:
        return suite.args
    options = [a for a in suite.args if not a.startswith("tests")]
    return options + [p for ps in BEYOND_TCP.get(name, {}).values() for p in ps]


def paths(name: str, suite: Suite) -> tuple[str, str]:
    """(venv, directory pytest runs in) of a library."""
    venv = os.path.join(SUITES_DIR, f"{name}-venv")
    if suite.source == "git":
        cwd = os.path.join(SUITES_DIR, f"{name}-src")
    elif suite.copy_tests:
        cwd = os.path.join(SUITES_DIR, f"{name}-tests")
    else:
        cwd = os.path.join(SUITES_DIR, "dl", f"{name}-{suite.version}")
    return venv, cwd


def setup(name: str, suite: Suite, websockets_src: str) -> None:
    venv, cwd = paths(name, suite)
    dl = os.path.join(SUITES_DIR, "dl")
    os.makedirs(dl, exist_ok=True)
    pip = os.path.join(venv, "bin", "pip")
    if not os.path.exists(pip):
        subprocess.run([sys.executable, "-m", "venv", venv], check=True)
    if suite.source == "git":
        if not os.path.isdir(cwd):
            os.makedirs(cwd)
            archive = subprocess.run(
                ["git", "-C", websockets_src, "archive", "HEAD"],
                check=True,
                capture_output=True,
            ).stdout
            subprocess.run(["tar", "x", "-C", cwd], input=archive, check=True)
        lib = [cwd]
    else:
        pip_name = suite.pip_name or name
        unpacked = os.path.join(dl, f"{name}-{suite.version}")
        if not os.path.isdir(unpacked):
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "download",
                    "-q",
                    "--no-deps",
                    "--no-binary",
                    ":all:",
                    "-d",
                    dl,
                    f"{pip_name}=={suite.version}",
                ],
                check=True,
            )
            tarball = [
                f
                for f in os.listdir(dl)
                if f.startswith(f"{name}-{suite.version}") and f.endswith(".tar.gz")
            ][0]
            with tarfile.open(os.path.join(dl, tarball)) as tar:
                tar.extractall(dl)
        if suite.copy_tests and not os.path.isdir(cwd):
            os.makedirs(cwd)
            for item in suite.copy_tests:
                subprocess.run(
                    ["cp", "-r", os.path.join(unpacked, item), cwd], check=True
                )
        # Why the wheel for aiohttp: the sdist would compile its C extensions.
        lib = [f"{pip_name}=={suite.version}"] if suite.copy_tests else [unpacked]
    subprocess.run(
        [pip, "install", "-q", "--disable-pip-version-check", *lib, *suite.test_deps],
        check=True,
    )


def run_suite(name: str, suite: Suite, mode: str, args: argparse.Namespace) -> dict:
    venv, cwd = paths(name, suite)
    logs = args.logs_dir or os.path.join(SUITES_DIR, "logs")
    os.makedirs(logs, exist_ok=True)
    out = os.path.join(logs, f"{name}-{mode}.jsonl")
    log = os.path.join(logs, f"{name}-{mode}.log")
    if os.path.exists(out):
        os.remove(out)
    env = dict(os.environ)
    env.update(
        COMPAT_LOOP=mode,
        COMPAT_SRC=args.src,
        COMPAT_OUT=out,
        COMPAT_LOOP_OPTIONS=" ".join(args.loop_option),
        PYTHONPATH=os.pathsep.join([TOOLS, env.get("PYTHONPATH", "")]).rstrip(
            os.pathsep
        ),
    )
    # Why --rootdir and the config file: .suites/ lies inside this project, whose
    # pyproject.toml pytest would otherwise take for the library's.
    # Why --tb=native: pytest's own traceback formatting re-parses the source and
    # can itself fail (a RecursionError in a websockets test made it crash).
    config = os.path.join(cwd, suite.config)
    cmd = [
        os.path.join(venv, "bin", "python"),
        "-m",
        "pytest",
        "-p",
        "compat_pytest_plugin",
        "-p",
        "no:cacheprovider",
        "-q",
        "-rN",
        "--tb=native",
        f"--rootdir={cwd}",
        "-c",
        config,
        f"--timeout={args.timeout}",
        *pytest_args(name, suite, args.beyond_tcp),
    ]
    t0 = time.monotonic()
    with open(log, "w") as f:
        proc = subprocess.Popen(
            cmd,
            cwd=cwd,
            env=env,
            stdout=f,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            proc.wait(timeout=args.run_timeout)
            status = f"exit {proc.returncode}"
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()
            status = "run timeout"
    tests: dict[str, dict[str, Any]] = {}
    if os.path.exists(out):
        with open(out) as f:
            for line in f:
                rec = json.loads(line)
                tests[rec["test"]] = rec
    with open(log) as f:
        tail = f.read().strip().splitlines()[-1:] or [""]
    return {
        "mode": mode,
        "status": status,
        "summary": tail[0],
        "seconds": round(time.monotonic() - t0, 1),
        "tests": tests,
    }


PASS = ("passed", "xfailed")
FAIL = ("failed", "error", "xpassed")


def compare(stdlib: dict, ours: dict) -> dict[str, Any]:
    groups: dict[str, list[str]] = {
        "both passed": [],
        "both failed": [],
        "regressions": [],
        "ours only": [],
        "skipped": [],
        "missing on ours": [],
        "missing on stdlib": [],
    }
    for tid in sorted(set(stdlib["tests"]) | set(ours["tests"])):
        s = stdlib["tests"].get(tid)
        o = ours["tests"].get(tid)
        if o is None:
            groups["missing on ours"].append(tid)
        elif s is None:
            groups["missing on stdlib"].append(tid)
        elif s["outcome"] == "skipped" or o["outcome"] == "skipped":
            groups["skipped"].append(tid)
        elif s["outcome"] in PASS and o["outcome"] in PASS:
            groups["both passed"].append(tid)
        elif s["outcome"] in FAIL and o["outcome"] in FAIL:
            groups["both failed"].append(tid)
        elif s["outcome"] in PASS:
            groups["regressions"].append(tid)
        else:
            groups["ours only"].append(tid)
    loops = {"ours": 0, "stdlib": 0, "internal": 0, "none": 0}
    for rec in ours["tests"].values():
        if rec["outcome"] == "skipped":
            continue
        for kind in rec["loops"]:
            loops[kind] = loops.get(kind, 0) + 1
    causes: dict[str, list[tuple[str, str]]] = {}
    for tid in groups["regressions"]:
        rec = ours["tests"][tid]
        cause = cause_of({"reason": rec.get("reason", ""), "outcome": rec["outcome"]})
        if cause == "behaviour" and "Timeout" in rec.get("reason", ""):
            cause = "hang (pytest-timeout)"
        causes.setdefault(cause, []).append((tid, rec.get("reason", "")))
    return {"groups": groups, "loops_on_ours": loops, "regressions_by_cause": causes}


def print_baseline(name: str, suite: Suite, run: dict) -> dict[str, dict[str, int]]:
    """Print and return a stdlib-only run's outcomes, all and per BEYOND_TCP feature."""
    counts: dict[str, dict[str, int]] = {}
    for tid, rec in run["tests"].items():
        for key in ("all", beyond_tcp_feature(name, tid)):
            if key is not None:
                row = counts.setdefault(key, {})
                row[rec["outcome"]] = row.get(rec["outcome"], 0) + 1
    print(f"\n== {name} {suite.version}  (stdlib: {run['status']}, {run['seconds']} s)")
    for key, row in sorted(counts.items(), key=lambda kv: kv[0] != "all"):
        shown = ", ".join(f"{k} {v}" for k, v in sorted(row.items()))
        print(f"   {key:10} tests {sum(row.values())}: {shown}")
    sys.stdout.flush()
    return counts


def main() -> int:
    global SUITES_DIR  # --suites-dir
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("libraries", nargs="*", metavar="LIBRARY")
    parser.add_argument("--src", required=True, help="asynciodepth source tree")
    parser.add_argument("--setup", action="store_true", help="make .suites/ and stop")
    parser.add_argument(
        "--websockets-src", default="/work/.mirror/python-websockets+websockets/repo"
    )
    parser.add_argument(
        "--loop-option", action="append", default=[], metavar="KEY=VALUE"
    )
    parser.add_argument("--timeout", type=float, default=60)
    parser.add_argument("--run-timeout", type=float, default=1800)
    parser.add_argument("--json")
    parser.add_argument(
        "--suites-dir",
        default=SUITES_DIR,
        help="where --setup made the suites (default: .suites/ of this checkout)",
    )
    parser.add_argument("--logs-dir", help="default: SUITES_DIR/logs")
    parser.add_argument(
        "--beyond-tcp",
        action="store_true",
        help="run only the tests of BEYOND_TCP (TLS, UDP, subprocess, sendfile)",
    )
    parser.add_argument(
        "--stdlib-only",
        action="store_true",
        help="run on asyncio's loop only: the baseline, counts per suite and feature",
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="list every regression (else up to 15 per cause)",
    )
    args = parser.parse_args()
    SUITES_DIR = os.path.abspath(args.suites_dir)
    args.src = os.path.abspath(args.src)
    names = args.libraries or list(SUITES)
    for name in names:
        if name not in SUITES:
            parser.error(f"unknown library {name!r}: one of {', '.join(SUITES)}")
    if args.setup:
        for name in names:
            setup(name, SUITES[name], args.websockets_src)
        return 0
    report = {}
    for name in names:
        suite = SUITES[name]
        if args.stdlib_only:
            run = run_suite(name, suite, "stdlib", args)
            report[name] = {"version": suite.version, "runs": {"stdlib": run}}
            report[name]["counts"] = print_baseline(name, suite, run)
            continue
        runs = {mode: run_suite(name, suite, mode, args) for mode in ("stdlib", "ours")}
        result = compare(runs["stdlib"], runs["ours"])
        report[name] = {"version": suite.version, "runs": runs, **result}
        g = result["groups"]
        loops = result["loops_on_ours"]
        print(
            f"\n== {name} {suite.version}  (stdlib: {runs['stdlib']['status']}, "
            f"{runs['stdlib']['seconds']} s; ours: {runs['ours']['status']}, "
            f"{runs['ours']['seconds']} s)"
        )
        print(
            f"   tests {len(set(runs['stdlib']['tests']) | set(runs['ours']['tests']))}:"
            f" both passed {len(g['both passed'])}, both failed {len(g['both failed'])},"
            f" stdlib only (regressions) {len(g['regressions'])},"
            f" ours only {len(g['ours only'])}, skipped {len(g['skipped'])},"
            f" missing on ours {len(g['missing on ours'])},"
            f" missing on stdlib {len(g['missing on stdlib'])}"
        )
        print(
            f"   loops on the run on ours (tests not skipped): ours {loops['ours']},"
            f" asyncio's real loop {loops['stdlib']}, internal {loops['internal']},"
            f" none {loops['none']}"
        )
        features: dict[str, int] = {}
        for tid in g["regressions"]:
            feature = beyond_tcp_feature(name, tid) or "elsewhere"
            features[feature] = features.get(feature, 0) + 1
        if features:
            print(
                "   regressions by Beyond-TCP selection: "
                + ", ".join(f"{f} {n}" for f, n in sorted(features.items()))
            )
        for cause, items in sorted(result["regressions_by_cause"].items()):
            print(f"   regressions, {cause}: {len(items)}")
            for tid, reason in items if args.verbose else items[:15]:
                print(f"      {tid}  {reason[:160]}")
            if not args.verbose and len(items) > 15:
                print(f"      ... {len(items) - 15} more (-v)")
        sys.stdout.flush()
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
            f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
