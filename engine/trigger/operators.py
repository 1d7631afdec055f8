"""The trigger operators: one row each, read by the parser's suggestions, the compiler and explain.

A row declares an operator's canonical word form (what explain and the docs show), every
spelling the grammar accepts for it, the kinds of literal it takes, and its test. Adding an
operator is one row here, its spelling in ``grammar/trigger.lark``, and test cases.

Semantics (docs/triggers.md has the user-facing table):

- A test is built once per condition from its literal and then called per event with the
  value found at the path, which may be :data:`MISSING`. Every positive test is false on a
  missing or null value and never raises, whatever the value's type.
- A negated operator is either the complement of its positive (``is not``, ``not in``,
  ``does not exist``: true on missing) or, as in Segment, only applies to values of the
  kind the positive reads (``does not contain``/``start with``/``end with``/``match``:
  false on missing and on other types).
- Values are JSON values: ``bool`` is never a number here, although Python makes it an ``int``.
"""
from __future__ import annotations

import operator as _op
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable

from engine.integers import any_size
from engine.paths import MISSING
from engine.trigger.regex import Regex

Test = Callable[[Any], bool]

STRING, NUMBER, BOOLEAN, NULL, LIST = "string", "number", "boolean", "null", "list"
SCALARS = (STRING, NUMBER, BOOLEAN)


class OperandError(ValueError):
    """A literal of the wrong kind for its operator (SY105)."""


def kind_of(value: Any) -> str:
    """The JSON kind of a literal from the parser."""
    if value is None:
        return NULL
    if isinstance(value, bool):
        return BOOLEAN
    if isinstance(value, (int, float)):
        return NUMBER
    if isinstance(value, str):
        return STRING
    return LIST


# Exact types: bool is an int subclass in Python but never a number in JSON.
_NUMBER_TYPES = frozenset({int, float})


def _is_number(value: Any) -> bool:
    return type(value) in _NUMBER_TYPES


def _is_string(value: Any) -> bool:
    return isinstance(value, str)


def _is_string_or_list(value: Any) -> bool:
    return isinstance(value, (str, list))


# --- positive tests: operand -> test(value) -----------------------------------------------


def _equals(operand: Any) -> Test:
    """Same JSON type and equal; 1 equals 1.0, true never equals 1, strings are case-sensitive."""
    if isinstance(operand, bool):
        return lambda value: value is operand
    if isinstance(operand, str):
        return lambda value: value == operand  # among JSON values only a string equals a string
    return lambda value: type(value) in _NUMBER_TYPES and value == operand


def _contains(operand: Any) -> Test:
    """Substring of a string, or an element of an array that equals the operand."""
    element_equals = _equals(operand)

    def test(value: Any) -> bool:
        if isinstance(value, str):
            return isinstance(operand, str) and operand in value
        return isinstance(value, list) and any(map(element_equals, value))
    return test


def _starts_with(operand: str) -> Test:
    return lambda value: isinstance(value, str) and value.startswith(operand)


def _ends_with(operand: str) -> Test:
    return lambda value: isinstance(value, str) and value.endswith(operand)


def _exists(_operand: None) -> Test:
    return lambda value: value is not None and value is not MISSING


def _is_boolean(expected: bool) -> Callable[[None], Test]:
    return lambda _operand: lambda value: value is expected


def _in(items: list) -> Test:
    """Equals one of the items. Sets per kind keep 1 == 1.0 and keep true apart from 1. A ``null`` item is
    a missing or null value, as ``= null`` is: ``coupon in [null, ""]`` is "no coupon"."""
    strings = frozenset(item for item in items if isinstance(item, str))
    numbers = frozenset(item for item in items if _is_number(item))
    booleans = frozenset(item for item in items if isinstance(item, bool))
    absent = None in items

    def test(value: Any) -> bool:
        if isinstance(value, str):
            return value in strings
        if isinstance(value, bool):
            return value in booleans
        if value is None or value is MISSING:
            return absent
        return _is_number(value) and value in numbers
    return test


def _matches(pattern: str) -> Test:
    search = Regex(pattern).search  # re.error becomes SY103 in the compiler, Unsupported SY108
    return lambda value: isinstance(value, str) and search(value)


_JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
# The shape is checked before datetime.fromisoformat, which would also read "20240101".
_ISO_8601 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}"
    r"(?:[Tt ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:[.,][0-9]+)?)?(?:[Zz]|[+-][0-9]{2}(?::?[0-9]{2})?)?)?"
)


def numeric(text: str) -> int | float | None:
    """The number a string spells in JSON syntax, else None."""
    if not _JSON_NUMBER.fullmatch(text):
        return None
    if any(c in text for c in ".eE"):
        return float(text)
    if len(text) > 4000:  # past Python's usual limit, up to the digits an event may hold; no number beyond
        try:
            with any_size():
                return int(text)
        except ValueError:
            return None
    return int(text)


# What Segment's libraries send; datetime.fromisoformat reads it as is, in half the time.
_COMMON_INSTANT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?Z")


def instant(text: str) -> datetime | None:
    """The moment an ISO-8601 date or timestamp names (UTC when it has no offset), else None.

    Hour 24 is not read, on every Python (3.14's fromisoformat reads 24:00 as the next midnight):
    results do not depend on the version, and utc_seconds relies on it.
    """
    if text[11:13] == "24":
        return None
    if _COMMON_INSTANT.fullmatch(text):
        try:
            return datetime.fromisoformat(text)
        except ValueError:  # e.g. 2024-02-30
            return None
    if not _ISO_8601.fullmatch(text):
        return None
    try:
        moment = datetime.fromisoformat(text.upper().replace("Z", "+00:00"))
    except ValueError:  # shaped right but not a real date, e.g. 2024-02-30
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)


#: A fraction of a second with digits past the microsecond, which datetime drops.
_LONG_FRACTION = re.compile(r":[0-9]{2}[.,][0-9]{6}([0-9]+)")


def moment(text: str) -> tuple[datetime, str] | None:
    """:func:`instant`, with the fraction's digits past the microsecond (trailing zeros dropped, so that
    they compare as text as they do as numbers): ``.1234561`` and ``.1234567``, as .NET writes them,
    are different instants."""
    at = instant(text)
    if at is None:
        return None
    beyond = _LONG_FRACTION.search(text) if len(text) > 26 else None
    return at, beyond.group(1).rstrip("0") if beyond else ""


def utc_seconds(text: str) -> str | None:
    """``YYYY-MM-DDTHH:MM:SS`` of a string shaped like a UTC timestamp with seconds, else None.

    Between two such strings, differing heads order the strings exactly as the instants they
    name, and as the strings themselves: digits in fixed-width fields sort like numbers, and
    a string that is not a real instant compares by code point either way, decided within
    the head. So most timestamp comparisons need neither a regular expression nor a datetime.
    """
    if len(text) >= 20 and text[10] == "T" and text[-1] == "Z":
        return text[:19]
    return None


def _ordering(compare: Callable[[Any, Any], bool]) -> Callable[[Any], Test]:
    """``<`` ``<=`` ``>`` ``>=``: numbers as numbers; strings as instants or by code point."""
    def build(operand: Any) -> Test:
        if _is_number(operand):
            return lambda value: type(value) in _NUMBER_TYPES and compare(value, operand)
        as_number = numeric(operand)
        as_instant = moment(operand)
        head = utc_seconds(operand) if as_instant is not None else None

        def test(value: Any) -> bool:
            if isinstance(value, str):
                if head is not None and len(value) >= 20 and value[10] == "T" and value[-1] == "Z":
                    seen_head = value[:19]
                    if seen_head != head:  # see utc_seconds: the heads decide
                        return compare(seen_head, head)
                if as_instant is not None:
                    seen = moment(value)
                    if seen is not None:
                        return compare(seen, as_instant)
                return compare(value, operand)
            # A number field against a numeric string compares as numbers, as Segment does.
            return as_number is not None and _is_number(value) and compare(value, as_number)
        return test
    return build


# --- the table -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Operator:
    """One operator: its canonical name, its spellings, the literals it takes, its test.

    ``build`` makes the *positive* test from the literal. A negated operator names the
    guard it applies under: ``None`` for a plain complement (true on missing values),
    otherwise the kinds of value the positive reads (false on anything else).
    """

    name: str
    spellings: tuple[str, ...]
    accepts: tuple[str, ...]
    build: Callable[[Any], Test]
    negated: bool = False
    applies_to: Callable[[Any], bool] | None = None

    def value_test(self, operand: Any, wildcard: bool) -> Test:
        """The compiled test of the value at a path (of the list found, for a ``[*]`` path).

        On a list of values, a positive operator holds when any element satisfies it and a
        negated one when none does (and, for the guarded ones, at least one element is of
        the kind they read), so ``items[*].sku != "x"`` means "no sku is x".
        """
        if wildcard and self.build is _in and None in operand:
            return _in_or_absent(operand, negated=self.negated)
        test = self.build(operand)
        guard = self.applies_to
        if not wildcard:
            if not self.negated:
                return test
            if guard is None:
                return lambda value: not test(value)
            return lambda value: guard(value) and not test(value)
        if not self.negated:
            return lambda values: any(map(test, values))
        if guard is None:
            return lambda values: not any(map(test, values))
        return lambda values: any(map(guard, values)) and not any(map(test, values))


def _in_or_absent(items: list, negated: bool) -> Test:
    """``items[*].x in [null, ...]`` over the list found: what ``= null or = ...`` means there (no element has
    ``x``, or one equals an item), so that it agrees with ``= null``; ``not in`` is its complement."""
    equals = _in([item for item in items if item is not None])

    def test(values: Any) -> bool:
        return not any(value is not None and value is not MISSING for value in values) or any(map(equals, values))
    return (lambda values: not test(values)) if negated else test


_ORDER_KINDS = (NUMBER, STRING)

OPERATORS: tuple[Operator, ...] = (
    Operator("is", ("is", "=", "=="), SCALARS, _equals),
    Operator("is not", ("is not", "!="), SCALARS, _equals, negated=True),
    Operator("is less than", ("is less than", "<"), _ORDER_KINDS, _ordering(_op.lt)),
    Operator("is less than or equal to", ("is less than or equal to", "<="), _ORDER_KINDS, _ordering(_op.le)),
    Operator("is greater than", ("is greater than", ">"), _ORDER_KINDS, _ordering(_op.gt)),
    Operator("is greater than or equal to", ("is greater than or equal to", ">="), _ORDER_KINDS, _ordering(_op.ge)),
    Operator("contains", ("contains", "contains()"), SCALARS, _contains),
    Operator("does not contain", ("does not contain", "!contains()"), SCALARS, _contains,
             negated=True, applies_to=_is_string_or_list),
    Operator("starts with", ("starts with",), (STRING,), _starts_with),
    Operator("does not start with", ("does not start with",), (STRING,), _starts_with,
             negated=True, applies_to=_is_string),
    Operator("ends with", ("ends with",), (STRING,), _ends_with),
    Operator("does not end with", ("does not end with",), (STRING,), _ends_with,
             negated=True, applies_to=_is_string),
    Operator("exists", ("exists",), (), _exists),
    Operator("does not exist", ("does not exist",), (), _exists, negated=True),
    Operator("is true", (), (), _is_boolean(True)),
    Operator("is false", (), (), _is_boolean(False)),
    Operator("in", ("in",), (LIST,), _in),
    Operator("not in", ("not in",), (LIST,), _in, negated=True),
    Operator("matches", ("matches",), (STRING,), _matches),
    Operator("does not match", ("does not match",), (STRING,), _matches,
             negated=True, applies_to=_is_string),
)

BY_NAME = {op.name: op for op in OPERATORS}
BY_SPELLING = {spelling: op for op in OPERATORS for spelling in op.spellings}

# Segment's match(path, "glob"): `*` at the start and/or end only.
GLOB_SPELLINGS = ("match()", "!match()")
_GLOB = {
    (False, False): ("is", "is not"),
    (False, True): ("starts with", "does not start with"),
    (True, False): ("ends with", "does not end with"),
    (True, True): ("contains", "does not contain"),
}

#: Every word spelling, for "did you mean" suggestions.
WORD_SPELLINGS = tuple(s for s in BY_SPELLING if s[0].isalpha() and not s.endswith("()"))


def resolve(spelling: str, operand: Any) -> tuple[Operator, Any]:
    """The operator a spelling means with this literal, and the operand its test takes.

    Applies Segment's shorthands (``= null`` is "does not exist", ``!= null`` is "exists",
    ``= true`` is "is true", ``match(p, "x*")`` is "starts with" ...) and checks the kind
    of the literal; raises :class:`OperandError` for a literal the operator cannot use.
    """
    if spelling in GLOB_SPELLINGS:
        return _resolve_glob(operand, negated=spelling.startswith("!"))
    op = BY_SPELLING[spelling]
    if op.name in ("is", "is not") and (operand is None or operand is True or operand is False):
        if operand is None:
            return BY_NAME["does not exist" if op.name == "is" else "exists"], None
        if op.name == "is":
            return BY_NAME["is true" if operand else "is false"], None
    if op.accepts:
        kind = kind_of(operand)
        if kind not in op.accepts:
            hint = "; to test membership write 'in [...]'" if kind == LIST and LIST not in op.accepts else ""
            raise OperandError(f"'{op.name}' takes {_describe(op.accepts)}, not {_article(kind)}{hint}")
    return op, operand


def _resolve_glob(pattern: Any, negated: bool) -> tuple[Operator, Any]:
    if not isinstance(pattern, str):
        raise OperandError(f"match() takes a string pattern, not {_article(kind_of(pattern))}")
    leading = pattern.startswith("*")
    body = pattern[1:] if leading else pattern
    trailing = body.endswith("*")
    body = body[:-1] if trailing else body
    if "*" in body:
        raise OperandError(
            "match() takes '*' only at the start and/or end of its pattern; "
            "use 'matches' with a regular expression for other patterns"
        )
    positive, negative = _GLOB[leading, trailing]
    return BY_NAME[negative if negated else positive], body


def _describe(kinds: tuple[str, ...]) -> str:
    words = [_article(kind) for kind in kinds]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


def _article(kind: str) -> str:
    return {STRING: "a string", NUMBER: "a number", BOOLEAN: "a boolean", NULL: "null", LIST: "a list"}[kind]
