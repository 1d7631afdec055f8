"""The trigger syntax tree: what was written, with where it was written.

Nodes are built by :mod:`engine.trigger.parser` and read by lint and the compiler. They keep
the operator as spelt (``"="``, ``"is less than"``, ``"match()"``); deciding what a spelling
means with its literal is the compiler's job (:func:`engine.trigger.operators.resolve`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.paths import Path


@dataclass(frozen=True)
class Span:
    """A stretch of the trigger text: offsets ``start:end`` and the 1-based line/column of start."""

    start: int
    end: int
    line: int
    column: int


@dataclass(frozen=True, kw_only=True)
class Node:
    span: Span


@dataclass(frozen=True, kw_only=True)
class Literal(Node):
    """A value written in the trigger: str, int, float, bool, None or a list of those."""

    value: Any


@dataclass(frozen=True, kw_only=True)
class Condition(Node):
    """``path operator [literal]``, or a function form such as ``contains(path, "x")``."""

    path: Path
    spelling: str
    literal: Literal | None = None


@dataclass(frozen=True, kw_only=True)
class AllOf(Node):
    """``a and b and ...`` or ``ALL(a, b, ...)``.

    ``joints`` are the spans of the ``and`` keywords; ``grouped`` is true when the
    expression was delimited by parentheses or ``ALL(...)`` (lint's SY104 needs both).
    """

    children: tuple[Node, ...]
    joints: tuple[Span, ...] = ()
    grouped: bool = False


@dataclass(frozen=True, kw_only=True)
class AnyOf(Node):
    """``a or b or ...`` or ``ANY(a, b, ...)``; fields as for :class:`AllOf`."""

    children: tuple[Node, ...]
    joints: tuple[Span, ...] = ()
    grouped: bool = False


@dataclass(frozen=True, kw_only=True)
class Negation(Node):
    """``not child``."""

    child: Node


@dataclass(frozen=True, kw_only=True)
class Always(Node):
    """The trigger ``true``: matches every event."""
