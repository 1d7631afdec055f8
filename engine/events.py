"""Read Segment-spec events from NDJSON or JSON-array input, keeping every line accounted for, and write NDJSON.

A line that is not JSON is yielded as :class:`Unreadable` rather than skipped, so the run
can count it and dead-letter it. orjson does the parsing and writing; whatever it refuses
goes to the standard json module, so results are those of json: invalid UTF-8 is replaced,
integers beyond 64 bits and NaN are read, and an unreadable line carries json's message.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import IO, Iterator

import orjson


@dataclass(frozen=True, slots=True)
class Unreadable:
    source: str      # "file:line"
    text: str
    reason: str


@dataclass(frozen=True, slots=True)
class Lines:
    """Whole NDJSON lines of one input, not yet parsed: a part of the input that can be read on its own."""

    name: str
    number: int      # the line number of the first line
    data: bytes      # the lines, each ending in \n (the input's last one may not); line breaks already \n

    def events(self) -> Iterator[tuple[str, object]]:
        """``(source, event)``, or ``(source, Unreadable)``, for every line that is not blank."""
        name, number = self.name, self.number
        loads, decode_error = orjson.loads, orjson.JSONDecodeError
        # One scan of the whole part is cheaper than one a line; a part with a run of 19 digits
        # somewhere looks again line by line.
        scan = _LONG_NUMBER in self.data.translate(_DIGITS_AS_ZEROS)
        for line in self.data.split(b"\n"):
            number += 1
            if not line or (line[0] != _BRACE and _blank(line)):
                continue
            source = f"{name}:{number - 1}"
            # parse(), written out for the usual line: one that orjson reads, and reads exactly.
            if scan and _LONG_NUMBER in line.translate(_DIGITS_AS_ZEROS):
                event = parse(line, source)
            else:
                try:
                    event = loads(line)
                except decode_error:
                    event = parse(line, source)
            yield source, event


def read(stream: IO, name: str) -> Iterator[tuple[str, object]]:
    """Yield ``(source, event)`` for every event, or ``(source, Unreadable)``; blank lines are skipped.

    ``stream`` is best opened in binary; a text stream works too.
    """
    for part in read_parts(stream, name):
        yield from part.events() if isinstance(part, Lines) else (part,)


def read_parts(stream: IO, name: str, size: int = 1 << 20) -> Iterator[Lines | tuple[str, object]]:
    """The input in parts: :class:`Lines` of NDJSON of up to about ``size`` bytes, parsed later (maybe in
    another process), or the ``(source, item)`` pairs of a JSON array, which is read whole.

    A part holds what is there to read: on a pipe, the lines that have arrived.
    """
    blocks = _blocks(stream, size)
    number = 1  # of the first line of the next block
    for block in blocks:
        if (start := _first_value(block)) is not None:
            break
        number += _line_count(block)
    else:
        return
    offset, skipped = start
    end = block.find(b"\n", offset) + 1 or len(block)
    # Whitespace before the first value is dropped, whatever line it is on, as it always was.
    first = block[offset:end].decode("utf-8", "replace").lstrip().encode("utf-8")
    if first.startswith(b"["):
        yield from _array(first + block[end:] + b"".join(blocks), name)
        return
    part = Lines(name, number + skipped, first + block[end:])
    yield part
    number = part.number + _line_count(part.data)
    for block in blocks:
        yield Lines(name, number, block)
        number += _line_count(block)


def parse(line: bytes, source: str):
    """The event on one NDJSON line, or :class:`Unreadable` with json's reason and column."""
    line = line.rstrip(b"\r\n")
    try:
        return _loads(line)
    except json.JSONDecodeError as error:
        text = line.decode("utf-8", "replace")
        return Unreadable(source, text, f"not valid JSON: {error.msg} (column {error.colno})")


def to_line(value) -> bytes:
    """``value`` as one NDJSON line (compact JSON and a newline) in UTF-8."""
    try:
        return orjson.dumps(value, option=_DUMPS_OPTIONS)
    except TypeError:  # orjson.JSONEncodeError: a non-str key, an integer beyond 64 bits, a type it does not know
        # a lone surrogate can only be inside a JSON string, where backslashreplace writes its escape
        return (json.dumps(value, ensure_ascii=False, default=str) + "\n").encode("utf-8", "backslashreplace")


def call_line(call) -> bytes:
    """An ActionCall as one NDJSON line: the same bytes as ``to_line(call.to_dict())``, in less time.

    Everything before the message id is the same for every call of a mapping, so it is
    serialised once per mapping; only the message id and the payload are serialised per call.
    """
    try:
        head = _CALL_HEADS[call.destination, call.mapping, call.action]
    except KeyError:
        head = _call_head(call)
    try:
        return b"".join((head, orjson.dumps(call.message_id, option=_PLAIN_OPTIONS), b',"payload":',
                         orjson.dumps(call.payload, option=_PLAIN_OPTIONS), b"}\n"))
    except TypeError:
        return to_line(call.to_dict())


_CALL_HEADS: dict[tuple, bytes] = {}  # one entry per mapping that has made a call


def _call_head(call) -> bytes:
    # to_dict() ends with messageId then payload; tests/test_events_reading.py pins the equality.
    skeleton = to_line({**call.to_dict(), "messageId": None, "payload": None})
    head = skeleton[:-len(b'null,"payload":null}\n')]
    _CALL_HEADS[call.destination, call.mapping, call.action] = head
    return head


# What orjson would write differently from json (datetimes, dataclasses, subclasses of str, int, dict
# and list) is refused instead, so that it reaches the json fallback.
_PLAIN_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_SUBCLASS
_DUMPS_OPTIONS = orjson.OPT_APPEND_NEWLINE | _PLAIN_OPTIONS

# Some orjson versions read an integer beyond 64 bits as a float rather than refusing it; a line with a
# run of 19 digits anywhere goes to json, which reads such numbers exactly.
_DIGITS_AS_ZEROS = bytes(ord("0") if chr(byte) in "0123456789" else ord("x") for byte in range(256))
_LONG_NUMBER = b"0" * 19
_BRACE = ord("{")


def _loads(data: bytes):
    """Parse JSON as ``json.loads`` on the text decoded with errors="replace" would; raises its errors."""
    if _LONG_NUMBER not in data.translate(_DIGITS_AS_ZEROS):
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass
    return json.loads(data.decode("utf-8", "replace"))


def _array(data: bytes, name: str):
    try:
        items = _loads(data)
    except json.JSONDecodeError as error:
        # json numbers the lines from the "[" on, the one place a JSON-array error can point to
        text = data.decode("utf-8", "replace")
        source = f"{name}:{error.lineno}"
        yield source, Unreadable(source, text[:2000], f"not valid JSON: {error.msg}")
        return
    for index, item in enumerate(items):
        yield f"{name}[{index}]", item


def _blocks(stream: IO, size: int) -> Iterator[bytes]:
    """``stream`` in blocks of whole lines, as bytes, with every \\r\\n and lone \\r made \\n as text mode does."""
    text = isinstance(stream.read(0), str)
    read = stream.read if text else getattr(stream, "read1", stream.read)  # read1: what is there, up to size
    rest = b""  # an unfinished line, or a \r that may be the start of a \r\n
    while data := read(size):
        if text:
            data = data.encode("utf-8", "surrogatepass")
        if b"\r" in data or b"\r" in rest:
            data = rest + data
            cut = max(data.rfind(b"\n"), data.rfind(b"\r", 0, len(data) - 1)) + 1
            rest = data[cut:]
            if cut:
                yield _newlines(data[:cut])
            continue
        # The usual input, \n only: the lines end at the last \n read, and the block is made in one copy.
        cut = data.rfind(b"\n") + 1
        if cut:
            yield b"".join((rest, memoryview(data)[:cut]))
            rest = data[cut:]
        else:
            rest += data
    if rest:
        yield _newlines(rest)


def _newlines(block: bytes) -> bytes:
    return block.replace(b"\r\n", b"\n").replace(b"\r", b"\n") if b"\r" in block else block


def _first_value(block: bytes) -> tuple[int, int] | None:
    """Where the first line that is not blank starts in ``block``, and how many lines come before it."""
    position = skipped = 0
    while position < len(block):
        end = block.find(b"\n", position) + 1 or len(block)
        if not _blank(block[position:end]):
            return position, skipped
        position, skipped = end, skipped + 1
    return None


def _line_count(data: bytes) -> int:
    return data.count(b"\n") + (not data.endswith(b"\n"))


def _blank(line: bytes) -> bool:
    # Any Unicode whitespace counts, as in text mode; most lines start with "{" and are not decoded here.
    return line[:1] != b"{" and not line.decode("utf-8", "replace").strip()
