"""Request bodies as JSON bytes, for every HTTP transport: orjson, with the cases it refuses handled.

orjson refuses integers beyond 64 bits and strings holding a lone surrogate (event data may
have both). An integer of any size is written exactly, as JSON allows; a lone surrogate cannot be
sent as UTF-8 at all, so the call is refused with :class:`EncodingError` saying where, rather
than crashing the run or sending something the event did not say.
"""
from __future__ import annotations

import json
import sys
from typing import Any

import orjson


class EncodingError(ValueError):
    """A body that cannot be written as UTF-8 JSON (a lone surrogate in a string)."""


def encode(body: Any) -> bytes:
    """``body`` as compact UTF-8 JSON."""
    try:
        return orjson.dumps(body)
    except TypeError:
        pass
    try:
        text = json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except ValueError as error:
        if "digits" not in str(error):
            raise EncodingError(f"not JSON: {error}") from None
        text = _with_long_integers(body)
    except (TypeError, RecursionError) as error:
        raise EncodingError(f"not JSON: {error}") from None
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as error:
        bad = error.object[error.start:error.end]
        raise EncodingError(f"a string holds a lone surrogate ({bad.encode('unicode_escape').decode()}), "
                            f"which cannot be sent as UTF-8") from None


def _with_long_integers(body: Any) -> str:
    """json.dumps with Python's limit on the digits of an integer lifted, for this one body."""
    limit = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(0)
    try:
        return json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    finally:
        sys.set_int_max_str_digits(limit)
