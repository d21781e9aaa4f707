"""What the interpreter says, by Python version (not a test module).

The messages of the language and of asyncio that changed between 3.11 and 3.15, as
regular expressions for `pytest.raises(match=...)`. Tests of chapters 1-4 and 9-12
use them, so a test checks the wording of the Python it runs on.
"""

from __future__ import annotations

import re
import sys

PY314 = sys.version_info >= (3, 14)


def not_awaitable(type_name: str) -> str:
    """The message of `await obj` when type `type_name` has no `__await__`."""
    if PY314:
        return rf"^'{re.escape(type_name)}' object can't be awaited$"
    return rf"^object {re.escape(type_name)} can't be used in 'await' expression$"


def run_refuses_non_awaitable(obj_repr: str) -> tuple[type[Exception], str]:
    """The exception type and message of `asyncio.run(obj)`, `obj` not awaitable."""
    if PY314:
        # Why: 3.14's asyncio.run also runs awaitables, and its message says so.
        return (
            TypeError,
            r"^An asyncio\.Future, a coroutine or an awaitable is required$",
        )
    return ValueError, rf"^a coroutine was expected, got {re.escape(obj_repr)}$"


def bad_await_result(owner: str, got: str) -> str:
    """The message of `await obj` when `owner.__await__()` returned a `got`.

    `owner` is the class as 3.15 prints it (module and qualified name); `got` is the
    returned object's type name, or "coroutine".
    """
    if sys.version_info >= (3, 15):
        return (
            rf"^{re.escape(owner)}\.__await__\(\) must return an iterator, not {got}$"
        )
    if got == "coroutine":
        return r"^__await__\(\) returned a coroutine$"
    return rf"^__await__\(\) returned non-iterator of type '{re.escape(got)}'$"
