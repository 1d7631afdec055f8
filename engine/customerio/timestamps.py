"""Customer.io's "Convert Timestamps": which strings become Unix seconds, and which stay as they are.

This module owns the date rules of the ``customerio`` catalog and nothing else: it never
builds request bodies (that is :mod:`engine.customerio.requests`) and never reads files.

Segment's destination runs JavaScript, so "is this a date" means what V8's ``Date.parse``
and dayjs say; :mod:`engine.customerio.jsdate` reads dates as they do. The rules, from
Customer.io's Segment guide (its table is in docs/customerio.md)
and Segment's ``destinations/customerio/utils.ts``:

- :func:`convert_attribute_timestamps` (the Convert Timestamps setting): a string that is
  ISO-8601 with at most millisecond precision becomes Unix seconds, recursively through
  nested objects (arrays are not entered). More than three fractional digits, phone numbers,
  ids and other strings stay. A key named ``created_at`` also converts any date a JavaScript
  ``Date`` reads (``25 Mar 2015``, ``01/01/2019``), but still not a sub-millisecond one.
- :func:`convert_valid_timestamp` (the event's own ``timestamp``, always applied): dayjs's lax
  reading; a string of digits (already Unix time) and an unreadable string stay as they are.

Times without an offset are read as UTC, whatever this machine's time zone. (Segment's code
reads them in its server's local time zone.)
"""
from __future__ import annotations

import re
from typing import Any

from .jsdate import dayjs_utc, js_date_parse

# -- the two public conversions ------------------------------------------------------------

# Segment's isostring pattern, with the fraction capped at three digits: the seed's table says
# a timestamp with more than millisecond precision is not converted.
_ISO_ATTRIBUTE = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}"
    r"((T[0-9]{2}:[0-9]{2}(:[0-9]{2})?)(\.[0-9]{1,3})?(Z|[+-][0-9]{2}:?[0-9]{2})?)?"
)
_UNIX_TEXT = re.compile(r"[0-9]+(\.[0-9]+)?")
_SUB_MILLISECOND = re.compile(r"[0-9]:[0-9]{2}\.[0-9]{4,}")
CREATED_AT = "created_at"


def is_iso_timestamp(text: Any) -> bool:
    """Whether ``text`` is an ISO-8601 date or time (at most milliseconds) that JavaScript can read."""
    return isinstance(text, str) and _ISO_ATTRIBUTE.fullmatch(text) is not None and js_date_parse(text) is not None


def convert_attribute_timestamps(values: dict) -> dict:
    """A copy of ``values`` with every ISO-8601 string, at any depth of nested objects, as Unix seconds."""
    out = {}
    for key, value in values.items():
        if isinstance(value, str):
            if key == CREATED_AT:
                value = _convert_created_at(value)
            # An ISO attribute is 10 to 29 characters with "-" after the year: most text is
            # turned away by those before the pattern runs.
            elif 10 <= len(value) <= 29 and value[4] == "-" and _ISO_ATTRIBUTE.fullmatch(value):
                value = _as_seconds(value)
        elif isinstance(value, dict):
            value = convert_attribute_timestamps(value)
        out[key] = value
    return out


def convert_valid_timestamp(value: Any) -> Any:
    """Unix seconds for a readable date string; anything else (numbers, digit strings, junk) unchanged."""
    if not isinstance(value, str) or _UNIX_TEXT.fullmatch(value):
        return value
    milliseconds = dayjs_utc(value)
    return value if milliseconds is None else milliseconds // 1000


def _convert_created_at(text: str):
    if _UNIX_TEXT.fullmatch(text) or _SUB_MILLISECOND.search(text):
        return text
    return _as_seconds(text)


def _as_seconds(text: str):
    """Unix seconds as dayjs reads ``text``, if ``Date.parse`` reads it at all; else ``text`` itself."""
    milliseconds = js_date_parse(text)
    # dayjs hands text ending in Z to Date.parse, so only other text needs reading again.
    if milliseconds is not None and not text.endswith(("Z", "z")):
        milliseconds = dayjs_utc(text)
    return text if milliseconds is None else milliseconds // 1000
