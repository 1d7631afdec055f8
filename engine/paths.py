"""Event paths: `properties.total`, `traits."first.name"`, `items[0].sku`, `items[*].price`.

This module owns the structure of a path (its segments) and reading from or removing
at a path in an event. It is on the per-event hot path, so :func:`parse_path` does all
the work once and each :class:`Path` carries a getter closure specialised for its shape.
Nothing here knows about triggers; the trigger grammar only delimits a path token
(the ``PATH`` terminal in ``grammar/trigger.lark``) and hands its text to :func:`parse_path`.

Path syntax, from the event root:

- ``name``: a key of an object. Names start with a letter, ``_`` or ``$`` and go on with
  letters, digits, ``_``, ``$`` and ``-``. After a dot a name may also start with a digit.
- ``."any key"`` or ``.'any key'``: a quoted key, for keys with dots, spaces or other
  characters (same escapes as trigger strings, see :func:`unquote`).
- ``[3]``, ``[-1]``, ``.3``: an index into an array (negative counts from the end). On an
  object, an index reads the key spelled the same way (``"3"``).
- ``[*]``: every element of an array. ``get`` then returns the list of values found.

Values are never mutated: :meth:`Path.without` copies only the containers along the path.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache
from types import MappingProxyType
from typing import Any

__all__ = ["MISSING", "WILDCARD", "Path", "PathError", "parse_path", "unquote"]


class _Missing:
    """The value at a path that is not there (distinct from JSON null)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False

    def __reduce__(self) -> str:
        return "MISSING"

    def __copy__(self) -> _Missing:
        return self

    def __deepcopy__(self, memo: dict) -> _Missing:
        return self


class _Wildcard:
    """The ``[*]`` segment (a sentinel, so a key literally named ``*`` stays a key)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "WILDCARD"

    def __reduce__(self) -> str:
        return "WILDCARD"


MISSING = _Missing()
WILDCARD = _Wildcard()


class PathError(ValueError):
    """A path that does not parse; ``column`` is 1-based within the path text."""

    def __init__(self, message: str, column: int):
        super().__init__(message)
        self.message = message
        self.column = column


# One token of a path. `name` is a plain key; a name of digits only after a dot is an index.
_TOKEN = re.compile(
    r"""
      (?P<first>(?:[^\W\d]|\$)[\w$-]*)
    | \.(?P<name>[\w$-]+)
    | \.(?P<quoted>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
    | \[(?P<index>-?(?:0|[1-9][0-9]*))\]
    | \[(?P<star>\*)\]
    """,
    re.VERBOSE,
)
_CANONICAL_INT = re.compile(r"0|[1-9][0-9]*")

_ESCAPES = {'"': '"', "'": "'", "\\": "\\", "/": "/", "n": "\n", "r": "\r", "t": "\t"}
_ESCAPE = re.compile(r"\\(u[0-9a-fA-F]{4}|.)", re.DOTALL)


def unquote(token: str) -> str:
    r"""Decode a quoted string token (either quote kind) to its value.

    ``\" \' \\ \/ \n \r \t \uXXXX`` are escapes; any other backslash is kept as written,
    so a regular expression such as ``"^\d+\b"`` means what it says without doubling.
    """
    def replace(match: re.Match) -> str:
        code = match.group(1)
        if len(code) == 5:
            return chr(int(code[1:], 16))
        return _ESCAPES.get(code, match.group(0))

    text = _ESCAPE.sub(replace, token[1:-1])
    if any("\ud800" <= ch <= "\udfff" for ch in text):
        # \uXXXX pairs spell characters outside the BMP as UTF-16 surrogates, as in JSON; a lone one stays
        # itself, as JSON reads it in an event (it is not U+FFFD, which would match other events).
        text = text.encode("utf-16", "surrogatepass").decode("utf-16", "surrogatepass")
    return text


@lru_cache(maxsize=4096)
def parse_path(text: str) -> Path:
    """Parse ``text`` into a :class:`Path`; raise :class:`PathError` if it is not one.

    Paths are immutable, and triggers repeat a few (``type``, ``event``) thousands of times: each
    distinct text is parsed, and its getter built, once.
    """
    segments: list = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None or (match.group("first") is not None) != (pos == 0):
            raise PathError(_describe_bad(text, pos), pos + 1)
        kind = match.lastgroup
        assert kind is not None  # every alternative of _TOKEN is a named group
        value = match.group(kind)
        if kind in ("first", "name"):
            segments.append(int(value) if kind == "name" and _CANONICAL_INT.fullmatch(value) else value)
        elif kind == "quoted":
            segments.append(unquote(value))
        elif kind == "index":
            segments.append(int(value))
        else:
            segments.append(WILDCARD)
        pos = match.end()
    if not segments:
        raise PathError("empty path", 1)
    return Path(text, tuple(segments))


def _describe_bad(text: str, pos: int) -> str:
    if pos == 0:
        return f"a path starts with a field name, not {text[0]!r}"
    if text[pos] == "[":
        return "an index is a whole number or *, as in items[0] or items[*]"
    if text[pos] == ".":
        return "a dot must be followed by a field name or a quoted key"
    return f"unexpected {text[pos]!r} in path; quote keys with special characters: .\"a key\""


class Path:
    """A parsed path. ``get(event)`` is a closure built for this path's shape.

    ``get`` returns the value, or :data:`MISSING` when any step is absent or of the wrong
    kind (a key on a non-object, an index on a non-array). A path with ``[*]`` always
    returns a list: the values found, in order, skipping elements where the rest is missing.
    """

    __slots__ = ("get", "has_wildcard", "segments", "text")

    def __init__(self, text: str, segments: tuple):
        self.text = text
        self.segments = segments
        self.has_wildcard = WILDCARD in segments
        self.get: Callable[[Any], Any] = _getter(segments)

    def __repr__(self) -> str:
        return f"Path({self.text!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Path) and other.segments == self.segments

    def __hash__(self) -> int:
        return hash(self.segments)

    def without(self, event: Any) -> Any:
        """Return ``event`` with this path removed, copying only the containers on the way.

        When nothing is at the path, ``event`` itself is returned. A wildcard removes from
        every element; an index removes that element from its array.
        """
        return _remove(event, self.segments)


# --- getters -------------------------------------------------------------------------------
# Specialised closures: most trigger paths are one to three plain keys, and these straight-line
# versions cost a fraction of a generic loop. Only a dict has `.get` among JSON values, so an
# AttributeError means "not an object here"; a missing intermediate key yields _EMPTY, whose
# `.get` answers MISSING without an exception (try costs nothing in Python 3.11 until it raises).

_EMPTY: MappingProxyType = MappingProxyType({})


def _getter(segments: tuple) -> Callable[[Any], Any]:
    if all(type(s) is str for s in segments):
        if len(segments) == 1:
            return _get1(*segments)
        if len(segments) == 2:
            return _get2(*segments)
        if len(segments) == 3:
            return _get3(*segments)
    if WILDCARD in segments:
        return _get_wild(segments)
    return _get_any(segments)


def _get1(a: str) -> Callable[[Any], Any]:
    def get(event: Any) -> Any:
        try:
            return event.get(a, MISSING)
        except AttributeError:
            return MISSING
    return get


def _get2(a: str, b: str) -> Callable[[Any], Any]:
    def get(event: Any) -> Any:
        try:
            return event.get(a, _EMPTY).get(b, MISSING)
        except AttributeError:
            return MISSING
    return get


def _get3(a: str, b: str, c: str) -> Callable[[Any], Any]:
    def get(event: Any) -> Any:
        try:
            return event.get(a, _EMPTY).get(b, _EMPTY).get(c, MISSING)
        except AttributeError:
            return MISSING
    return get


def _step(value: Any, segment: Any) -> Any:
    """One step down; MISSING when the container is of the wrong kind or lacks the segment."""
    if isinstance(value, dict):
        return value.get(segment if type(segment) is str else str(segment), MISSING)
    if isinstance(value, list) and type(segment) is int and -len(value) <= segment < len(value):
        return value[segment]
    return MISSING


def _get_any(segments: tuple) -> Callable[[Any], Any]:
    def get(event: Any) -> Any:
        value = event
        for segment in segments:
            value = _step(value, segment)
            if value is MISSING:
                return MISSING
        return value
    return get


def _get_wild(segments: tuple) -> Callable[[Any], list]:
    def collect(value: Any, start: int, found: list) -> None:
        for i in range(start, len(segments)):
            segment = segments[i]
            if segment is WILDCARD:
                if isinstance(value, list):
                    for element in value:
                        collect(element, i + 1, found)
                return
            value = _step(value, segment)
            if value is MISSING:
                return
        found.append(value)

    def get(event: Any) -> list:
        found: list = []
        collect(event, 0, found)
        return found
    return get


# --- removal -------------------------------------------------------------------------------


def _remove(value: Any, segments: tuple) -> Any:
    segment, rest = segments[0], segments[1:]
    if segment is WILDCARD:
        if not isinstance(value, list):
            return value
        if not rest:
            return [] if value else value
        changed = [_remove(element, rest) for element in value]
        if all(new is old for new, old in zip(changed, value)):
            return value
        return changed
    if isinstance(value, dict):
        key = segment if type(segment) is str else str(segment)
        if key not in value:
            return value
        if not rest:
            copy = dict(value)
            del copy[key]
            return copy
        child = _remove(value[key], rest)
        if child is value[key]:
            return value
        copy = dict(value)
        copy[key] = child
        return copy
    if isinstance(value, list) and type(segment) is int and -len(value) <= segment < len(value):
        items = list(value)
        if not rest:
            del items[segment]
            return items
        child = _remove(value[segment], rest)
        if child is value[segment]:
            return value
        items[segment] = child
        return items
    return value
