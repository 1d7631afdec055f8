"""Reading NDJSON events (orjson, with json's answers wherever orjson refuses a line) and writing NDJSON."""
from __future__ import annotations

import io
import json
import math
import os
import threading
import time
from datetime import datetime

import pytest

from conftest import switchyard
from engine.events import InputChanged, Lines, LinesInFile, Unreadable, read, read_line, read_parts, to_line

EXPECTING_NAME = "Expecting property name enclosed in double quotes"
TWICE = " is written twice in one object; JSON leaves its meaning open"
DUPLICATE_TYPE = '"type"' + TWICE
DEEP = "arrays and objects nest too deeply to read (an event may nest 1,000 levels)"


def _nested(depth):
    value: list = []
    for _ in range(depth - 1):
        value = [value]
    return value


READ_CASES = [
    ("one event a line", b'{"a": 1}\n{"b": 2}\n', [("f:1", {"a": 1}), ("f:2", {"b": 2})]),
    ("blank lines are counted, not read", b'{"a":1}\n\n  \t\n{"b":2}\n', [("f:1", {"a": 1}), ("f:4", {"b": 2})]),
    ("a line of Unicode whitespace is blank", '{"a":1}\n\u00a0\u2003\n{"b":2}\n'.encode(),
     [("f:1", {"a": 1}), ("f:3", {"b": 2})]),
    ("whitespace before the first event is dropped", b'\n\n   {"a":1}\n', [("f:3", {"a": 1})]),
    ("\\r\\n and a lone \\r end lines too", b'{"a":1}\r\n{"b":2}\r{"c":3}\r\n\r\n{"d":4}',
     [("f:1", {"a": 1}), ("f:2", {"b": 2}), ("f:3", {"c": 3}), ("f:5", {"d": 4})]),
    ("integers beyond 64 bits are exact", b'{"n": 123456789012345678901234567890, "m": -9223372036854775809}\n',
     [("f:1", {"n": 123456789012345678901234567890, "m": -9223372036854775809})]),
    ("only the line with a long integer is read by json", b'{"n": 1.5}\n{"n": 12345678901234567890123}\n{"n": 2}\n',
     [("f:1", {"n": 1.5}), ("f:2", {"n": 12345678901234567890123}), ("f:3", {"n": 2})]),
    ("a long run of digits in a string is just a string", b'{"token": "12345678901234567890123"}\n',
     [("f:1", {"token": "12345678901234567890123"})]),
    ("large and small floats are read as floats", b'{"f": 1.5e20, "g": -2E+19, "h": 2e-7, "s": "e+1"}\n',
     [("f:1", {"f": 1.5e20, "g": -2e19, "h": 2e-7, "s": "e+1"})]),
    ("an integer just inside 64 bits is exact, one just past is too",
     b'{"u": 18446744073709551615, "v": 18446744073709551616, "i": -9223372036854775808}\n',
     [("f:1", {"u": 18446744073709551615, "v": 18446744073709551616, "i": -9223372036854775808})]),
    ("a line that is not JSON keeps json's message and column", b'{"a": 1}\n{"a": 1,}\n',
     [("f:1", {"a": 1}), ("f:2", Unreadable("f:2", '{"a": 1,}', f"not valid JSON: {EXPECTING_NAME} (column 9)"))]),
    ("a JSON array's items are numbered by index", b' \n[{"a": 1},\n 2]\n', [("f[0]", {"a": 1}), ("f[1]", 2)]),
    ("a broken JSON array is one unreadable item at json's line", b'[{"a":1},\n {bad}\n]',
     [("f:2", Unreadable("f:2", '[{"a":1},\n {bad}\n]', f"not valid JSON: {EXPECTING_NAME} (column 3)"))]),
    # Parsers differ on a key written twice (first, last, both): the event is refused, never merged.
    ("a key written twice makes the line unreadable", b'{"type":"track","type":"identify"}\n{"a":1}\n',
     [("f:1", Unreadable("f:1", '{"type":"track","type":"identify"}', f"the key {DUPLICATE_TYPE}")),
      ("f:2", {"a": 1})]),
    ("in a nested object too", b'{"a":1,"p":{"x":1,"x":1}}\n',
     [("f:1", Unreadable("f:1", '{"a":1,"p":{"x":1,"x":1}}', 'the key "x"' + TWICE))]),
    ("and with a space before the colon", b'{"t" : 1, "t" : 2}\n',
     [("f:1", Unreadable("f:1", '{"t" : 1, "t" : 2}', 'the key "t"' + TWICE))]),
    ("and with the key's quote escaped", b'{"\\u0022":1,"\\"":2}\n',
     [("f:1", Unreadable("f:1", '{"\\u0022":1,"\\"":2}', 'the key "\\""' + TWICE))]),
    ("whatever the dropped and the kept value hold", b'{"a":"x","a":"y:z:w"}\n',
     [("f:1", Unreadable("f:1", '{"a":"x","a":"y:z:w"}', 'the key "a"' + TWICE))]),
    ("and with a colon written as an escape", b'{"t\\u003a":1,"b":1,"b":2}\n',
     [("f:1", Unreadable("f:1", '{"t\\u003a":1,"b":1,"b":2}', 'the key "b"' + TWICE))]),
    ("deeper than orjson writes", b'{"a":' + b"[" * 300 + b"]" * 300 + b',"a":1}\n',
     [("f:1", Unreadable("f:1", '{"a":' + "[" * 300 + "]" * 300 + ',"a":1}', 'the key "a"' + TWICE))]),
    ("quotes and colons inside strings are no keys", b'{"a":"x\\":","b":"\\":\\":"}\n',
     [("f:1", {"a": 'x":', "b": '":":'})]),
    ("the same key in two objects is fine", b'{"a":{"k":1},"b":{"k":2}}\n', [("f:1", {"a": {"k": 1}, "b": {"k": 2}})]),
    ("a JSON array's item with a key twice is unreadable alone", b'[{"a":1},{"b":1,"b":2}]',
     [("f[0]", {"a": 1}), ("f[1]", Unreadable("f[1]", '{"b":1,"b":2}', 'the key "b"' + TWICE))]),
    ("such an item's text is kept as written", b'[ {"a":1} ,\n  {"b": "x\\udfff",\n   "b": 1e400} ]',
     [("f[0]", {"a": 1}), ("f[1]", Unreadable("f[1]", '{"b": "x\\udfff",\n   "b": 1e400}', 'the key "b"' + TWICE))]),
    ("a lone surrogate, escaped, is kept", b'{"order_id":"\\udfff"}\n', [("f:1", {"order_id": "\udfff"})]),
    ("an integer of 5,000 digits is kept exactly", b'{"n":' + b"7" * 5000 + b'}\n',
     [("f:1", {"n": 7 * (10 ** 5000 - 1) // 9})]),
    ("one of more than 100,000 digits is unreadable", b'{"n":' + b"7" * 100_001 + b'}\n',
     [("f:1", Unreadable("f:1", '{"n":' + "7" * 100_001 + "}", "an integer has more than 100,000 digits"))]),
    ("nesting of 900 levels is read", b'{"a":' + b"[" * 900 + b"]" * 900 + b"}\n",
     [("f:1", {"a": _nested(900)})]),
    ("nesting of 100,000 levels is unreadable", b'{}\n{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}\n{}\n",
     [("f:1", {}), ("f:2", Unreadable("f:2", '{"a":' + "[" * 100_000 + "]" * 100_000 + "}", DEEP)), ("f:3", {})]),
    ("a JSON array nested 100,000 levels is unreadable", b"[" * 100_000 + b"]" * 100_000,
     [("f:1", Unreadable("f:1", "[" * 2000, DEEP))]),
    ("nothing at all", b"", []),
    ("only blank lines", b"\n \n\r\n", []),
]


# Bytes that are not UTF-8 (a text stream would have replaced them before the reader sees them).
BYTES_CASES = [
    # Replacing invalid UTF-8 made "u\xff" and "u\xfe" one user id.
    ("invalid UTF-8 makes the line unreadable, its bytes kept as escapes", b'{"name": "caf\xe9"}\n{"a":1}\n',
     [("f:1", Unreadable("f:1", '{"name": "caf\\xe9"}', "not valid UTF-8: byte 0xE9 at column 14")),
      ("f:2", {"a": 1})]),
    ("also where the line is not JSON either", b'{"a": "\xff\n',
     [("f:1", Unreadable("f:1", '{"a": "\\xff', "not valid UTF-8: byte 0xFF at column 8"))]),
]


@pytest.mark.parametrize("data, expected", [case[1:] for case in READ_CASES + BYTES_CASES],
                         ids=[case[0] for case in READ_CASES + BYTES_CASES])
def test_read(data, expected):
    assert list(read(io.BytesIO(data), "f")) == expected


@pytest.mark.parametrize("data, expected", [case[1:] for case in READ_CASES], ids=[case[0] for case in READ_CASES])
def test_read_in_small_parts_and_from_text(data, expected):
    """Lines split across reads, as on a pipe, and text streams read the same."""
    for size in (1, 2, 5):
        parts = read_parts(io.BytesIO(data), "f", size)
        assert [pair for part in parts for pair in (part.events() if isinstance(part, Lines) else [part])] == expected
    text = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8", errors="replace")
    assert list(read(text, "f")) == expected


@pytest.mark.parametrize("data", [case[1] for case in READ_CASES if not case[1].lstrip().startswith(b"[")],
                         ids=[case[0] for case in READ_CASES if not case[1].lstrip().startswith(b"[")])
def test_one_line_alone_is_read_as_in_a_file(data):
    """read_line (Spark gets its lines one at a time) gives what reading the whole input gives."""
    by_source = dict(read(io.BytesIO(data), "f"))
    lines = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
    alone = {f"f:{number}": read_line(line, f"f:{number}") for number, line in enumerate(lines, 1)
             if line.decode("utf-8", "replace").strip()}
    assert alone == by_source


FILE_CASES = [case for case in READ_CASES + BYTES_CASES if not case[1].lstrip().startswith(b"[")]


@pytest.mark.parametrize("data, expected", [case[1:] for case in FILE_CASES], ids=[case[0] for case in FILE_CASES])
def test_a_file_read_again_where_its_lines_lie_gives_the_same_events(tmp_path, data, expected):
    """run's workers are sent where a file's lines lie rather than the lines: read there, they are the
    same events, whatever the line ends and wherever the reads ended."""
    path = tmp_path / "events.jsonl"
    path.write_bytes(data)
    for size in (1, 2, 5, 1 << 20) if len(data) < 10_000 else (5, 1 << 20):  # a read a byte of 200 KB: 2 s
        with open(path, "rb") as stream:
            parts = list(read_parts(stream, "f", size))
        sent = [part.sendable() if isinstance(part, Lines) else part for part in parts]
        assert [pair for part in sent for pair in (part.events() if isinstance(part, (Lines, LinesInFile))
                                                   else [part])] == expected
        for part in parts:  # bytes that lie in the file, lie there byte for byte
            if isinstance(part, Lines) and part.where is not None:
                assert data[part.where.offset:part.where.offset + len(part.data)] == part.data


def test_most_of_a_file_is_sent_as_where_it_lies(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"".join(b'{"n": %d}\r\n' % n if n % 50 == 0 else b'{"n": %d}\n' % n for n in range(1000)))
    with open(path, "rb") as stream:
        sent = [part.sendable() for part in read_parts(stream, "f", 64)]
    assert sum(isinstance(part, LinesInFile) for part in sent) > len(sent) * 0.7
    assert [event["n"] for part in sent for _, event in part.events()] == list(range(1000))
    with open(path, "rb") as stream:  # a pipe, stdin or a text stream has no place to read again
        text = io.TextIOWrapper(stream, encoding="utf-8")
        assert not any(isinstance(part.sendable(), LinesInFile) for part in read_parts(text, "f", 64))


@pytest.mark.parametrize("change, reason", [
    ("rewritten shorter", "it was rewritten"),
    ("rewritten with other lines", "it was rewritten"),
    ("replaced", "another file has its name now"),
    ("removed", r"it cannot be opened again \(No such file or directory\)"),
])
def test_lines_of_a_file_that_changed_are_not_read_as_other_lines(tmp_path, change, reason):
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"".join(b'{"n": %d}\n' % n for n in range(100)))
    with open(path, "rb") as stream:
        sent = [part.sendable() for part in read_parts(stream, "f", 64)]
    later = sent[-2]
    assert isinstance(later, LinesInFile)
    if change == "rewritten shorter":
        path.write_bytes(path.read_bytes()[:later.where.offset + 5])
    elif change == "rewritten with other lines":
        with open(path, "r+b") as stream:
            stream.seek(later.where.offset)
            stream.write(b'{}\n{}\n{}\n{}\n')
    elif change == "replaced":
        (tmp_path / "new.jsonl").write_bytes(path.read_bytes())
        os.replace(tmp_path / "new.jsonl", path)
    else:
        path.unlink()
    with pytest.raises(InputChanged, match=f"f changed while it was read: {reason}; lines from {later.number} on"):
        later.lines()


def test_a_log_renamed_away_while_it_is_read_is_still_read(tmp_path):
    """Log rotation: the file keeps its lines under its new name, and the reader still has it open."""
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"".join(b'{"n": %d}\n' % n for n in range(100)))
    with open(path, "rb") as stream:
        sent = [part.sendable() for part in read_parts(stream, "f", 64)]
        os.replace(path, tmp_path / "events.jsonl.1")
        path.write_bytes(b'{"n": -1}\n' * 100)  # the new log under the old name
        assert [event["n"] for part in sent for _, event in part.events()] == list(range(100))


def test_a_fifo_put_in_a_files_place_is_refused_at_once(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"".join(b'{"n": %d}\n' % n for n in range(100)))
    with open(path, "rb") as stream:
        later = [part.sendable() for part in read_parts(stream, "f", 64)][-2]
    path.unlink()
    os.mkfifo(path)  # opening it to read would wait for a writer for ever
    with pytest.raises(InputChanged, match="another file has its name now"):
        later.lines()


def test_nan_and_infinity_are_read_as_json_reads_them():
    [(_, event)] = read(io.BytesIO(b'{"x": NaN, "y": -Infinity, "z": 1e400}\n'), "f")
    assert math.isnan(event["x"]) and event["y"] == -math.inf and event["z"] == math.inf


def test_lines_on_a_pipe_are_read_as_they_arrive():
    """A live stream (``tail -f events | switchyard run``) is not held until it ends."""
    reading, writing = os.pipe()
    got = []

    def consume():
        with open(reading, "rb") as stream:
            for part in read_parts(stream, "pipe"):
                got.extend(part.events())

    reader = threading.Thread(target=consume, daemon=True)
    reader.start()
    os.write(writing, b'{"a": 1}\n{"b": 2}\n{"c": ')
    deadline = time.monotonic() + 10
    while len(got) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    before_the_end = list(got)
    os.write(writing, b'3}\n')
    os.close(writing)
    reader.join(timeout=10)
    assert before_the_end == [("pipe:1", {"a": 1}), ("pipe:2", {"b": 2})]
    assert got == before_the_end + [("pipe:3", {"c": 3})]


TO_LINE_CASES = [
    ("compact, with text as it is", {"a": "café", "b": [1, None, True]}, '{"a":"café","b":[1,null,true]}\n'),
    ("keys that are not strings, as json writes them", {1: "x"}, '{"1":"x"}\n'),
    ("integers beyond 64 bits", {"n": 2**70}, f'{{"n":{2**70}}}\n'),
    ("a lone surrogate, escaped", {"s": "\ud800"}, '{"s":"\\ud800"}\n'),
    ("other values as their text", {"at": datetime(2026, 11, 23, 9, 0)}, '{"at":"2026-11-23 09:00:00"}\n'),
    ("NaN and Infinity as null", {"a": math.nan, "b": [-math.inf]}, '{"a":null,"b":[null]}\n'),
    ("NaN and Infinity as null beside what orjson refuses", {"a": math.nan, "b": [-math.inf], "n": 2**70,
                                                             "s": 'NaN "Infinity"'},
     f'{{"a":null,"b":[null],"n":{2**70},"s":"NaN \\"Infinity\\""}}\n'),
]


@pytest.mark.parametrize("value, expected", [case[1:] for case in TO_LINE_CASES],
                         ids=[case[0] for case in TO_LINE_CASES])
def test_to_line(value, expected):
    line = to_line(value)
    assert line == expected.encode("utf-8")
    assert json.loads(line) == json.loads(expected)


def test_run_reads_what_json_reads_and_dead_letters_the_rest(tmp_path):
    events = tmp_path / "events.ndjson"
    events.write_bytes(b'{"type": "track", "event": "Order Completed", "properties": {"order_id": "caf\xc3\xa9", '
                       b'"total": 123456789012345678901234567890}}\r\n'
                       b'\r\n'
                       b'{"type": "track", "event": "Order Completed", '
                       b'"properties": {"order_id": "o2", "total": NaN}}\r\n'
                       b'{"type": "track", oops}\r\n'
                       b'{"type": "track", "event": "Order Completed", "properties": {"order_id": "caf\xe9"}}\n')
    dead = tmp_path / "dead.ndjson"
    result = switchyard("run", "rules/webhook.yaml", events, "--dry-run", "--dead-letter", dead)
    assert result.returncode == 0, result.stderr
    calls = [json.loads(line) for line in result.stdout.splitlines()]
    orders = [call["payload"]["data"] for call in calls if call["mapping"] == "Orders to CRM"]
    assert (orders[0]["order_id"], orders[0]["total"]) == ("café", 123456789012345678901234567890)
    assert orders[1]["order_id"] == "o2"
    kept = [json.loads(line) for line in dead.read_text(encoding="utf-8").splitlines()]
    assert kept == [{"kind": "unreadable", "source": f"{events}:4", "line": '{"type": "track", oops}',
                     "reason": f"not valid JSON: {EXPECTING_NAME} (column 19)"},
                    {"kind": "unreadable", "source": f"{events}:5",
                     "line": '{"type": "track", "event": "Order Completed", "properties": {"order_id": "caf\\xe9"}}',
                     "reason": "not valid UTF-8: byte 0xE9 at column 78"}]
    assert "events read            2" in result.stderr and "unreadable lines       2" in result.stderr


@pytest.mark.parametrize("message_id", ["m-1", None, "ü \u2028 \"quoted\"", 7])
@pytest.mark.parametrize("payload", [{"a": 1, "b": [1.5, None, True], "c": {"d": "é"}}, {}, {"big": 2**70},
                                     {"nan": float("nan")}, {"when": "2024-01-01T00:00:00Z"}])
def test_a_call_is_written_as_its_dict_would_be(message_id, payload):
    from engine.events import call_line
    from engine.model import ActionCall

    call = ActionCall("crm", f"Orders {message_id}", "send", payload, message_id)
    assert call_line(call) == to_line(call.to_dict())
    assert call_line(call) == to_line(call.to_dict())  # again, from the cached head


@pytest.mark.parametrize("data, expected", [
    (b'{\n  "a": 1,\n  "b": [1, 2]\n}\n', [("f:1", {"a": 1, "b": [1, 2]})]),
    (b'\n\n{\n  "a": 1\n}', [("f:3", {"a": 1})]),
    (b'[{"a": 1},\n {"b": 2}]', [("f[0]", {"a": 1}), ("f[1]", {"b": 2})]),
    (b'{"a":1}\n\n{"a":,}\n{"b":2}\n',
     [("f:1", {"a": 1}), ("f:3", Unreadable("f:3", '{"a":,}', "not valid JSON: Expecting value (column 6)")),
      ("f:4", {"b": 2})]),
    # an event over several lines with a mistake on its fourth: that line, not the first
    (b'{\n  "a": 1,\n  "b": 2\n  "c": 3\n}\n',
     [("f:4", Unreadable("f:4", '{\n  "a": 1,\n  "b": 2\n  "c": 3\n}',
                         "not valid JSON: Expecting ',' delimiter (column 3)"))]),
    (b'{"a": oops}\n{"b": 2}\n',
     [("f:1", Unreadable("f:1", '{"a": oops}', "not valid JSON: Expecting value (column 7)")), ("f:2", {"b": 2})]),
    (b"", []), (b" \n\t\n", []),
], ids=["one event over lines", "after blank lines", "an array", "NDJSON with a bad line",
        "a mistake inside an event over lines", "a bad first NDJSON line", "empty", "blank"])
def test_read_document_as_explain_takes_it(data, expected):
    from engine.events import read_document

    assert read_document(data, "f") == expected
