"""Benchmark: the wall time of 1, 2 and 4 typists, one after another and all at once.

The data behind chapter 1's bar chart ("Hello, world!", section "Why async?"). The
synchronous typists run one after another, blocking in `time.sleep`; the async ones run
concurrently under `asyncio.gather` on `asyncio.run`'s loop. The pauses are seeded as in
the chapter (seed 2024 + i for typist i), so the model's numbers are known in advance;
what is measured is how close the real sleeps come to them. Medians of --repeat runs.
The chapter reads the file this writes, so that its figure is the same on every build.
Usage::

    PYTHONPATH=src python benchmarks/bench_hello.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import platform
import random
import statistics
import time
from pathlib import Path

from asynciodepth.hello import typist, typist_sync

SEED = 2024
COUNTS = [1, 2, 4]
OUT = Path(__file__).with_name("hello_walltime.json")


def measure_sync(count: int) -> float:
    start = time.perf_counter()
    for i in range(count):
        typist_sync(rng=random.Random(SEED + i), out=io.StringIO())
    return time.perf_counter() - start


async def measure_async(count: int) -> float:
    start = time.perf_counter()
    await asyncio.gather(*(typist(rng=random.Random(SEED + i), out=io.StringIO())
                           for i in range(count)))
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    runs: dict[int, dict[str, list[float]]] = {c: {"sync": [], "async": []} for c in COUNTS}
    for _ in range(args.repeat):
        for count in COUNTS:
            runs[count]["sync"].append(measure_sync(count))
            runs[count]["async"].append(asyncio.run(measure_async(count)))
    data = {
        "python": platform.python_version(),
        "repeat": args.repeat,
        "seconds": {str(count): {kind: round(statistics.median(times), 4)
                                 for kind, times in runs[count].items()}
                    for count in COUNTS},
    }
    OUT.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(data, indent=1))


if __name__ == "__main__":
    main()
