"""Pipe transports on our PipeEventLoop (both pollers) and on asyncio's loop.

Every test checks afterwards that no fd leaked.
"""

from __future__ import annotations

import asyncio
import errno
import gc
import os
import socket
import warnings

import pytest
from subproc_helpers import LOOPS, OURS, open_fds, run, settle


@pytest.fixture(params=list(LOOPS))
def loop_name(request):
    before = open_fds()
    yield request.param
    leaked, _ = settle(before)
    assert leaked == 0, f"{leaked} fds leaked"


class Collector(asyncio.Protocol):
    def __init__(self):
        self.data, self.calls, self.exc = b"", [], None
        self.lost = asyncio.get_running_loop().create_future()

    def connection_made(self, transport):
        self.transport = transport
        self.calls.append("connection_made")

    def data_received(self, data):
        if self.calls[-1] != "data_received":
            self.calls.append("data_received")
        self.data += data

    def eof_received(self):
        self.calls.append("eof_received")

    def pause_writing(self):
        self.calls.append("pause_writing")

    def resume_writing(self):
        self.calls.append("resume_writing")

    def connection_lost(self, exc):
        self.exc = exc
        self.calls.append("connection_lost")
        self.lost.set_result(None)


def test_read_pipe_data_then_eof_then_lost(loop_name):
    async def main():
        loop = asyncio.get_running_loop()
        rfd, wfd = os.pipe()
        pipe = open(rfd, "rb", 0)
        transport, protocol = await loop.connect_read_pipe(Collector, pipe)
        info = transport.get_extra_info("pipe") is pipe, os.get_blocking(rfd)
        os.write(wfd, b"hello")
        os.close(wfd)
        await protocol.lost
        return info, protocol.data, protocol.calls, transport.is_closing(), pipe.closed

    assert run(loop_name, main()) == (
        (True, False),
        b"hello",
        ["connection_made", "data_received", "eof_received", "connection_lost"],
        True,
        True,
    )


def test_pause_and_resume_reading(loop_name):
    async def main():
        loop = asyncio.get_running_loop()
        rfd, wfd = os.pipe()
        transport, protocol = await loop.connect_read_pipe(Collector, open(rfd, "rb", 0))
        states = [transport.is_reading()]
        transport.pause_reading()
        transport.pause_reading()  # twice is harmless
        states.append(transport.is_reading())
        os.write(wfd, b"held")
        await asyncio.sleep(0.05)
        held = protocol.data
        transport.resume_reading()
        states.append(transport.is_reading())
        await asyncio.sleep(0.05)
        os.close(wfd)
        await protocol.lost
        states.append(transport.is_reading())
        return states, held, protocol.data

    assert run(loop_name, main()) == ([True, False, True, False], b"", b"held")


def test_close_read_pipe(loop_name):
    async def main():
        loop = asyncio.get_running_loop()
        rfd, wfd = os.pipe()
        transport, protocol = await loop.connect_read_pipe(Collector, open(rfd, "rb", 0))
        transport.close()
        transport.close()
        await protocol.lost
        os.close(wfd)
        return protocol.calls, protocol.exc

    assert run(loop_name, main()) == (["connection_made", "connection_lost"], None)


def test_write_pipe_buffer_and_flow_control(loop_name):
    async def main():
        loop = asyncio.get_running_loop()
        rfd, wfd = os.pipe()
        transport, protocol = await loop.connect_write_pipe(Collector, open(wfd, "wb", 0))
        os.set_blocking(rfd, False)
        transport.set_write_buffer_limits(high=1000, low=100)
        limits = transport.get_write_buffer_limits()
        transport.write(b"x" * 200_000)  # more than the pipe holds
        buffered = transport.get_write_buffer_size()
        got = 0
        while got < 200_000:
            await asyncio.sleep(0)
            try:
                got += len(os.read(rfd, 65536))
            except BlockingIOError:
                pass
        transport.close()
        await protocol.lost
        os.close(rfd)
        return limits, buffered > 0, protocol.calls, transport.get_write_buffer_size()

    assert run(loop_name, main()) == (
        (100, 1000),
        True,
        ["connection_made", "pause_writing", "resume_writing", "connection_lost"],
        0,
    )


def test_write_eof_flushes_then_closes(loop_name):
    async def main():
        loop = asyncio.get_running_loop()
        rfd, wfd = os.pipe()
        _, reader = await loop.connect_read_pipe(Collector, open(rfd, "rb", 0))
        writer, protocol = await loop.connect_write_pipe(Collector, open(wfd, "wb", 0))
        writer.write(b"y" * 300_000)
        can = writer.can_write_eof()
        writer.write_eof()
        writer.write(b"ignored")  # after the end: dropped, as asyncio does
        await reader.lost
        await protocol.lost
        return can, len(reader.data), writer.is_closing(), protocol.exc

    assert run(loop_name, main()) == (True, 300_000, True, None)


def test_abort_drops_the_buffer(loop_name):
    async def main():
        loop = asyncio.get_running_loop()
        rfd, wfd = os.pipe()
        writer, protocol = await loop.connect_write_pipe(Collector, open(wfd, "wb", 0))
        writer.write(b"z" * 300_000)
        writer.abort()
        await protocol.lost
        size = writer.get_write_buffer_size()
        os.close(rfd)
        return size, protocol.exc

    assert run(loop_name, main()) == (0, None)


def test_reader_closes_mid_write(loop_name):
    async def main():
        loop = asyncio.get_running_loop()
        rfd, wfd = os.pipe()
        writer, protocol = await loop.connect_write_pipe(Collector, open(wfd, "wb", 0))
        writer.write(b"z" * 300_000)
        os.close(rfd)
        await protocol.lost
        return type(protocol.exc).__name__

    assert run(loop_name, main()) == "BrokenPipeError"


def test_write_to_a_closed_reader_at_once(loop_name):
    async def main():
        loop = asyncio.get_running_loop()
        rfd, wfd = os.pipe()
        writer, protocol = await loop.connect_write_pipe(Collector, open(wfd, "wb", 0))
        os.close(rfd)
        writer.write(b"late")
        await protocol.lost
        return protocol.exc is None or isinstance(protocol.exc, BrokenPipeError)

    assert run(loop_name, main())


def test_write_type_and_empty(loop_name):
    async def main():
        loop = asyncio.get_running_loop()
        rfd, wfd = os.pipe()
        writer, protocol = await loop.connect_write_pipe(Collector, open(wfd, "wb", 0))
        writer.write(b"")
        writer.write(bytearray(b"ab"))
        writer.write(memoryview(b"cd"))
        try:
            writer.write("text")
        except AssertionError as exc:
            error = str(exc)
        writer.close()
        await protocol.lost
        data = os.read(rfd, 10)
        os.close(rfd)
        return data, error

    assert run(loop_name, main()) == (b"abcd", "'text'")


@pytest.mark.parametrize("end", ["read", "write"])
def test_a_regular_file_is_refused(loop_name, end, tmp_path):
    path = tmp_path / "file"
    path.write_bytes(b"data")
    message = {
        "read": "Pipe transport is for pipes/sockets only.",
        "write": "Pipe transport is only for pipes, sockets and character devices",
    }[end]

    async def main():
        loop = asyncio.get_running_loop()
        connect = loop.connect_read_pipe if end == "read" else loop.connect_write_pipe
        with open(path, "rb" if end == "read" else "wb") as f:
            try:
                await connect(asyncio.Protocol, f)
            except ValueError as exc:
                return str(exc), f.closed

    assert run(loop_name, main()) == (message, False)


def test_sockets_as_pipes(loop_name):
    async def main():
        loop = asyncio.get_running_loop()
        a, b = socket.socketpair()
        _, reader = await loop.connect_read_pipe(Collector, a)
        writer, protocol = await loop.connect_write_pipe(Collector, b)
        writer.write(b"over a socket")
        writer.close()
        await reader.lost
        await protocol.lost
        return reader.data, a.fileno(), b.fileno()

    assert run(loop_name, main()) == (b"over a socket", -1, -1)


def test_dev_null_is_a_write_pipe(loop_name):
    async def main():
        loop = asyncio.get_running_loop()
        writer, protocol = await loop.connect_write_pipe(Collector, open(os.devnull, "wb"))
        writer.write(b"gone")
        writer.close()
        await protocol.lost
        return protocol.calls

    assert run(loop_name, main()) == ["connection_made", "connection_lost"]


def test_read_pty_output(loop_name):
    async def main():
        loop = asyncio.get_running_loop()
        master, slave = os.openpty()
        transport, protocol = await loop.connect_read_pipe(Collector, open(master, "rb", 0))
        os.write(slave, b"typed\n")
        while b"typed" not in protocol.data:
            await asyncio.sleep(0.01)
        os.close(slave)
        await protocol.lost  # the master's read fails with EIO: the end, quietly
        return protocol.calls[-1], getattr(protocol.exc, "errno", None)

    assert run(loop_name, main()) == ("connection_lost", errno.EIO)


def test_write_pty(loop_name):
    async def main():
        loop = asyncio.get_running_loop()
        master, slave = os.openpty()
        os.set_blocking(master, False)
        writer, protocol = await loop.connect_write_pipe(Collector, open(slave, "wb", 0))
        writer.write(b"to the tty\n")
        got = b""
        while b"to the tty" not in got:
            await asyncio.sleep(0.01)
            try:
                got += os.read(master, 100)
            except BlockingIOError:
                pass
        writer.close()
        await protocol.lost
        os.close(master)
        return protocol.calls

    assert run(loop_name, main()) == ["connection_made", "connection_lost"]


@pytest.mark.parametrize("loop_name", OURS)
def test_unclosed_transport_warns_and_closes(loop_name):
    before = open_fds()

    async def main():
        loop = asyncio.get_running_loop()
        rfd, wfd = os.pipe()
        transport, _ = await loop.connect_read_pipe(asyncio.Protocol, open(rfd, "rb", 0))
        os.close(wfd)
        transport.pause_reading()
        return repr(transport)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        text = run(loop_name, main())
        gc.collect()
    assert text == "<ReadPipeTransport open>"
    assert any("unclosed transport" in str(w.message) for w in caught)
    assert open_fds() == before
