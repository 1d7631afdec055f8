"""Warnings about triggers that parse but may not mean what their author thinks.

SY104: ``and`` and ``or`` mixed at one level without parentheses. Ours reads
``a or b and c`` as ``a or (b and c)``; Segment joins every condition at one level with
the last combinator written, so a trigger copied from Segment may change meaning.

SY106: ``path != 5``, Segment's form, with a number. Ours is ``not (path = 5)``, true on a
missing field; Segment's number comparisons need a number field, so it answers false there
(docs/triggers.md, "Differences from Segment").
SY109: a ``matches`` pattern with a repeat inside a repeat, ``(a+)+``. Ours runs in linear
time (RE2), but the same pattern copied to a backtracking engine can take forever.
"""
from __future__ import annotations

from engine.diagnostics import WARNING, Problem
from engine.trigger import nodes
from engine.trigger.errors import problem_at
from engine.trigger.operators import OperandError, resolve
from engine.trigger.regex import nested_quantifier


def lint(tree: nodes.Node, text: str) -> list[Problem]:
    """Every warning for the trigger ``tree`` parsed from ``text``."""
    guarded = {id(child) for node in _walk(tree) for child in _guarded(node)}
    problems = [problem for node in _walk(tree) for check in (_mixed_and_or, _nested_quantifier)
                if (problem := check(node, text))]
    problems += [problem for node in _walk(tree)
                 if id(node) not in guarded and (problem := _not_equal_number(node, text))]
    return sorted(problems, key=lambda p: (p.line, p.column))


def _guarded(node: nodes.Node) -> list[nodes.Node]:
    """The ``path != n`` conditions of an ``and`` that also says ``path exists``: Segment's meaning."""
    if not isinstance(node, nodes.AllOf):
        return []
    present = {path for child in node.children if (path := _exists_of(child)) is not None}
    return [child for child in node.children
            if isinstance(child, nodes.Condition) and child.path.segments in present]


def _exists_of(node: nodes.Node) -> tuple | None:
    """The path ``node`` says exists, in any spelling (``exists``, ``!= null``, ``is not null``, ``not (x = null)``)."""
    wanted = "exists"
    while isinstance(node, nodes.Negation):
        node, wanted = node.child, ("does not exist" if wanted == "exists" else "exists")
    if not isinstance(node, nodes.Condition):
        return None
    try:
        operator, _ = resolve(node.spelling, node.literal.value if node.literal is not None else None)
    except (OperandError, KeyError):
        return None
    return node.path.segments if operator.name == wanted else None


def _walk(node: nodes.Node):
    yield node
    if isinstance(node, (nodes.AllOf, nodes.AnyOf)):
        for child in node.children:
            yield from _walk(child)
    elif isinstance(node, nodes.Negation):
        yield from _walk(node.child)


#: How much of a long trigger SY104's message shows as it reads it.
_LONGEST_READING = 300


def _mixed_and_or(node: nodes.Node, text: str) -> Problem | None:
    # `and` binds tighter, so an unparenthesised mix is always an `or` over bare `and`s.
    # ANY(...) has no `or` joints: its commas already delimit each member.
    if not isinstance(node, nodes.AnyOf) or not node.joints:
        return None
    bare = [child for child in node.children if isinstance(child, nodes.AllOf) and not child.grouped]
    if not bare:
        return None
    joints = sorted([*node.joints, *(joint for child in bare for joint in child.joints)], key=lambda s: s.start)
    words = [text[joint.start:joint.end].lower() for joint in joints]
    where = next(joint for joint, word in zip(joints, words) if word != words[0])
    bare_ids = {id(child) for child in bare}  # by identity: nodes compare by value, deeply
    reading = " or ".join(_render(child, text, force_parens=id(child) in bare_ids) for child in node.children)
    if len(reading) > _LONGEST_READING:
        reading = reading[:_LONGEST_READING] + " ..."
    message = (
        f"'and' and 'or' mixed without parentheses: this reads as {reading}; add parentheses to say so "
        f"(Segment would join every condition here with '{words[-1]}')"
    )
    return problem_at("SY104", message, text, where.line, where.column, severity=WARNING)


def _not_equal_number(node: nodes.Node, text: str) -> Problem | None:
    if not (isinstance(node, nodes.Condition) and node.spelling == "!=" and node.literal is not None):
        return None
    value = node.literal.value
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return None
    written = " ".join(text[node.span.start:node.span.end].split())
    path = node.path.text
    message = (f"'{written}' is true here when {path} is missing, false in Segment (its number comparisons "
               f"need a number); for Segment's meaning write '{path} exists and {written}'")
    return problem_at("SY106", message, text, node.span.line, node.span.column, severity=WARNING)


def _nested_quantifier(node: nodes.Node, text: str) -> Problem | None:
    if not isinstance(node, nodes.Condition) or node.spelling not in ("matches", "does not match"):
        return None
    literal = node.literal
    if literal is None or not isinstance(literal.value, str) or not nested_quantifier(literal.value):
        return None
    message = (f"the pattern {literal.value!r} repeats a repeat; it runs in linear time here (RE2) but "
               "backtracks exponentially in most other engines: write it without the nesting if you can")
    return problem_at("SY109", message, text, literal.span.line, literal.span.column, severity=WARNING)


def _render(node: nodes.Node, text: str, force_parens: bool = False) -> str:
    """The node on one line, parenthesised as it is read (comments between conditions dropped)."""
    if isinstance(node, (nodes.AllOf, nodes.AnyOf)):
        joiner = " and " if isinstance(node, nodes.AllOf) else " or "
        inner = joiner.join(_render(child, text) for child in node.children)
        return f"({inner})" if node.grouped or force_parens else inner
    if isinstance(node, nodes.Negation):
        return "not " + _render(node.child, text)
    return " ".join(text[node.span.start:node.span.end].split())
