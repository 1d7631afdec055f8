"""Read Segment-spec events from NDJSON or JSON-array input, keeping every line accounted for, and write NDJSON.

A line that is not JSON is yielded as :class:`Unreadable` rather than skipped, so the run
can count it and dead-letter it. orjson does the parsing and writing; whatever it refuses
goes to the standard json module, so results are those of json: integers beyond 64 bits (up
to :data:`engine.integers.MAX_DIGITS` digits), NaN and lone surrogates (``"\\udfff"``) are read,
and an unreadable line carries json's message. Three things JSON parsers differ on make a
line unreadable rather than guessed at: invalid UTF-8 (replacing it would make ``u\\xff`` and
``u\\xfe`` one user id), a key written twice in one object (``"type":"track","type":"identify"``:
parsers keep the first, the last, or both), and nesting deeper than Python can read.
Blank lines are skipped and counted nowhere; the line numbers in sources count them.
"""
from __future__ import annotations

import io
import json
import os
import re
import stat
import sys
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, Any, Iterator

import orjson

from .integers import MAX_DIGITS, any_size, too_long


@dataclass(frozen=True, slots=True)
class Unreadable:
    source: str      # "file:line"
    text: str
    reason: str


class InputChanged(Exception):
    """A file's lines could not be read again where they were found: the file was replaced or rewritten
    while it was being read."""


@dataclass(frozen=True, slots=True)
class Where:
    """Where a part's bytes lie in a regular file, exactly as they were read: the file by the descriptor
    the reading process (``owner``) has open, by its path, and by its device and inode, which must match."""

    path: str
    device: int
    inode: int
    descriptor: int
    owner: int
    offset: int


@dataclass(frozen=True, slots=True)
class Lines:
    """Whole NDJSON lines of one input, not yet parsed: a part of the input that can be read on its own."""

    name: str
    number: int      # the line number of the first line
    data: bytes      # the lines, each ending in \n (the input's last one may not); line breaks already \n
    where: Where | None = None  # where ``data`` lies in a regular file, byte for byte, when it does
    newlines: int = -1  # how many \n ``data`` holds, when the reader counted them already

    def sendable(self) -> Lines | LinesInFile:
        """What to send another process for these lines: where they lie in their file when they lie in
        one, so that process reads them from the page cache rather than from a pipe; else the lines."""
        if self.where is None:
            return self
        newlines = self.newlines if self.newlines >= 0 else self.data.count(b"\n")
        return LinesInFile(self.name, self.number, self.where, len(self.data), newlines)

    def events(self) -> Iterator[tuple[str, object]]:
        """``(source, event)``, or ``(source, Unreadable)``, for every line that is not blank."""
        name, number = self.name, self.number
        loads, dumps, decode_error = orjson.loads, orjson.dumps, orjson.JSONDecodeError
        # One scan of the whole part is cheaper than one a line; a part with a run of 19 digits
        # somewhere, or a colon written \u003a, looks again line by line. A lone backslash is found
        # far faster than five bytes, and most parts have none.
        scan = _LONG_NUMBER in self.data.translate(_DIGITS_AS_ZEROS)
        escaped_colon = b"\\" in self.data and b"\\u003" in self.data
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
                else:
                    # orjson keeps the last of a key written twice. Every key has its colon, so the event
                    # written back has fewer colons only when a pair was dropped; the exact parse says
                    # which key. A colon written \u003a would hide one: such a line is parsed exactly too.
                    # A compact line written back is itself (no pair dropped): no counting then.
                    try:
                        written = dumps(event)
                        dropped = written != line and line.count(b":") != written.count(b":")
                    except TypeError:  # nested deeper than orjson writes (254 levels)
                        dropped = True
                    if dropped or (escaped_colon and b"\\u003" in line):
                        event = parse(line, source)
            yield source, event


@dataclass(frozen=True, slots=True)
class LinesInFile:
    """A part of a regular file named by where it lies: :meth:`Lines.sendable`.

    Sent to ``run``'s workers instead of the bytes: a pipe carried each megabyte in 64 KB pieces,
    copied four times, and that cost ``--workers 2`` 7% of its time (paired runs, 200,000 events).
    """

    name: str
    number: int
    where: Where
    size: int
    newlines: int

    def lines(self) -> Lines:
        """The lines, read again; :class:`InputChanged` if the file no longer holds them there.

        The file is found as a worker forked after it was opened has it (the descriptor it inherited),
        else through the reading process's open descriptor, else by its path: a log renamed away
        (rotated) while it is read is still read.
        """
        where = self.where
        descriptor, why = self._open()
        if descriptor is None:
            raise self._changed(why)
        try:
            pieces, offset, left = [], where.offset, self.size
            while left and (piece := os.pread(descriptor, left, offset)):
                pieces.append(piece)
                offset, left = offset + len(piece), left - len(piece)
        finally:
            os.close(descriptor)
        data = b"".join(pieces)
        if len(data) != self.size or data.count(b"\n") != self.newlines:
            raise self._changed("it was rewritten")
        return Lines(self.name, self.number, data, where, self.newlines)

    def _open(self) -> tuple[int | None, str]:
        """A descriptor of this very file (same device and inode, a regular file), or None and why not.
        Opened without blocking: a FIFO put in the file's place must not hold a worker for ever."""
        where, why = self.where, "it cannot be opened again"
        for path in (f"/proc/self/fd/{where.descriptor}", f"/proc/{where.owner}/fd/{where.descriptor}", where.path):
            try:
                descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            except OSError as error:
                if path == where.path:
                    why = f"it cannot be opened again ({error.strerror})"
                continue
            status = os.fstat(descriptor)
            if stat.S_ISREG(status.st_mode) and (status.st_dev, status.st_ino) == (where.device, where.inode):
                return descriptor, ""
            os.close(descriptor)
            if path == where.path:
                why = "another file has its name now"
        return None, why

    def events(self) -> Iterator[tuple[str, object]]:
        return self.lines().events()

    def _changed(self, why: str) -> InputChanged:
        return InputChanged(f"{self.name} changed while it was read: {why}; lines from {self.number} on "
                            "could not be read again")


def person_of(event: Any) -> str:
    """Whose event this is: ``userId``, else ``anonymousId``; "" for none (unreadable lines too)."""
    if event.__class__ is dict:
        for name in ("userId", "anonymousId"):
            value = event.get(name)
            if value is not None and value != "":
                return value if value.__class__ is str else id_text(value)
    return ""


def id_text(value: Any) -> str:
    """An id as text: a string as it is; anything else as Python writes it, an integer of any length
    whole; "" for one nested deeper than Python writes (grouped with the nameless)."""
    if value.__class__ is str:
        return value
    try:
        return str(value)
    except RecursionError:
        return ""
    except ValueError:  # an integer of more than 4,300 digits
        with any_size():
            return str(value)


def holds_lone_surrogate(text: str) -> bool:
    """Whether ``text`` holds a lone surrogate (``"\\udfff"``, which an event may): no UTF-8 can carry it."""
    if text.isascii():
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def with_escapes(text: str) -> str:
    """``text`` with each lone surrogate written as its escape (``\\udfff``), to print on a UTF-8 stream; in
    JSON text, where one can only be inside a string, that is the same value."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def read(stream: IO, name: str) -> Iterator[tuple[str, object]]:
    """Yield ``(source, event)`` for every event, or ``(source, Unreadable)``; blank lines are skipped.

    ``stream`` is best opened in binary; a text stream works too.
    """
    for part in read_parts(stream, name):
        yield from part.events() if isinstance(part, Lines) else (part,)


def read_document(data: bytes, name: str) -> list[tuple[str, object]]:
    """The events of an input read whole, as explain takes it: one JSON value (an event, perhaps
    written over several lines, or an array of events), else NDJSON, with the line of each.

    Each item is ``(source, event)`` or ``(source, Unreadable)``; an input with nothing but
    whitespace gives none.
    """
    items = list(read(io.BytesIO(data), name))
    if not items or not isinstance(items[0][1], Unreadable) or data.lstrip().startswith(b"["):
        return items
    # The first line alone is not JSON: perhaps the start of an event written over several lines.
    first = items[0][0]
    try:
        return [(first, _loads(data.strip()))]
    except _NotRead as refused:
        if refused.line == 1:  # the first line is at fault either way: its own reason, at its line
            return items
        source = f"{name}:{int(first.rsplit(':', 1)[1]) + refused.line - 1}"
        return [(source, Unreadable(source, refused.text[:2000], refused.reason))]


def read_parts(stream: IO, name: str, size: int = 1 << 20) -> Iterator[Lines | tuple[str, object]]:
    """The input in parts: :class:`Lines` of NDJSON of up to about ``size`` bytes, parsed later (maybe in
    another process), or the ``(source, item)`` pairs of a JSON array, which is read whole.

    A part holds what is there to read: on a pipe, the lines that have arrived.
    """
    blocks = _blocks(stream, size)
    number = 1  # of the first line of the next block
    for block, _ in blocks:
        if (start := _first_value(block)) is not None:
            break
        number += _line_count(block)
    else:
        return
    offset, skipped = start
    end = block.find(b"\n", offset) + 1 or len(block)
    # Whitespace before the first value is dropped, whatever line it is on, as it always was.
    first = block[offset:end].decode("utf-8", "surrogateescape").lstrip().encode("utf-8", "surrogateescape")
    if first.startswith(b"["):
        yield from _array(first + block[end:] + b"".join(block for block, _ in blocks), name)
        return
    part = Lines(name, number + skipped, first + block[end:])
    yield part
    number = part.number + _line_count(part.data)
    file = _file_of(stream)
    for block, at in blocks:
        newlines = block.count(b"\n")  # counted once: the line numbers, and the check of a worker's reading
        yield Lines(name, number, block, None if file is None or at is None else Where(*file, at), newlines)
        number += newlines + (not block.endswith(b"\n"))


def _file_of(stream: IO) -> tuple[str, int, int, int, int] | None:
    """``(path, device, inode, descriptor, owner)`` of the regular file ``stream`` reads (see :class:`Where`),
    when its name still leads to it."""
    path = getattr(stream, "name", None)
    if not isinstance(path, str) or isinstance(stream, io.TextIOBase):
        return None
    try:
        status, named = os.fstat(stream.fileno()), os.stat(path)
    except (OSError, ValueError, io.UnsupportedOperation):
        return None
    if not stat.S_ISREG(status.st_mode) or (status.st_dev, status.st_ino) != (named.st_dev, named.st_ino):
        return None
    return os.path.abspath(path), status.st_dev, status.st_ino, stream.fileno(), os.getpid()


def parse(line: bytes, source: str):
    """The event on one NDJSON line, or :class:`Unreadable` with the reason (json's, with its column)."""
    line = line.rstrip(b"\r\n")
    try:
        return _loads(line)
    except _NotRead as refused:
        return Unreadable(source, refused.text, refused.reason)


def read_line(line: bytes, source: str):
    """The event on one NDJSON line as :meth:`Lines.events` reads it (orjson where it reads exactly,
    else :func:`parse`), or :class:`Unreadable`: for a caller that gets lines one at a time (Spark).
    Blank lines are the caller's to skip, as :meth:`Lines.events` does."""
    event = _read_fast(line)
    return parse(line, source) if event is _NOT_FAST else event


_NOT_FAST = object()


def _read_fast(data: bytes) -> Any:
    """``data`` read by orjson where orjson reads it exactly, else ``_NOT_FAST``: a run of 19 digits (an
    integer beyond 64 bits, maybe), a colon written ``\\u003a``, a key written twice (orjson keeps the
    last: the event written back has fewer colons, see :meth:`Lines.events`), nesting orjson cannot
    write back, or text it cannot read at all."""
    if _LONG_NUMBER in data.translate(_DIGITS_AS_ZEROS) or b"\\u003" in data:
        return _NOT_FAST
    try:
        value = orjson.loads(data)
        return value if data.count(b":") == orjson.dumps(value).count(b":") else _NOT_FAST
    except (orjson.JSONDecodeError, TypeError):
        return _NOT_FAST


def loads_exact(data: bytes, *, ours: bool = False) -> tuple[Any, bool]:
    """One JSON document (a request body, a spooled event) read as :meth:`Lines.events` reads a line,
    and whether a key is written twice in an object in it.

    orjson reads it where it reads it exactly; otherwise json does: integers beyond 64 bits, lone
    surrogates, deep nesting are kept as written. An object in which a key is written twice is
    kept, marked: :func:`duplicate_key` and :func:`written_twice` find it, so a caller can refuse
    just the part that holds it. ``ours``: the bytes were written by :func:`to_line` (no key can be
    written twice in them). Raises ValueError saying why the document cannot be read.
    """
    value, twice, _ = loads_body(data, ours=ours)
    return value, twice


def loads_body(data: bytes, *, ours: bool = False) -> tuple[Any, bool, bool]:
    """:func:`loads_exact`, and whether orjson read the document: when it did not, it may hold ``NaN`` or
    ``Infinity``, which orjson writes as ``null``; :func:`exact_json` writes them as they were read."""
    if not ours:
        value = _read_fast(data)
        if value is not _NOT_FAST:
            return value, False, True
    elif _LONG_NUMBER not in data.translate(_DIGITS_AS_ZEROS):
        try:
            return orjson.loads(data), False, True
        except orjson.JSONDecodeError:
            pass
    try:
        value = _loads(data, duplicates=True)
    except _NotRead as refused:
        raise ValueError(refused.reason) from None
    return value, duplicate_key(value) is not None, False


def exact_json(value: Any) -> bytes:
    """``value`` as JSON in UTF-8 that :func:`loads_exact` reads back as it is: like :func:`to_line`'s, but
    ``NaN`` and ``Infinity`` written as those words (outside JSON, as Python's json writes them) rather than
    ``null``. For a document kept to be read again (serve's spool), not for one sent anywhere."""
    return _json_dumps(value, exact=True).encode("utf-8", "backslashreplace")


def written_twice(value: Any) -> str | None:
    """The key written twice in this very object (not in the values inside it) that :func:`loads_exact` read."""
    return value.key if isinstance(value, _Duplicated) else None  # type: ignore[attr-defined]


def to_line(value) -> bytes:
    """``value`` as one NDJSON line (compact JSON and a newline) in UTF-8.

    Whatever the event held is written: integers of any length read, nesting as deep as was read,
    and a lone surrogate as its escape (``"\\udfff"``), as JSON allows.
    """
    try:
        return orjson.dumps(value, option=_DUMPS_OPTIONS)
    except TypeError:  # orjson.JSONEncodeError: a non-str key, an integer beyond 64 bits, a type it does not know
        # a lone surrogate can only be inside a JSON string, where backslashreplace writes its escape
        return (_json_dumps(value) + "\n").encode("utf-8", "backslashreplace")


def json_text(value: Any, indent: int | None = None) -> str:
    """``value`` as JSON text to show a person (explain, a failed test case): ``NaN`` and ``Infinity`` as
    ``null``, other values as their text, indented when ``indent`` is given, else on one line with a space
    after each separator. A lone surrogate stays in the text: write it with ``backslashreplace``."""
    return _json_dumps(value, indent=indent, spaced=True)


def _json_dumps(value: Any, *, exact: bool = False, indent: int | None = None, spaced: bool = False) -> str:
    """json.dumps of what orjson refused, written as orjson writes: compact, and ``NaN`` and ``Infinity``
    as ``null`` (they are not JSON), unless ``exact``; the rare value with a very long integer or deep
    nesting too."""
    shape: dict[str, Any] = {"indent": indent} if indent is not None else {} if spaced else {"separators": (",", ":")}
    try:
        text = json.dumps(value, ensure_ascii=False, default=str, **shape)
    except (ValueError, RecursionError) as error:
        if isinstance(error, ValueError) and not too_long(error):
            raise
        with any_size(), _deep():
            text = json.dumps(value, ensure_ascii=False, default=str, **shape)
    if exact or ("NaN" not in text and "Infinity" not in text):
        return text
    return _NOT_FINITE.sub(lambda found: "null" if found.group(1) else found.group(0), text)


_NOT_FINITE = re.compile(r'"(?:[^"\\]|\\.)*"|(-?Infinity|NaN)')  # a string, or a number that is not one


def stored_json(value: Any) -> str:
    """``value`` as JSON text a store can keep whatever it holds: :func:`to_line`'s, a lone surrogate as its escape."""
    return to_line(value)[:-1].decode("utf-8")


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


def may_hold_non_finite(data: bytes) -> bool:
    """Whether the JSON text ``data`` may hold NaN or Infinity: their words, or a number that may pass a
    float's range (1.8e308): an exponent of three digits, or 210 digits in a row, which with an exponent of
    two digits may pass it. False alarms are possible (such text inside a string), misses are not. One
    translation in C, then searches: a regular expression took 1.8 ms a 185 KB body, as long as reading it."""
    if b"NaN" in data or b"Infinity" in data:
        return True
    shapes = data.translate(_NUMBER_SHAPES)
    return b"0e000" in shapes or b"0e+000" in shapes or b"0" * 210 in shapes


_NUMBER_SHAPES = bytes(ord("0") if chr(byte) in "0123456789." else ord("e") if chr(byte) in "eE"
                       else byte if chr(byte) == "+" else ord("x") for byte in range(256))
_LONG_NUMBER = b"0" * 19
_BRACE = ord("{")


class _NotRead(Exception):
    def __init__(self, data: bytes, reason: str, errors: str = "replace", line: int = 1):
        super().__init__(reason)
        self.reason = reason
        self.text = data.decode("utf-8", errors)
        self.line = line  # within data, for a JSON array read whole


class _Duplicated(dict):
    """An object in which a key was written twice (only ever inside a line that is then refused)."""


def _object(pairs: list[tuple[str, Any]]) -> dict:
    found = dict(pairs)
    if len(found) == len(pairs):
        return found
    seen: set[str] = set()
    duplicated = _Duplicated(found)
    duplicated.key = next(key for key, _ in pairs if key in seen or seen.add(key))  # type: ignore[attr-defined,func-returns-value]
    return duplicated


def _loads(data: bytes, *, duplicates: bool = False):
    """Parse JSON exactly, with json: raises :class:`_NotRead` with the reason it cannot be read
    (a key written twice too, unless ``duplicates``: then the object is kept, marked)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise _NotRead(data, f"not valid UTF-8: byte 0x{data[error.start]:02X} at column {error.start + 1}",
                       "backslashreplace") from None
    try:
        try:
            value = json.loads(text, object_pairs_hook=_object)
        except (ValueError, RecursionError) as error:
            if isinstance(error, json.JSONDecodeError) or (isinstance(error, ValueError) and not too_long(error)):
                raise
            with any_size(), _deep():  # a few hundred levels, read from deep in the stack; or a long integer
                value = json.loads(text, object_pairs_hook=_object)
    except json.JSONDecodeError as error:
        raise _NotRead(data, f"not valid JSON: {error.msg} (column {error.colno})", line=error.lineno) from None
    except ValueError as error:
        if not too_long(error):
            raise
        raise _NotRead(data, f"an integer has more than {MAX_DIGITS:,} digits") from None
    except RecursionError:
        raise _NotRead(data, f"arrays and objects nest too deeply to read (an event may nest {MAX_DEPTH:,} levels)") \
            from None
    if not duplicates and not isinstance(value, list) and (key := duplicate_key(value)) is not None:
        raise _NotRead(data, f"the key {json.dumps(key, ensure_ascii=False)} is written twice in one object; "
                             "JSON leaves its meaning open")
    return value


def duplicate_key(value: Any) -> str | None:
    """The first key written twice in an object anywhere in ``value`` (read by :func:`loads_exact` or
    :func:`_loads`; walked without recursion), or None."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if isinstance(item, _Duplicated):
                return item.key  # type: ignore[attr-defined]
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return None


def _array(data: bytes, name: str):
    try:
        items = _loads(data)
    except _NotRead as refused:
        # json numbers the lines from the "[" on, the one place a JSON-array error can point to
        source = f"{name}:{refused.line}"
        yield source, Unreadable(source, refused.text[:2000], refused.reason)
        return
    texts: list[str] | None = None
    for index, item in enumerate(items):
        source = f"{name}[{index}]"
        key = duplicate_key(item)
        if key is None:
            yield source, item
        else:
            if texts is None:
                try:
                    texts = _item_texts(data)
                except (ValueError, IndexError, RecursionError):  # not found again: the item as it was read
                    texts = []
            text = texts[index] if index < len(texts) else _json_dumps(item)
            yield source, Unreadable(source, text[:2000], f"the key {json.dumps(key, ensure_ascii=False)} is "
                                                          "written twice in one object; JSON leaves its meaning open")


def _item_texts(data: bytes) -> list[str]:
    """The text of each item of the JSON array ``data`` (already read once, so valid), as written: what an
    unreadable item's record keeps, every value of a key written twice included."""
    text = data.decode("utf-8", "surrogateescape")
    decoder, texts = json.JSONDecoder(object_pairs_hook=list), list[str]()
    position = text.index("[") + 1
    with any_json():
        while True:
            position = _after_space(text, position)
            if text[position] == "]":
                return texts
            _, end = decoder.raw_decode(text, position)
            texts.append(text[position:end])
            position = _after_space(text, end)
            if text[position] == ",":
                position += 1


def _after_space(text: str, position: int) -> int:
    while text[position] in " \t\r\n":
        position += 1
    return position


@contextmanager
def any_json() -> Iterator[None]:
    """Within: the json module reads and writes whatever a line read here can hold (integers of up
    to :data:`engine.integers.MAX_DIGITS` digits, nesting :data:`MAX_DEPTH` levels deeper than now)."""
    with any_size(), _deep():
        yield


@contextmanager
def _deep() -> Iterator[None]:
    """Within: json reads and writes :data:`MAX_DEPTH` levels more than the stack in use holds.

    json counts each level against Python's recursion limit, so a value orjson reads (1,024
    levels) may be too deep for json where the stack is already deep. The C stack holds that
    many levels easily; far deeper input still stops with RecursionError, never a crash.
    """
    with deeper(MAX_DEPTH + 100):
        yield


MAX_DEPTH = 1_000  # about what orjson reads (1,024) and json can write; docs/rule-files.md#events


@contextmanager
def deeper(levels: int) -> Iterator[None]:
    """Within: Python's recursion limit is at least ``levels`` above its usual value.

    The limit is the whole process's: every raise in progress is counted (from any thread), and the
    usual value comes back when the last one ends, whichever ends first.
    """
    global _usual_limit
    with _LIMIT_LOCK:
        if not _raises:
            _usual_limit = sys.getrecursionlimit()
        _raises.append(levels)
        sys.setrecursionlimit(_usual_limit + max(_raises))
    try:
        yield
    finally:
        with _LIMIT_LOCK:
            _raises.remove(levels)
            sys.setrecursionlimit(_usual_limit + max(_raises, default=0))


_LIMIT_LOCK = threading.Lock()
_raises: list[int] = []
_usual_limit = 1_000


def _blocks(stream: IO, size: int) -> Iterator[tuple[bytes, int | None]]:
    """``stream`` in blocks of whole lines, as bytes, with every \\r\\n and lone \\r made \\n as text mode
    does; with each, the stream position it was read from when the block is those very bytes, else None."""
    text = isinstance(stream.read(0), str)
    read = stream.read if text else getattr(stream, "read1", stream.read)  # read1: what is there, up to size
    try:
        position: int | None = None if text else stream.tell()
    except (OSError, ValueError):
        position = None
    rest = b""  # an unfinished line, or a \r that may be the start of a \r\n
    while data := read(size):
        if text:
            data = data.encode("utf-8", "surrogatepass")
        start = None if position is None else position - len(rest)  # where rest, then this block, began
        if position is not None:
            position += len(data)
        if b"\r" in data or b"\r" in rest:
            data = rest + data
            cut = max(data.rfind(b"\n"), data.rfind(b"\r", 0, len(data) - 1)) + 1
            rest = data[cut:]
            if cut:
                block = data[:cut]
                yield (_newlines(block), None) if b"\r" in block else (block, start)
            continue
        # The usual input, \n only: the lines end at the last \n read, and the block is made in one copy.
        cut = data.rfind(b"\n") + 1
        if cut:
            yield b"".join((rest, memoryview(data)[:cut])), start
            rest = data[cut:]
        else:
            rest += data
    if rest:
        yield (_newlines(rest), None) if b"\r" in rest else (rest, None if position is None else position - len(rest))


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
