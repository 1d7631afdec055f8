"""A plain tree-walking evaluator of the trigger syntax tree: the baseline for the trigger benchmark.

It reads the same tree as the compiler (:func:`engine.trigger.parser.parse` ->
:mod:`engine.trigger.nodes`) and is what a careful engineer writes first: when a trigger is
loaded, each condition's spelling is resolved once to an operator name and operand with the
engine's own :func:`~engine.trigger.operators.resolve` (Segment's shorthands such as
``= null`` and ``match(path, "x*")`` are read there); per event it walks the nodes, looks the
path up segment by segment, and dispatches on the operator's name to a function of
``(value, operand)``. Literals are used as written: a regular expression goes through
``re.search`` (and so ``re``'s own cache), and a string operand of ``<`` is read as a number or
a timestamp where it is used. Nothing is deliberately slow; what it lacks is what the compiler
adds (closures specialised per condition, getters specialised per path, literals prepared once).

It must give the compiled triggers' answers on every event: tests/test_benchmarks.py compares
the two on the generated events. The semantics are those of docs/triggers.md.
"""
from __future__ import annotations

import operator as _op
import re
from typing import Any

from engine.paths import MISSING, WILDCARD
from engine.trigger import nodes
from engine.trigger.operators import instant, numeric, resolve
from engine.trigger.parser import parse

_NUMBER_TYPES = (int, float)


def _is_number(value: Any) -> bool:
    return type(value) in _NUMBER_TYPES  # bool is an int in Python, never a number in JSON


def _equals(value: Any, operand: Any) -> bool:
    if isinstance(operand, bool):
        return value is operand
    if isinstance(operand, str):
        return isinstance(value, str) and value == operand
    return _is_number(value) and value == operand


def _contains(value: Any, operand: Any) -> bool:
    if isinstance(value, str):
        return isinstance(operand, str) and operand in value
    if isinstance(value, list):
        for element in value:
            if _equals(element, operand):
                return True
    return False


def _starts_with(value: Any, operand: str) -> bool:
    return isinstance(value, str) and value.startswith(operand)


def _ends_with(value: Any, operand: str) -> bool:
    return isinstance(value, str) and value.endswith(operand)


def _exists(value: Any, _operand: None) -> bool:
    return value is not None and value is not MISSING


def _in(value: Any, items: list) -> bool:
    for item in items:
        if _equals(value, item):
            return True
    return False


def _matches(value: Any, pattern: str) -> bool:
    return isinstance(value, str) and re.search(pattern, value) is not None


def _ordering(compare):
    def test(value: Any, operand: Any) -> bool:
        if _is_number(operand):
            return _is_number(value) and compare(value, operand)
        if isinstance(value, str):
            seen, wanted = instant(value), instant(operand)
            if seen is not None and wanted is not None:
                return compare(seen, wanted)
            return compare(value, operand)
        if _is_number(value):
            number = numeric(operand)
            return number is not None and compare(value, number)
        return False
    return test


def _is_string_or_list(value: Any) -> bool:
    return isinstance(value, (str, list))


def _is_string(value: Any) -> bool:
    return isinstance(value, str)


# Operator name -> the positive test of (value, operand).
POSITIVE = {
    "is": _equals,
    "contains": _contains,
    "starts with": _starts_with,
    "ends with": _ends_with,
    "exists": _exists,
    "is true": lambda value, _operand: value is True,
    "is false": lambda value, _operand: value is False,
    "in": _in,
    "matches": _matches,
    "is less than": _ordering(_op.lt),
    "is less than or equal to": _ordering(_op.le),
    "is greater than": _ordering(_op.gt),
    "is greater than or equal to": _ordering(_op.ge),
}
# Negated operator name -> (its positive, the kind of value it applies to, or None for "any value").
NEGATED = {
    "is not": ("is", None),
    "does not contain": ("contains", _is_string_or_list),
    "does not start with": ("starts with", _is_string),
    "does not end with": ("ends with", _is_string),
    "does not exist": ("exists", None),
    "not in": ("in", None),
    "does not match": ("matches", _is_string),
}


def lookup(event: Any, segments: tuple) -> Any:
    """The value at ``segments``, MISSING if absent; a list of the values found if ``[*]`` is among them."""
    if WILDCARD in segments:
        found: list = []
        _collect(event, segments, 0, found)
        return found
    value = event
    for segment in segments:
        value = _step(value, segment)
        if value is MISSING:
            break
    return value


def _step(value: Any, segment: Any) -> Any:
    if isinstance(value, dict):
        return value.get(segment if isinstance(segment, str) else str(segment), MISSING)
    if isinstance(value, list) and isinstance(segment, int) and -len(value) <= segment < len(value):
        return value[segment]
    return MISSING


def _collect(value: Any, segments: tuple, start: int, found: list) -> None:
    for position in range(start, len(segments)):
        segment = segments[position]
        if segment is WILDCARD:
            if isinstance(value, list):
                for element in value:
                    _collect(element, segments, position + 1, found)
            return
        value = _step(value, segment)
        if value is MISSING:
            return
    found.append(value)


class Interpreted:
    """A trigger held as its syntax tree and evaluated by walking it: ``matches(event) -> bool``."""

    def __init__(self, text: str):
        self.text = text
        self.tree = parse(text)
        self.operators: dict[int, tuple[str, Any]] = {}  # id(condition) -> (operator name, operand)
        self._resolve(self.tree)

    def _resolve(self, node: nodes.Node) -> None:
        if isinstance(node, nodes.Condition):
            operator, operand = resolve(node.spelling, node.literal.value if node.literal is not None else None)
            self.operators[id(node)] = (operator.name, operand)
        elif isinstance(node, (nodes.AllOf, nodes.AnyOf)):
            for child in node.children:
                self._resolve(child)
        elif isinstance(node, nodes.Negation):
            self._resolve(node.child)

    def matches(self, event: Any) -> bool:
        return self.evaluate(self.tree, event)

    def evaluate(self, node: nodes.Node, event: Any) -> bool:
        if isinstance(node, nodes.Condition):
            return self.condition(node, event)
        if isinstance(node, nodes.AllOf):
            for child in node.children:
                if not self.evaluate(child, event):
                    return False
            return True
        if isinstance(node, nodes.AnyOf):
            for child in node.children:
                if self.evaluate(child, event):
                    return True
            return False
        if isinstance(node, nodes.Negation):
            return not self.evaluate(node.child, event)
        return True  # nodes.Always

    def condition(self, node: nodes.Condition, event: Any) -> bool:
        name, operand = self.operators[id(node)]
        value = lookup(event, node.path.segments)
        if name in NEGATED:
            positive, applies_to = NEGATED[name]
            test = POSITIVE[positive]
        else:
            test, applies_to = POSITIVE[name], None
        if node.path.has_wildcard:  # `[*]`: any value for a positive operator, none for a negated one
            held = False
            for each in value:
                if test(each, operand):
                    held = True
                    break
            if name not in NEGATED:
                return held
            if applies_to is not None:
                return not held and any(applies_to(each) for each in value)
            return not held
        if name not in NEGATED:
            return test(value, operand)
        if applies_to is not None and not applies_to(value):
            return False
        return not test(value, operand)
