"""Integers of any size in JSON text, up to :data:`MAX_DIGITS` digits: read and written exactly.

Python refuses to turn text of more than 4,300 digits into an integer or back (the conversion
is quadratic: CVE-2020-10735). An event may hold a longer one, and the docs promise integers are
kept as written, so the readers and writers that meet one convert it with the limit raised to
:data:`MAX_DIGITS` for that one conversion. A longer one is refused as the line's reason: a
million digits would take seconds to read and more to write, each time.

The limit is process-wide; :func:`any_size` raises it under a lock and puts it back, so two
threads never leave it raised. Another thread that converts during that window merely may.
"""
from __future__ import annotations

import sys
import threading
from contextlib import contextmanager
from typing import Iterator

MAX_DIGITS = 100_000

_LOCK = threading.Lock()


@contextmanager
def any_size() -> Iterator[None]:
    """Within: integers of up to :data:`MAX_DIGITS` digits convert to and from text."""
    with _LOCK:
        before = sys.get_int_max_str_digits()
        if before and before < MAX_DIGITS:
            sys.set_int_max_str_digits(MAX_DIGITS)
        try:
            yield
        finally:
            sys.set_int_max_str_digits(before)


def too_long(error: ValueError) -> bool:
    """Whether ``error`` is Python refusing an integer's conversion for its number of digits."""
    return "integer string conversion" in str(error)
