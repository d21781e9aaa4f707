"""The package's loop (chapter "Beyond TCP", section "The whole loop"): the sections' loops
composed. Each section's own tests run its class; these run the composition."""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import os
import select

import pytest
import tls_certs

import asynciodepth
from asynciodepth.connections import ConnectionEventLoop
from asynciodepth.datagrams import DatagramEventLoop
from asynciodepth.loop import EventLoop, SelectorEventLoop
from asynciodepth.sendfile import SendfileEventLoop
from asynciodepth.subprocesses import SubprocessEventLoop
from asynciodepth.tls import TLSEventLoop
from asynciodepth.unix_events import UnixEventLoop

# Chapter "Transports, protocols and streams" refuses these; each refusal's
# docstring names the chapter that adds the method.
REFUSED_BY_08B = sorted(
    name
    for name, member in vars(ConnectionEventLoop).items()
    if 'chapter "Beyond TCP" adds it' in (getattr(member, "__doc__", None) or "")
)


def test_the_package_names_the_whole_loop():
    assert asynciodepth.EventLoop is EventLoop is SelectorEventLoop
    for section in [
        SendfileEventLoop,
        TLSEventLoop,
        SubprocessEventLoop,
        DatagramEventLoop,
    ]:
        assert issubclass(EventLoop, section)
    assert EventLoop.__mro__.index(UnixEventLoop) > max(
        EventLoop.__mro__.index(cls)
        for cls in [SendfileEventLoop, TLSEventLoop, SubprocessEventLoop]
    )
    loop = asynciodepth.new_event_loop()
    try:
        assert type(loop) is EventLoop
    finally:
        loop.close()


@pytest.mark.parametrize("name", REFUSED_BY_08B)
def test_no_refusal_of_chapter_08b_is_left(name):
    assert len(REFUSED_BY_08B) == 11
    ours = getattr(EventLoop, name)
    assert ours is not getattr(ConnectionEventLoop, name)
    refused = getattr(UnixEventLoop, name)
    assert refused is getattr(ConnectionEventLoop, name)
    # Same signature as asyncio's, so that keyword calls work unchanged.
    theirs = getattr(asyncio.unix_events._UnixSelectorEventLoop, name)
    assert list(inspect.signature(ours).parameters) == list(
        inspect.signature(theirs).parameters
    ), name


TEXT = b"Hello, world!"


class Keys(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.keys: list[bytes] = []
        self.done = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: object) -> None:
        self.keys.append(data)
        if len(self.keys) == len(TEXT):
            self.done.set_result(b"".join(self.keys))


async def everything(folder: str) -> bytes:
    """UDP, a child cat, TLS and sendfile (its fallback over TLS) in one program."""
    loop = asyncio.get_running_loop()
    inbox, keys = await loop.create_datagram_endpoint(
        Keys, local_addr=("127.0.0.1", 0)
    )
    outbox, _ = await loop.create_datagram_endpoint(
        asyncio.DatagramProtocol, remote_addr=inbox.get_extra_info("sockname")
    )
    for key in TEXT:
        outbox.sendto(bytes([key]))
    typed = await keys.done
    outbox.close()
    inbox.close()
    cat = await asyncio.create_subprocess_exec(
        "cat", stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
    )
    catted, _ = await cat.communicate(typed * 1000)
    assert cat.returncode == 0

    async def store_and_send_back(reader, writer):
        path = os.path.join(folder, "typed.txt")
        with open(path, "wb") as f:
            f.write(await reader.readexactly(len(catted)))
        with open(path, "rb") as f:
            await loop.sendfile(writer.transport, f)
        writer.close()

    server = await asyncio.start_server(
        store_and_send_back, "127.0.0.1", 0, ssl=tls_certs.server_context()
    )
    async with server:
        reader, writer = await asyncio.open_connection(
            *server.sockets[0].getsockname(),
            ssl=tls_certs.client_context(),
            server_hostname="localhost",
        )
        writer.write(catted)
        back = await reader.read()
        writer.close()
        await writer.wait_closed()
    return back


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd" if os.path.isdir("/proc/self/fd") else "/dev/fd"))


@pytest.mark.parametrize(
    "options",
    [
        {"poller": "epoll"},
        {"poller": "selectors", "child_watcher": "thread"},
        {"poller": "epoll", "python_tasks": True},
    ],
    ids=["epoll", "selectors+thread", "epoll+pytask"],
)
def test_everything_at_once(options, tmp_path):
    if options["poller"] == "epoll" and not hasattr(select, "epoll"):
        pytest.skip("no epoll here")
    before = fd_count()
    with asyncio.Runner(loop_factory=lambda: EventLoop(**options)) as runner:
        back = runner.run(asyncio.wait_for(everything(str(tmp_path)), 30))
    assert hashlib.sha256(back).digest() == hashlib.sha256(TEXT * 1000).digest()
    assert fd_count() == before


def test_everything_at_once_on_asyncio(tmp_path):
    # The same program on asyncio's loop: the test is asyncio's behaviour too.
    with asyncio.Runner(loop_factory=asyncio.new_event_loop) as runner:
        back = runner.run(asyncio.wait_for(everything(str(tmp_path)), 30))
    assert back == TEXT * 1000
