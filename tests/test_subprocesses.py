"""Subprocesses on our SubprocessEventLoop (both child watchers) and on asyncio's.

Every test checks afterwards that no fd leaked and no child is left (alive or zombie).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import signal
import subprocess
import sys
import threading
import time
import warnings

import pytest
from subproc_helpers import LOOPS, OURS, open_fds, run, settle

from asynciodepth.subprocesses import SubprocessEventLoop, _pidfd_works

PIPE, DEVNULL, STDOUT = subprocess.PIPE, subprocess.DEVNULL, subprocess.STDOUT
PY = sys.executable


@pytest.fixture(params=list(LOOPS))
def loop_name(request):
    before = open_fds()
    yield request.param
    leaked, children = settle(before)
    assert leaked == 0, f"{leaked} fds leaked"
    assert not children, "a child is left"


class Notes(asyncio.SubprocessProtocol):
    def __init__(self):
        self.calls, self.out = [], {1: b"", 2: b""}
        self.lost = asyncio.get_running_loop().create_future()

    def connection_made(self, transport):
        self.calls.append("connection_made")

    def pipe_data_received(self, fd, data):
        self.out[fd] += data

    def pipe_connection_lost(self, fd, exc):
        self.calls.append(f"pipe_connection_lost({fd})")

    def process_exited(self):
        self.calls.append("process_exited")

    def connection_lost(self, exc):
        self.calls.append(f"connection_lost({exc})")
        self.lost.set_result(None)


def test_cat_echoes_what_it_is_given(loop_name):
    payload = os.urandom(1 << 20)

    async def main():
        child = await asyncio.create_subprocess_exec("cat", stdin=PIPE, stdout=PIPE)
        out, err = await child.communicate(payload)
        return hashlib.sha256(out).hexdigest(), err, child.returncode

    digest, err, code = run(loop_name, main())
    assert (digest, err, code) == (hashlib.sha256(payload).hexdigest(), None, 0)


def test_fifty_cats_at_once(loop_name):
    async def one(i):
        data = f"child {i}\n".encode() * 1000
        child = await asyncio.create_subprocess_exec("cat", stdin=PIPE, stdout=PIPE)
        out, _ = await child.communicate(data)
        return out == data and child.returncode == 0

    async def main():
        return await asyncio.gather(*(one(i) for i in range(50)))

    assert all(run(loop_name, main()))


def test_shell_with_stderr_to_stdout(loop_name):
    async def main():
        child = await asyncio.create_subprocess_shell(
            "echo out; echo err >&2; exit 3", stdout=PIPE, stderr=STDOUT
        )
        out, err = await child.communicate()
        return sorted(out.split()), err, child.returncode, child.stdin

    assert run(loop_name, main()) == ([b"err", b"out"], None, 3, None)


def test_devnull_and_a_file(loop_name, tmp_path):
    path = tmp_path / "out.txt"

    async def main():
        with open(path, "wb") as f:
            child = await asyncio.create_subprocess_exec(
                "echo", "to a file", stdin=DEVNULL, stdout=f, stderr=DEVNULL
            )
        return await child.wait(), child.stdout

    assert run(loop_name, main()) == (0, None)
    assert path.read_bytes() == b"to a file\n"


def test_an_fd_as_stdout(loop_name):
    rfd, wfd = os.pipe()

    async def main():
        child = await asyncio.create_subprocess_exec("echo", "fd", stdout=wfd)
        os.close(wfd)
        code = await child.wait()
        return code, os.read(rfd, 100)

    try:
        assert run(loop_name, main()) == (0, b"fd\n")
    finally:
        os.close(rfd)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"universal_newlines": True}, "universal_newlines must be False"),
        ({"bufsize": 1}, "bufsize must be 0"),
        ({"text": True}, "text must be False"),
        ({"encoding": "utf-8"}, "encoding must be None"),
        ({"errors": "strict"}, "errors must be None"),
    ],
)
def test_popen_options_refused(loop_name, kwargs, message):
    async def main():
        loop = asyncio.get_running_loop()
        errors = []
        for call in [
            loop.subprocess_exec(asyncio.SubprocessProtocol, "true", **kwargs),
            loop.subprocess_shell(asyncio.SubprocessProtocol, "true", **kwargs),
        ]:
            try:
                await call
            except ValueError as exc:
                errors.append(str(exc))
        return errors

    assert run(loop_name, main()) == [message, message]


def test_shell_flag_and_cmd_type_refused(loop_name):
    async def main():
        loop = asyncio.get_running_loop()
        errors = []
        for call in [
            loop.subprocess_exec(asyncio.SubprocessProtocol, "true", shell=True),
            loop.subprocess_shell(asyncio.SubprocessProtocol, "true", shell=False),
            loop.subprocess_shell(asyncio.SubprocessProtocol, ["true"]),
        ]:
            try:
                await call
            except ValueError as exc:
                errors.append(str(exc))
        return errors

    assert run(loop_name, main()) == [
        "shell must be False",
        "shell must be True",
        "cmd must be a string",
    ]


def test_missing_program(loop_name):
    async def main():
        try:
            await asyncio.create_subprocess_exec("/nonexistent/program", stdout=PIPE)
        except FileNotFoundError:
            return "FileNotFoundError"

    assert run(loop_name, main()) == "FileNotFoundError"


@pytest.mark.parametrize("method, code", [("terminate", -15), ("kill", -9)])
def test_terminate_and_kill(loop_name, method, code):
    async def main():
        child = await asyncio.create_subprocess_exec("sleep", "10")
        getattr(child, method)()
        return await child.wait()

    assert run(loop_name, main()) == code


def test_send_signal_and_process_lookup_error_at_the_end(loop_name):
    async def main():
        loop = asyncio.get_running_loop()
        transport, protocol = await loop.subprocess_exec(
            Notes, "sleep", "10", stdin=DEVNULL
        )
        transport.send_signal(signal.SIGUSR1)
        await protocol.lost
        code = transport.get_returncode()
        errors = []
        for method in ["kill", "terminate"]:
            try:
                getattr(transport, method)()
            except ProcessLookupError:
                errors.append(method)
        transport.close()
        return code, errors

    assert run(loop_name, main()) == (-signal.SIGUSR1, ["kill", "terminate"])


def test_getters_and_event_order(loop_name):
    async def main():
        loop = asyncio.get_running_loop()
        transport, protocol = await loop.subprocess_exec(
            Notes, PY, "-c", "import sys; sys.stdout.write(sys.stdin.read())",
            stderr=DEVNULL,
        )  # fmt: skip
        facts = [
            isinstance(transport.get_pid(), int),
            transport.get_returncode(),
            type(transport.get_pipe_transport(0)).__name__.endswith("WritePipeTransport"),
            type(transport.get_pipe_transport(1)).__name__.endswith("ReadPipeTransport"),
            transport.get_pipe_transport(2),
            transport.get_extra_info("subprocess").pid == transport.get_pid(),
        ]
        transport.get_pipe_transport(0).write(b"abc")
        transport.get_pipe_transport(0).close()
        await protocol.lost
        transport.close()
        calls = protocol.calls
        return facts, protocol.out[1], transport.get_returncode(), calls[0], calls[-1]

    facts, out, code, first, last = run(loop_name, main())
    assert facts == [True, None, True, True, None, True]
    assert (out, code, first, last) == (b"abc", 0, "connection_made", "connection_lost(None)")


def test_closing_the_transport_kills_the_child(loop_name):
    async def main():
        loop = asyncio.get_running_loop()
        transport, protocol = await loop.subprocess_exec(Notes, "sleep", "10")
        transport.close()
        await protocol.lost
        return transport.get_returncode(), transport.is_closing()

    assert run(loop_name, main()) == (-9, True)


def test_child_killed_mid_write(loop_name):
    async def main():
        child = await asyncio.create_subprocess_exec(
            "sleep", "10", stdin=PIPE, stdout=PIPE
        )
        child.stdin.write(b"x" * 1_000_000)
        child.kill()
        code = await child.wait()
        try:
            await child.stdin.drain()
        except (BrokenPipeError, ConnectionResetError):
            pass
        return code, await child.stdout.read()

    assert run(loop_name, main()) == (-9, b"")


def test_child_exits_before_we_read(loop_name):
    async def main():
        child = await asyncio.create_subprocess_exec("echo", "early", stdout=PIPE)
        code = await child.wait()
        await asyncio.sleep(0.1)
        return code, await child.stdout.read()

    assert run(loop_name, main()) == (0, b"early\n")


def test_wait_is_cancellable(loop_name):
    async def main():
        child = await asyncio.create_subprocess_exec("sleep", "10")
        try:
            await asyncio.wait_for(child.wait(), 0.05)
        except TimeoutError:
            pass
        child.kill()
        return await child.wait()

    assert run(loop_name, main()) == -9


@pytest.mark.parametrize("loop_name", OURS)
def test_loop_closed_with_a_child_alive(loop_name):
    # Ours only: asyncio's pidfd watcher (3.12 on) leaks the pidfd and the zombie.
    before = open_fds()
    loop = LOOPS[loop_name]()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        transport, _ = loop.run_until_complete(
            loop.subprocess_exec(
                asyncio.SubprocessProtocol, "sleep", "0.2",
                stdin=None, stdout=None, stderr=None,
            )  # fmt: skip
        )
        loop.close()
        del transport
    assert settle(before) == (0, False)  # no fd leaked, the child reaped


@pytest.mark.parametrize("loop_name", OURS)
def test_a_status_reaped_by_popen_first(loop_name):
    async def main():
        loop = asyncio.get_running_loop()
        transport, protocol = await loop.subprocess_exec(
            Notes, "sh", "-c", "exit 7", stdin=None, stdout=None, stderr=None
        )
        popen = transport.get_extra_info("subprocess")
        while popen.poll() is None:  # Popen's waitpid() takes the status first
            await asyncio.sleep(0.01)
        await protocol.lost
        transport.close()
        return transport.get_returncode()

    assert run(loop_name, main()) == 7


def test_child_watcher_option():
    default = SubprocessEventLoop()
    try:
        assert default._child_watcher == ("pidfd" if _pidfd_works() else "thread")
    finally:
        default.close()
    with pytest.raises(ValueError, match="child_watcher must be 'pidfd' or 'thread'"):
        SubprocessEventLoop(child_watcher="sigchld")


def test_no_child_watcher_policy_needed():
    # 3.11/3.12: asyncio's loop asks the policy's watcher; ours never does.
    async def main():
        child = await asyncio.create_subprocess_exec("true")
        return await child.wait()

    if sys.version_info < (3, 14):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            policy = asyncio.get_event_loop_policy()
            if hasattr(policy, "get_child_watcher"):
                # A watcher that is not attached would make asyncio's loop fail.
                assert run("epoll-pidfd", main()) == 0
    assert run("selectors-thread", main()) == 0


@pytest.mark.parametrize("loop_name", ["selectors-thread", "epoll-thread-pytask"])
def test_thread_watcher_leaves_the_pid_reserved_until_the_loop_reaps(loop_name):
    async def main():
        child = await asyncio.create_subprocess_exec("sleep", "10")
        child.kill()
        time.sleep(0.3)  # the loop can't run: the watcher thread has seen the exit
        info = os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT | os.WNOHANG)
        child.kill()  # still safe: the pid is our zombie's
        return info.si_pid == child.pid, child.returncode, await child.wait()

    assert run(loop_name, main()) == (True, None, -9)


@pytest.mark.parametrize("turns", range(5))
def test_cancelled_while_the_pipes_connect(loop_name, turns):
    async def main():
        creating = asyncio.ensure_future(
            asyncio.create_subprocess_exec(
                "sleep", "10", stdin=PIPE, stdout=PIPE, stderr=PIPE
            )
        )
        for _ in range(turns):
            await asyncio.sleep(0)
        creating.cancel()
        try:
            await creating
        except asyncio.CancelledError:
            return "cancelled"

    # The fixture checks that the child was killed and reaped, its pipes closed.
    assert run(loop_name, main()) == "cancelled"


# asyncio 3.11-3.13: a child watcher a program set on the policy is used.
policy_watchers = pytest.mark.skipif(
    sys.version_info >= (3, 14), reason="asyncio 3.14 has no policy child watchers"
)


@contextlib.contextmanager
def policy_with(watcher):
    """A fresh asyncio policy holding watcher (None: none) for the block."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        old = asyncio.get_event_loop_policy()
        asyncio.set_event_loop_policy(asyncio.DefaultEventLoopPolicy())
        if watcher is not None:
            asyncio.set_child_watcher(watcher)
    try:
        yield asyncio.get_event_loop_policy()
    finally:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            asyncio.set_child_watcher(None)  # closes the watcher
            asyncio.set_event_loop_policy(old)


def recorder(active=True, offset=100):
    """A watcher that notes its calls and reports each exit code plus offset."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # subclassing it, 3.12+

        class Recorder(asyncio.AbstractChildWatcher):
            def __init__(self):
                self.calls, self.handlers, self.threads = [], {}, []

            def __enter__(self):
                self.calls.append("enter")
                return self

            def __exit__(self, *exc_info):
                self.calls.append("exit")

            def is_active(self):
                self.calls.append("is_active")
                return active

            def add_child_handler(self, pid, callback, *args):
                self.calls.append("add_child_handler")
                self.handlers[pid] = (callback, args)
                thread = threading.Thread(target=self._wait, args=(pid,))
                self.threads.append(thread)
                thread.start()

            def _wait(self, pid):
                _, status = os.waitpid(pid, 0)
                callback, args = self.handlers.pop(pid)
                callback(pid, os.waitstatus_to_exitcode(status) + offset, *args)

            def remove_child_handler(self, pid):
                self.calls.append("remove_child_handler")
                return self.handlers.pop(pid, None) is not None

            def attach_loop(self, loop):
                pass

            def close(self):
                pass

    return Recorder()


@policy_watchers
def test_a_policy_watcher_not_active_is_refused(loop_name):
    async def main():
        try:
            await asyncio.create_subprocess_exec(PY, "-c", "pass")
        except RuntimeError as exc:
            return str(exc)

    watcher = recorder(active=False)
    with policy_with(watcher):
        message = run(loop_name, main())
    assert message == (
        "asyncio.get_child_watcher() is not activated, "
        "subprocess support is not installed."
    )
    assert watcher.calls == ["enter", "is_active", "exit"]  # no child was started


@policy_watchers
@pytest.mark.parametrize("cmd, close_early, code", [("exit 7", False, 107),
                                                   ("sleep 10", True, 91)])  # fmt: skip
def test_a_policy_watcher_reports_the_returncode(loop_name, cmd, close_early, code):
    async def main():
        loop = asyncio.get_running_loop()
        transport, protocol = await loop.subprocess_shell(Notes, cmd, stdin=None)
        ours_watching = bool(getattr(loop, "_child_pidfds", None))
        if close_early:
            transport.close()  # kills the child; the watcher still reports
        await protocol.lost
        transport.close()
        return transport.get_returncode(), protocol.calls[-1], ours_watching

    watcher = recorder()
    with policy_with(watcher):
        assert run(loop_name, main()) == (code, "connection_lost(None)", False)
    for thread in watcher.threads:
        thread.join()
    assert watcher.calls == ["enter", "is_active", "add_child_handler", "exit"]
    assert watcher.handlers == {}  # nothing left: the watcher has called back


@policy_watchers
def test_a_fast_child_watcher_set_on_the_policy(loop_name):
    # It reaps every child with waitpid(-1) on SIGCHLD: a loop watching its
    # children by itself would lose some statuses to it, and report 255.
    async def main():
        watcher = asyncio.get_event_loop_policy().get_child_watcher()
        watcher.attach_loop(asyncio.get_running_loop())
        try:
            children = [await asyncio.create_subprocess_exec("sh", "-c", "exit 3")
                        for _ in range(20)]  # fmt: skip
            return [await child.wait() for child in children]
        finally:
            watcher.attach_loop(None)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        watcher = asyncio.FastChildWatcher()
        with policy_with(watcher):
            assert run(loop_name, main()) == [3] * 20


@policy_watchers
@pytest.mark.parametrize("held", ["none", "ThreadedChildWatcher", "PidfdChildWatcher"])
def test_no_watcher_set_keeps_ours_and_warns_nothing(held):
    # asyncio's default kinds may sit in the policy only because asyncio's loop
    # asked for one earlier: ours stands in for them, and never makes one.
    if held == "PidfdChildWatcher" and not _pidfd_works():
        pytest.skip("no pidfds")

    async def main():
        loop = asyncio.get_running_loop()
        child = await asyncio.create_subprocess_exec("sleep", "10")
        watching = child.pid in loop._child_pidfds  # alive: not reaped yet
        child.kill()
        return watching, await child.wait()

    watcher = None if held == "none" else getattr(asyncio, held)()
    with policy_with(watcher) as policy:
        with warnings.catch_warnings():
            warnings.simplefilter("error", DeprecationWarning)
            assert run("epoll-pidfd", main()) == (True, -9)
        assert policy._watcher is watcher  # none made, none replaced


def test_wait_returns_at_exit_exactly_when_asyncio_does(loop_name):
    """A grandchild keeps the child's stdout open after the child exits: wait()
    returns at the exit on 3.14 and 3.15 (gh-119710), at the pipe's end before."""
    from asynciodepth.subprocesses import _WAKES_AT_EXIT

    async def main():
        child = await asyncio.create_subprocess_exec(
            "sh", "-c", "sleep 1.5 & sleep 0.2; exit 3", stdout=PIPE
        )
        waiting = asyncio.ensure_future(child.wait())
        done, _ = await asyncio.wait([waiting], timeout=0.9)
        code = await waiting
        await child.stdout.read()  # the end of file comes when sleep 1.5 exits
        return bool(done), code

    assert run(loop_name, main()) == (_WAKES_AT_EXIT, 3)
