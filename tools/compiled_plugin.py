"""pytest plugin: run the unit tests on the compiled build, and prove it is the one run.

Loaded by ``make test-compiled`` as ``-p compiled_plugin`` (tools/ on PYTHONPATH),
with ``build/compiled`` first on PYTHONPATH. At the session's start it imports
every module that ``tools/build_compiled.py`` compiled (its ``_compiled.json``),
prints how many were imported from an extension module, and stops the session if
asynciodepth is not the build's, or if a module meant to be compiled came from a
``.py``.

It also deselects the tests that cannot hold for compiled code by nature, each
with its reason (``DESELECTED``), and marks as strict xfail the tests that fail
because of a known incompatibility that a change in a module (a notebook) would
fix (``KNOWN``): when the change lands the test passes, the strict xfail fails,
and its entry here is to be removed.
"""

from __future__ import annotations

import gc
import importlib
import importlib.machinery
import json
import warnings
from pathlib import Path
from typing import Any

import pytest

# node id (as pytest prints it, from the repository root) -> why it cannot hold.
DESELECTED: dict[str, str] = {
    **{
        f"tests/test_sendfile.py::test_os_sendfile_is_called_in_one_function[{impl}]": (
            "reads the frame of os.sendfile's caller (file and function name): a "
            "compiled function has no frame, so the caller seen is the Python one "
            "above it"
        )
        for impl in ("epoll", "selectors", "epoll+pytask")
    },
    **{
        f"tests/test_tasks.py::{test}[{setup}]": (
            "expects the frame of the loop's create_future() as the last of a "
            "future's source traceback: a compiled function has no frame"
        )
        for test in (
            "test_source_traceback_names_the_creator_in_debug_mode",
            "test_never_retrieved_report_carries_the_source_traceback",
        )
        for setup in ("ours", "ours+pytask")
    },
}

_FRAMES = (
    "debug mode's source traceback: the loop finds its caller with "
    "sys._getframe(N) counting its own frames, and compiled functions have none, "
    "so the traceback starts N frames too far up (change wanted: events gets a "
    "caller_frame(N) that counts 0 when the module is compiled)"
)
_CREATE_TASK = (
    "create_task() drops its own two frames from the Task's source traceback; "
    "compiled, it has none and drops the caller's (change wanted: drop them only "
    "when the loop's functions have frames)"
)
_FINISHED_NAME = (
    "a Cython coroutine clears __name__/__qualname__ when it finishes, so the "
    "loop-level tracer names the track of a task whose coroutine is one of the "
    "loop's (Runner.close's shutdown_asyncgens) None and never opens it (the "
    "change wanted: trace/loop.py's on_task_step falls back on the type's name "
    "when __qualname__ is None)"
)
_AUTO_ATTACH = (
    "tracing() without loop= finds our loop by watching the code of "
    "BaseEventLoop.run_forever (sys.monitoring local events on 3.12+, settrace's call "
    "event on 3.11); compiled, run_forever has no Python code to watch, so the "
    "coroutine tracer records the tasks and the loop-level tracer is not attached "
    "(pass loop= on the compiled build; the change wanted: the trace package also "
    "attaches at the first task step it sees on one of our loops)"
)
KNOWN: dict[str, str] = {
    **{
        f"tests/test_base_events.py::{test}[{setup}]": _FRAMES
        for test in (
            "test_debug_handles_remember_where_they_were_scheduled",
            "test_errors_in_debug_mode_log_where_the_callback_was_scheduled",
        )
        for setup in ("ours", "ours+pytask")
    },
    "tests/test_base_events.py::test_task_made_by_create_task_remembers_its_creator":
        _CREATE_TASK,
    **{
        "tests/test_trace.py::test_tracing_does_not_change_what_a_program_does"
        f"[{setup}-{program}-loop]": _FINISHED_NAME
        for setup in ("ours", "ours+pytask")
        for program in (
            "cancel", "timeout", "taskgroup", "agen", "generator-close",
            "exception-groups",
        )
    },
    "tests/test_trace.py::test_tracing_does_not_change_what_a_program_does"
    "[ours+pytask-eager-loop]": _FINISHED_NAME,
    **{
        f"tests/test_trace_auto.py::{test}": _AUTO_ATTACH
        for test in (
            *(
                f"{name}[{setup}]"
                for name in (
                    "test_without_loop_the_trace_is_the_one_loop_gives",
                    "test_without_loop_on_the_real_clock_same_steps_and_arrows",
                )
                for setup in ("epoll", "selectors", "pytask")
            ),
            "test_asynciodepth_run_inside_tracing_draws_the_loops_arrows",
            "test_the_stdlib_loop_before_ours_is_traced_by_its_coroutines",
            "test_on_311_the_hooks_stay_off_after_our_loop",
            "test_the_hooks_are_released_and_the_loop_left_clean",
            "test_a_trace_file_without_loop_has_the_loops_track",
        )
    },
}  # fmt: skip

_SUFFIXES = tuple(importlib.machinery.EXTENSION_SUFFIXES)


def _check_build() -> tuple[list[str], list[str], Path]:
    """(compiled modules imported from extensions, those imported from .py, package)."""
    import asynciodepth

    package = Path(asynciodepth.__file__).parent
    manifest = package / "_compiled.json"
    if not manifest.exists():
        raise pytest.UsageError(
            f"compiled_plugin: asynciodepth comes from {package}, which is not a "
            "compiled build (no _compiled.json): put build/compiled first on PYTHONPATH"
        )
    names = json.loads(manifest.read_text())["modules"]
    compiled, python = [], []
    for name in names:
        module = importlib.import_module(name)
        (compiled if module.__file__.endswith(_SUFFIXES) else python).append(name)
    return compiled, python, package


def pytest_configure(config: pytest.Config) -> None:
    compiled, python, package = _check_build()
    config._compiled_modules = (compiled, python, package)  # type: ignore[attr-defined]
    if python:
        raise pytest.UsageError(
            "compiled_plugin: meant to be compiled but imported from a .py: "
            + ", ".join(python)
        )


def pytest_sessionstart(session: pytest.Session) -> None:
    # Why not pytest_report_header: -q hides the header; this line must always show.
    compiled, _, package = session.config._compiled_modules  # type: ignore[attr-defined]
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    names = ", ".join(name.removeprefix("asynciodepth.") for name in compiled)
    line = (
        f"compiled build {package}: {len(compiled)} compiled modules imported "
        f"from extension modules ({names})"
    )
    if reporter is not None:
        reporter.write_line(line)
    else:
        print(line)


def pytest_collection_modifyitems(config: pytest.Config, items: list[Any]) -> None:
    kept, dropped = [], []
    for item in items:
        (dropped if item.nodeid in DESELECTED else kept).append(item)
        if item.nodeid in KNOWN:
            item.add_marker(pytest.mark.xfail(reason=KNOWN[item.nodeid], strict=True))
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item: Any, nextitem: Any) -> Any:
    yield
    if item.nodeid in KNOWN:
        # Why: a known failure stops its test before it closes its loop; collected
        # later, the loop's ResourceWarning would fail an unrelated test that
        # checks for warnings (test_coroutine_classes does).
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            gc.collect()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    terminalreporter.section("compiled build: deselected (cannot hold compiled)")
    for nodeid, reason in DESELECTED.items():
        terminalreporter.write_line(f"{nodeid}: {reason}")
    terminalreporter.section("compiled build: known incompatibilities (strict xfail)")
    for nodeid in KNOWN:
        terminalreporter.write_line(nodeid)
    for reason in dict.fromkeys(KNOWN.values()):
        terminalreporter.write_line(f"why: {reason}")
