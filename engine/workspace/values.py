"""Reading values out of a Track API body: objects, text, timestamps, JSON to store, typed attributes.

Everything here is a pure function of its arguments (no database); a value that cannot be read
raises :class:`Refusal`, which the call around it turns into a stored, reported rejection.
"""
from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson

from ..integers import any_size, too_long

#: Marks "not given", where None (JSON null) is a value.
MISSING: Any = object()

_UNIX = re.compile(r"[0-9]+(\.[0-9]+)?")
_INTEGER = re.compile(r"[+-]?[0-9]+")
_DECIMAL = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")
# What orjson would write differently from json (datetimes, dataclasses, subclasses) goes to json instead.
_ORJSON_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_SUBCLASS


class NonFinite(Exception):  # noqa: N818 - not an error: the call is applied again
    """A value to store holds NaN or Infinity: the call is applied again with them as null (:class:`Call`)."""


class Refusal(Exception):
    """Raised anywhere inside a call to refuse it; nothing of the call is kept, the refusal is recorded."""

    def __init__(self, code: str, reason: str, field: str = "", suppression: int | None = None):
        super().__init__(reason)
        self.code, self.reason, self.field, self.suppression = code, reason, field, suppression


def object_of(body: dict, key: str, where: str | None = None) -> dict:
    """``body[key]`` as a dict copy, {} when absent or null."""
    value = body.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise Refusal("invalid_body", f"{where or key} must be an object", where or key)
    return dict(value)


def text(value: Any, where: str, code: str = "invalid_body") -> str:
    """An identifier-like value as text: JSON numbers are accepted as Segment turns them into text."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise Refusal(code, f"{where} must be text, not {json.dumps(value, default=repr)}", where)


def optional_text(value: Any, where: str) -> str | None:
    return None if value in (None, "") else text(value, where)


def dumps(value: Any, where: str) -> str:
    """``value`` as compact JSON text to store; :class:`NonFinite` if it holds NaN or Infinity.

    orjson writes most values. It writes NaN as null, so a result holding a null must read back
    as ``value`` (NaN equals nothing); else json writes it, and refuses NaN. Both write the same
    JSON for the same value.
    """
    try:
        data = orjson.dumps(value, option=_ORJSON_OPTIONS)
        if b"null" not in data or orjson.loads(data) == value:
            return data.decode()
    except TypeError:  # orjson.JSONEncodeError: an integer beyond 64 bits, a key that is not text
        pass
    try:
        with any_size():  # an integer of up to 100,000 digits, as an event may hold
            return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except ValueError as error:
        if too_long(error):
            raise Refusal("invalid_body", f"{where} holds an integer too long to store", where) from None
        raise NonFinite(where) from None


def loaded(text: str) -> Any:
    """JSON the workspace stored, read back; an integer of up to 100,000 digits (:func:`dumps` writes one) too."""
    try:
        return json.loads(text)
    except ValueError as error:
        if not too_long(error):
            raise
    with any_size():
        return json.loads(text)


def number(value: float) -> float | int:
    return int(value) if float(value).is_integer() else value


def unix(value: Any) -> float | int | None:
    """Unix seconds from a number, a string of digits or an ISO-8601 date (UTC when it has no offset); else None."""
    if type(value) is int:  # the usual case: what engine.customerio.requests sends
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return number(value) if math.isfinite(value) else None
    if isinstance(value, str):
        if _UNIX.fullmatch(value):
            return number(float(value))
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return number(parsed.timestamp())
    return None


def timestamp(now: float, value: Any, where: str) -> float | int:
    """A body's timestamp as Unix seconds; ``now`` (the time of the call) when it has none."""
    if value is None:
        return now
    seconds = unix(value)
    if seconds is None:
        raise Refusal("invalid_timestamp", f"{where} {json.dumps(value, default=repr)} is neither Unix seconds "
                                           "nor an ISO-8601 date", where)
    return seconds


def merged(current: dict, changes: dict, *, empty_removes: bool = False) -> dict:
    """``current`` updated with ``changes``: null (and for objects "") removes an attribute."""
    for name, value in changes.items():
        if value is None or (empty_removes and value == ""):
            current.pop(name, None)
        else:
            current[name] = value
    return current


# -- typed attributes: each conversion returns MISSING for a value it cannot convert ----------------

def _as_string(value: Any) -> Any:
    if isinstance(value, str):
        return value
    if isinstance(value, (bool, int, float)):
        return json.dumps(value)  # 999 -> "999", true -> "true"
    return MISSING


def _as_number(value: Any) -> Any:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        stripped = value.strip()
        if _INTEGER.fullmatch(stripped):
            return int(stripped)
        if _DECIMAL.fullmatch(stripped) and math.isfinite(float(stripped)):
            return float(stripped)
    return MISSING


def _as_boolean(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return MISSING


def _as_timestamp(value: Any) -> Any:
    seconds = unix(value)
    return MISSING if seconds is None else seconds


#: One conversion per attribute type (store.ATTRIBUTE_TYPES).
CONVERSIONS: dict[str, Callable[[Any], Any]] = {
    "string": _as_string, "number": _as_number, "boolean": _as_boolean, "timestamp": _as_timestamp}
