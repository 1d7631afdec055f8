"""Syntax tree -> closures. The only code that runs per event is what this module returns.

Each condition becomes ``test(get(event))``: the path's getter was specialised when the
path was parsed, and the test was built from the literal here (regexes compiled, numeric
strings and timestamps parsed), so nothing parses text per event. ``and``/``or`` lists
are joined by :mod:`engine.predicates`.

Every bad literal (SY105) and bad regex (SY103, SY108) is collected before raising, so lint shows
all of them at once.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable

from engine.diagnostics import Problem
from engine.paths import Path
from engine.predicates import all_of, any_of
from engine.trigger import nodes
from engine.trigger.errors import TriggerError, problem_at
from engine.trigger.operators import OperandError, Operator, Test, resolve
from engine.trigger.regex import Unsupported

Match = Callable[[Any], bool]


@dataclass(frozen=True)
class Compiled:
    """A compiled node: ``match(event)``, plus what explain needs to show its working.

    ``path``, ``operator`` and ``test`` are set on a condition and only there: the code that reads
    them reads conditions (a group has ``children``), so they are typed as a condition has them.
    """

    node: nodes.Node
    match: Match
    children: tuple["Compiled", ...] = ()
    path: Path = None  # type: ignore[assignment]
    operator: Operator = None  # type: ignore[assignment]
    operand: Any = None
    test: Test = None  # type: ignore[assignment]


def compile_tree(tree: nodes.Node, text: str) -> Compiled:
    """Compile ``tree``; raise :class:`TriggerError` listing every SY103 and SY105."""
    problems: list[Problem] = []
    compiled = _compile(tree, text, problems)
    if problems:
        raise TriggerError(problems)
    return compiled


def _compile(node: nodes.Node, text: str, problems: list[Problem]) -> Compiled:
    if isinstance(node, nodes.Condition):
        return _condition(node, text, problems)
    if isinstance(node, (nodes.AllOf, nodes.AnyOf)):
        children = tuple(_compile(child, text, problems) for child in node.children)
        combine = all_of if isinstance(node, nodes.AllOf) else any_of
        return Compiled(node, combine([child.match for child in children]), children)
    if isinstance(node, nodes.Negation):
        child = _compile(node.child, text, problems)
        inner = child.match
        return Compiled(node, lambda event: not inner(event), (child,))
    return Compiled(node, lambda event: True)  # nodes.Always


def _condition(node: nodes.Condition, text: str, problems: list[Problem]) -> Compiled:
    literal = node.literal
    where = literal.span if literal is not None else node.span
    try:
        operator, operand = resolve(node.spelling, literal.value if literal is not None else None)
        test = operator.value_test(operand, wildcard=node.path.has_wildcard)
    except OperandError as error:
        problems.append(problem_at("SY105", str(error), text, where.line, where.column))
        return Compiled(node, lambda event: False)
    except Unsupported as error:
        problems.append(problem_at("SY108", f"regular expression: {error}", text, where.line, where.column))
        return Compiled(node, lambda event: False)
    except re.error as error:
        problems.append(problem_at("SY103", f"invalid regular expression: {error}", text, where.line, where.column))
        return Compiled(node, lambda event: False)
    get = node.path.get

    def match(event: Any) -> bool:
        return test(get(event))
    return Compiled(node, match, path=node.path, operator=operator, operand=operand, test=test)
