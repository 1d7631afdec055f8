"""What a trigger requires of an event's ``type`` and ``event`` fields, read from its compiled tree.

Most real triggers key on the event's type and name (``type = "track" and event = "Order
Completed"``). :func:`required_keys` finds those requirements so :mod:`engine.index` can skip
triggers that cannot match an event without running them. It must only ever return a
requirement that every matching event satisfies: when in doubt a field is left unconstrained.
"""
from __future__ import annotations

from engine.trigger import nodes
from engine.trigger.compiler import Compiled

#: The fields triggers are indexed by.
KEY_FIELDS = ("type", "event")

#: field -> the string values a matching event must have there (absent: any value).
Keys = dict[str, frozenset[str]]


def required_keys(compiled: Compiled) -> Keys:
    """For each key field the trigger constrains, the only string values it can match."""
    node = compiled.node
    if isinstance(node, nodes.Condition):
        return _condition(compiled)
    if isinstance(node, nodes.AllOf):
        keys: Keys = {}
        for child in compiled.children:
            for field, values in required_keys(child).items():
                keys[field] = keys[field] & values if field in keys else values
        return keys
    if isinstance(node, nodes.AnyOf):
        branches = [required_keys(child) for child in compiled.children]
        return {field: frozenset().union(*(branch[field] for branch in branches))
                for field in KEY_FIELDS if all(field in branch for branch in branches)}
    return {}  # a negation or `true` requires nothing of the key fields


def _condition(compiled: Compiled) -> Keys:
    path, operator, operand = compiled.path, compiled.operator, compiled.operand
    if path is None or len(path.segments) != 1 or path.segments[0] not in KEY_FIELDS:
        return {}
    # Only a string equals a string, so these operands pin the field to string values.
    if operator.name == "is" and isinstance(operand, str):
        return {path.segments[0]: frozenset((operand,))}
    if operator.name == "in" and all(isinstance(item, str) for item in operand):
        return {path.segments[0]: frozenset(operand)}
    return {}


def compared_values(compiled: Compiled) -> Keys:
    """Every string a key field is compared with by ``is``, ``is not``, ``in`` or ``not in``.

    An event whose field holds none of these can have those conditions decided without
    reading it (see :class:`engine.trigger.codegen.NoneOf`). Every key field the trigger
    reads at all is present, with an empty set when no such comparison names a value.
    """
    found: dict[str, set[str]] = {}
    stack = [compiled]
    while stack:
        node = stack.pop()
        stack.extend(node.children)
        path, operator = node.path, node.operator
        if path is None or operator is None or len(path.segments) != 1 or path.segments[0] not in KEY_FIELDS:
            continue
        values = found.setdefault(path.segments[0], set())
        operand = node.operand
        if operator.name in ("is", "is not") and isinstance(operand, str):
            values.add(operand)
        elif operator.name in ("in", "not in"):
            values.update(item for item in operand if isinstance(item, str))
    return {field: frozenset(values) for field, values in found.items()}
