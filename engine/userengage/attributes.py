"""The typing rule of User.com's custom attributes, written down once for users, events and companies.

Segment's documentation of the destination: an attribute with no definition is created with
type string (``999`` becomes ``"999"``); one with a definition gets the value converted to its
type, and a value that cannot be converted is ignored, never failing the call. Types are
User.com's: ``string``, ``number``, ``boolean``, ``date`` (stored as ISO-8601 UTC text).
"""
from __future__ import annotations

import json
import math
import re
from datetime import UTC
from typing import Any

from engine.mapping.functions import parse_timestamp, text_of

TYPES = ("string", "number", "boolean", "date")
SCOPES = ("user", "event", "company")
#: A value that cannot take its attribute's type: the attribute is left as it was.
IGNORED = object()

_INTEGER = re.compile(r"[+-]?[0-9]+")
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_BOOLEANS = {"true": True, "false": False, "1": True, "0": False, "yes": True, "no": False}


def convert(value: Any, kind: str) -> Any:
    """``value`` as an attribute of type ``kind``, or :data:`IGNORED`; null stays null (it clears the attribute)."""
    if value is None:
        return None
    return _CONVERTERS[kind](value)


def _string(value: Any) -> Any:
    if isinstance(value, str):
        return value
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text_of(value)


def _number(value: Any) -> Any:
    if isinstance(value, bool):
        return IGNORED
    if isinstance(value, (int, float)):
        return value if math.isfinite(value) else IGNORED
    if isinstance(value, str):
        text = value.strip()
        if _INTEGER.fullmatch(text):
            return int(text)
        if _DECIMAL.fullmatch(text):
            number = float(text)
            return number if math.isfinite(number) else IGNORED
    return IGNORED


def _boolean(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        return _BOOLEANS.get(value.strip().lower(), IGNORED)
    return IGNORED


def _date(value: Any) -> Any:
    from .requests import date_text

    if isinstance(value, bool):
        return IGNORED
    if isinstance(value, (int, float)):
        try:
            return date_text(value) if math.isfinite(value) else IGNORED
        except (OverflowError, OSError, ValueError):
            return IGNORED
    if isinstance(value, str):
        try:
            when = parse_timestamp(value.strip())
        except ValueError:
            return IGNORED
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return IGNORED


_CONVERTERS = {"string": _string, "number": _number, "boolean": _boolean, "date": _date}
