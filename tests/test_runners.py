"""Running our loop: Runner, asyncio.run, asynciodepth.run, policy, Ctrl-C."""

from __future__ import annotations

import asyncio
import concurrent.futures
import signal
import sys
import threading

import pytest

import asynciodepth
from asynciodepth import EventLoop, EventLoopPolicy, VirtualClock


async def which_loop():
    await asyncio.sleep(0)
    return type(asyncio.get_running_loop()), type(asyncio.current_task())


def test_runner_with_loop_factory():
    with asyncio.Runner(loop_factory=EventLoop) as runner:
        assert runner.run(which_loop()) == (EventLoop, asyncio.Task)
        assert runner.run(which_loop()) == (EventLoop, asyncio.Task)
        loop = runner.get_loop()
    assert loop.is_closed()


@pytest.mark.skipif(sys.version_info < (3, 12), reason="loop_factory is 3.12+")
def test_asyncio_run_with_loop_factory():
    assert asyncio.run(which_loop(), loop_factory=EventLoop) == (
        EventLoop,
        asyncio.Task,
    )


def test_asynciodepth_run():
    assert asynciodepth.run(which_loop()) == (EventLoop, asyncio.Task)


def test_the_default_future_and_task_are_asyncios():
    """What libraries check (anyio's cancel scopes): isinstance against asyncio's."""

    async def main():
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        task = loop.create_task(asyncio.sleep(0))
        await task
        return fut, task, asyncio.current_task()

    fut, task, current = asynciodepth.run(main())
    assert type(fut) is asyncio.Future and type(task) is asyncio.Task
    assert isinstance(current, asyncio.Task)


def test_python_tasks_gives_ours():
    async def main():
        loop = asyncio.get_running_loop()
        return type(loop.create_future()), type(asyncio.current_task())

    factory = lambda: EventLoop(python_tasks=True)
    assert asynciodepth.run(main(), loop_factory=factory) == (
        asynciodepth.Future,
        asynciodepth.Task,
    )
    # Ours are not asyncio's classes: isinstance says so.
    loop = EventLoop(python_tasks=True)
    try:
        assert not isinstance(loop.create_future(), asyncio.Future)
    finally:
        loop.close()


def test_asynciodepth_run_debug():
    async def debug():
        return asyncio.get_running_loop().get_debug()

    assert asynciodepth.run(debug(), debug=True) is True
    assert asynciodepth.run(debug(), debug=False) is False


def test_asynciodepth_run_rejects_non_coroutines():
    """As asyncio.run: ValueError up to 3.13, TypeError (awaitables allowed) 3.14+."""
    with pytest.raises(Exception) as stdlib:
        asyncio.run(1)
    assert type(stdlib.value) is (
        ValueError if sys.version_info < (3, 14) else TypeError
    )
    with pytest.raises(type(stdlib.value), match=str(stdlib.value)):
        asynciodepth.run(1)


def test_asynciodepth_run_with_virtual_clock():
    async def nap():
        await asyncio.sleep(3600)
        return asyncio.get_running_loop().time()

    factory = lambda: EventLoop(clock=VirtualClock())
    assert asynciodepth.run(nap(), loop_factory=factory) == 3600.0


def test_new_event_loop():
    loop = asynciodepth.new_event_loop(clock=VirtualClock(5))
    try:
        assert isinstance(loop, EventLoop) and loop.time() == 5.0
    finally:
        loop.close()


def test_policy_makes_asyncio_use_our_loop():
    old = asyncio.get_event_loop_policy()
    asyncio.set_event_loop_policy(EventLoopPolicy())
    try:
        assert asyncio.run(which_loop()) == (EventLoop, asyncio.Task)
        loop = asyncio.new_event_loop()
        assert isinstance(loop, EventLoop)
        loop.close()
    finally:
        asyncio.set_event_loop_policy(old)


def test_run_inside_a_running_loop_restores_it():
    """What Jupyter needs: a cell runs while ipykernel's loop is running."""

    async def cell():
        outer_loop = asyncio.get_running_loop()
        outer_task = asyncio.current_task()
        inner = asynciodepth.run(which_loop())
        return (
            inner,
            asyncio.get_running_loop() is outer_loop,
            asyncio.current_task() is outer_task,
        )

    kernel_loop = asyncio.new_event_loop()
    try:
        inner, same_loop, same_task = kernel_loop.run_until_complete(cell())
    finally:
        kernel_loop.close()
    assert inner == (EventLoop, asyncio.Task)
    assert same_loop and same_task


def test_running_loop_restored_after_failure():
    async def fail():
        raise KeyError("inner")

    async def cell():
        outer_loop = asyncio.get_running_loop()
        with pytest.raises(KeyError):
            asynciodepth.run(fail())
        return asyncio.get_running_loop() is outer_loop

    kernel_loop = asyncio.new_event_loop()
    try:
        assert kernel_loop.run_until_complete(cell())
    finally:
        kernel_loop.close()


@pytest.mark.skipif(
    signal.getsignal(signal.SIGINT) is not signal.default_int_handler,
    reason="the Runner only handles Ctrl-C when SIGINT has its default handler",
)
def test_ctrl_c_cancels_the_main_task(setup):
    events = []

    async def main():
        asyncio.get_running_loop().call_soon(signal.raise_signal, signal.SIGINT)
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            events.append("main task cancelled")
            raise

    with pytest.raises(KeyboardInterrupt):
        setup.run(main())
    assert events == ["main task cancelled"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_runner_shuts_down_asyncgens_and_executor(setup):
    events = []

    async def agen():
        try:
            yield 1
            yield 2
        finally:
            events.append("agen closed")

    async def main():
        global _kept
        _kept = agen()
        await _kept.__anext__()
        await asyncio.wait_for(asyncio.to_thread(events.append, "thread ran"), 10)

    setup.run(main())
    assert events == ["thread ran", "agen closed"]


@pytest.mark.skipif(sys.version_info < (3, 12), reason="the timeout is 3.12+")
def test_a_pool_failing_after_the_shutdown_timeout_is_not_reported(setup):
    """After the timeout the shutdown's future is cancelled: a late error is dropped.

    As asyncio does from 3.13; asyncio 3.12 reports it as an error in a callback.
    """
    if setup.name == "stdlib" and sys.version_info < (3, 13):
        pytest.skip("asyncio 3.12 reports the late error (3.13 dropped it)")

    class FailingPool(concurrent.futures.ThreadPoolExecutor):
        """A pool whose shutdown(wait=True) blocks until released, then fails."""

        release = threading.Event()
        helper: threading.Thread | None = None

        def shutdown(self, wait=True, **kwargs):
            super().shutdown(wait=wait, **kwargs)
            if wait:  # in the loop's helper thread; the loop's own call does not wait
                FailingPool.helper = threading.current_thread()
                FailingPool.release.wait(5)
                raise OSError("the pool shut down badly")

    reports = []

    async def main():
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda loop, context: reports.append(context))
        loop.set_default_executor(FailingPool())
        await loop.run_in_executor(None, int)
        with pytest.warns(RuntimeWarning, match="did not finishing joining"):
            await loop.shutdown_default_executor(timeout=0.05)
        FailingPool.release.set()
        while FailingPool.helper.is_alive():  # until its error has been posted
            await asyncio.sleep(0.001)
        await asyncio.sleep(0)  # the posted callback, if any, runs before this step

    loop = setup.new_loop()
    try:
        loop.run_until_complete(asyncio.wait_for(main(), 10))
    finally:
        loop.close()
    assert reports == []


# -- the policy, per Python version ------------------------------------------------

_STDLIB_POLICY = asyncio.unix_events._UnixDefaultEventLoopPolicy


@pytest.mark.parametrize("method", ["get_child_watcher", "set_child_watcher"])
def test_policy_has_the_child_watcher_methods_stdlib_has(method):
    """3.11/3.12: working; 3.13: refusing (NotImplementedError); 3.14: gone."""
    assert hasattr(EventLoopPolicy(), method) == hasattr(_STDLIB_POLICY(), method)
    assert hasattr(EventLoopPolicy(), method) == (sys.version_info < (3, 14))


@pytest.mark.skipif(sys.version_info >= (3, 13), reason="child watchers left in 3.13")
def test_policy_child_watchers_work_as_stdlibs():
    import warnings

    policy = EventLoopPolicy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # 3.12 deprecates them
        watcher = asyncio.ThreadedChildWatcher()
        policy.set_child_watcher(watcher)  # asyncio's base class raised here
        assert policy.get_child_watcher() is watcher
        policy.set_child_watcher(None)
        watcher.close()


def test_nothing_of_ours_warns_deprecation():
    """3.14 deprecates policies: importing and running us must not warn at all."""
    import subprocess
    from pathlib import Path

    program = """
import asyncio, warnings
warnings.simplefilter("error")
import asynciodepth

async def main():
    await asyncio.sleep(0)
    return 1

policy = asynciodepth.EventLoopPolicy()
loop = policy.new_event_loop()
loop.close()
assert asynciodepth.run(main()) == 1
with asyncio.Runner(loop_factory=asynciodepth.EventLoop) as runner:
    assert runner.run(main()) == 1
print("quiet")
"""
    src = str(Path(asynciodepth.__file__).parents[1])
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", program],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": src},
        timeout=60,
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "quiet\n", "")


def test_an_observed_loop_still_makes_asyncios_future_and_task():
    """Observing a loop does not change the classes a program gets."""
    loop = EventLoop()
    try:
        loop.set_observer(asynciodepth.LoopObserver())
        assert type(loop.create_future()) is asyncio.Future
        task = loop.create_task(asyncio.sleep(0))
        assert type(task) is asyncio.Task
        loop.run_until_complete(task)
    finally:
        loop.close()
    loop = EventLoop(python_tasks=True, observer=asynciodepth.LoopObserver())
    try:
        assert type(loop.create_future()) is asynciodepth.Future
        task = loop.create_task(asyncio.sleep(0))
        assert type(task) is asynciodepth.Task
        loop.run_until_complete(task)
    finally:
        loop.close()


# -- Chapter 7's own loop and runners (runners.TaskEventLoop, runners.run).


def test_runners_run_uses_the_task_event_loop():
    from asynciodepth import runners

    assert runners.run(which_loop()) == (runners.TaskEventLoop, asyncio.Task)


def test_task_event_loop_python_tasks():
    from asynciodepth import runners

    loop = runners.TaskEventLoop(python_tasks=True)
    try:
        assert loop.run_until_complete(which_loop()) == (
            runners.TaskEventLoop,
            asynciodepth.Task,
        )
    finally:
        loop.close()


def test_runners_policy_makes_task_event_loops():
    from asynciodepth import runners

    loop = runners.EventLoopPolicy().new_event_loop()
    try:
        assert type(loop) is runners.TaskEventLoop
    finally:
        loop.close()


# -- The IPython %autoawait runner (runners.ipython_runner).



def ipython_shell_module():
    """IPython's interactiveshell module; the test skips where IPython is missing."""
    return pytest.importorskip("IPython.core.interactiveshell")


@pytest.fixture
def shell():
    """A fresh IPython shell whose top-level awaits run on asynciodepth's runner."""
    interactiveshell = ipython_shell_module()
    from asynciodepth import runners

    shell = interactiveshell.InteractiveShell.instance()
    runner = runners.IPythonRunner()
    shell.user_ns["our_runner"] = runner
    shell.run_line_magic("autoawait", "our_runner")
    yield shell
    runner.close()
    shell.run_line_magic("autoawait", "asyncio")
    interactiveshell.InteractiveShell.clear_instance()


def run_cell(shell, source):
    result = shell.run_cell(source, silent=True)
    if result.error_before_exec or result.error_in_exec:
        raise result.error_before_exec or result.error_in_exec
    return shell.user_ns


def test_autoawait_accepts_the_runner_by_its_dotted_name():
    interactiveshell = ipython_shell_module()
    from asynciodepth import runners

    shell = interactiveshell.InteractiveShell.instance()
    try:
        shell.run_line_magic("autoawait", "asynciodepth.runners.ipython_runner")
        assert shell.loop_runner is runners.ipython_runner and shell.autoawait
    finally:
        shell.run_line_magic("autoawait", "asyncio")
        interactiveshell.InteractiveShell.clear_instance()


def test_top_level_await_runs_on_our_loop(shell):
    ns = run_cell(
        shell,
        "import asyncio\n"
        "await asyncio.sleep(0)\n"
        "name = type(asyncio.get_running_loop()).__name__",
    )
    assert ns["name"] == "TaskEventLoop"


def test_a_task_started_in_one_cell_finishes_in_the_next(shell):
    run_cell(
        shell,
        "import asyncio\n"
        "await asyncio.sleep(0)\n"
        "t = asyncio.create_task(asyncio.sleep(0.01, result='kept'))\n"
        "first_loop = asyncio.get_running_loop()",
    )
    ns = run_cell(
        shell, "got = await t\nsame = asyncio.get_running_loop() is first_loop"
    )
    assert ns["got"] == "kept" and ns["same"]


def test_each_cell_runs_in_the_callers_context(shell):
    """ipykernel keeps a cell's output stream in a ContextVar: it must be current."""
    import contextvars

    var = contextvars.ContextVar("cell")
    shell.user_ns["var"] = var
    seen = []
    shell.user_ns["seen"] = seen
    for value in ["first", "second"]:
        var.set(value)
        run_cell(
            shell, "import asyncio\nawait asyncio.sleep(0)\nseen.append(var.get())"
        )
    assert seen == ["first", "second"]


def test_the_runner_works_inside_a_running_loop_as_in_ipykernel(shell):
    async def kernel():
        outer = asyncio.get_running_loop()
        ns = run_cell(
            shell,
            "import asyncio\n"
            "await asyncio.sleep(0)\n"
            "name = type(asyncio.get_running_loop()).__name__",
        )
        return ns["name"], asyncio.get_running_loop() is outer

    assert asyncio.run(kernel()) == ("TaskEventLoop", True)


def test_close_cancels_the_tasks_left_running(shell):
    run_cell(
        shell,
        "import asyncio\n"
        "await asyncio.sleep(0)\n"
        "left = asyncio.create_task(asyncio.sleep(3600))",
    )
    shell.user_ns["our_runner"].close()
    assert shell.user_ns["left"].cancelled()


def test_the_packages_runner_uses_the_loop_with_io():
    """``%autoawait asynciodepth.ipython_runner``: the final loop, with sockets."""
    interactiveshell = ipython_shell_module()
    import asynciodepth
    from asynciodepth.loop import EventLoop

    assert isinstance(asynciodepth.ipython_runner, asynciodepth.runners.IPythonRunner)
    shell = interactiveshell.InteractiveShell.instance()
    try:
        shell.run_line_magic("autoawait", "asynciodepth.ipython_runner")
        ns = run_cell(
            shell,
            "import asyncio, socket\n"
            "a, b = socket.socketpair()\n"
            "loop = asyncio.get_running_loop()\n"
            "await loop.sock_sendall(a, b'ping')\n"
            "got = await loop.sock_recv(b, 4)\n"
            "a.close(); b.close()",
        )
        assert ns["got"] == b"ping" and type(ns["loop"]) is EventLoop
    finally:
        asynciodepth.ipython_runner.close()
        shell.run_line_magic("autoawait", "asyncio")
        interactiveshell.InteractiveShell.clear_instance()
