"""``switchyard test``: run the ``tests:`` examples written in rule files.

A test checks its own destination only, so a file's tests keep passing when other rule
files are added beside it. Payloads are compared as a subset: the listed keys must be equal.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .integers import any_size
from .model import Result
from .ruleset import RuleSet

_ABSENT = object()


@dataclass
class Outcome:
    destination: str
    file: str
    line: int
    name: str
    failures: list = field(default_factory=list)
    actual: list = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures


def subset_difference(expected, actual, where="payload") -> list[str]:
    """Where ``actual`` differs from ``expected``: dicts need only the expected keys, the rest must be equal."""
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{where}: expected an object, got {_shown(actual)}"]
        out = []
        for key, value in expected.items():
            if key not in actual:
                out.append(f"{where}.{key}: missing (expected {_shown(value)})")
            else:
                out.extend(subset_difference(value, actual[key], f"{where}.{key}"))
        return out
    if isinstance(expected, list) and isinstance(actual, list) and len(expected) == len(actual):
        out = []
        for index, (want, got) in enumerate(zip(expected, actual)):
            out.extend(subset_difference(want, got, f"{where}[{index}]"))
        return out
    same = expected == actual and type(expected) is type(actual) or (
        isinstance(expected, (int, float)) and isinstance(actual, (int, float))
        and not isinstance(expected, bool) and not isinstance(actual, bool) and expected == actual) or (
        isinstance(expected, float) and isinstance(actual, float) and expected != expected and actual != actual)
    return [] if same else [f"{where}: expected {_shown(expected)}, got {_shown(actual)}"]  # NaN: a `.nan` expected


def _shown(value: Any, most: int = 200) -> str:
    """``value`` as Python writes it, an integer of any length an event may hold too, cut to ``most``."""
    with any_size():
        text = repr(value)
    return text if len(text) <= most else text[:most - 1] + "…"


def run_case(destination, case) -> Outcome:
    outcome = Outcome(destination.name, destination.file, case.line, case.name)
    single = RuleSet([destination])
    result: Result = single.evaluate(case.event)
    outcome.actual = [{"mapping": c.mapping, "action": c.action, "payload": c.payload} for c in result.calls] + [
        {"mapping": e.mapping, "action": e.action, "error": e.message} for e in result.errors]
    failures = outcome.failures
    if case.expect is not None:
        got = [c.mapping for c in result.calls]
        want = [e.get("mapping") for e in case.expect]
        if got != want:
            failures.append(f"expected calls from {want or 'no mapping'}, got {got or 'none'}")
        else:
            for expected, call in zip(case.expect, result.calls):
                if "action" in expected and expected["action"] != call.action:
                    failures.append(f"{call.mapping}: expected action {expected['action']!r}, got {call.action!r}")
                failures.extend(f"{call.mapping}: {d}" for d in
                                subset_difference(expected.get("payload", {}), call.payload))
    if case.errors is not None:
        for expected in case.errors:
            if not any(e.mapping == expected["mapping"] and expected["message"] in e.message for e in result.errors):
                failures.append(f"expected {expected['mapping']!r} to fail with {expected['message']!r}")
        unexpected = [e for e in result.errors if not any(x["mapping"] == e.mapping for x in case.errors)]
        failures.extend(f"unexpected error from {e.mapping!r}: {e.message}" for e in unexpected)
    elif result.errors:
        failures.extend(f"unexpected error from {e.mapping!r}: {e.message}" for e in result.errors)
    if case.discarded is not None and result.reason != case.discarded:
        failures.append(f"expected the event to be discarded ({case.discarded!r}), got {result.reason!r}")
    return outcome


def run_tests(rules: RuleSet) -> list[Outcome]:
    return [run_case(d, case) for d in rules.destinations for case in d.tests]
