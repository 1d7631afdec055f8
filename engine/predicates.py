"""Combine predicates (functions of one value returning a truth value) into one.

Shared by the trigger compiler and the schema compiler, which both build a test per node
and then join a node's tests. The short cases are straight-line lambdas: a loop costs more
than the calls it makes when there are only two or three.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

Predicate = Callable[[Any], Any]


def all_of(tests: Sequence[Predicate]) -> Predicate:
    """True when every test is (stopping at the first that is not)."""
    if len(tests) == 1:
        return tests[0]
    if len(tests) == 2:
        a, b = tests
        return lambda value: a(value) and b(value)
    if len(tests) == 3:
        a, b, c = tests
        return lambda value: a(value) and b(value) and c(value)
    tests = tuple(tests)

    def test(value: Any) -> bool:
        for one in tests:
            if not one(value):
                return False
        return True
    return test


def any_of(tests: Sequence[Predicate]) -> Predicate:
    """True when some test is (stopping at the first that is)."""
    if len(tests) == 1:
        return tests[0]
    if len(tests) == 2:
        a, b = tests
        return lambda value: a(value) or b(value)
    if len(tests) == 3:
        a, b, c = tests
        return lambda value: a(value) or b(value) or c(value)
    tests = tuple(tests)

    def test(value: Any) -> bool:
        for one in tests:
            if one(value):
                return True
        return False
    return test
