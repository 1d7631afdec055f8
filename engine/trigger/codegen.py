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

from collections import Counter
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Callable, Mapping, Sequence

from engine.generated import define
from engine.paths import MISSING, WILDCARD, Path
from engine.trigger import nodes
from engine.trigger.compiler import Compiled
from engine.trigger.operators import instant, numeric, utc_seconds
from engine.trigger.regex import Regex

# What a missing intermediate key reads as: .get answers the default.
_EMPTY: MappingProxyType[str, Any] = MappingProxyType({})
_NUMBER_TYPES = frozenset({int, float})
_ORDER = {"is less than": "<", "is less than or equal to": "<=", "is greater than": ">",
          "is greater than or equal to": ">="}
_STRING_TESTS = {  # operator -> (what is asked of the string, negated)
    "starts with": ("startswith", False), "does not start with": ("startswith", True),
    "ends with": ("endswith", False), "does not end with": ("endswith", True),
    "matches": ("search", False), "does not match": ("search", True),
}


@dataclass(frozen=True)
class Exactly:
    """What the index knows of a field for a group of events: it holds this value."""

    value: Any


@dataclass(frozen=True)
class NoneOf:
    """What the index knows of a field: it equals none of these strings (and may not be a string)."""

    values: frozenset


Known = Mapping[str, "Exactly | NoneOf"]  # single-key path ("type", "event") -> what is known of it


_GLOBALS = {"_MISSING": MISSING, "_EMPTY": _EMPTY, "_NUM": _NUMBER_TYPES}


def generate(compiled: Compiled, known: Known | None = None) -> Callable[[Any], bool] | bool:
    """One function equivalent to ``compiled.match`` on events that agree with ``known``.

    Conditions that ``known`` decides are folded away at generation time; when that decides the
    whole trigger the answer is returned as a bool instead of a function. Without ``known`` the
    result is always a function (the closure itself when Python cannot compile the expression).
    """
    try:
        writer = _Writer(known or {}, _shared_reads([compiled], known or {}))
        expression = writer.expression(compiled)
        if isinstance(expression, bool):
            return expression if known else (lambda e: expression)
        return _define(_guarded("match", [*writer.prologue(), f"return {expression}"], "return _closure(e)"),
                       "match", {"_closure": compiled.match, **writer.constants})
    except (SyntaxError, RecursionError, MemoryError):
        return compiled.match


def decide(compiled: Compiled, known: Known) -> bool | None:
    """The trigger's answer for every event that agrees with ``known``, or None when it depends on the event."""
    try:
        expression = _Writer(known).expression(compiled)
    except RecursionError:
        return None
    return expression if isinstance(expression, bool) else None


def generate_matching(entries: Sequence[tuple[Compiled, Any]], known: Known) -> Callable[[Any], list] | None:
    """One function giving, in order, the items whose trigger matches an event that agrees with ``known``.

    ``entries`` are ``(compiled trigger, item)``. Each trigger is written inline, specialised as by
    :func:`generate`; None when Python cannot compile the whole (the caller then loops).
    """
    try:
        writer = _Writer(known, _shared_reads([compiled for compiled, _ in entries], known))
        first: list[Any] = []
        body: list[Any] = []  # the items that always match before any that may not: the list's start
        for compiled, item in entries:
            expression = writer.expression(compiled)
            if expression is False:
                continue
            chosen = writer.bind(item, "i")
            if expression is True and not body:
                first.append(chosen)
            elif expression is True:
                body.append(f"add({chosen})")
            else:
                body += [f"if {expression}:", f"    add({chosen})"]
        slow = writer.bind(tuple((compiled.match, item) for compiled, item in entries), "s")
        lines = [*writer.prologue(), f"found = [{', '.join(first)}]", "add = found.append", *body, "return found"]
        return _define(_guarded("matching", lines, f"return [item for match, item in {slow} if match(e)]"),
                       "matching", writer.constants)
    except (SyntaxError, RecursionError, MemoryError):
        return None


def _guarded(name: str, body: list[str], fallback: str) -> list[str]:
    """``def name(e)`` running ``body``; where an intermediate value is not an object, ``fallback`` answers.

    ``.get`` on a value that is not an object (null, a string, an array) raises AttributeError;
    the closures, which ``fallback`` calls, handle every shape.
    """
    return [f"def {name}(e):", "    try:", *(f"        {line}" for line in body),
            "    except AttributeError:", f"        {fallback}"]


def _shared_reads(trees: Sequence[Compiled], known: Known) -> set[tuple]:
    """The reads (see :meth:`_Writer.getter`) that two or more conditions of ``trees`` make."""
    counter = _Writer(known)
    for tree in trees:
        counter.expression(tree)
    return {read for read, count in Counter(counter.reads).items() if count > 1}


def _define(lines: list[str], name: str, constants: dict) -> Callable:
    return define("\n".join(lines) + "\n", name, {**_GLOBALS, **constants}, "<trigger>")


class _Writer:
    """Writes the source of conditions, binding every key and literal as a constant.

    A read that several conditions make (``shared``) is made once, in a prologue, into a local
    (``h0``): an intermediate object such as ``context`` (``("in", "context")``) or a whole
    path's value (``("at", "properties", "total")``). Reading an intermediate that is not an
    object raises AttributeError there; the prologue then answers with the closures.
    """

    def __init__(self, known: Known, shared: frozenset[tuple] | set[tuple] = frozenset()):
        self.known = known
        self.constants: dict[str, Any] = {}
        self.locals = 0
        self.shared = shared
        self.hoisted: dict[tuple, tuple[str, str]] = {}  # read -> (local, the expression it holds)
        self.reads: list[tuple] = []  # every read the written source makes, one per condition

    def bind(self, value: Any, prefix: str) -> str:
        name = f"_{prefix}{len(self.constants)}"
        self.constants[name] = value
        return name

    def local(self) -> str:
        self.locals += 1
        return f"v{self.locals}"

    def expression(self, compiled: Compiled) -> str | bool:
        """Python source for ``compiled``, or True/False when what is known decides it."""
        node = compiled.node
        if isinstance(node, nodes.Condition):
            decided = self.decide(compiled)
            return decided if decided is not None else self.condition(compiled)
        if isinstance(node, (nodes.AllOf, nodes.AnyOf)):
            every = isinstance(node, nodes.AllOf)
            parts = []
            written = len(self.reads)
            for child in compiled.children:
                part = self.expression(child)
                if part is (not every):
                    del self.reads[written:]  # the parts written so far are dropped
                    return part  # a false child decides ALL, a true one ANY
                if part is not every:
                    parts.append(part)
            if not parts:
                return every
            joined = [str(part) for part in parts]
            return joined[0] if len(joined) == 1 else "(" + (" and " if every else " or ").join(joined) + ")"
        if isinstance(node, nodes.Negation):
            inner = self.expression(compiled.children[0])
            return (not inner) if isinstance(inner, bool) else f"(not {inner})"
        return True  # nodes.Always

    def decide(self, compiled: Compiled) -> bool | None:
        """The condition's answer when ``known`` settles it, else None."""
        path = compiled.path
        if len(path.segments) != 1 or path.segments[0] not in self.known:
            return None
        fact = self.known[path.segments[0]]
        if isinstance(fact, Exactly):
            return bool(compiled.test(fact.value))  # a test is a pure function of the value it reads
        name, operand = compiled.operator.name, compiled.operand
        if name in ("is", "is not") and isinstance(operand, str) and operand in fact.values:
            return name == "is not"
        if name in ("in", "not in") and all(isinstance(item, str) and item in fact.values for item in operand):
            return name == "not in"
        return None

    def condition(self, compiled: Compiled) -> str:
        path = compiled.path
        if path.has_wildcard:
            written = self.any_element(compiled)
        elif (get := self.getter(path)) is not None:
            written = self.test(compiled, get, compiled.test) or f"{self.bind(compiled.test, 't')}({get})"
        else:
            written = None
        return written or f"{self.bind(compiled.test, 't')}({self.bind(path.get, 'g')}(e))"

    def any_element(self, compiled: Compiled) -> str | None:
        """A positive operator on ``a.b[*].c``: it holds when it holds for some element's ``c``.

        As paths.py collects them: elements that are not objects, or lack ``c``, are skipped; a
        container that is not an array has no elements. None for other shapes (the closures decide).
        """
        segments = compiled.path.segments
        star = segments.index(WILDCARD)
        prefix, suffix = segments[:star], segments[star + 1:]
        if compiled.operator.negated or not prefix or WILDCARD in suffix \
                or any(type(segment) is not str for segment in prefix + suffix):
            return None
        value = self.local()
        check = self.test(compiled, value, compiled.operator.build(compiled.operand))  # the test of one value
        if check is None or ":=" in check:  # a name bound inside a generator would become a closure cell
            return None
        items = self.path(prefix)
        if items.isidentifier():
            listed = f"isinstance({items}, list)"
        else:
            local = self.local()
            listed, items = f"isinstance(({local} := {items}), list)", local
        if not suffix:
            return f"({listed} and any({check} for {value} in {items}))"
        element = self.local()
        read = element + "".join(f".get({self.bind(key, 'k')}, _EMPTY)" for key in suffix[:-1]) \
            + f".get({self.bind(suffix[-1], 'k')}, _MISSING)"
        # A missing c reads as _MISSING, on which every positive test is false: no need to skip it.
        return f"({listed} and any({check} for {element} in {items} if isinstance({element}, dict)" \
               f" for {value} in ({read},)))"

    def test(self, compiled: Compiled, get: str, closure: Callable[[Any], bool]) -> str | None:
        """The condition's test written out, on the value ``get`` reads; None when only its closure can tell.

        ``closure`` is the test of one value, which the written test may call for what it leaves out.
        """
        name, operand = compiled.operator.name, compiled.operand
        if name == "is" and isinstance(operand, str):
            return f"({get} == {self.bind(operand, 'c')})"
        if name == "is not" and isinstance(operand, str):
            return f"({get} != {self.bind(operand, 'c')})"
        if name in ("is true", "is false"):
            return f"({get} is {name == 'is true'})"
        if name in ("is", "is not") and isinstance(operand, bool):
            return f"({get} {name} {operand})"
        # A value read more than once in a condition: a shared read is a local already, else one is assigned.
        if get.isidentifier():
            value = read = get
        else:
            value = self.local()
            read = f"({value} := {get})"
        if name in ("is", "is not") and type(operand) in _NUMBER_TYPES:
            found = f"(type({read}) in _NUM and {value} == {self.bind(operand, 'c')})"
            return found if name == "is" else f"(not {found})"
        if name in ("exists", "does not exist"):
            found = f"({read} is not None and {value} is not _MISSING)"
            return found if name == "exists" else f"(not {found})"
        if name in ("in", "not in") and all(isinstance(item, str) for item in operand):
            found = f"(isinstance({read}, str) and {value} in {self.bind(frozenset(operand), 'c')})"
            return found if name == "in" else f"(not {found})"
        if name in _ORDER and type(operand) in _NUMBER_TYPES:  # a string operand may name an instant: the test
            return f"(type({read}) in _NUM and {value} {_ORDER[name]} {self.bind(operand, 'c')})"
        if name in _ORDER:
            return self.ordering(compiled, value, read, closure)
        if name in ("contains", "does not contain") and isinstance(operand, str):
            # A substring of a string, or an element of an array: only a string equals a string.
            found = "in" if name == "contains" else "not in"
            return f"(isinstance({read}, (str, list)) and {self.bind(operand, 'c')} {found} {value})"
        if name in _STRING_TESTS:
            # Segment's negations hold only for strings, like their positives (see operators.py).
            method, negated = _STRING_TESTS[name]
            if method == "search":
                check = f"{self.bind(Regex(operand).search, 'f')}({value})"
            else:
                check = f"{value}.{method}({self.bind(operand, 'c')})"
            return f"(isinstance({read}, str) and {'not ' if negated else ''}{check})"
        return None

    def ordering(self, compiled: Compiled, value: str, read: str, closure: Callable[[Any], bool]) -> str:
        """``<`` ``<=`` ``>`` ``>=`` with a string literal, as operators._ordering decides it."""
        operand, sign = compiled.operand, _ORDER[compiled.operator.name]
        if instant(operand) is None:  # code points for a string, numbers for a number
            number = numeric(operand)
            as_number = f"type({value}) in _NUM and {value} {sign} {self.bind(number, 'c')}" if number is not None \
                else "False"
            return f"(({value} {sign} {self.bind(operand, 'c')}) if isinstance({read}, str) else ({as_number}))"
        head = utc_seconds(operand)
        test = self.bind(closure, "t")
        if head is None:
            return f"{test}({read})"
        # Two UTC timestamps whose seconds differ are ordered by those (see operators.utc_seconds).
        seen, head = self.local(), self.bind(head, "c")
        return f"(({seen} {sign} {head}) if (isinstance({read}, str) and len({value}) >= 20 and {value}[10] == 'T'" \
               f" and {value}[-1] == 'Z' and ({seen} := {value}[:19]) != {head}) else {test}({value}))"

    def getter(self, path: Path) -> str | None:
        """``e.get(_k0, _EMPTY).get(_k1, _MISSING)`` for a path of plain keys, else None."""
        if path.has_wildcard or any(type(segment) is not str for segment in path.segments):
            return None
        return self.path(path.segments)

    def path(self, segments: tuple) -> str:
        """Source reading the value at ``segments`` (plain keys) from the event, shared reads hoisted."""
        for depth in range(1, len(segments)):
            self.reads.append(("in", *segments[:depth]))
        self.reads.append(("at", *segments))
        return self._read(("at", *segments))

    def prologue(self) -> list[str]:
        """The lines that make the shared reads; a parent is hoisted before its children, so in this order."""
        return [f"{local} = {source}" for local, source in self.hoisted.values()]

    def _read(self, read: tuple) -> str:
        """Source for ``read``: its hoisted local when it is shared, else the read written out."""
        if read in self.hoisted:
            return self.hoisted[read][0]
        kind, *segments = read
        parent = self._read(("in", *segments[:-1])) if len(segments) > 1 else "e"
        source = f"{parent}.get({self.bind(segments[-1], 'k')}, {'_EMPTY' if kind == 'in' else '_MISSING'})"
        if read not in self.shared:
            return source
        local = f"h{len(self.hoisted)}"
        self.hoisted[read] = (local, source)
        return local
