"""Tests for the typist (book/01_hello_world.ipynb -> asynciodepth/hello.py)."""

from __future__ import annotations

import asyncio
import io
import random

import pytest

from asynciodepth.hello import (
    TEXT,
    keystroke_pause,
    keystroke_pauses,
    typist,
    typist_sync,
)


def test_pauses_are_seeded_and_never_negative():
    assert keystroke_pauses(rng=random.Random(1)) == keystroke_pauses(
        rng=random.Random(1)
    )
    assert len(keystroke_pauses("abc", random.Random(1))) == 3

    class Wild:
        def gauss(self, mu, sigma):
            return -5.0

    assert keystroke_pause(Wild()) == 0


def test_async_typist_types_text_and_sleeps_the_drawn_pauses():
    slept: list[float] = []

    async def record_sleep(delay: float) -> None:
        slept.append(delay)

    out = io.StringIO()
    waited = asyncio.run(
        typist("Hi!", rng=random.Random(7), out=out, sleep=record_sleep)
    )
    assert out.getvalue() == "Hi!\n"
    assert slept == keystroke_pauses("Hi!", random.Random(7))
    assert waited == pytest.approx(sum(slept))


def test_sync_typist_matches_async_typist():
    slept: list[float] = []
    out = io.StringIO()
    waited = typist_sync(rng=random.Random(3), out=out, sleep=slept.append)
    assert out.getvalue() == TEXT + "\n"
    assert slept == keystroke_pauses(rng=random.Random(3))
    assert waited == pytest.approx(sum(slept))


def test_typist_uses_asyncio_sleep_by_default():
    out = io.StringIO()

    class Fast:
        def gauss(self, mu, sigma):
            return 0.0

    assert asyncio.run(typist("ok", rng=Fast(), out=out)) == 0
    assert out.getvalue() == "ok\n"
