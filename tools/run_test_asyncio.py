"""Run CPython's own test_asyncio on asynciodepth's loop (or, for a baseline, on asyncio's).

Usage::

    PYTHON tools/run_test_asyncio.py --src PATH/TO/src [options] [TEST ...]

PYTHON is the interpreter tested: its own ``test.test_asyncio`` package is run.
Python 3.11-3.13 through pyenv, 3.14/3.15 through the sid chroot, e.g.::

    python3 tools/run_test_asyncio.py --src src                      # 3.11, all modules
    PYENV_VERSION=3.12.1 python3 tools/run_test_asyncio.py --src src test_tasks test_locks
    chroot /var/cache/asynciodepth/sid python3.14 \\
        /work/wt/NAME/tools/run_test_asyncio.py --src /work/wt/NAME/src test_taskgroups
    python3 tools/run_test_asyncio.py --stdlib test_streams            # asyncio's own loop

TEST is a module (``test_tasks``), a class (``test_tasks.PyTask_PyFuture_Tests``) or
one test (``test_tasks.PyTask_PyFuture_Tests.test_wait``); the default is every module
of test_asyncio. The ids in the ``--failures-dir`` files are of this form, so a failing
test can be rerun by pasting its id.

Options:

``--src DIR``
    the asynciodepth source tree to test (the directory holding ``asynciodepth/``).
``--stdlib``
    run on asyncio's own loop instead (a baseline: what fails there is the
    environment, e.g. no network or no IPv6). ``--src`` is not needed.
``ASYNCIODEPTH_LOOP=MODULE:CLASS`` (environment)
    the loop class of ours to test, instead of ``asynciodepth:EventLoop``, e.g.
    ``asynciodepth.datagrams:DatagramEventLoop``; also read by the library-suite
    plugin. Workers inherit it.
``--loop-option KEY=VALUE``
    (repeatable) passed to ``asynciodepth.EventLoop(KEY=VALUE)``; VALUE is a Python
    literal if it parses as one (``3``, ``True``, ``'x'``), else the string itself.
``--timeout-per-module S`` (default 900)
    wall-clock budget of one module, restarts included; what has not run by then
    is reported as ``not run``.
``--timeout-per-test S`` (default 30)
    a test running longer is a ``hang``: its worker is killed (its stack is in the
    log) and the module goes on, in a fresh worker, from the next test.
``--ours-testloop``
    also replace ``test_utils.TestLoop`` (asyncio's BaseEventLoop with a clock
    that a generator in the test drives: most of test_tasks and test_futures run
    on it) by a loop of ours with the same generator-driven clock; its tests then
    count as ``ours``. Without it they test asyncio's Task and Future on
    asyncio's base loop, not our loop.
``--ours-base-loop``
    also make ``asyncio.BaseEventLoop()`` (the public name only) build our loop:
    test_pep492 and test_runners build it, with a few internals mocked, for
    tests of coroutines and of asyncio.run; they then run on ours.
``--json FILE``
    write every test's outcome, detail and loops made, per module.
``--failures-dir DIR``
    write ``DIR/<module>.txt``: one line per test that failed, errored, hung or
    crashed: ``id<TAB>outcome<TAB>cause<TAB>one-line reason`` (``cut -f1`` gives
    the ids). The cause is guessed from the reason: TLS, UDP, subprocess, pipes,
    sendfile (features our loop refuses with NotImplementedError), network (the
    machine: no DNS, no IPv6), hang, crash, or behaviour (anything else).
``--log-dir DIR``
    keep each module's stdout/stderr (otherwise a temporary directory).
``-v``
    print every failing test id with its reason under the table.

How our loop is put under every test (nothing of test_asyncio is edited):

- asyncio's default policy class keeps its identity (tests check
  ``isinstance(policy, asyncio.DefaultEventLoopPolicy)``, and on 3.11/3.12 it owns
  the child watchers), but its class attribute ``_loop_factory`` -- what its
  ``new_event_loop()`` calls -- is our loop. So ``asyncio.new_event_loop()``,
  ``asyncio.run()``, ``asyncio.Runner``, ``IsolatedAsyncioTestCase`` and
  ``test_utils.DefaultEventLoopPolicy`` make our loop, and resetting the policy
  (``set_event_loop_policy(None)`` on 3.11-3.13, ``events._set_event_loop_policy(None)``
  on 3.14+, in every module's tearDownModule) makes a fresh policy of the same class,
  still with our factory.
- ``asyncio.SelectorEventLoop`` and ``asyncio.EventLoop`` (3.13+; test classes set
  ``loop_factory = asyncio.EventLoop`` when their module is imported, which is after
  the patch) are a subclass of ``asynciodepth.EventLoop`` that takes asyncio's
  ``selector`` argument: an ``EpollSelector`` becomes our epoll poller (the given
  selector is closed), any other selector is wrapped by our "selectors" poller.
- Every loop constructed is counted, per test (a loop made in setUpClass counts for
  the class's first test): ``ours`` (asynciodepth's), ``testloop``
  (``test_utils.TestLoop``: asyncio's BaseEventLoop with a mock clock, not ours),
  ``internal`` (a stdlib base class built directly by a test of asyncio's internals,
  e.g. ``base_events.BaseEventLoop()`` in test_base_events: cannot be ours),
  ``stdlib`` (asyncio's real loop, ``_UnixSelectorEventLoop``: with our patch this
  must be 0; any is a hole in the runner), ``none`` (no loop at all, e.g. mocks).
  In the table a test counts as ours if it made our loop, else as testloop if it
  made a TestLoop, else as internal, else as none; and, apart, as stdlib if it made
  asyncio's real loop. (``--rerender JSON`` prints the table of a --json file again.)

Each module runs in a subprocess of its own (its own session, killed as a group).
The table counts tests: run = passed + failed + errors + skipped + hang + crash.
``passed`` includes expected failures, ``failed`` unexpected successes;
errors in setUpClass/setUpModule count as one error each.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from typing import Any

PACKAGE = "test.test_asyncio"
KINDS = ("ours", "testloop", "internal", "stdlib", "none")
BAD = ("failure", "error", "hang", "crash", "not run")
# The counters of a module's result and of the total, in the table's order.
COUNTS = ("run", "passed", "failed", "errors", "skipped", "hang", "crash", *KINDS)


# ---------------------------------------------------------------------------
# Worker: runs (part of) one module in this process and reports line by line.
# ---------------------------------------------------------------------------


class LoopCounter:
    """Records the kinds of loops constructed since the last take()."""

    def __init__(self, on_new: Any = None) -> None:
        import threading

        self._lock = threading.Lock()
        self._kinds: set[str] = set()
        self._classes: set[str] = set()
        # on_new(kind, class name) is told of each new class as it is made, so
        # that a test that then hangs (and is killed) still has its loops.
        self._on_new = on_new

    def add(self, kind: str, cls: type) -> None:
        name = f"{cls.__module__}.{cls.__qualname__}"
        with self._lock:
            new = name not in self._classes
            self._kinds.add(kind)
            self._classes.add(name)
        if new and self._on_new is not None:
            self._on_new(kind, name)

    def take(self) -> tuple[list[str], list[str]]:
        with self._lock:
            kinds, classes = sorted(self._kinds), sorted(self._classes)
            self._kinds.clear()
            self._classes.clear()
        return kinds or ["none"], classes


def _parse_options(pairs: list[str]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"--loop-option wants KEY=VALUE, got {pair!r}")
        try:
            options[key] = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            options[key] = raw
    return options


def ours_class() -> type:
    """Our loop class: ``$ASYNCIODEPTH_LOOP`` (``module:Class``), else asynciodepth.EventLoop."""
    import importlib

    spec = os.environ.get("ASYNCIODEPTH_LOOP", "asynciodepth:EventLoop")
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name or "EventLoop")


def install(counter: LoopCounter, stdlib: bool, options: dict[str, Any]) -> None:
    """Count every loop made; unless stdlib, make asyncio's loops ours."""
    import asyncio
    import asyncio.base_events
    import asyncio.events
    import selectors

    real_loop = asyncio.SelectorEventLoop  # _UnixSelectorEventLoop
    std_init = asyncio.base_events.BaseEventLoop.__init__

    def counting_std_init(self: Any, *args: Any, **kwargs: Any) -> None:
        # Why sys.modules: outside test_asyncio (the library suites) there is
        # no TestLoop, and importing test.support there would change nothing.
        test_utils = sys.modules.get(PACKAGE + ".utils")
        if test_utils is not None and isinstance(self, test_utils.TestLoop):
            kind = "testloop"
        elif isinstance(self, real_loop):
            kind = "stdlib"
        else:
            kind = "internal"
        counter.add(kind, type(self))
        std_init(self, *args, **kwargs)

    asyncio.base_events.BaseEventLoop.__init__ = counting_std_init
    if stdlib:
        return

    import asyncio.unix_events as unix_events

    import asynciodepth
    import asynciodepth.base_events

    ours_init = asynciodepth.base_events.BaseEventLoop.__init__

    def counting_ours_init(self: Any, *args: Any, **kwargs: Any) -> None:
        counter.add("ours", type(self))
        ours_init(self, *args, **kwargs)

    asynciodepth.base_events.BaseEventLoop.__init__ = counting_ours_init

    class EventLoop(ours_class()):  # type: ignore[misc]
        """asynciodepth's loop, taking asyncio.SelectorEventLoop's arguments."""

        def __init__(self, selector: selectors.BaseSelector | None = None) -> None:
            kwargs = dict(options)
            if isinstance(selector, getattr(selectors, "EpollSelector", ())):
                selector.close()
                kwargs["poller"] = "epoll"
            elif selector is not None:
                kwargs["poller"] = selector
            super().__init__(**kwargs)

    EventLoop.__module__ = "asynciodepth"
    EventLoop.__qualname__ = "EventLoop"
    policy_class = getattr(unix_events, "_UnixDefaultEventLoopPolicy")
    policy_class._loop_factory = EventLoop
    for module in (asyncio, unix_events):
        module.SelectorEventLoop = EventLoop
        if hasattr(module, "EventLoop"):
            module.EventLoop = EventLoop
    # A policy made before the patch (none is, normally) is dropped.
    asyncio.events._event_loop_policy = None


def install_testloop(options: dict[str, Any]) -> None:
    """Make test_utils.TestLoop a loop of ours with TestLoop's generator-driven time.

    TestLoop is asyncio's BaseEventLoop whose clock moves only as the test's
    generator says (``when = yield ...; yield advance``), polling nothing. Ours
    gets the same: a clock that the loop cannot move by itself (advance_to does
    nothing, as a virtual clock's would after an idle poll), a poller that never
    reports and never blocks, and every timer told to the generator after each
    iteration, as TestLoop._run_once does. TestLoop's fake add_reader/add_writer
    bookkeeping (readers, writers, assert_reader ...) is taken over as is.
    """
    import asynciodepth
    import asynciodepth.pollers as pollers
    from test.test_asyncio import utils as test_utils

    original = test_utils.TestLoop

    class GeneratorClock:
        def __init__(self) -> None:
            self.now = 0.0

        def time(self) -> float:
            return self.now

        def advance_to(self, when: float) -> None:
            """Time moves only as the test's generator says."""

    class SilentPoller(pollers.SelectorsPoller):
        def poll(self, timeout: float | None) -> list[tuple[int, int]]:
            return []

    class TestLoop(ours_class()):  # type: ignore[misc]
        def __init__(self, gen: Any = None) -> None:
            self._gen_clock = GeneratorClock()
            super().__init__(
                **{**options, "clock": self._gen_clock, "poller": SilentPoller()}
            )
            if gen is None:

                def gen() -> Any:
                    yield

                self._check_on_close = False
            else:
                self._check_on_close = True
            self._gen = gen()
            next(self._gen)
            self._clock_resolution = 1e-9
            self._timers: list[float] = []
            self.readers: dict[int, Any] = {}
            self.writers: dict[int, Any] = {}
            self.reset_counters()
            import weakref

            self._transports = weakref.WeakValueDictionary()

        @property
        def _time(self) -> float:
            return self._gen_clock.now

        def advance_time(self, advance: float) -> None:
            if advance:
                self._gen_clock.now += advance

        def close(self) -> None:
            super().close()
            if self._check_on_close:
                try:
                    self._gen.send(0)
                except StopIteration:
                    pass
                else:  # pragma: no cover
                    raise AssertionError("Time generator is not finished")

        def _run_once(self) -> None:
            super()._run_once()
            for when in self._timers:
                self.advance_time(self._gen.send(when))
            self._timers = []

        def call_at(
            self, when: float, callback: Any, *args: Any, context: Any = None
        ) -> Any:
            self._timers.append(when)
            return super().call_at(when, callback, *args, context=context)

        def call_later(
            self, delay: float, callback: Any, *args: Any, context: Any = None
        ) -> Any:
            # Why: ours does not go through call_at (a hot path); TestLoop
            # must see every timer.
            if delay is None:
                raise TypeError("delay must not be None")
            return self.call_at(self.time() + delay, callback, *args, context=context)

    for name in (
        "_add_reader",
        "_remove_reader",
        "assert_reader",
        "assert_no_reader",
        "_add_writer",
        "_remove_writer",
        "assert_writer",
        "_ensure_fd_no_transport",
        "add_reader",
        "remove_reader",
        "add_writer",
        "remove_writer",
        "reset_counters",
    ):
        setattr(TestLoop, name, original.__dict__[name])
    TestLoop.__module__ = "asynciodepth"
    TestLoop.__qualname__ = "TestLoop"
    test_utils.TestLoop = TestLoop


def _short(err: Any) -> str:
    """One line for an exc_info: the exception's type and message."""
    exc_type, exc, _ = err
    text = "".join(traceback.format_exception_only(exc_type, exc)).strip()
    line = " | ".join(part.strip() for part in text.splitlines() if part.strip())
    return line[:300]


def _trace(err: Any) -> str:
    return "".join(traceback.format_exception(*err))[-3000:]


def _tid(test: Any) -> str:
    tid = test.id()
    return tid[len(PACKAGE) + 1 :] if tid.startswith(PACKAGE + ".") else tid


def worker(args: argparse.Namespace) -> int:
    import unittest

    # Why: a shell starts a background job with SIGINT ignored, and then Python
    # does not install its KeyboardInterrupt handler; the tests of Ctrl-C in
    # test_runners would wait forever for a KeyboardInterrupt.
    signal.signal(signal.SIGINT, signal.default_int_handler)

    if args.src:
        sys.path.insert(0, os.path.abspath(args.src))
    out = open(args.events, "a", buffering=1)

    def emit(**record: Any) -> None:
        out.write(json.dumps(record) + "\n")

    counter = LoopCounter(lambda kind, name: emit(loop=kind, cls=name))
    try:
        install(counter, args.stdlib, _parse_options(args.loop_option))
    except Exception:
        emit(fatal=traceback.format_exc())
        return 2
    if args.ours_base_loop and not args.stdlib:
        import asyncio

        # Why only the public name: test_base_events builds
        # base_events.BaseEventLoop() to test asyncio's own internals, and
        # test_utils.TestLoop subclasses that one.
        asyncio.BaseEventLoop = asyncio.SelectorEventLoop
    if args.ours_testloop and not args.stdlib:
        try:
            install_testloop(_parse_options(args.loop_option))
        except Exception:
            emit(fatal=traceback.format_exc())
            return 2
    skip = set()
    if args.skip:
        with open(args.skip) as f:
            skip = {line.strip() for line in f if line.strip()}

    loader = unittest.TestLoader()
    suite = unittest.TestSuite()
    for name in args.names:
        try:
            suite.addTest(loader.loadTestsFromName(f"{PACKAGE}.{name}"))
        except unittest.SkipTest as exc:  # raised at import: test_windows_events
            emit(
                test=name,
                outcome="skip",
                reason=str(exc)[:300],
                loops=["none"],
                classes=[],
                seconds=0,
            )
        except Exception:
            err = sys.exc_info()
            emit(
                test=name,
                outcome="error",
                reason=_short(err),
                trace=_trace(err),
                loops=["none"],
                classes=[],
                seconds=0,
            )

    def flatten(s: Any) -> list[Any]:
        if isinstance(s, unittest.TestSuite):
            return [t for sub in s for t in flatten(sub)]
        return [s]

    flat = unittest.TestSuite(t for t in flatten(suite) if _tid(t) not in skip)

    import faulthandler

    class Result(unittest.TestResult):
        def startTest(self, test: Any) -> None:
            super().startTest(test)
            self._outcome = ("success", "", "")
            emit(start=_tid(test))
            if args.timeout_per_test:
                faulthandler.dump_traceback_later(
                    args.timeout_per_test, exit=True, file=sys.stderr
                )
            self._t0 = time.monotonic()

        def _set(self, outcome: str, err: Any = None) -> None:
            rank = [
                "success",
                "xfail",
                "skip",
                "unexpected success",
                "failure",
                "error",
            ]
            if rank.index(outcome) >= rank.index(self._outcome[0]):
                if err is None:
                    self._outcome = (outcome, "", "")
                elif isinstance(err, str):
                    self._outcome = (outcome, err[:300], "")
                else:
                    self._outcome = (outcome, _short(err), _trace(err))

        def addSuccess(self, test: Any) -> None:
            super().addSuccess(test)

        def addFailure(self, test: Any, err: Any) -> None:
            super().addFailure(test, err)
            self._set("failure", err)

        def addError(self, test: Any, err: Any) -> None:
            super().addError(test, err)
            if isinstance(test, unittest.TestCase):
                self._set("error", err)
            else:  # an error in setUpClass/setUpModule/tearDown*: no startTest
                kinds, classes = counter.take()
                emit(
                    test=str(test).replace(PACKAGE + ".", ""),
                    outcome="error",
                    reason=_short(err),
                    trace=_trace(err),
                    loops=kinds,
                    classes=classes,
                    seconds=0,
                )

        def addSkip(self, test: Any, reason: str) -> None:
            super().addSkip(test, reason)
            if isinstance(test, unittest.TestCase) and hasattr(self, "_outcome"):
                self._set("skip", reason)
            elif isinstance(test, unittest.TestCase):
                # Python 3.12: a skipped test gets addSkip and stopTest, but no
                # startTest; stopTest reports it.
                self._outcome = ("skip", reason[:300], "")
                self._t0 = time.monotonic()
            else:
                emit(
                    test=_tid(test),
                    outcome="skip",
                    reason=reason[:300],
                    loops=["none"],
                    classes=[],
                    seconds=0,
                )

        def addExpectedFailure(self, test: Any, err: Any) -> None:
            super().addExpectedFailure(test, err)
            self._set("xfail")

        def addUnexpectedSuccess(self, test: Any) -> None:
            super().addUnexpectedSuccess(test)
            self._set("unexpected success", "unexpected success")

        def addSubTest(self, test: Any, subtest: Any, err: Any) -> None:
            super().addSubTest(test, subtest, err)
            if err is not None:
                kind = (
                    "failure" if issubclass(err[0], test.failureException) else "error"
                )
                self._set(kind, err)

        def stopTest(self, test: Any) -> None:
            if args.timeout_per_test:
                faulthandler.cancel_dump_traceback_later()
            super().stopTest(test)
            kinds, classes = counter.take()
            outcome, reason, trace = getattr(self, "_outcome", ("success", "", ""))
            emit(
                test=_tid(test),
                outcome=outcome,
                reason=reason,
                trace=trace,
                loops=kinds,
                classes=classes,
                seconds=round(time.monotonic() - self._t0, 3),
            )
            self.__dict__.pop("_outcome", None)

    # Why: a module-level SkipTest (test_windows_events on Linux) is a skipped
    # "test" made by the loader; addSkip above reports it without startTest.
    flat.run(Result())
    emit(done=True)
    out.close()
    # Why os._exit: a test may leave a non-daemon thread or an atexit hook that
    # blocks; the results are written.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


# ---------------------------------------------------------------------------
# Parent: one worker per module, restarted after a hang or a crash.
# ---------------------------------------------------------------------------


def all_modules() -> list[str]:
    import importlib.util

    spec = importlib.util.find_spec(PACKAGE)
    assert spec is not None and spec.submodule_search_locations
    folder = list(spec.submodule_search_locations)[0]
    return sorted(
        name[:-3]
        for name in os.listdir(folder)
        if name.startswith("test_") and name.endswith(".py")
    )


def run_module(
    module: str, names: list[str], args: argparse.Namespace, logdir: str
) -> dict[str, Any]:
    """Run the tests names of module in workers; return its records and status."""
    records: dict[str, dict[str, Any]] = {}
    events = os.path.join(logdir, f"{module}.events")
    log_path = os.path.join(logdir, f"{module}.log")
    skip_path = os.path.join(logdir, f"{module}.skip")
    for path in (events, log_path):
        if os.path.exists(path):
            os.remove(path)
    deadline = time.monotonic() + args.timeout_per_module
    status = "ok"
    restarts = 0
    t0 = time.monotonic()
    while True:
        with open(skip_path, "w") as f:
            f.writelines(tid + "\n" for tid in records)
        cmd = [
            sys.executable,
            os.path.abspath(__file__),
            "--worker",
            "--events",
            events,
        ]
        cmd += ["--skip", skip_path, "--timeout-per-test", str(args.timeout_per_test)]
        if args.stdlib:
            cmd.append("--stdlib")
        if args.src:
            cmd += ["--src", args.src]
        for opt in args.loop_option:
            cmd += ["--loop-option", opt]
        if args.ours_testloop:
            cmd.append("--ours-testloop")
        if args.ours_base_loop:
            cmd.append("--ours-base-loop")
        cmd += names
        with open(log_path, "a") as log:
            proc = subprocess.Popen(
                cmd,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
            try:
                proc.wait(timeout=max(1.0, deadline - time.monotonic()))
                timed_out = False
            except subprocess.TimeoutExpired:
                timed_out = True
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait()
        # Kill what the tests left behind in the worker's session.
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        started = None
        started_loops: tuple[set[str], set[str]] = (set(), set())
        done = False
        fatal = None
        if os.path.exists(events):
            with open(events) as f:
                for line in f:
                    try:
                        rec = json.loads(line)
                    except ValueError:
                        continue
                    if "start" in rec:
                        started = rec["start"]
                        started_loops = (set(), set())
                    elif "loop" in rec:
                        started_loops[0].add(rec["loop"])
                        started_loops[1].add(rec["cls"])
                    elif "test" in rec:
                        records[rec["test"]] = rec
                        if rec["test"] == started:
                            started = None
                    elif rec.get("done"):
                        done = True
                    elif "fatal" in rec:
                        fatal = rec["fatal"]
            os.remove(events)
        if fatal:
            status = "fatal: " + fatal.strip().splitlines()[-1]
            break
        if done:
            break
        with open(log_path) as f:
            tail = f.read()[-4000:]
        outcome = "hang" if ("Timeout (" in tail or timed_out) else "crash"
        if started is not None:
            records[started] = {
                "test": started,
                "outcome": outcome,
                "loops": sorted(started_loops[0]) or ["none"],
                "classes": sorted(started_loops[1]),
                "reason": f"{outcome} (rc={proc.returncode})",
                "trace": tail,
                "seconds": None,
            }
        if timed_out:
            status = "module timeout"
            break
        if started is None:
            status = f"worker died outside a test (rc={proc.returncode})"
            break
        restarts += 1
        if restarts > args.max_restarts:
            status = "too many restarts"
            break
    return {
        "module": module,
        "status": status,
        "restarts": restarts,
        "seconds": round(time.monotonic() - t0, 1),
        "tests": records,
    }


# What a failure's reason says about its cause: features asynciodepth does not
# have yet (our NotImplementedError messages), the machine (no network, no IPv6),
# or else a behaviour difference to look at.
CAUSES = (
    ("TLS", ("SSL is out of scope", "ssl.SSL", "SSLError")),
    ("UDP", ("UDP is out of scope",)),
    ("subprocess", ("Subprocesses is out of scope", "child watcher")),
    ("pipes", ("Pipes (used by subprocesses) is out of scope",)),
    ("sendfile", ("sendfile is out of scope",)),
    (
        "network",
        (
            "gaierror",
            "Network is unreachable",
            "Errno 99]",
            "Cannot assign requested address",
            "cannot assign requested",
        ),
    ),
)


def cause_of(rec: dict[str, Any]) -> str:
    text = f"{rec.get('reason', '')}"
    for cause, needles in CAUSES:
        if any(needle in text for needle in needles):
            return cause
    if rec["outcome"] in ("hang", "crash", "not run"):
        return rec["outcome"]
    return "behaviour"


def summarize(result: dict[str, Any]) -> dict[str, int]:
    counts = dict.fromkeys(COUNTS, 0)
    for rec in result["tests"].values():
        counts["run"] += 1
        outcome = rec["outcome"]
        key = {
            "success": "passed",
            "xfail": "passed",
            "failure": "failed",
            "unexpected success": "failed",
            "error": "errors",
            "skip": "skipped",
            "hang": "hang",
            "crash": "crash",
        }[outcome]
        counts[key] += 1
        if outcome == "skip":
            continue
        # ours and stdlib: any; testloop: TestLoop and not ours; internal: an
        # internal loop only; none: no loop. These five add up to the tests not
        # skipped, except that a test with ours and stdlib counts in both.
        loops = set(rec["loops"])
        for kind in ("ours", "stdlib"):
            counts[kind] += kind in loops
        if "ours" not in loops and "stdlib" not in loops:
            if "testloop" in loops:
                counts["testloop"] += 1
            elif "internal" in loops:
                counts["internal"] += 1
            else:
                counts["none"] += 1
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("tests", nargs="*", metavar="TEST")
    parser.add_argument("--src", help="asynciodepth source tree (holds asynciodepth/)")
    parser.add_argument("--stdlib", action="store_true", help="run on asyncio's loop")
    parser.add_argument(
        "--loop-option", action="append", default=[], metavar="KEY=VALUE"
    )
    parser.add_argument("--timeout-per-module", type=float, default=900)
    parser.add_argument("--timeout-per-test", type=float, default=30)
    parser.add_argument("--max-restarts", type=int, default=25)
    parser.add_argument("--ours-testloop", action="store_true")
    parser.add_argument("--ours-base-loop", action="store_true")
    parser.add_argument("--rerender", metavar="JSON", help=argparse.SUPPRESS)
    parser.add_argument("--json")
    parser.add_argument("--failures-dir")
    parser.add_argument("--log-dir")
    parser.add_argument("-v", "--verbose", action="store_true")
    # Internal: the worker.
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--events", help=argparse.SUPPRESS)
    parser.add_argument("--skip", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        args.names = args.tests
        return worker(args)
    if args.rerender:
        with open(args.rerender) as f:
            saved = json.load(f)
        args.stdlib = saved["mode"] == "stdlib"
        args.loop_option = saved["loop_options"]
        args.src = saved["src"]
        args.json = None
    if not args.stdlib and not args.src and not args.rerender:
        parser.error("--src is required (or --stdlib for asyncio's own loop)")
    if args.src:
        args.src = os.path.abspath(args.src)
        if not args.rerender and not os.path.isdir(
            os.path.join(args.src, "asynciodepth")
        ):
            parser.error(f"no asynciodepth package in {args.src}")
    _parse_options(args.loop_option)

    # Group the requested tests by module, keeping the order.
    wanted: dict[str, list[str]] = {}
    for name in args.tests or all_modules():
        module = name.split(".")[0]
        if not module.startswith("test_"):
            parser.error(f"not a test_asyncio module or test id: {name}")
        wanted.setdefault(module, [])
        if name not in wanted[module] and module not in wanted[module]:
            wanted[module].append(name)
    for module, names in wanted.items():
        if module in names:
            wanted[module] = [module]

    logdir = args.log_dir or tempfile.mkdtemp(prefix="run_test_asyncio.")
    os.makedirs(logdir, exist_ok=True)
    version = ".".join(map(str, sys.version_info[:3]))
    mode = "stdlib" if args.stdlib else "ours"
    opts = " ".join(args.loop_option)
    print(
        f"Python {version}, loop: {mode} {opts}".rstrip() + f", logs in {logdir}",
        flush=True,
    )
    header = (
        f"{'module':28} {'run':>5} {'pass':>5} {'fail':>5} {'err':>5} "
        f"{'skip':>5} {'hang':>4} {'crash':>5} | {'ours':>5} {'tloop':>5} "
        f"{'intern':>6} {'none':>5} {'STDLIB':>6} | {'secs':>6} status"
    )
    print(header)
    print("-" * len(header), flush=True)
    results = []
    total = dict.fromkeys(COUNTS, 0)
    if args.rerender:
        version = saved["python"]
        wanted = {m["module"]: m for m in saved["modules"]}
    for module, names in wanted.items():
        result = names if args.rerender else run_module(module, names, args, logdir)
        counts = summarize(result)
        result["counts"] = counts
        results.append(result)
        for key in total:
            total[key] += counts[key]
        print(_row(module, counts, result["seconds"], result["status"]), flush=True)
    print("-" * len(header))
    print(_row("TOTAL", total, sum(r["seconds"] for r in results), ""))
    print(
        "(loop columns count tests that were not skipped: ours = made our loop,"
        " tloop = TestLoop only, intern = internal only, none = no loop,"
        " STDLIB = made asyncio's real loop)"
    )

    stdlib_classes: dict[str, set[str]] = {}
    for result in results:
        for rec in result["tests"].values():
            if "stdlib" in rec["loops"] and not args.stdlib:
                stdlib_classes.setdefault(result["module"], set()).update(
                    rec["classes"]
                )
    if stdlib_classes:
        print("\nHOLES: stdlib real loops were made in:")
        for module, classes in stdlib_classes.items():
            print(f"  {module}: {', '.join(sorted(classes))}")

    if args.verbose:
        for result in results:
            for tid, rec in result["tests"].items():
                if rec["outcome"] in BAD or rec["outcome"] == "unexpected success":
                    print(
                        f"{rec['outcome']:>8} {cause_of(rec):>10}  {tid}  "
                        f"{rec.get('reason', '')}"
                    )
    if args.failures_dir:
        os.makedirs(args.failures_dir, exist_ok=True)
        for result in results:
            lines = [
                f"{tid}\t{rec['outcome']}\t{cause_of(rec)}\t{rec.get('reason', '')}"
                for tid, rec in sorted(result["tests"].items())
                if rec["outcome"] in BAD or rec["outcome"] == "unexpected success"
            ]
            path = os.path.join(args.failures_dir, f"{result['module']}.txt")
            with open(path, "w") as f:
                f.writelines(line + "\n" for line in lines)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    "python": version,
                    "mode": mode,
                    "loop_options": args.loop_option,
                    "src": args.src,
                    "totals": total,
                    "modules": results,
                },
                f,
                indent=1,
            )
            f.write("\n")
    bad = total["failed"] + total["errors"] + total["hang"] + total["crash"]
    return 1 if bad else 0


def _row(name: str, c: dict[str, int], seconds: float, status: str) -> str:
    return (
        f"{name:28} {c['run']:5} {c['passed']:5} {c['failed']:5} {c['errors']:5} "
        f"{c['skipped']:5} {c['hang']:4} {c['crash']:5} | {c['ours']:5} "
        f"{c['testloop']:5} {c['internal']:6} {c['none']:5} {c['stdlib']:6} | "
        f"{seconds:6.1f} {status}"
    )


if __name__ == "__main__":
    sys.exit(main())
