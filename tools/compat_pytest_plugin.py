"""pytest plugin: run a library's test suite on asynciodepth's loop, and count loops.

Loaded by tools/run_library_suites.py as ``-p compat_pytest_plugin`` (tools/ on
PYTHONPATH), configured by the environment:

- ``COMPAT_LOOP``: ``ours`` (asyncio's default policy makes asynciodepth's loop,
  ``asyncio.SelectorEventLoop``/``EventLoop`` are ours: the same patch as
  tools/run_test_asyncio.py) or ``stdlib`` (nothing patched, loops counted);
- ``COMPAT_SRC``: the asynciodepth source tree (``ours`` only);
- ``COMPAT_LOOP_OPTIONS``: ``KEY=VALUE`` pairs separated by spaces, passed to
  ``asynciodepth.EventLoop`` (or ``$ASYNCIODEPTH_LOOP``, ``module:Class``);
- ``COMPAT_OUT``: a file that gets one JSON line per test: its node id, outcome
  (passed, failed, error, skipped, xfailed, xpassed), a one-line reason, and the
  kinds of loops made while it ran (ours, stdlib, internal, none).

The patch is installed when the plugin is imported, before any conftest or test
module, so that names bound at import time (``loop_factory = asyncio.EventLoop``)
are ours too.
"""

from __future__ import annotations

import gc
import json
import os
import sys
from typing import Any

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run_test_asyncio import LoopCounter, _parse_options, install  # noqa: E402

_MODE = os.environ.get("COMPAT_LOOP", "ours")
if _MODE not in ("ours", "stdlib"):
    raise SystemExit(f"COMPAT_LOOP must be ours or stdlib, not {_MODE!r}")
if _MODE == "ours":
    sys.path.insert(0, os.path.abspath(os.environ["COMPAT_SRC"]))
_COUNTER = LoopCounter()
install(
    _COUNTER,
    _MODE == "stdlib",
    _parse_options(os.environ.get("COMPAT_LOOP_OPTIONS", "").split()),
)

# blockbuster (a test dependency of aiohttp and anyio) fails a test that makes a
# call which may block under the library's code (os.sendfile reads the file from
# disk), except in the functions of asyncio known to make it on purpose, named
# by file and function. On ours our loop's counterpart makes the same call: it
# is allowed there too, and nowhere else.
_BLOCKBUSTER_ALLOWED = {
    # asyncio's: base_events.py sendfile, unix_events.py _sock_sendfile_native_impl
    "os.sendfile": [("asynciodepth/sendfile.py", {"send_some"})],
    # asyncio's: unix_events.py create_unix_server and _stop_serving (the
    # socket file's removal, before binding and once the server closes)
    "os.stat": [
        ("asynciodepth/unix_events.py", {"create_unix_server"}),
        ("asynciodepth/connections.py", {"_unlink_if_same"}),
    ],
    "os.unlink": [("asynciodepth/connections.py", {"_unlink_if_same"})],
    # asyncio's: base_events.py subprocess_exec and subprocess_shell (Popen
    # reads the child's exec error from a pipe)
    "os.read": [
        ("asynciodepth/subprocesses.py", {"subprocess_exec", "subprocess_shell"})
    ],
    # asyncio's: base_events.py shutdown_default_executor
    "threading.Lock.acquire": [
        ("asynciodepth/runners.py", {"shutdown_default_executor"})
    ],
}


def _allow_ours_in_blockbuster() -> None:
    try:
        from blockbuster import BlockBuster
    except ImportError:
        return
    init = BlockBuster.__init__

    def init_and_allow(self: Any, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        for name, allowed in _BLOCKBUSTER_ALLOWED.items():
            if name in self.functions:
                for filename, functions in allowed:
                    self.functions[name].can_block_in(filename, functions)

    BlockBuster.__init__ = init_and_allow


if _MODE == "ours":
    _allow_ours_in_blockbuster()
_OUT = (
    open(os.environ["COMPAT_OUT"], "a", buffering=1)
    if "COMPAT_OUT" in os.environ
    else None
)
_STATE: dict[str, dict[str, Any]] = {}


def _reason(report: Any) -> str:
    if report.skipped and isinstance(report.longrepr, tuple):
        return str(report.longrepr[2])[:300]
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None:
        return crash.message.replace("\n", " | ")[:300]
    text = str(report.longrepr or "").strip().splitlines()
    # A fixture error has no crash line: its message is on the lines "E   ...".
    errors = [line[1:].strip() for line in text if line.startswith("E ")]
    return (" | ".join(errors) if errors else text[-1] if text else "")[:300]


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_teardown(item: Any) -> None:
    # Why, on both loops alike: an object a test leaks in a reference cycle (a
    # socket its fixture never closed) is freed, and warns "unclosed", whenever the
    # cyclic collector next runs, and pytest fails whichever test runs then. Run
    # the collector at each test's teardown, so that a leak is reported by the test
    # that made it, the same one on either loop.
    gc.collect()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: Any, nextitem: Any) -> Any:
    _COUNTER.take()
    _STATE[item.nodeid] = {"outcome": "passed", "reason": ""}
    yield
    kinds, classes = _COUNTER.take()
    state = _STATE.pop(item.nodeid)
    if _OUT is not None:
        _OUT.write(
            json.dumps(
                {"test": item.nodeid, **state, "loops": kinds, "classes": classes}
            )
            + "\n"
        )


def pytest_runtest_logreport(report: Any) -> None:
    state = _STATE.get(report.nodeid)
    if state is None:
        return
    outcome = None
    if hasattr(report, "wasxfail"):
        outcome = "xfailed" if report.skipped else "xpassed"
    elif report.failed:
        outcome = "failed" if report.when == "call" else "error"
    elif report.skipped:
        outcome = "skipped"
    if outcome is None:
        return
    rank = ["passed", "skipped", "xfailed", "xpassed", "failed", "error"]
    if rank.index(outcome) >= rank.index(state["outcome"]):
        state["outcome"] = outcome
        state["reason"] = _reason(report)


def pytest_unconfigure(config: Any) -> None:
    if _OUT is not None and not _OUT.closed:
        _OUT.close()
