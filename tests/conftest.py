"""Shared fixtures: every behaviour test runs on three setups.

- ``stdlib``: asyncio's own loop with its C Task;
- ``ours``: asynciodepth.EventLoop as it comes, with asyncio's (C) Future and
  Task, which create_future() and create_task() return by default;
- ``ours+pytask``: asynciodepth.EventLoop(python_tasks=True), with the book's
  pure-Python Future and Task.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from typing import Any

import pytest
from io_helpers import IMPLS, WITH_STDLIB

import asynciodepth

SETUPS = ["stdlib", "ours", "ours+pytask"]


class Setup:
    """One loop implementation, with the few helpers tests need."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.ours = name != "stdlib"
        # True when the loop's create_future()/create_task() make our Python ones.
        self.python_tasks = name == "ours+pytask"

    def __repr__(self) -> str:
        return self.name

    def new_loop(self, **options: Any) -> asyncio.AbstractEventLoop:
        """A new loop; options (clock=, observer=) only apply to ours."""
        if self.name == "stdlib":
            return asyncio.new_event_loop()
        return asynciodepth.EventLoop(python_tasks=self.python_tasks, **options)

    @property
    def task_class(self) -> type:
        return asynciodepth.Task if self.python_tasks else asyncio.Task

    @property
    def future_class(self) -> type:
        return asynciodepth.Future if self.python_tasks else asyncio.Future

    def eager_factory(self) -> Callable[..., Any]:
        """The eager task factory of this setup's Task class (3.12+ for the C one)."""
        if self.python_tasks:
            return asynciodepth.eager_task_factory
        return asyncio.eager_task_factory

    def run(self, main: Any, **options: Any) -> Any:
        """Run main with asyncio.Runner on a fresh loop of this setup."""
        with asyncio.Runner(loop_factory=lambda: self.new_loop(**options)) as runner:
            return runner.run(main)


def compare_with_asyncio(
    setup: Setup, impls: dict[str, Any], scenario: Callable[..., Any]
) -> list[str]:
    """Run scenario(impl, events) once with each of impls on setup; return the events.

    impls maps "asyncio" and "ours" to what the scenario is given (a class, a
    namespace of functions). Each run gets a fresh events list and a fresh loop
    on a VirtualClock; the two lists must be equal.
    """
    results = {}
    for name, impl in impls.items():
        events: list[str] = []

        async def main(impl=impl, events=events):
            # Bound every scenario: a bug must fail the test, not hang it.
            await asyncio.wait_for(scenario(impl, events), 5)

        setup.run(main(), clock=asynciodepth.VirtualClock())
        results[name] = events
    assert results["ours"] == results["asyncio"], results
    return results["ours"]


@pytest.fixture(params=SETUPS)
def setup(request) -> Setup:
    return Setup(request.param)


@pytest.fixture
def loop(setup):
    loop = setup.new_loop()
    yield loop
    if not loop.is_closed():
        loop.close()


requires_312 = pytest.mark.skipif(
    sys.version_info < (3, 12), reason="asyncio feature added in 3.12"
)


# -- The I/O tests of chapter "epoll" (test_io_events, test_streams, test_transports).


@pytest.fixture(params=IMPLS)
def impl(request) -> str:
    """Each poller of our loop, in turn (see io_helpers.IMPLS)."""
    return request.param


@pytest.fixture(params=WITH_STDLIB)
def any_impl(request) -> str:
    """Each poller of our loop, and the stdlib loop (see io_helpers.WITH_STDLIB)."""
    return request.param
