"""The finished loop's own parts: signal handlers and Unix socket servers.

Chapter "Transports, protocols and streams" (``asynciodepth.unix_events``). More
of its tests, with asyncio's streams on top, are in test_streams.py and
test_io_events.py.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import signal
import socket
import tempfile

import pytest

from io_helpers import run


def test_last_signal_handler_gives_back_the_wakeup_fd(impl):
    # Ours restores the wake-up fd it found; asyncio's sets -1 (not tested
    # on it: that would lose the fd this test sets).
    theirs, spare = socket.socketpair()
    theirs.setblocking(False)

    async def main():
        loop = asyncio.get_running_loop()
        previous = signal.set_wakeup_fd(theirs.fileno())
        loop.add_signal_handler(signal.SIGUSR1, print)
        loop.add_signal_handler(signal.SIGUSR2, print)
        loop.remove_signal_handler(signal.SIGUSR1)
        while_one_is_left = signal.set_wakeup_fd(signal.set_wakeup_fd(-1))
        loop.remove_signal_handler(signal.SIGUSR2)
        after = signal.set_wakeup_fd(previous)
        return while_one_is_left != theirs.fileno(), after

    try:
        assert run(impl, main()) == (True, theirs.fileno())
    finally:
        theirs.close()
        spare.close()


def test_stale_socket_file_that_cannot_be_removed(any_impl, monkeypatch, caplog):
    # As asyncio: the failure to remove is logged, and bind() then reports the
    # path in use.
    def refuse(path, *args, **kwargs):
        raise PermissionError(13, "Permission denied", path)

    async def main(path):
        with socket.socket(socket.AF_UNIX) as stale:
            stale.bind(path)
        monkeypatch.setattr(os, "remove", refuse)
        with pytest.raises(OSError) as info:
            await asyncio.get_running_loop().create_unix_server(asyncio.Protocol, path)
        monkeypatch.undo()
        return info.type, str(info.value)

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "stale.sock")
        with caplog.at_level(logging.ERROR, logger="asyncio"):
            kind, message = run(any_impl, main(path))
    in_use = f"[Errno {errno.EADDRINUSE}] Address {path!r} is already in use"
    assert (kind, message) == (OSError, in_use)
    assert [r.getMessage().split(":")[0] for r in caplog.records] == [
        f"Unable to check or remove stale UNIX socket {path!r}"
    ]
