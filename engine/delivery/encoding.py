"""Request bodies as the bytes sent, for every HTTP transport: orjson, with what it refuses handled.

Event data can hold what orjson refuses (integers beyond 64 bits, deep nesting) and what no JSON
text can carry as UTF-8 (a lone surrogate). The first is written exactly by the json module; the
second raises :class:`UnencodableBody`, naming where it is, and the caller refuses that call
rather than crash the run or send something the event did not say.
"""
from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from typing import Any

import orjson

from ..events import any_json


class UnencodableBody(ValueError):
    """A body JSON cannot carry (text with a lone surrogate): the call is refused, never sent."""


def encode(body: dict) -> bytes:
    """``body`` as the bytes sent: compact JSON in UTF-8, non-ASCII text as it is.

    orjson writes it; what orjson refuses (integers beyond 64 bits, nesting deeper than 254)
    the json module writes the same way. NaN and infinities are null, as JSON.stringify has
    them. Raises :class:`UnencodableBody` for text with a lone surrogate.
    """
    try:
        return orjson.dumps(body)
    except orjson.JSONEncodeError:
        return _encode_with_json(body)


def unencodable(error: UnicodeEncodeError, body: Any) -> str:
    """Why ``body`` cannot be sent, for a store that met a lone surrogate in it (the words of a transport's refusal)."""
    code = ord(error.object[error.start]) if isinstance(error.object, str) else 0xFFFD
    return (f"{_lone_surrogate(body, 'body') or 'the body'} holds a lone surrogate (U+{code:04X}), which JSON text "
            "cannot carry: the call cannot be sent")


#: What storing a value can raise that says the value, not the store, is at fault: a lone surrogate
#: (UnicodeEncodeError, a ValueError), an integer beyond 64 bits (OverflowError), a value of no column's type.
UNSTORABLE = (ValueError, TypeError, OverflowError, RecursionError)


def unstorable(error: BaseException, body: Any) -> str:
    """Why an embedded stand-in refuses ``body``, from what storing one of its values raised."""
    if isinstance(error, UnicodeEncodeError):
        return unencodable(error, body)
    try:
        where = _lone_surrogate(body, "body")
    except RecursionError:  # nested deeper than this stack walks: the error says what it can
        where = None
    if where is not None:  # orjson says so with a TypeError
        return f"{where} holds a lone surrogate, which JSON text cannot carry: the call cannot be sent"
    return f"a value in the body cannot be stored ({type(error).__name__}: {error}): the call cannot be applied"


def _encode_with_json(body: dict) -> bytes:
    try:
        with any_json():  # an integer of more than 4,300 digits, or nesting of 900 levels, is written as read
            return json.dumps(finite(body), ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()
    except UnicodeEncodeError as error:
        raise UnencodableBody(unencodable(error, body)) from None
    except (RecursionError, TypeError, ValueError) as error:
        raise UnencodableBody(f"the body cannot be written as JSON: {error}") from None


def holds_non_finite(value: Any) -> bool:
    """Whether ``value`` holds NaN or an infinity anywhere (what :func:`finite` replaces); at any depth."""
    waiting = [value]
    while waiting:
        item = waiting.pop()
        if isinstance(item, float):
            if not math.isfinite(item):
                return True
        elif isinstance(item, dict):
            waiting.extend(item.values())
        elif isinstance(item, (list, tuple)):
            waiting.extend(item)
    return False


def finite(value: Any) -> Any:
    """``value`` with NaN and infinities as None, as orjson and JSON.stringify write them."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(item) for item in value]
    return value


def _lone_surrogate(value: Any, where: str) -> str | None:
    """Where in ``value`` the first text with a lone surrogate is, a key or a value; None if nowhere."""
    if isinstance(value, str):
        return where if _SURROGATE.search(value) else None
    items: Iterable[tuple[str, Any]] = ()
    if isinstance(value, dict):
        for key in value:
            if isinstance(key, str) and _SURROGATE.search(key):
                return f"a key of {where}"
        items = ((f"{where}.{key}", item) for key, item in value.items())
    elif isinstance(value, (list, tuple)):
        items = ((f"{where}[{index}]", item) for index, item in enumerate(value))
    for path, item in items:
        found = _lone_surrogate(item, path)
        if found:
            return found
    return None


_SURROGATE = re.compile("[\ud800-\udfff]")
