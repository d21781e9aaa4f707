"""The benchmark suite (benchmarks/suite.py) runs and writes its JSON format.

A tiny run on asyncio's loop and ours only (no uvloop, aiohttp or wrk needed):
it checks the shape of the results, never a timing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

TOP = Path(__file__).resolve().parents[1]
SUITE = TOP / "benchmarks" / "suite.py"
sys.path.insert(0, str(TOP / "benchmarks"))

import suite  # noqa: E402

WORKLOADS = ["a", "timers", "threadsafe", "1KiB-1c", "tls-1k", "spawn-10w"]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[dict, str]:
    out = tmp_path_factory.mktemp("suite") / "suite.json"
    env = dict(os.environ, PYTHONPATH=str(TOP / "src"))
    command = [
        sys.executable, str(SUITE), "--configs", "stdlib,ours,compiled",
        "--groups", "micro,protocols,tls,spawn", "--workloads",
        ",".join(WORKLOADS), "--scale", "0.01", "--repeats", "2",
        "--compiled", str(out.parent / "none"), "--json", str(out),
    ]  # fmt: skip
    done = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return json.loads(out.read_text()), done.stdout


def test_meta(run):
    data, _ = run
    meta = data["meta"]
    for key in ("commit", "date", "python", "uvloop", "aiohttp", "machine",
                "repeats", "command"):  # fmt: skip
        assert key in meta
    assert meta["repeats"] == 2
    assert meta["configs"] == ["stdlib", "ours"]  # no compiled build: skipped
    assert meta["failures"] == []
    assert meta["malloc"] == suite.MALLOC_PINNED
    assert set(meta["machine"]) >= {"cpu", "cores", "loadavg_start", "loadavg_end"}


def test_results_shape(run):
    data, _ = run
    got = {(r["group"], r["workload"], r["config"]) for r in data["results"]}
    expected = {
        (group, workload, config)
        for group, workload in [
            ("micro", "a"), ("micro", "timers"), ("micro", "threadsafe"),
            ("protocols", "1KiB-1c"), ("tls", "tls-1k"), ("spawn", "spawn-10w"),
        ]  # fmt: skip
        for config in ("stdlib", "ours")
    }
    assert got == expected
    for result in data["results"]:
        assert len(result["wall"]) == len(result["cpu"]) == 2
        assert all(isinstance(x, float) and x > 0 for x in result["wall"])
        assert all(isinstance(x, float) and x >= 0 for x in result["cpu"])
        assert isinstance(result["extra"], dict)
    echo = [r for r in data["results"] if r["group"] == "protocols"]
    assert all(min(r["extra"]["requests"]) >= 1 for r in echo)


def test_report_tables(run, tmp_path):
    data, stdout = run
    assert "| micro | a |" in stdout and "| protocols | 1KiB-1c |" in stdout
    path = tmp_path / "suite.json"
    path.write_text(json.dumps(data))
    report = subprocess.run(
        [sys.executable, str(SUITE), "--report", str(path)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert "### Ratios to stdlib, CPU medians" in report
    assert "| (a) >= 2.2 |" in report
    assert "HTTP plaintext requests/s >= 1.1 | - | not measured" in report


def test_ratio_is_stdlib_over_config():
    data = {"results": [
        {"group": "micro", "workload": "a", "config": "stdlib",
         "wall": [3.0, 1.0, 2.0], "cpu": [2.0, 2.0, 9.0], "extra": {}},
        {"group": "micro", "workload": "a", "config": "ours",
         "wall": [1.0, 1.0, 1.0], "cpu": [1.0, 4.0, 0.5], "extra": {}},
    ]}  # fmt: skip
    assert suite.ratio_of(data, "micro", "a", "ours") == 2.0
    assert suite.ratio_of(data, "micro", "a", "ours", "wall") == 2.0
    assert suite.ratio_of(data, "micro", "a", "uvloop") is None


WRK_OUTPUT = """\
Running 4s test @ http://127.0.0.1:40000/
  1 threads and 50 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     3.80ms  612.00us  20.01ms   91.00%
    Req/Sec    13.21k   400.00    14.00k    80.00%
  Latency Distribution
     50%    3.70ms
     75%    3.90ms
     90%    4.20ms
     99%  950.00us
  52840 requests in 4.00s, 8.01MB read
Requests/sec:  13210.00
Transfer/sec:      2.00MB
"""


def test_wrk_output_parsed(monkeypatch):
    class Done:
        stdout = WRK_OUTPUT

    monkeypatch.setattr(suite.subprocess, "run", lambda *a, **k: Done())
    got = suite.wrk("http://127.0.0.1:40000/", 4, 50)
    assert got == {
        "rps": 13210.0,
        "requests": 52840,
        "p50_ms": pytest.approx(3.7),
        "p99_ms": pytest.approx(0.95),
    }
