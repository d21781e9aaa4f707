"""Load on our loop: 1,000 concurrent connections, no leaked fds (chapter "epoll")."""

from __future__ import annotations

import asyncio
import gc

import pytest

from io_helpers import IMPLS, echo_handler, open_fds, raised_fd_limit, run

CONNECTIONS = 1000


@pytest.mark.parametrize("impl", ["stdlib", *IMPLS])
def test_1000_concurrent_connections_no_leaked_fds(impl):
    async def client(port, i, all_connected):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await all_connected.wait()  # every connection is open at once
        message = f"client {i}\n".encode()
        writer.write(message)
        await writer.drain()
        echoed = await reader.readexactly(len(message))
        writer.close()
        await writer.wait_closed()
        return echoed == message

    async def main():
        all_connected = asyncio.Event()
        accepted = 0

        async def handler(reader, writer):
            nonlocal accepted
            accepted += 1
            await echo_handler(reader, writer)

        server = await asyncio.start_server(handler, "127.0.0.1", 0, backlog=1024)
        port = server.sockets[0].getsockname()[1]
        tasks = [
            asyncio.create_task(client(port, i, all_connected))
            for i in range(CONNECTIONS)
        ]
        # Wait until the server holds every connection, then release them all.
        while accepted < CONNECTIONS:
            await asyncio.sleep(0.005)
        open_during = open_fds()
        all_connected.set()
        results = await asyncio.gather(*tasks)
        server.close()
        await server.wait_closed()
        return results, open_during

    gc.collect()
    before = open_fds()
    with raised_fd_limit(4 * CONNECTIONS):
        results, open_during = run(impl, main(), timeout=45)
    gc.collect()
    after = open_fds()
    assert results == [True] * CONNECTIONS
    assert open_during >= before + 2 * CONNECTIONS  # really concurrent
    assert after == before
