"""Run one module of CPython's own test_asyncio with our TaskGroup or timeout in
place of asyncio's (not a test module).

The module runs in a child interpreter, the one running the tests, in which
``asyncio.TaskGroup`` (or ``timeout``, ``timeout_at``, ``Timeout``) is ours before
the test module is imported; the tests run on asyncio's own loop. Returns None
when this Python has no ``test.test_asyncio`` (it is a separate package on some
systems, e.g. Debian's ``libpython3.X-testsuite``).
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"

CHILD = r"""
import asyncio, asyncio.taskgroups, asyncio.timeouts, importlib, json, sys, unittest
import asynciodepth

names = {
    "test_taskgroups": ["TaskGroup"],
    "test_timeouts": ["timeout", "timeout_at", "Timeout"],
}
module = sys.argv[1]
for name in names[module]:
    owner = asyncio.taskgroups if name == "TaskGroup" else asyncio.timeouts
    setattr(owner, name, getattr(asynciodepth, name))
    setattr(asyncio, name, getattr(asynciodepth, name))
suite = unittest.defaultTestLoader.loadTestsFromModule(
    importlib.import_module(f"test.test_asyncio.{module}")
)
result = unittest.TextTestRunner(stream=sys.stderr, verbosity=0).run(suite)
failed = [test.id() for test, _ in result.failures + result.errors]
print(json.dumps({"run": result.testsRun, "failed": failed}))
"""


def run_with_ours(module: str) -> dict | None:
    """CPython's `module` with ours patched in: {"run": n, "failed": [test ids]}."""
    if importlib.util.find_spec("test.test_asyncio") is None:
        return None
    done = subprocess.run(
        [sys.executable, "-c", CHILD, module],
        capture_output=True,
        text=True,
        timeout=300,
        env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"},
    )
    assert done.stdout, done.stderr[-3000:]
    return json.loads(done.stdout.splitlines()[-1])
