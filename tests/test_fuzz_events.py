"""One bad event never costs another: random and hostile NDJSON through read, evaluate, build and encode.

Every non-blank line must end as exactly one accounted outcome (an unreadable line, an invalid
event, or what the rules made of it: calls, invalid payloads, a discard), and whatever that
outcome is written as must be written: the dry-run line of a call, the dead-letter record, the
request body of every transport (refused with a reason when JSON cannot carry it, never a crash).
The embedded stand-ins (the Customer.io workspace, the User.com app) apply every call in one
transaction: a call whose values SQLite cannot take is refused alone. Hostile means lone surrogates, integers of thousands of digits, deep nesting, control characters,
keys written twice and bytes that are not UTF-8, mixed with ordinary events.
"""
from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.adapters.registry import open_adapter
from engine.customerio.requests import to_request
from engine.delivery.encoding import UnencodableBody, encode
from engine.events import Unreadable, any_json, call_line, read, read_line, to_line
from engine.explain import explain, render
from engine.loader import compile_paths
from engine.model import ActionCall, Discarded

ROOT = Path(__file__).parent.parent
RULE_FILES = sorted((ROOT / "rules").glob("*.yaml"))
RULES = {path.stem: compile_paths([path], environ={})[0] for path in RULE_FILES}
#: The rule sets whose default transport is an embedded stand-in, and an ordinary call of each, applied
#: after the hostile ones in the same transaction.
EMBEDDED = ("customerio", "userengage")
ORDINARY = {name: RULES[name].evaluate({"type": "track", "event": "Order Completed", "userId": "plain",
                                        "messageId": "plain-1", "properties": {"total": 1}}).calls
            for name in EMBEDDED}


class Pairs(list):
    """An object as the pairs written, so that a key may be written twice."""


def write(value, ascii_only: bool) -> str:
    """JSON text for ``value``; a lone surrogate is always written as its escape, as JSON allows."""
    if isinstance(value, Pairs):
        return "{" + ",".join(f"{write(key, ascii_only)}:{write(item, ascii_only)}" for key, item in value) + "}"
    if isinstance(value, list):
        return "[" + ",".join(write(item, ascii_only) for item in value) + "]"
    if isinstance(value, str) and not ascii_only:
        return json.dumps(value, ensure_ascii=False).encode("utf-8", "backslashreplace").decode("ascii", "replace") \
            if any("\ud800" <= c <= "\udfff" for c in value) else json.dumps(value, ensure_ascii=False)
    with any_json():
        return json.dumps(value)


HOSTILE_TEXT = ["\udfff", "\ud800x", "a\udc80b", "../../admin?x=1#", "a\r\nX-Evil: 1", "\x00\x1f\x7f", "Zoë",
                "..", "%", "12345678901234567890123", "", " ", "\u2028", "(a+)+$" + "a" * 40 + "b"]
texts = st.one_of(st.sampled_from(HOSTILE_TEXT), st.text(max_size=8),
                  st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0xDFFF), max_size=6))
integers = st.one_of(st.integers(-(2 ** 70), 2 ** 70), st.sampled_from([19, 64, 4300, 4301, 5000]).map(
    lambda digits: int("9" * digits) if digits <= 4300 else 7 * (10 ** digits - 1) // 9))
leaves = st.one_of(st.none(), st.booleans(), integers, st.floats(allow_nan=True, allow_infinity=True), texts)
keys = st.one_of(st.sampled_from(["type", "event", "userId", "email", "plan", "id", "\udfff", ""]), texts)
values = st.recursive(leaves, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.lists(st.tuples(keys, inner), max_size=3).map(Pairs)), max_leaves=12)
TYPES = ["track", "identify", "page", "screen", "group", "alias", "Track", 5, None]
EVENTS = ["Order Completed", "Signed Up", "Product Viewed", "Email Opened", "Report Delivery Event"]


@st.composite
def events(draw) -> bytes:
    """One NDJSON line: an event shaped like Segment's, with hostile values and perhaps a key twice."""
    pairs = Pairs([("type", draw(st.sampled_from(TYPES))), ("event", draw(st.one_of(st.sampled_from(EVENTS), texts))),
                   ("userId", draw(st.one_of(texts, integers, st.none()))), ("messageId", draw(texts)),
                   ("anonymousId", draw(st.one_of(texts, st.none()))), ("groupId", draw(st.one_of(texts, integers))),
                   ("timestamp", draw(values)),
                   ("properties", Pairs([("order_id", draw(values)), ("total", draw(values)),
                                         ("plan", draw(st.sampled_from(["pro", "team", "free"]))),
                                         ("email", draw(texts))])),
                   ("traits", Pairs([("email", draw(st.one_of(st.just("ada@example.com"), texts))),
                                     ("first_name", draw(values)), ("created_at", draw(values))])),
                   ("context", Pairs([("traits", draw(values)), ("ip", draw(texts))]))])
    pairs.extend(draw(st.lists(st.tuples(keys, values), max_size=2)))
    if draw(st.booleans()):
        pairs.insert(draw(st.integers(0, len(pairs))), draw(st.sampled_from(pairs)))  # a key written twice
    return write(pairs, draw(st.booleans())).encode("utf-8", "surrogatepass")


def nested(depth: int) -> bytes:
    return b'{"type":"track","event":"Order Completed","userId":"u","properties":{"order_id":' + \
        b"[" * depth + b"]" * depth + b"}}"


SPECIAL_LINES = [
    nested(900), nested(1100), nested(100_000),
    b'{"type":"identify","userId":"u\xff","traits":{"email":"a@b.io"}}',
    b'{"type":"track","event":"Order Completed","userId":"u","properties":{"total":' + b"7" * 5000 + b"}}",
    b'{"type":"track","event":"Order Completed","userId":"u","properties":{"total":' + b"7" * 100_001 + b"}}",
    b'{"type":"track","type":"identify","userId":"u","traits":{"email":"a@b.io"}}',
    b'{"type":"identify","userId":"\\udfff","traits":{"email":"a@b.io"}}',
    b'{"type":"track",', b"\xff\xfe", b"[1, 2", b"NaN", b"{}", b'"just text"',
]
# In random batches a 200-deep event stands in for the 900-deep one, which is checked on its own
# (test_each_hostile_line_alone): explaining a payload nested n deep writes its pretty-printed JSON, n²
# characters, and the 900-deep one drawn into batches was about half of this module's time.
lines = st.lists(st.one_of(events(), st.sampled_from([nested(200), *SPECIAL_LINES[1:]])), min_size=1, max_size=4)


def written(line: bytes) -> None:
    """``line`` is one NDJSON line that json reads back."""
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    with any_json():
        json.loads(line)


def sent(body: dict) -> str:
    """What a transport makes of a request body: the bytes sent, or a refusal with its reason."""
    try:
        data = encode(body)
    except UnencodableBody as error:
        assert str(error)
        return "refused"
    with any_json():
        json.loads(data)
    return "sent"


def account(name: str, event) -> list[str]:
    """The outcome of one event under one rule set, checking that each is written as it would be."""
    rules = RULES[name]
    result = rules.evaluate(event)
    report = explain(rules, event)
    with any_json():
        render(report).encode("utf-8", "backslashreplace")
        json.dumps(report, indent=2, ensure_ascii=False, default=str).encode("utf-8", "backslashreplace")
    if result.discarded is Discarded.INVALID_EVENT:
        written(to_line({"kind": "invalid_event", "source": "f:1", "reason": result.reason, "event": event}))
        assert report["invalid"]
        return ["invalid event"]
    outcomes = []
    for call in result.calls:
        assert isinstance(call, ActionCall)
        written(call_line(call))
        written(to_line({"kind": "failed", "call": call.to_dict(), "reason": "x"}))
        if name == "customerio":
            outcomes.append(sent(to_request(call).body))
        else:
            outcomes.append(sent(call.payload["data"]) if "data" in call.payload else "sent")
    for error in result.errors:
        written(to_line({"kind": "invalid_payload", "source": "f:1", **error.to_dict(), "event": event}))
        outcomes.append("invalid payload")
    if not outcomes:
        assert result.discarded in (Discarded.FILTERED, Discarded.NO_MATCH), result
        outcomes.append(result.discarded.value)
    return outcomes


_STAND_INS: dict[str, Any] = {}  # one in-memory stand-in per rule set, kept across examples (opening one migrates it)


def stored(name: str, calls: list[ActionCall]) -> None:
    """The calls applied to a real embedded stand-in in one transaction, as ``run`` delivers them: each
    is delivered or refused on its own, and none fails its neighbours."""
    adapter = _STAND_INS.get(name)
    if adapter is None:
        adapter = _STAND_INS[name] = open_adapter(RULES[name].destination(name), store=":memory:")
    outcomes = adapter.deliver(calls)
    assert [outcome.call for outcome in outcomes] == calls
    assert all(outcome.state in ("delivered", "refused") for outcome in outcomes), [o.reason for o in outcomes]


def check(batch: list[bytes]) -> None:
    data = b"\n\n".join(batch) + b"\n"  # a blank line between: skipped, but counted in line numbers
    items = list(read(io.BytesIO(data), "f"))
    if data.lstrip().startswith(b"["):  # a JSON array: read whole, one outcome for all of it or per item
        assert items
        return
    assert [source for source, _ in items] == [f"f:{2 * index + 1}" for index in range(len(batch))]
    for line, (source, event) in zip(batch, items):  # Spark reads a line at a time: the same answers
        alone = read_line(line, source)
        assert alone == event if isinstance(event, Unreadable) else to_line(alone) == to_line(event)
    embedded: dict[str, list[ActionCall]] = {name: [] for name in EMBEDDED}
    for source, event in items:
        if isinstance(event, Unreadable):
            assert event.source == source and event.reason
            written(to_line({"kind": "unreadable", "source": source, "reason": event.reason, "line": event.text}))
            continue
        for name in RULES:
            assert account(name, event)
            if name in embedded:
                embedded[name] += RULES[name].evaluate(event).calls
    for name, calls in embedded.items():
        stored(name, [*calls, *ORDINARY[name]])


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(lines)
def test_every_line_is_one_outcome_and_every_outcome_is_written(batch):
    check(batch)


@pytest.mark.parametrize("line", SPECIAL_LINES, ids=lambda line: line[:40].decode("utf-8", "replace"))
def test_each_hostile_line_alone(line):
    check([b'{"type":"identify","userId":"before"}', line, b'{"type":"identify","userId":"after"}'])


def test_what_the_hostile_lines_become():
    """The decisions, line by line: read and kept, or unreadable with its reason."""
    outcomes = [event.reason if isinstance(event, Unreadable) else "read"
                for _, event in read(io.BytesIO(b"\n".join(SPECIAL_LINES)), "f")]
    assert outcomes[:8] == [
        "read", "read", "arrays and objects nest too deeply to read (an event may nest 1,000 levels)",
        "not valid UTF-8: byte 0xFF at column 31",
        "read", "an integer has more than 100,000 digits",
        'the key "type" is written twice in one object; JSON leaves its meaning open',
        "read"]
    assert len(outcomes) == len(SPECIAL_LINES)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(events(), min_size=1, max_size=5), st.one_of(st.none(), st.sampled_from(
    ["2024-01-01T00:00:05Z", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "not a date", "\udfff"])))
def test_serve_takes_each_item_of_a_hostile_batch_or_refuses_the_request_with_a_400(items, sent_at):
    """What `switchyard serve` makes of a batch of random events: every item spooled (written so that it
    reads back as sent) or dead-lettered with a reason; or, for the whole request, a 400 naming why."""
    from engine.events import loads_exact
    from engine.serve.ingest import Refused, parse

    head = b'{"sentAt":' + write(sent_at, False).encode("utf-8", "surrogatepass") + b',"batch":['
    body = head + b",".join(items) + b"]}"
    try:
        request = parse(None, body, None)
    except Refused as refused:
        assert refused.status == 400 and refused.code and refused.message
        return
    assert len(request.events) + len(request.invalid) == len(items)
    for message_id, spooled in request.events:
        event, twice = loads_exact(spooled, ours=True)
        assert not twice and event["messageId"] == message_id and event["receivedAt"]
    for event, reason in request.invalid:
        assert reason
        written(to_line({"kind": "invalid_event", "source": "serve", "reason": reason, "event": event}))
