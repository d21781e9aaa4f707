"""Record one run of five stream clients on our loop: task steps and poll waits.

Chapter "Transports, protocols and streams" draws its picture "poll waits and task
steps" from the file this script writes, ``benchmarks/timeline_io.json``, so that the
figure is the same on every build (a live run on the wall clock never is). The
workload is the chapter's: an echo server (asyncio streams) and five clients, each
sending ten requests with a pause of 2, 4, ... 10 ms between them. The loop's observer
records every poll (when it started and ended, how many events it returned) and every
task step (which task, when). Times are in seconds since the first record, rounded to
the microsecond.

Usage: PYTHONPATH=src python benchmarks/timeline_io.py [--out benchmarks/timeline_io.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import sys

import asynciodepth
from asynciodepth.events import LoopObserver


class Timeline(LoopObserver):
    def __init__(self):
        self.polls, self.steps = [], []

    def on_poll(self, loop, timeout, start, end, nevents):
        self.polls.append((start, end, nevents))

    def on_task_step(self, loop, task, woken_by, start, end):
        self.steps.append((task.get_name(), start, end))


async def handle_echo(reader, writer):
    while line := await reader.readline():
        writer.write(line.upper())
        await writer.drain()
    writer.close()
    await writer.wait_closed()


async def chatty_client(port, pause):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for _ in range(10):
        writer.write(b"ping\n")
        await writer.drain()
        await reader.readline()
        await asyncio.sleep(pause)
    writer.close()
    await writer.wait_closed()


async def timeline_demo():
    server = await asyncio.start_server(handle_echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        await asyncio.gather(
            *(
                asyncio.create_task(
                    chatty_client(port, 0.002 * (i + 1)), name=f"client {i}"
                )
                for i in range(5)
            )
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/timeline_io.json")
    args = parser.parse_args()
    timeline = Timeline()
    asynciodepth.run(
        timeline_demo(), loop_factory=lambda: asynciodepth.EventLoop(observer=timeline)
    )
    t0 = min([s for _, s, _ in timeline.steps] + [s for s, _, _ in timeline.polls])
    data = {
        "python": sys.version.split()[0],
        "machine": platform.machine(),
        "polls": [[round(s - t0, 6), round(e - t0, 6), n] for s, e, n in timeline.polls],
        "steps": [
            [name, round(s - t0, 6), round(e - t0, 6)] for name, s, e in timeline.steps
        ],
    }
    # One record a line: the file diffs well and stays readable.
    lines = ",\n".join(
        f"  {json.dumps(key)}: "
        + (
            json.dumps(value)
            if not isinstance(value, list)
            else "[\n" + ",\n".join(f"    {json.dumps(r)}" for r in value) + "\n  ]"
        )
        for key, value in data.items()
    )
    with open(args.out, "w") as f:
        f.write("{\n" + lines + "\n}\n")
    print(f"{args.out}: {len(data['polls'])} polls, {len(data['steps'])} task steps")


if __name__ == "__main__":
    main()
