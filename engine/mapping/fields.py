"""Compile a mapping's ``fields:`` into a :class:`Mapper` that builds one payload per event.

This module owns the field value forms of spec section 2 and the null-omission rule; single
expressions are :mod:`engine.mapping.expressions`. Compiling collects every problem and never
raises; a field with a problem is left out of the mapper. Nothing here reads files.

Forms, by the Python type YAML gives:

- ``str``: a JMESPath expression over the event;
- ``int``, ``float``, ``bool``: that value; ``None``: the field is omitted;
- ``{"$literal": X}`` (that one key only): X as-is, never looked into;
- any other ``dict``: an object built field by field; a ``list``: an array built element by element.

A null value is omitted at every level the mapping builds. A built object or array left with
nothing in it is omitted too, so that a required object whose sources are all missing is
reported as missing rather than sent as ``{}``. Values an expression returns are kept exactly
as it returned them, nulls inside included.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import lru_cache
from types import MappingProxyType
from typing import Any

from engine.diagnostics import AtKey, Problem
from engine.generated import define
from engine.mapping.expressions import Expression, Path, constant, parse_expression

LITERAL_KEY = "$literal"


class Literal:
    """A value fixed in the rule file: a YAML number, boolean or null, or ``{$literal: X}``."""

    __slots__ = ("evaluate", "value")
    is_literal = True

    def __init__(self, value: Any):
        self.value = value
        self.evaluate = constant(value)

    def __repr__(self) -> str:
        return f"Literal({self.value!r})"


class Object:
    """An object built field by field; null fields are left out, and an empty result is null.

    ``evaluate`` is generated on first use (lint never calls it); from then on it is a plain
    attribute, as fast to call as before.
    """

    __slots__ = ("_steps", "evaluate", "fields")
    is_literal = False
    evaluate: Callable[[Any], Any]
    _steps: list[tuple[str, Callable[[Any], Any]]]

    def __init__(self, fields: dict[str, Node]):
        self.fields = fields

    def __getattr__(self, name: str) -> Any:
        # Called only while a slot is unset: the first read of ``evaluate`` (or ``_steps``) builds both.
        if name in ("evaluate", "_steps"):
            self._steps = [(field, node.evaluate) for field, node in self.fields.items()]
            self.evaluate = _generate_builder(self.fields, self._build)
            return getattr(self, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def _build(self, event: Any) -> dict | None:
        built = {}
        for name, evaluate in self._steps:
            value = evaluate(event)
            if value is not None:
                built[name] = value
        return built or None

    def __repr__(self) -> str:
        return f"Object({self.fields!r})"


_EMPTY: MappingProxyType = MappingProxyType({})  # what a missing intermediate key reads as: .get answers None


def _generate_builder(fields: dict[str, Node], build: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``build`` as one generated function: fields unrolled, paths of plain keys read inline.

    Same answers as ``build``, which it calls when an intermediate value on an inline path is
    not an object (``.get`` raises AttributeError there). Only our identifiers are written into
    the source; field names, keys and values are bound constants.
    """
    namespace: dict[str, Any] = {"_EMPTY": _EMPTY, "_build": build}
    lines = ["def evaluate(e):", "    try:", "        b = {}"]
    for index, (name, node) in enumerate(fields.items()):
        namespace[f"_n{index}"] = name
        if node.is_literal:
            value = node.evaluate(None)
            if value is None:
                continue  # a null is omitted
            if not isinstance(value, (dict, list)):  # an object or array is copied per event: evaluate does
                namespace[f"_c{index}"] = value
                lines.append(f"        b[_n{index}] = _c{index}")
                continue
        keys = getattr(node, "keys", None)
        alternatives = getattr(node, "alternatives", None)
        if keys:
            lines.append(f"        v = {_read(namespace, f'_k{index}', keys)}")
        elif alternatives:  # coalesce: the first value that is neither null nor ''
            indent = "        "
            for number, keys in enumerate(alternatives):
                lines.append(f"{indent}v = {_read(namespace, f'_k{index}_{number}', keys)}")
                lines.append(f'{indent}if v is None or v == "":')
                indent += "    "
            lines.append(f"{indent}v = None")
        else:
            namespace[f"_f{index}"] = node.evaluate
            lines.append(f"        v = _f{index}(e)")
        lines.append("        if v is not None:")
        lines.append(f"            b[_n{index}] = v")
    lines += ["        return b or None", "    except AttributeError:", "        return _build(e)"]
    return define("\n".join(lines) + "\n", "evaluate", namespace, "<fields>")


def _read(namespace: dict[str, Any], prefix: str, keys: tuple[str, ...]) -> str:
    """``e.get(k0, _EMPTY).get(k1)``: the value at ``keys``, its keys bound in ``namespace`` as ``prefix_0``..."""
    for step, key in enumerate(keys):
        namespace[f"{prefix}_{step}"] = key
    return "e" + "".join(f".get({prefix}_{step}, _EMPTY)" for step in range(len(keys) - 1)) \
        + f".get({prefix}_{len(keys) - 1})"


class Array:
    """An array built element by element; null elements are left out, and an empty result is null."""

    __slots__ = ("_steps", "items")
    is_literal = False

    def __init__(self, items: list[Node]):
        self.items = items
        self._steps = [item.evaluate for item in items]

    def evaluate(self, event: Any) -> list | None:
        built = [value for value in (evaluate(event) for evaluate in self._steps) if value is not None]
        return built or None

    def __repr__(self) -> str:
        return f"Array({self.items!r})"


Node = Expression | Literal | Object | Array


class Mapper:
    """Builds the payload of one mapping for each event. Immutable, so safe to share across threads."""

    def __init__(self, fields: dict[str, Node | None]):
        #: Every top-level field name the mapping sets, to its compiled value; None where the
        #: value had a problem (reported by compile_fields) and is skipped. An explicit null is
        #: ``Literal(None)``.
        self.fields = fields
        self._root = Object({name: node for name, node in fields.items() if node is not None})

    def apply(self, event: Any) -> dict:
        """The payload for ``event``; raises MappingError (with the field's path) if a field fails."""
        return self._root.evaluate(event) or {}

    def literal_values(self) -> dict[str, Any]:
        """Top-level fields whose value is fixed in the rule file (for type checks by lint).

        Covers numbers, booleans, ``{$literal: X}`` and JMESPath literals such as ``'text'`` and
        `` `5` ``; a null literal is left out, because it sets nothing.
        """
        values = {}
        for name, node in self.fields.items():
            if node is not None and node.is_literal:
                value = node.evaluate(None)
                if value is not None:
                    values[name] = value
        return values

    def nested_literals(self) -> Iterator[tuple[str, tuple, Any]]:
        """``(field, path inside it, value)`` of each value fixed in the rule file inside a built object or
        array (``headers: {X-Count: 5}``), for lint to check against the field's schema there."""
        for name, node in self.fields.items():
            if isinstance(node, (Object, Array)):
                for inner, value in _literal_leaves(node, ()):
                    yield name, inner, value


def _literal_leaves(node: Node, path: tuple) -> Iterator[tuple[tuple, Any]]:
    children = node.fields.items() if isinstance(node, Object) else \
        enumerate(node.items) if isinstance(node, Array) else ()
    for key, child in children:
        if child.is_literal:
            if (value := child.evaluate(None)) is not None:
                yield path + (key,), value
        else:
            yield from _literal_leaves(child, path + (key,))


def compile_fields(spec: Any, where: Path = ()) -> tuple[Mapper, list[tuple[Path, Problem]]]:
    """Compile ``spec`` (a mapping's ``fields:``) once; problems are ``(where + key path, Problem)``."""
    problems: list[tuple[Path, Problem]] = []
    if spec is None:
        return Mapper({}), problems
    if not isinstance(spec, dict):
        problems.append((tuple(where), Problem("SY002", f"fields must be a mapping of field names, got {_kind(spec)}")))
        return Mapper({}), problems
    fields = _compile_object(spec, (), problems)
    located = [(type(path)(tuple(where) + path), problem) for path, problem in problems]  # an AtKey stays one
    return Mapper(fields), located


def merge_defaults(spec: Any, defaults: dict[str, Any]) -> Any:
    """``spec`` plus each default whose top-level key the spec does not set.

    A key the spec sets to null keeps its null: that means "omit this field", not "use the
    default". A spec that is not a mapping is returned unchanged for compile_fields to report.
    """
    if spec is None:
        spec = {}
    if not isinstance(spec, dict):
        return spec
    merged = dict(spec)
    for name, default in defaults.items():
        merged.setdefault(name, default)
    return merged


def _compile(value: Any, path: Path, problems: list) -> Node | None:
    if isinstance(value, str):
        expression, found = _expression(value, path)
        problems.extend((path, problem) for problem in found)
        return expression
    if isinstance(value, float):
        return Literal(value)  # not shared: 0.0 and -0.0 are equal keys but different numbers
    if value is None or isinstance(value, (bool, int)):
        return _literal(value)
    if isinstance(value, dict):
        if len(value) == 1 and LITERAL_KEY in value:
            return Literal(value[LITERAL_KEY])
        fields = _compile_object(value, path, problems)
        return Object({name: node for name, node in fields.items() if node is not None})
    if isinstance(value, list):
        items = [_compile(item, path + (index,), problems) for index, item in enumerate(value)]
        return Array([item for item in items if item is not None])
    problems.append((path, Problem(
        "SY002",
        f"a field value must be an expression (text), a number, true, false, null, a mapping or a list, "
        f"got {_kind(value)}; to send it as text, quote it and use {{$literal: ...}}",
    )))
    return None


@lru_cache(maxsize=4096)
def _expression(text: str, path: Path) -> tuple[Expression | None, tuple[Problem, ...]]:
    """One shared, immutable Expression per text and place: rule sets repeat both in every mapping."""
    parsed, found = parse_expression(text)
    return (None if parsed is None else Expression(text, parsed, path)), tuple(found)


@lru_cache(maxsize=1024, typed=True)  # typed: 1, 1.0 and True are equal keys but different literals
def _literal(value: Any) -> Literal:
    return Literal(value)


def _compile_object(spec: dict, path: Path, problems: list) -> dict[str, Node | None]:
    fields: dict[str, Node | None] = {}
    for name, value in spec.items():
        if not isinstance(name, str):
            # YAML reads unquoted on/off/yes/no and numbers as non-strings.
            problems.append((AtKey(path + (name,)), Problem(
                "SY002", f"YAML reads this field name as {_kind(name)}, not text: quote it"
            )))
            continue
        fields[name] = _compile(value, path + (name,), problems)
    return fields


def _kind(value: Any) -> str:
    names = {bool: "a boolean", int: "a number", float: "a number", str: "text", list: "a list", dict: "a mapping",
             type(None): "null"}
    return names.get(type(value), f"a {type(value).__name__}")
