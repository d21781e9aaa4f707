"""The pollers of chapter "epoll": epoll and the selectors fallback."""

from __future__ import annotations

import selectors
import socket

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
