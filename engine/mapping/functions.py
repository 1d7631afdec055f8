"""The JMESPath functions Switchyard adds to the standard set, and the one ``OPTIONS`` that carries them.

Each function is declared once, here, with its signature; the interpreter and the compile-time
check of names and arities (:func:`arity`) both read that one table. Functions are lenient
about null input and return null, because events are messy and a null result simply omits the
field. A value of the wrong non-null type raises jmespath's ``JMESPathTypeError``, which the
mapper turns into an error for that one event.

Docstring examples read ``EXPRESSION => JSON RESULT`` over an empty event; the tests run them.
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote

import jmespath
from dateutil.parser import isoparse
from jmespath.exceptions import ArityError, JMESPathTypeError
from jmespath.functions import TYPES_MAP, Functions, signature

from ..integers import any_size, too_long

_SCALARS = ["string", "number", "boolean", "null"]
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_SECOND = timedelta(seconds=1)
# The shape Segment's libraries send (2024-01-01T10:00:00.123Z). datetime.fromisoformat reads it
# to the same moment as dateutil's isoparse, about ten times faster; other shapes go to isoparse.
_COMMON_TIMESTAMP = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]{1,6})?(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])?"
)


def parse_timestamp(text: str) -> datetime:
    """An ISO-8601 timestamp as a datetime (naive when it has no offset); ValueError if it is not one."""
    if _COMMON_TIMESTAMP.fullmatch(text):
        return datetime.fromisoformat(text[:-1] + "+00:00" if text[-1] == "Z" else text)
    return isoparse(text)


def at_most(count: int):
    """Cap a variadic signature: jmespath can say "at least N" but not "N or N+1 arguments"."""

    def record(function):
        function.max_args = count
        return function

    return record


def type_name(value: Any) -> str:
    """The JMESPath name of a value's type (``string``, ``number``, ``object`` ...)."""
    return TYPES_MAP.get(type(value).__name__, type(value).__name__)


def url_segment(text: str) -> str:
    """``text`` as one path segment of a URL, as the mapping function ``url_segment()`` writes it.

    Raises ValueError for text with a lone surrogate, which no URL can carry.
    """
    try:
        segment = quote(text, safe="", encoding="utf-8", errors="strict")
    except UnicodeEncodeError:
        raise ValueError("the value holds a lone surrogate, which no URL can carry") from None
    return segment.replace(".", "%2E") if segment.strip(".") == "" else segment


def text_of(value: Any) -> str:
    """Render a scalar as JSON writes it (and so Segment does): ``1``, ``1.5``, ``true``."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    # JSON has one number type: 1.0 in an event is the number 1, and JavaScript prints it "1".
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    try:
        return repr(value)
    except ValueError as error:  # an integer of more than 4,300 digits, which events may hold
        if not too_long(error):
            raise
        with any_size():
            return repr(value)


class SwitchyardFunctions(Functions):
    """The standard JMESPath functions plus Switchyard's (``_func_<name>`` is function ``<name>``)."""

    @signature({"types": []})
    def _func_to_string(self, arg):
        """JMESPath's own, for any integer an event may hold: past 4,300 digits json.dumps refuses it."""
        try:
            return super()._func_to_string(arg)
        except ValueError as error:
            if not too_long(error):
                raise
            with any_size():
                return super()._func_to_string(arg)

    @signature({"types": [], "variadic": True})
    def _func_coalesce(self, *values):
        """The first argument that is neither null nor an empty string, else null.

        Unlike the standard ``not_null``, an empty string counts as missing, as in Segment's
        coalesce. Whitespace, ``0``, ``false``, ``[]`` and ``{}`` are values and are returned.

            coalesce(`null`, '', 'fallback')  =>  "fallback"
            coalesce(`0`, `5`)                =>  0
            coalesce(`null`, '')              =>  null
        """
        for value in values:
            if value is not None and value != "":
                return value
        return None

    @at_most(3)
    @signature({"types": _SCALARS}, {"types": ["string", "object"], "variadic": True})
    def _func_replace(self, subject, old, *rest):
        """``replace(subject, old, new)``, or ``replace(subject, {"old": "new", ...})`` applied in order.

        Every occurrence is replaced. A number or boolean subject is replaced in its text form
        (``1`` -> ``"1"``), as Segment's replace accepts them; the result is then a string. An empty
        ``old`` replaces nothing.

            replace('a-b-c', '-', '_')                        =>  "a_b_c"
            replace('Mr. Ada', `{"Mr. ": "", "Ada": "ADA"}`)  =>  "ADA"
            replace(`1`, '1', 'one')                          =>  "one"
            replace(`null`, 'a', 'b')                         =>  null
        """
        if isinstance(old, str):
            if len(rest) != 1:
                raise ArityError(3, 2 + len(rest), "replace")
            pairs = [(old, rest[0])]
        else:
            if rest:
                raise ArityError(2, 2 + len(rest), "replace")
            pairs = list(old.items())
        for _, new in pairs:
            if not isinstance(new, str):
                raise JMESPathTypeError("replace", new, type_name(new), ["string"])
        if subject is None:
            return None
        text = text_of(subject)
        for old_text, new_text in pairs:
            if old_text:
                text = text.replace(old_text, new_text)
        return text

    @signature({"types": ["string", "null"]})
    def _func_lower(self, text):
        """Lower case (Unicode-aware).

            lower('ÀDA Lovelace')  =>  "àda lovelace"
            lower(`null`)          =>  null
        """
        return None if text is None else text.lower()

    @signature({"types": ["string", "null"]})
    def _func_upper(self, text):
        """Upper case (Unicode-aware, so ``ß`` becomes ``SS`` as in JavaScript).

            upper('straße')  =>  "STRASSE"
            upper(`null`)    =>  null
        """
        return None if text is None else text.upper()

    @signature({"types": ["string", "null"]})
    def _func_trim(self, text):
        """Strip leading and trailing whitespace, Unicode spaces included.

            trim('  ada@example.com ')  =>  "ada@example.com"
            trim(`null`)                =>  null
        """
        return None if text is None else text.strip()

    @signature({"types": ["string", "null"]}, {"types": ["string"]})
    def _func_split(self, text, separator):
        """Split on every ``separator``; an empty separator splits into characters, as in JavaScript.

            split('a,b,,c', ',')  =>  ["a", "b", "", "c"]
            split('abc', '')      =>  ["a", "b", "c"]
            split('', ',')        =>  [""]
            split(`null`, ',')    =>  null
        """
        if text is None:
            return None
        if separator == "":
            return list(text)
        return text.split(separator)

    @signature({"types": [], "variadic": True})
    def _func_concat(self, *values):
        """Join scalars as text, or, when every non-null argument is an array, join the arrays.

        Nulls are skipped; numbers and booleans are written as JSON writes them. All null
        gives null. Mixing arrays with scalars, or passing an object, is a type error.

            concat('order-', `42`, '-', `1.5`, `true`)  =>  "order-42-1.5true"
            concat('a', `null`, 'b')                     =>  "ab"
            concat(`[1, 2]`, `null`, `[3]`)              =>  [1, 2, 3]
            concat(`null`, `null`)                       =>  null
        """
        present = [value for value in values if value is not None]
        if not present:
            return None
        if all(isinstance(value, list) for value in present):
            return [item for value in present for item in value]
        for value in present:
            if isinstance(value, (list, dict)):
                raise JMESPathTypeError("concat", value, type_name(value), _SCALARS)
        return "".join(text_of(value) for value in present)

    @signature({"types": ["string", "number", "null"]})
    def _func_url_segment(self, value):
        """A value as one path segment of a URL: percent-encoded (RFC 3986), so it stays that segment.

        Everything but letters, digits and ``-._~`` is encoded, ``/``, ``?`` and ``#`` included, as
        UTF-8; a segment of dots alone (``.``, ``..``) has its dots encoded too, so no client or
        server reads it as "this" or "the parent" directory. A number is written as JSON writes it.

            url_segment('../../admin?x=1#')  =>  "..%2F..%2Fadmin%3Fx%3D1%23"
            url_segment('Zoë Ng')            =>  "Zo%C3%AB%20Ng"
            url_segment('..')                =>  "%2E%2E"
            url_segment(`42`)                =>  "42"
            url_segment(`null`)              =>  null
        """
        if value is None:
            return None
        try:
            return url_segment(text_of(value))
        except ValueError as error:
            raise ValueError(f"url_segment(): {error}") from None

    @signature({"types": ["string", "number", "null"]})
    def _func_to_unix(self, timestamp):
        """ISO-8601 timestamp to seconds since 1970-01-01T00:00:00Z.

        An int when the time has no fraction of a second, else a float with microsecond
        precision (digits beyond microseconds are dropped). A time without an offset is UTC.
        A number is returned unchanged (it is taken to be epoch seconds already); text that is
        not ISO-8601 gives null.

            to_unix('2024-01-01T00:00:00Z')           =>  1704067200
            to_unix('2024-01-01T02:00:00.5+02:00')    =>  1704067200.5
            to_unix('2024-01-01')                     =>  1704067200
            to_unix(`1704067200`)                     =>  1704067200
            to_unix('yesterday')                      =>  null
        """
        if not isinstance(timestamp, str):
            return timestamp
        try:
            moment = parse_timestamp(timestamp)
        except (ValueError, OverflowError):
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        elapsed = moment - _EPOCH
        if elapsed.microseconds:
            return elapsed.total_seconds()
        return elapsed // _SECOND

    @signature()
    def _func_now(self):
        """The current UTC time, ISO-8601 with milliseconds and ``Z``: ``2024-05-01T12:00:00.123Z``.

            type(now())  =>  "string"
        """
        return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


#: The one set of options every expression is evaluated with.
OPTIONS = jmespath.Options(custom_functions=SwitchyardFunctions())

#: Every function name an expression may call, standard and custom.
FUNCTION_NAMES = tuple(sorted(SwitchyardFunctions.FUNCTION_TABLE))

#: The functions Switchyard adds, for docs and tests.
CUSTOM_FUNCTION_NAMES = tuple(
    sorted(set(SwitchyardFunctions.FUNCTION_TABLE) - set(Functions.FUNCTION_TABLE))
)


def arity(name: str) -> tuple[int, int | None] | None:
    """(fewest, most) arguments ``name`` takes, ``most`` None when unbounded; None if unknown."""
    entry = SwitchyardFunctions.FUNCTION_TABLE.get(name)
    if entry is None:
        return None
    parameters = entry["signature"]
    if parameters and parameters[-1].get("variadic"):
        return len(parameters), getattr(entry["function"], "max_args", None)
    return len(parameters), len(parameters)
