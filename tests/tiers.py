"""What puts a test in the slow tier (``-m slow``) without a mark of its own: the fixtures and helpers
it uses.

A fixture that trains, starts a subprocess or a server requests the ``slow_setup`` fixture; a helper that does
is decorated with :func:`slow_helper`. ``tests/conftest.py`` marks every test that uses either, directly or
through other fixtures and helpers, so that a new test lands in its tier by what it calls.
"""

from __future__ import annotations

from collections.abc import Callable
from types import FunctionType
from typing import Any, TypeVar

import pytest

F = TypeVar("F", bound=Callable[..., Any])

_SLOW = "__slow_helper__"


def slow_helper(function: F) -> F:
    """Declares ``function`` slow (it trains, or starts a process or a server): its callers are slow tests."""
    setattr(function, _SLOW, True)
    return function


def _calls_slow(function: FunctionType, seen: set[int]) -> bool:
    """Whether ``function`` names a slow helper, itself or through the tests' module-level functions it
    names (the product's own functions are not followed: a test is slow by what the tests call)."""
    if id(function) in seen:
        return False
    seen.add(id(function))
    names = function.__code__.co_names + tuple(
        name for const in function.__code__.co_consts if hasattr(const, "co_names") for name in const.co_names
    )
    for name in names:
        found = function.__globals__.get(name)
        if getattr(found, _SLOW, False):
            return True
        ours = isinstance(found, FunctionType) and found.__module__.startswith("tests.")
        if ours and _calls_slow(found, seen):
            return True
    return False


def is_slow(item: pytest.Item) -> bool:
    """A test using a fixture that requests ``slow_setup``, or calling a slow helper."""
    if "slow_setup" in getattr(item, "fixturenames", ()):
        return True
    function = getattr(item, "function", None)
    return isinstance(function, FunctionType) and _calls_slow(function, set())
