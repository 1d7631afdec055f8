"""What a Segment client sent, turned into events ready for the spool, or the 400/401 that says why not.

Pure functions, no I/O: the ASGI app (:mod:`engine.serve.app`) hands over the path, the headers
and the body it read; this module owns the Tracking API's rules as Segment documents them
(/work/shared/reference/segment-http-api.md): the paths, where the write key comes from, the
limits, the batch's shared ``context``/``integrations``, ``receivedAt``, the clock-skew fix of
``timestamp`` and a ``messageId`` for events that have none.
"""
from __future__ import annotations

import base64
import binascii
import json
import uuid
import zlib
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import orjson

from ..events import duplicate_key, exact_json, id_text, loads_body, may_hold_non_finite, to_line, written_twice

#: Segment's limits (HTTP API docs): per event, per request, events per batch.
EVENT_BYTES = 32 * 1024
REQUEST_BYTES = 500 * 1024
#: A request's events as spooled, the batch's context and integrations merged into each: a 7 KB gzip of a
#: 32 KB context and 2,500 tiny items was 80 MB to spool (and any web page shows its write key).
SPOOLED_BYTES = 16 * 1024 * 1024
BATCH_EVENTS = 2500
#: What the server may add to an event over the 32 KB a client counts: receivedAt, the corrected timestamp
#: with the original kept, a messageId.
ADDED_BYTES = 1024

#: The path's last part -> the event type it carries (None: a batch). Short paths are analytics.js's
#: and the mobile libraries'; ``import`` is analytics-java's name for a batch.
PATHS: dict[str, str | None] = {
    "track": "track", "identify": "identify", "page": "page", "screen": "screen", "group": "group",
    "alias": "alias", "batch": None, "import": None,
    "t": "track", "i": "identify", "p": "page", "s": "screen", "g": "group", "a": "alias", "b": None,
}


class Refused(Exception):
    """A request answered with ``status`` and ``{"code": code, "message": message}``."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message

    def body(self) -> bytes:
        return orjson.dumps({"code": self.code, "message": self.message})


@dataclass
class Request:
    """What one request carried: its write key (or None) and its events, each encoded for the spool."""

    write_key: str | None
    events: list[tuple[str, bytes]]     # (messageId, the event as JSON)
    invalid: list[tuple[dict, str]]     # (event, why): batch items that are no event, dead letters, not errors


def route(path: str) -> tuple[bool, str | None]:
    """Whether ``path`` is a Tracking API path, and the event type it carries (None: a batch)."""
    parts = path.strip("/").split("/")
    if len(parts) == 2 and parts[0] == "v1":
        name = parts[1]
    elif len(parts) == 1 and len(parts[0]) == 1:  # the mobile libraries' and older builds' bare short paths
        name = parts[0]
    else:
        return False, None
    return (name in PATHS), PATHS.get(name)


def decode(body: bytes, encoding: str | None) -> bytes:
    """The body, gunzipped if the client said so; over REQUEST_BYTES once unpacked is a 400."""
    if encoding and encoding.strip().lower() == "gzip":
        return _gunzip(body)
    elif encoding and encoding.strip().lower() not in ("identity", ""):
        raise Refused(400, "unsupported_encoding", f"Content-Encoding {encoding!r} is not supported (gzip is)")
    return body


def _gunzip(body: bytes) -> bytes:
    """Every gzip member of ``body``, unpacked; one cut short, or bytes after the last, are a 400: a body
    cut in transit must not be taken as the events that happen to be in its first part."""
    unpacked, left = [], body
    size = 0
    while True:
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            part = inflater.decompress(left, REQUEST_BYTES + 1 - size)
        except zlib.error as error:
            raise Refused(400, "invalid_gzip", f"the body is not valid gzip: {error}") from None
        size += len(part)
        if size > REQUEST_BYTES or inflater.unconsumed_tail:
            raise too_large()
        if not inflater.eof:
            raise Refused(400, "invalid_gzip", "the body is not valid gzip: it ends before its gzip stream does")
        unpacked.append(part)
        left = inflater.unused_data
        if not left:
            return b"".join(unpacked)
        if not left.startswith(b"\x1f\x8b"):
            raise Refused(400, "invalid_gzip", "the body is not valid gzip: there are bytes after its gzip stream")


def too_large() -> Refused:
    return Refused(400, "request_too_large", f"the request is over the limit of {REQUEST_BYTES // 1024} KB")


def parse(kind: str | None, body: bytes, authorization: str | None, now: datetime | None = None) -> Request:
    """The events of one request to a path carrying ``kind`` (None: a batch)."""
    if len(body) > REQUEST_BYTES:
        raise too_large()
    try:
        data, twice, plain = loads_body(body)
    except ValueError as error:
        raise Refused(400, "invalid_json", f"the body is not valid JSON: {error}") from None
    if not isinstance(data, dict):
        raise Refused(400, "not_an_object", "the body must be a JSON object")
    if twice and (key := written_twice(data)) is not None:
        raise Refused(400, "invalid_json", f"the key {_quoted(key)} is written twice in the body")
    write_key = _write_key(authorization, data)
    received = now or datetime.now(timezone.utc)
    stamp = _Stamp(received)
    if kind is None:
        items = data.get("batch")
        if not isinstance(items, list):
            raise Refused(400, "invalid_batch", "a batch needs a 'batch' array of events")
        if len(items) > BATCH_EVENTS:
            raise Refused(400, "batch_too_large", f"a batch holds at most {BATCH_EVENTS:,} events; "
                                                  f"this one has {len(items):,}")
        shared = {key: data[key] for key in ("context", "integrations") if isinstance(data.get(key), dict)}
        if twice and (key := duplicate_key(shared)) is not None:
            raise Refused(400, "invalid_json", f"the key {_quoted(key)} is written twice in the "
                                               "batch's context or integrations")
        batch_sent = _time(data.get("sentAt"))
    else:
        items, shared, batch_sent = [data], {}, None
    events, invalid = [], []
    exact = not plain and may_hold_non_finite(body)  # most bodies json read hold neither: orjson writes them
    spooled = 0
    for position, item in enumerate(items):
        if not isinstance(item, dict):
            raise Refused(400, "not_an_object", f"batch item {position} is not a JSON object")
        event = _event(item, kind, shared, batch_sent, stamp)
        # NaN and Infinity are kept as read (orjson would write null): a destination refuses them, as in run.
        encoded = exact_json(event) if exact else _encoded(event)
        if len(encoded) > EVENT_BYTES:  # measured as orjson writes it, as the clients do, however it is spooled
            _check_size(_encoded(event) if exact else encoded, item, position)
        spooled += len(encoded)
        if spooled > SPOOLED_BYTES:
            raise Refused(400, "request_too_large", f"the request's events come to over {SPOOLED_BYTES >> 20} MB "
                                                    "once the batch's context and integrations are in each")
        kind_of = event.get("type")
        if twice and (key := duplicate_key(item)) is not None:
            invalid.append((event, f"the key {_quoted(key)} is written twice in one "
                                   "object; JSON leaves its meaning open"))
        elif kind_of.__class__ is not str or kind_of not in _TYPES:  # a list or an object too
            invalid.append((event, _invalid_reason(event)))
        else:
            # deduplicated by its text: a number as run keeps it (12345 and "12345" are one id)
            events.append((id_text(event["messageId"]), encoded))
    return Request(write_key, events, invalid)


def _check_size(encoded: bytes, item: dict, position: int) -> None:
    """Refuse an event over 32 KB as the client sent it (as the clients count), or over 32 KB and what the
    server adds (``receivedAt``, the fixed ``timestamp``, a ``messageId``) once the batch's ``context`` and
    ``integrations`` are merged into it: a 400 KB context shared by 1,500 items was 600 MB to spool."""
    if len(_encoded(item)) > EVENT_BYTES:
        raise Refused(400, "event_too_large", f"event {position} is over the limit of {EVENT_BYTES // 1024} KB "
                                              "per event")
    if len(encoded) > EVENT_BYTES + ADDED_BYTES:
        raise Refused(400, "event_too_large", f"event {position} is over the limit of {EVENT_BYTES // 1024} KB "
                                              "per event once the batch's context and integrations are in it")


def _encoded(value: dict) -> bytes:
    try:
        return orjson.dumps(value)
    except TypeError:  # an integer beyond 64 bits, a lone surrogate, deep nesting: written as read
        return to_line(value)[:-1]


_TYPES = frozenset(t for t in PATHS.values() if t)


def _write_key(authorization: str | None, data: dict) -> str | None:
    """Basic auth's user name; else ``writeKey`` in the body (alone, or beside an OAuth bearer token)."""
    if authorization:
        scheme, _, credentials = authorization.strip().partition(" ")
        if scheme.lower() == "basic":
            try:
                user = base64.b64decode(credentials.strip(), validate=True).decode("utf-8").partition(":")[0]
            except (binascii.Error, UnicodeDecodeError):
                raise Refused(401, "invalid_authorization", "the Basic authorization header cannot be read") from None
            if user:
                return user
    key = data.get("writeKey")
    return key if isinstance(key, str) and key else None


class _Stamp:
    """When a request was received, and that time as Segment writes it, worked out once per request."""

    def __init__(self, received: datetime):
        self.received = received
        self.text = _iso(received)


def _event(item: dict, kind: str | None, shared: dict, batch_sent: datetime | None, stamp: _Stamp) -> dict:
    event = dict(item)
    event.pop("writeKey", None)
    if kind is not None:
        event["type"] = kind
    for key, value in shared.items():
        if key not in event:
            event[key] = value
        elif isinstance(event[key], dict):
            event[key] = {**value, **event[key]}  # the item's own keys win; any other value of its own stays
    message_id = event.get("messageId")
    if not (message_id.__class__ is str and message_id) and not _is_number(message_id):
        event["messageId"] = f"switchyard-{uuid.uuid4()}"
    event["receivedAt"] = stamp.text
    sent = _time(event["sentAt"]) if "sentAt" in event else batch_sent
    if event.get("timestamp") is None:
        event["timestamp"] = stamp.text
        return event
    original = _time(event["timestamp"])  # one that cannot be read stays as sent, uncorrected
    if original is not None and sent is not None:
        # Segment's clock-skew fix (spec: common fields): the device clock's error is sentAt - receivedAt.
        try:
            corrected = _iso(stamp.received - (sent - original))
        except OverflowError:  # a clock so wrong the fix leaves the calendar: the timestamp stays as sent
            return event
        event.setdefault("originalTimestamp", event["timestamp"])
        event["timestamp"] = corrected
    return event


def _is_number(value: Any) -> bool:
    return value.__class__ in (int, float) and value == value  # not NaN


def _time(value: Any) -> datetime | None:
    """An ISO 8601 time (RFC 3339's lower-case ``t`` and ``z`` too), read as UTC without an offset."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value)
    except ValueError:
        try:
            parsed = datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
        except ValueError:
            return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=timezone.utc)


def _iso(moment: datetime) -> str:
    """``2026-11-23T08:59:59.999Z``: UTC, to the millisecond. A time already in UTC is written as it is, its
    ``+00:00`` made ``Z``: a third less time than a naive copy, for every event a server takes."""
    if moment.tzinfo is not timezone.utc:
        moment = moment.astimezone(timezone.utc)
    return moment.isoformat(timespec="milliseconds")[:-6] + "Z"


def _quoted(key: str) -> str:
    """A key as JSON writes it, for a reason (json, since a key may hold a lone surrogate)."""
    return json.dumps(key, ensure_ascii=False)


def _invalid_reason(event: dict) -> str:
    from ..ruleset import invalid_event_reason

    return invalid_event_reason(event) or "invalid event"


__all__ = ["BATCH_EVENTS", "EVENT_BYTES", "REQUEST_BYTES", "Refused", "Request", "decode", "parse", "route"]
