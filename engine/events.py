"""Read Segment-spec events from NDJSON or JSON-array input, keeping every line accounted for.

A line that is not JSON is yielded as :class:`Unreadable` rather than skipped, so the run
can count it and dead-letter it.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import IO, Iterator


@dataclass(frozen=True, slots=True)
class Unreadable:
    source: str      # "file:line"
    text: str
    reason: str


def read(stream: IO[str], name: str) -> Iterator[tuple[str, object]]:
    """Yield ``(source, event)`` for every event, or ``(source, Unreadable)``; blank lines are skipped."""
    first, skipped_lines = stream.read(1), 0
    while first and first.isspace():
        skipped_lines += first == "\n"
        first = stream.read(1)
    if first == "[":
        text = first + stream.read()
        try:
            items = json.loads(text)
        except json.JSONDecodeError as error:
            yield f"{name}:{error.lineno}", Unreadable(f"{name}:{error.lineno}", text[:2000], f"not valid JSON: {error.msg}")
            return
        for index, item in enumerate(items):
            yield f"{name}[{index}]", item
        return
    number = skipped_lines
    pending = first
    for line in stream:
        number += 1
        line = pending + line
        pending = ""
        if line.strip():
            yield from _parse_line(line, f"{name}:{number}")
    if pending.strip():
        number += 1
        yield from _parse_line(pending, f"{name}:{number}")


def _parse_line(line: str, source: str):
    line = line.rstrip("\r\n")
    try:
        yield source, json.loads(line)
    except json.JSONDecodeError as error:
        yield source, Unreadable(source, line, f"not valid JSON: {error.msg} (column {error.colno})")
