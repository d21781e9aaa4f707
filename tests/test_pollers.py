"""The pollers of chapter "epoll": epoll and the selectors fallback."""

from __future__ import annotations

import os
import selectors
import socket
import tempfile

import pytest

from asynciodepth.pollers import (
    EVENT_READ,
    EVENT_WRITE,
    EpollPoller,
    SelectorsPoller,
    make_poller,
)
from io_helpers import IMPLS


@pytest.fixture(params=IMPLS)
def poller(request):
    poller = make_poller(request.param)
    yield poller
    poller.close()


def readable(poller, events, fd):
    return any(f == fd and bits & poller.read_bits for f, bits in events)


def writable(poller, events, fd):
    return any(f == fd and bits & poller.write_bits for f, bits in events)


def test_make_poller_kinds():
    assert isinstance(make_poller("epoll"), EpollPoller)
    assert isinstance(make_poller("selectors"), SelectorsPoller)
    assert isinstance(make_poller(None), EpollPoller)  # Linux
    wrapped = make_poller(selectors.PollSelector())
    assert isinstance(wrapped, SelectorsPoller)
    for poller in [wrapped]:
        poller.close()
    with pytest.raises(ValueError, match="unknown poller"):
        make_poller("kqueue-please")


def test_register_modify_unregister(poller):
    a, b = socket.socketpair()
    with a, b:
        fd = a.fileno()
        poller.set_interest(fd, EVENT_READ)
        assert poller.interest(fd) == EVENT_READ
        assert poller.poll(0) == []
        b.send(b"x")
        events = poller.poll(0)
        assert readable(poller, events, fd) and not writable(poller, events, fd)
        poller.set_interest(fd, EVENT_READ | EVENT_WRITE)
        events = poller.poll(0)
        assert readable(poller, events, fd) and writable(poller, events, fd)
        poller.set_interest(fd, EVENT_WRITE)
        events = poller.poll(0)
        assert writable(poller, events, fd) and not readable(poller, events, fd)
        poller.set_interest(fd, 0)
        assert poller.interest(fd) == 0
        assert poller.poll(0) == []
        poller.set_interest(fd, 0)  # forgetting twice is harmless


def test_poll_timeout_waits(poller):
    a, b = socket.socketpair()
    with a, b:
        poller.set_interest(a.fileno(), EVENT_READ)
        assert poller.poll(0.01) == []


def test_invalid_fd_is_refused_and_nothing_recorded(poller):
    s = socket.socket()
    fd = s.fileno()
    s.close()
    with pytest.raises(OSError):
        poller.set_interest(fd, EVENT_READ)
    assert poller.interest(fd) == 0


def test_closed_fd_reused_by_new_socket(poller):
    # The kernel forgets a closed fd; the new socket with the same number
    # must be watched for real even though our bookkeeping still has it.
    a, b = socket.socketpair()
    fd = a.fileno()
    poller.set_interest(fd, EVENT_READ)
    a.close()
    b.close()
    c, d = socket.socketpair()
    with c, d:
        reused = c if c.fileno() == fd else d if d.fileno() == fd else None
        assert reused is not None, "the kernel did not reuse the fd number"
        other = d if reused is c else c
        poller.set_interest(fd, EVENT_READ)  # same mask as before
        other.send(b"x")
        assert readable(poller, poller.poll(1), fd)
        poller.set_interest(fd, EVENT_READ | EVENT_WRITE)
        assert writable(poller, poller.poll(1), fd)


def _reused(fd, c, d):
    """The one of the pair c, d whose fd number is fd, and its peer."""
    if c.fileno() == fd:
        return c, d
    assert d.fileno() == fd, "the kernel did not reuse the fd number"
    return d, c


def test_stale_entry_kept_by_a_dup_is_dropped():
    # epoll(7) Q6: closing fd does not remove its entry while a dup of the
    # socket lives. The new socket that gets the number must not be reported
    # ready because of the old socket's data (review finding: epoll_stale.py).
    poller = EpollPoller()
    a, b = socket.socketpair()
    fd = a.fileno()
    poller.set_interest(fd, EVENT_READ)
    keep = os.dup(fd)
    try:
        a.close()
        b.send(b"x")  # the old socket is readable, through the dup
        c, d = socket.socketpair()
        with c, d:
            new, peer = _reused(fd, c, d)
            poller.set_interest(fd, EVENT_READ)  # ENOENT: the kernel forgot fd
            assert [poller.poll(0) for _ in range(3)] == [[], [], []]
            peer.send(b"y")
            assert readable(poller, poller.poll(0), fd)
            poller.set_interest(fd, 0)
            assert poller.poll(0) == []
    finally:
        os.close(keep)
        b.close()
        poller.close()


def test_unregister_after_close_with_a_dup_rebuilds():
    # Closed while watched, then unregistered (EBADF): the entry lives on
    # under the dup. The next poll must not report it, and the other fds
    # watched must still be watched.
    poller = EpollPoller()
    a, b = socket.socketpair()
    e, f = socket.socketpair()
    fd = a.fileno()
    poller.set_interest(fd, EVENT_READ)
    poller.set_interest(e.fileno(), EVENT_READ)
    keep = os.dup(fd)
    try:
        a.close()
        b.send(b"x")
        poller.set_interest(fd, 0)
        assert poller.poll(0) == []
        f.send(b"z")
        events = poller.poll(0)
        assert readable(poller, events, e.fileno()) and len(events) == 1
    finally:
        os.close(keep)
        for s in (b, e, f):
            s.close()
        poller.close()


def test_narrowing_a_closed_fd_drops_it(poller):
    # Watched both ways, closed, then one direction removed: nothing to narrow
    # in the kernel, no error; widening it again is an error.
    a, b = socket.socketpair()
    fd = a.fileno()
    poller.set_interest(fd, EVENT_READ | EVENT_WRITE)
    a.close()
    b.close()
    poller.set_interest(fd, EVENT_WRITE)
    assert poller.interest(fd) == EVENT_WRITE
    assert poller.poll(0) == []
    with pytest.raises(OSError):
        poller.set_interest(fd, EVENT_READ | EVENT_WRITE)
    poller.set_interest(fd, 0)
    assert poller.interest(fd) == 0


def test_regular_file_is_refused_with_eperm(poller):
    with tempfile.TemporaryFile() as file:
        with pytest.raises(PermissionError):
            poller.set_interest(file.fileno(), EVENT_READ)
        assert poller.interest(file.fileno()) == 0
