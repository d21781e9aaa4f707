"""Waiting for the outside world: chapter "The event loop".

Builds on ``base_events.py``: ``BaseSelectorEventLoop`` gives the loop core
its ``_poll`` step, a ``selectors.DefaultSelector`` (epoll on Linux) that
today watches a single file descriptor: one end of a socket pair that other
threads write a byte to, so that ``call_soon_threadsafe`` can wake a loop
blocked in its poll. CPython's loop keeps the same "self-pipe" in its
``selector_events.py``. The epoll chapter adds ``add_reader``/``add_writer``
and sockets here; until then the I/O methods say so.
"""

from __future__ import annotations

import selectors
import socket
from typing import Any

from .base_events import BaseEventLoop
from .events import LoopObserver, VirtualClock

__all__ = ["BaseSelectorEventLoop"]


def _io_not_implemented(name: str) -> NotImplementedError:
    return NotImplementedError(
        f"asynciodepth's loop has no I/O yet: {name}() arrives in chapter 'epoll'"
    )


class BaseSelectorEventLoop(BaseEventLoop):
    """The loop core plus a selector: it can block in a poll and be woken."""

    def __init__(
        self,
        *,
        clock: VirtualClock | None = None,
        observer: LoopObserver | None = None,
    ) -> None:
        super().__init__(clock=clock, observer=observer)
        self._selector = selectors.DefaultSelector()
        # Invariant: while the loop is open, _ssock is registered for reading
        # and _csock is the end other threads write one byte to per wake-up.
        self._ssock, self._csock = socket.socketpair()
        self._ssock.setblocking(False)
        self._csock.setblocking(False)
        self._selector.register(self._ssock, selectors.EVENT_READ)

    def close(self) -> None:
        """Close the loop, then its selector and wake-up sockets."""
        already_closed = self.is_closed()
        super().close()
        if not already_closed:
            self._selector.unregister(self._ssock)
            self._selector.close()
            self._ssock.close()
            self._csock.close()

    def _poll(self, timeout: float | None) -> list[tuple[Any, int]]:
        """Block in the selector for up to timeout seconds (None: until woken)."""
        return self._selector.select(timeout)

    def _process_events(self, events: list[tuple[Any, int]]) -> None:
        """Turn the poll's events into callbacks (today: drain the wake-ups)."""
        for key, _mask in events:
            if key.fileobj is self._ssock:
                self._read_from_self()

    def _read_from_self(self) -> None:
        while True:
            try:
                if not self._ssock.recv(4096):
                    break
            except InterruptedError:
                continue
            except BlockingIOError:
                break

    def _write_to_self(self) -> None:
        # Why ignore errors: a full socket means a wake-up is already
        # pending, and a closed one means nobody is left to wake.
        try:
            self._csock.send(b"\0")
        except OSError:
            pass

    # ------------------------------------------------------------------
    # Not yet: I/O, which arrives in chapter "epoll"
    # ------------------------------------------------------------------

    def add_reader(self, fd: Any, callback: Any, *args: Any) -> None:
        raise _io_not_implemented("add_reader")

    def remove_reader(self, fd: Any) -> bool:
        raise _io_not_implemented("remove_reader")

    def add_writer(self, fd: Any, callback: Any, *args: Any) -> None:
        raise _io_not_implemented("add_writer")

    def remove_writer(self, fd: Any) -> bool:
        raise _io_not_implemented("remove_writer")

    def add_signal_handler(self, sig: int, callback: Any, *args: Any) -> None:
        raise _io_not_implemented("add_signal_handler")

    def remove_signal_handler(self, sig: int) -> bool:
        raise _io_not_implemented("remove_signal_handler")

    async def sock_recv(self, sock: Any, nbytes: int) -> Any:
        raise _io_not_implemented("sock_recv")

    async def sock_recv_into(self, sock: Any, buf: Any) -> Any:
        raise _io_not_implemented("sock_recv_into")

    async def sock_recvfrom(self, sock: Any, bufsize: int) -> Any:
        raise _io_not_implemented("sock_recvfrom")

    async def sock_recvfrom_into(self, sock: Any, buf: Any, nbytes: int = 0) -> Any:
        raise _io_not_implemented("sock_recvfrom_into")

    async def sock_sendall(self, sock: Any, data: Any) -> Any:
        raise _io_not_implemented("sock_sendall")

    async def sock_sendto(self, sock: Any, data: Any, address: Any) -> Any:
        raise _io_not_implemented("sock_sendto")

    async def sock_connect(self, sock: Any, address: Any) -> Any:
        raise _io_not_implemented("sock_connect")

    async def sock_accept(self, sock: Any) -> Any:
        raise _io_not_implemented("sock_accept")

    async def sock_sendfile(self, sock: Any, file: Any, *args: Any, **kwargs: Any) -> Any:
        raise _io_not_implemented("sock_sendfile")

    async def sendfile(self, transport: Any, file: Any, *args: Any, **kwargs: Any) -> Any:
        raise _io_not_implemented("sendfile")

    async def start_tls(self, transport: Any, protocol: Any, *args: Any, **kwargs: Any) -> Any:
        raise _io_not_implemented("start_tls")

    async def create_connection(self, *args: Any, **kwargs: Any) -> Any:
        raise _io_not_implemented("create_connection")

    async def create_server(self, *args: Any, **kwargs: Any) -> Any:
        raise _io_not_implemented("create_server")

    async def create_unix_connection(self, *args: Any, **kwargs: Any) -> Any:
        raise _io_not_implemented("create_unix_connection")

    async def create_unix_server(self, *args: Any, **kwargs: Any) -> Any:
        raise _io_not_implemented("create_unix_server")

    async def create_datagram_endpoint(self, *args: Any, **kwargs: Any) -> Any:
        raise _io_not_implemented("create_datagram_endpoint")

    async def connect_accepted_socket(self, *args: Any, **kwargs: Any) -> Any:
        raise _io_not_implemented("connect_accepted_socket")

    async def connect_read_pipe(self, *args: Any, **kwargs: Any) -> Any:
        raise _io_not_implemented("connect_read_pipe")

    async def connect_write_pipe(self, *args: Any, **kwargs: Any) -> Any:
        raise _io_not_implemented("connect_write_pipe")

    async def subprocess_exec(self, *args: Any, **kwargs: Any) -> Any:
        raise _io_not_implemented("subprocess_exec")

    async def subprocess_shell(self, *args: Any, **kwargs: Any) -> Any:
        raise _io_not_implemented("subprocess_shell")
