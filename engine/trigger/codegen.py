"""A compiled trigger as one generated Python function, for the per-event path.

The closures of :mod:`.compiler` cost a Python call per condition, per getter and per
``and``; Segment's Track Event preset alone is thirteen conditions. Here the whole tree
becomes one expression, with paths of plain keys read inline (``e.get(k0, _EMPTY).get(k1,
_MISSING)``) and the common operators written out.

Only our own identifiers and operators are written into the source. Every key and literal
from the rule file is bound as a constant in the function's namespace (``_k0``, ``_c1``),
so rule text is never spliced into code and cannot change what the code does.

An intermediate value that is not an object (null, a string, an array) makes ``.get``
raise AttributeError; the function then answers with the closures, which handle every
shape. A tree too deep for Python's parser keeps the closures too. Either way the answer
is the closures' answer; ``tests/test_triggers.py`` checks that on random triggers.
"""
from __future__ import annotations

from types import MappingProxyType
from typing import Any, Callable

from engine.paths import MISSING, Path
from engine.trigger import nodes
from engine.trigger.compiler import Compiled

_EMPTY = MappingProxyType({})  # what a missing intermediate key reads as: .get answers the default
_NUMBER_TYPES = frozenset({int, float})


def generate(compiled: Compiled) -> Callable[[Any], bool]:
    """One function equivalent to ``compiled.match``; the closure itself when one cannot be made."""
    writer = _Writer()
    try:
        expression = writer.expression(compiled)
        source = f"def match(e):\n    try:\n        return {expression}\n    except AttributeError:\n" \
                 f"        return _closure(e)\n"
        namespace = {"_MISSING": MISSING, "_EMPTY": _EMPTY, "_NUM": _NUMBER_TYPES, "_closure": compiled.match,
                     **writer.constants}
        exec(compile(source, "<trigger>", "exec"), namespace)  # noqa: S102 - our identifiers only, see above
    except (SyntaxError, RecursionError, MemoryError):
        return compiled.match
    return namespace["match"]


class _Writer:
    def __init__(self):
        self.constants: dict[str, Any] = {}
        self.locals = 0

    def bind(self, value: Any, prefix: str) -> str:
        name = f"_{prefix}{len(self.constants)}"
        self.constants[name] = value
        return name

    def local(self) -> str:
        self.locals += 1
        return f"v{self.locals}"

    def expression(self, compiled: Compiled) -> str:
        node = compiled.node
        if isinstance(node, nodes.Condition):
            return self.condition(compiled)
        if isinstance(node, (nodes.AllOf, nodes.AnyOf)):
            joint = " and " if isinstance(node, nodes.AllOf) else " or "
            return "(" + joint.join(self.expression(child) for child in compiled.children) + ")"
        if isinstance(node, nodes.Negation):
            return f"(not {self.expression(compiled.children[0])})"
        return "True"  # nodes.Always

    def condition(self, compiled: Compiled) -> str:
        path, name, operand = compiled.path, compiled.operator.name, compiled.operand
        get = self.getter(path)
        if get is None:
            return f"{self.bind(compiled.test, 't')}({self.bind(path.get, 'g')}(e))"
        if name == "is" and isinstance(operand, str):
            return f"({get} == {self.bind(operand, 'c')})"
        if name == "is not" and isinstance(operand, str):
            return f"({get} != {self.bind(operand, 'c')})"
        if name in ("is true", "is false"):
            return f"({get} is {name == 'is true'})"
        value = self.local()
        if name == "is" and type(operand) in _NUMBER_TYPES:
            return f"(type({value} := {get}) in _NUM and {value} == {self.bind(operand, 'c')})"
        if name in ("exists", "does not exist"):
            found = f"(({value} := {get}) is not None and {value} is not _MISSING)"
            return found if name == "exists" else f"(not {found})"
        if name in ("in", "not in") and all(isinstance(item, str) for item in operand):
            found = f"(isinstance({value} := {get}, str) and {value} in {self.bind(frozenset(operand), 'c')})"
            return found if name == "in" else f"(not {found})"
        return f"{self.bind(compiled.test, 't')}({get})"

    def getter(self, path: Path) -> str | None:
        """``e.get(_k0, _EMPTY).get(_k1, _MISSING)`` for a path of plain keys, else None."""
        if path.has_wildcard or any(type(segment) is not str for segment in path.segments):
            return None
        keys = [self.bind(segment, "k") for segment in path.segments]
        return "e" + "".join(f".get({key}, _EMPTY)" for key in keys[:-1]) + f".get({keys[-1]}, _MISSING)"
