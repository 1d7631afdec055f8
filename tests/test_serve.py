"""``switchyard serve``: what Segment's clients send is acknowledged only once spooled, and delivered.

Servers run as real processes on 127.0.0.1 (tests/serving.py); clients are real HTTP requests.
"""
from __future__ import annotations

import gzip
import http.client
import json
from datetime import datetime, timezone

import orjson
import pytest

from conftest import ROOT
from engine.serve.ingest import Refused, decode, parse
from serving import Served, no_server_left_running, workspace_event_ids  # noqa: F401  (an autouse fixture)

PACK = ROOT / "rules" / "customerio.yaml"
KEY = "write-key-1"


@pytest.fixture
def served(tmp_path):
    """Start servers with ``served(*args, rules=PACK)``; each must stop with exit code 0 at the end."""
    started: list[Served] = []

    def start(*args, rules=PACK, folder=None, env=None) -> Served:
        server = Served(rules, folder or tmp_path, *args, env=env).start()
        started.append(server)
        return server
    yield start
    for server in started:
        if server.process and server.process.poll() is None:
            assert server.stop() == 0, server.log.read_text()


def track(user: str, number: int, **extra) -> dict:
    return {"type": "track", "userId": user, "event": "Clicked", "messageId": f"{user}-{number}",
            "properties": {"n": number}, **extra}


# -- what a request means ---------------------------------------------------------------------------

def test_a_batch_shares_its_context_and_the_timestamp_is_corrected_for_the_clock_skew():
    received = datetime(2024, 1, 1, 12, 0, 10, tzinfo=timezone.utc)
    body = json.dumps({"batch": [{"type": "track", "userId": "u", "event": "E", "timestamp": "2024-01-01T12:00:00Z",
                                  "context": {"ip": "1.2.3.4"}},
                                 {"type": "identify", "userId": "u"}],
                       "context": {"library": {"name": "analytics-python"}, "ip": "9.9.9.9"},
                       "integrations": {"All": True}, "sentAt": "2024-01-01T12:00:05Z", "writeKey": "k"}).encode()
    request = parse(None, body, None, now=received)
    first, second = (json.loads(event) for _, event in request.events)
    assert request.write_key == "k"
    # The device clock ran 5 s behind: the event happened 5 s after its own clock said.
    assert first["timestamp"] == "2024-01-01T12:00:05.000Z"
    assert first["originalTimestamp"] == "2024-01-01T12:00:00Z"
    assert first["receivedAt"] == "2024-01-01T12:00:10.000Z"
    assert first["context"] == {"library": {"name": "analytics-python"}, "ip": "1.2.3.4"}  # its own wins
    assert first["integrations"] == {"All": True} and "writeKey" not in first
    assert second["timestamp"] == second["receivedAt"]  # none sent: the server's clock
    assert second["messageId"].startswith("switchyard-")


@pytest.mark.parametrize("authorization, body, key", [
    ("Basic " + "a2V5LWZyb20tYmFzaWM6", {"writeKey": "in-body"}, "key-from-basic"),
    ("Bearer some-oauth-token", {"writeKey": "in-body"}, "in-body"),
    (None, {"writeKey": "in-body"}, "in-body"),
    (None, {}, None),
])
def test_the_write_key_comes_from_basic_auth_else_the_body(authorization, body, key):
    request = parse("track", json.dumps({"userId": "u", "event": "E", **body}).encode(), authorization)
    assert request.write_key == key


@pytest.mark.parametrize("kind, body, code", [
    (None, b"{not json", "invalid_json"),
    (None, b"[1, 2]", "not_an_object"),
    (None, b'{"batch": {}}', "invalid_batch"),
    (None, b'{"batch": [1]}', "not_an_object"),
    (None, json.dumps({"batch": [track("u", n) for n in range(2501)]}).encode(), "batch_too_large"),
    ("track", json.dumps(track("u", 1, properties={"x": "y" * 33_000})).encode(), "event_too_large"),
    (None, b" " * (500 * 1024 + 1), "request_too_large"),
])
def test_requests_past_segments_limits_are_refused_naming_the_limit(kind, body, code):
    with pytest.raises(Refused) as refused:
        parse(kind, body, None)
    assert refused.value.status == 400 and refused.value.code == code


# One hostile event never costs its batch: each is kept exactly as written, or refused alone.
HOSTILE = [
    ("a lone surrogate", rb'{"type":"track","userId":"u","event":"x\udfff","messageId":"h"}', "kept"),
    ("an integer of 30 digits", b'{"type":"track","userId":"u","event":"E","messageId":"h",'
                                b'"properties":{"n":123456789012345678901234567890}}', "kept"),
    ("a key written twice", b'{"type":"track","userId":"u","event":"E","messageId":"h","properties":{"a":1,"a":2}}',
     'the key "a" is written twice'),
    ("a type that is a list", b'{"type":["track"],"userId":"u","event":"E","messageId":"h"}',
     "invalid event: 'type' must be one of"),
    ("a type that is an object", b'{"type":{"t":1},"userId":"u","event":"E","messageId":"h"}',
     "invalid event: 'type' must be one of"),
    ("a clock fix off the calendar", b'{"type":"track","userId":"u","event":"E","messageId":"h",'
                                     b'"timestamp":"9999-12-31T00:00:00Z","sentAt":"0001-01-01T00:00:00Z"}', "kept"),
    ("nesting 500 deep", b'{"type":"track","userId":"u","event":"E","messageId":"h","properties":'
                         + b'{"a":' * 500 + b"1" + b"}" * 500 + b"}", "kept"),
]


def numbered(item: bytes, number: int) -> bytes:
    return item.replace(b'"messageId":"h"', b'"messageId":"h%d"' % number)


@pytest.mark.parametrize("name, item, fate", HOSTILE, ids=[name for name, _, _ in HOSTILE])
def test_a_hostile_event_in_a_batch_is_kept_as_written_or_dead_lettered_alone(name, item, fate):
    from engine.events import loads_exact

    good = json.dumps(track("u", 1)).encode()
    request = parse(None, b'{"batch":[' + item + b"," + good + b"]}", None)
    kept = {message_id: event for message_id, event in request.events}
    assert "u-1" in kept  # its neighbour is taken whatever it holds
    if fate == "kept":
        assert "h" in kept and not request.invalid
        original, _ = loads_exact(item)
        event, _ = loads_exact(kept["h"], ours=True)
        assert {key: event[key] for key in original if key not in ("timestamp", "sentAt")} == \
               {key: value for key, value in original.items() if key not in ("timestamp", "sentAt")}
    else:
        assert "h" not in kept
        ((event, reason),) = request.invalid
        assert event["messageId"] == "h" and reason.startswith(fate)


def spooled(request) -> list[dict]:
    from engine.events import loads_exact

    return [loads_exact(event, ours=True)[0] for _, event in request.events]


def test_nan_and_infinity_are_spooled_as_read_not_as_null():
    """orjson writes them as null; kept as read, each transport does with them what it does in run."""
    import math

    body = b'{"type":"track","userId":"u","event":"E","properties":{"a":NaN,"b":1e400,"c":-1e400,"d":null}}'
    (event,) = spooled(parse(None, b'{"batch":[' + body + b"]}", None))
    properties = event["properties"]
    assert math.isnan(properties["a"]) and properties["b"] == math.inf and properties["c"] == -math.inf
    assert properties["d"] is None
    alone = b'{"type":"track","userId":"u","event":"E","properties":{"e":1' + b"0" * 299 + b'e10}}'  # 10^309
    (event,) = spooled(parse("track", alone, None))
    assert event["properties"]["e"] == math.inf


def test_an_event_under_32_kb_as_sent_is_taken_however_it_is_spooled():
    """Spooled exactly (it may hold NaN: the word is in a string), it was measured as json writes it, 1e-07
    for 1e-7, and refused for a batch context it did not have."""
    item = {"type": "track", "userId": "u", "event": "E", "messageId": "big", "properties": {
        "order": 1234567890123456789, "note": "NaN is a word here", "xs": [1e-7] * 6000}}
    body = orjson.dumps(item)  # 1e-7, as a JavaScript client writes it
    assert 30_000 < len(body) < 32 * 1024
    assert [key for key, _ in parse("track", body, None).events] == ["big"]


def test_a_message_id_that_is_a_number_is_kept_and_deduplicated_as_its_text():
    request = parse(None, json.dumps({"batch": [track("u", 1, messageId=12345), track("u", 2, messageId=""),
                                                track("u", 3, messageId=True)]}).encode(), None)
    keys = [key for key, _ in request.events]
    events = spooled(request)
    assert keys[0] == "12345" and events[0]["messageId"] == 12345  # as run keeps it: one id with "12345"
    assert all(key.startswith("switchyard-") and event["messageId"] == key
               for key, event in zip(keys[1:], events[1:]))  # empty, or no id at all: a new one


@pytest.mark.parametrize("timestamp, sent, expected, original", [
    ("2024-03-01T10:00:00.000z", "2024-03-01T10:00:01.000z", "2024-03-01T10:00:09.000Z", "2024-03-01T10:00:00.000z"),
    ("2024-03-01t10:00:00Z", "2024-03-01T10:00:01Z", "2024-03-01T10:00:09.000Z", "2024-03-01t10:00:00Z"),
    ("yesterday", "2024-03-01T10:00:01Z", "yesterday", None),          # cannot be read: kept as sent, not fixed
    (1709287200000, "2024-03-01T10:00:01Z", 1709287200000, None),
    (None, "2024-03-01T10:00:01Z", "2024-03-01T10:00:10.000Z", None),  # none: the server's clock
])
def test_a_timestamp_is_corrected_when_it_can_be_read_and_else_kept_as_sent(timestamp, sent, expected, original):
    received = datetime(2024, 3, 1, 10, 0, 10, tzinfo=timezone.utc)
    item = track("u", 1, timestamp=timestamp, sentAt=sent)
    (event,) = spooled(parse("track", json.dumps(item).encode(), None, now=received))
    assert event["timestamp"] == expected and event.get("originalTimestamp") == original


def test_an_items_own_context_wins_over_the_batchs_whatever_it_holds():
    body = {"batch": [track("u", 1, context="plain"), track("u", 2, context={"ip": "1.1.1.1"}), track("u", 3)],
            "context": {"ip": "9.9.9.9", "locale": "en"}}
    contexts = [event["context"] for event in spooled(parse(None, json.dumps(body).encode(), None))]
    assert contexts == ["plain", {"ip": "1.1.1.1", "locale": "en"}, {"ip": "9.9.9.9", "locale": "en"}]


def test_an_event_is_measured_against_32_kb_as_the_client_sent_it():
    """analytics-python sends an event of up to 32,768 bytes; the fields the server adds (receivedAt, the
    fixed timestamp, the batch's context) must not push it over and refuse its whole batch."""
    item = track("u", 1, properties={"x": "y" * (32 * 1024 - 200)})
    assert len(json.dumps(item, separators=(",", ":"))) <= 32 * 1024
    body = {"batch": [item, track("u", 2)], "context": {"library": {"name": "analytics-python", "version": "2.3.3"}},
            "sentAt": "2024-03-01T10:00:01Z"}
    assert [key for key, _ in parse(None, json.dumps(body).encode(), None).events] == ["u-1", "u-2"]


def test_a_request_whose_dead_letters_cannot_be_written_keeps_nothing(served):
    """Its events were committed first: the client, told 503, sent them again, and those the server had given
    an id (none of their own) were spooled twice."""
    server = served("--dead-letter", "/dev/full")
    body = {"batch": [{"type": ["track"], "userId": "u"}, {"type": "track", "userId": "u", "event": "E"}]}
    for _ in range(3):
        assert server.post("/v1/batch", body)[0] == 503
    assert server.metric("switchyard_events_accepted_total") == 0


def test_a_batch_context_that_makes_each_event_too_large_refuses_the_batch():
    """Merged into each of 1,500 items, a 400 KB context was 600 MB to spool from a request of 490 KB."""
    body = {"batch": [{"type": "track", "userId": "u", "event": "E"}] * 100, "context": {"blob": "x" * 40_000}}
    with pytest.raises(Refused) as refused:
        parse(None, json.dumps(body).encode(), None)
    assert (refused.value.status, refused.value.code) == (400, "event_too_large")
    assert "once the batch's context and integrations are in it" in refused.value.message


def test_a_batch_context_under_each_event_s_limit_cannot_multiply_a_request_past_16_mb():
    """A 30 KB context and 2,500 tiny items, a 7 KB gzip, was 80 MB to spool and 220 MB of the server's memory."""
    body = {"batch": [{"type": "track", "userId": "u", "event": "E"}] * 2500, "context": {"blob": "x" * 30_000}}
    with pytest.raises(Refused) as refused:
        parse(None, decode(gzip.compress(json.dumps(body).encode()), "gzip"), None)
    assert (refused.value.status, refused.value.code) == (400, "request_too_large")
    assert "over 16 MB once the batch's context and integrations are in each" in refused.value.message
    body["batch"] = body["batch"][:500]  # 15 MB: taken
    assert len(parse(None, json.dumps(body).encode(), None).events) == 500


def test_two_message_ids_that_are_one_number_are_two_people_to_the_delivery(tmp_path):
    """1 and 1.0 are two ids to ingest (their text differs) but one key of a dict: bob's call was taken for ann's."""
    from engine.deadletter import DeadLetter
    from engine.loader import compile_paths
    from engine.model import ActionCall
    from engine.serve.delivery import DestinationWorker
    from engine.serve.spool import Spool

    rules, _ = compile_paths([str(PACK)])
    spool = Spool(tmp_path / "spool")
    worker = DestinationWorker(spool, rules.destinations[0], dead_letter=DeadLetter(None),
                               store=str(tmp_path / "ws.db"), lanes="thread")
    try:
        worker._remember([(1, b'{"type":"track","userId":"ann","messageId":1}', 100.0),
                          (2, b'{"type":"track","userId":"bob","messageId":1.0}', 101.0)])
        about = [worker._about(ActionCall("customerio", "m", "a", {}, mid)) for mid in (1, 1.0)]
        assert about == [("ann", 100.0), ("bob", 101.0)]
    finally:
        worker.pipeline.close()
        spool.close()


@pytest.mark.parametrize("body, code", [
    (gzip.compress(b'{"batch":[]}')[:-4], "invalid_gzip"),
    (gzip.compress(b'{"batch":[]}')[:-12], "invalid_gzip"),
    (gzip.compress(b'{"batch":[]}') + b"garbage", "invalid_gzip"),
], ids=["cut before its trailer", "cut in its stream", "bytes after it"])
def test_a_gzip_body_cut_short_or_followed_by_other_bytes_is_refused(body, code):
    from engine.serve.ingest import decode

    with pytest.raises(Refused) as refused:
        decode(body, "gzip")
    assert (refused.value.status, refused.value.code) == (400, code)


def test_gzip_members_one_after_another_are_one_body():
    from engine.serve.ingest import decode

    assert decode(gzip.compress(b'{"batch":') + gzip.compress(b"[]}"), "gzip") == b'{"batch":[]}'


def test_an_id_holding_a_lone_surrogate_and_the_text_of_its_escape_are_two_ids(tmp_path):
    from engine.serve.spool import Spool

    spool = Spool(tmp_path / "spool")
    try:
        assert spool.append([("m\udfff", b"{}")]).result(5) == (1, 0)
        assert spool.append([('"m\\udfff"', b"{}")]).result(5) == (1, 0)  # a client may send that text
        assert spool.append([("m\udfff", b"{}"), ('"m\\udfff"', b"{}")]).result(5) == (0, 2)
    finally:
        spool.close()


def test_a_key_written_twice_in_the_body_itself_refuses_the_request():
    with pytest.raises(Refused) as refused:
        parse(None, b'{"batch":[],"batch":[]}', None)
    assert (refused.value.status, refused.value.code) == (400, "invalid_json")
    assert '"batch" is written twice' in refused.value.message


def test_hostile_events_reach_the_workspace_or_the_dead_letter_file_and_their_neighbours_are_delivered(
        served, tmp_path):
    server = served()
    items = [numbered(item, number) for number, (_, item, _) in enumerate(HOSTILE)]
    body = b'{"batch":[' + b",".join(items) + b"," + json.dumps(track("u", 1)).encode() + b"]}"
    status, _, answer = server.post("/v1/batch", body)
    assert (status, answer) == (200, {"success": True})
    kept = sum(fate == "kept" for _, _, fate in HOSTILE)
    server.wait_delivered(kept + 1)
    stored = workspace_event_ids(server.workspace)
    assert "u-1" in stored and "h1" in stored  # the neighbour, and the 30-digit integer
    records = [json.loads(line) for line in (tmp_path / "deadletter.ndjson").read_text().splitlines()]
    # The key written twice and the types that are no type are dead-lettered at ingest; what the workspace
    # cannot store is refused alone.
    assert sorted((r["kind"], r.get("outcome", "")) for r in records) == [
        ("delivery_failed", "refused"), ("invalid_event", ""), ("invalid_event", ""), ("invalid_event", "")]
    assert "lone surrogate" in next(r["reason"] for r in records if r["kind"] == "delivery_failed")
    assert server.metric("switchyard_spool_depth") == 0
    assert server.get("/ready")[0] == 200  # no delivery stopped on what it read back from the spool


def test_a_message_id_holding_a_lone_surrogate_is_spooled_deduplicated_and_refused_alone(served, tmp_path):
    server = served()
    odd = rb'{"type":"track","userId":"u","event":"E","messageId":"m\udfff"}'
    body = b'{"batch":[' + odd + b"," + json.dumps(track("u", 1)).encode() + b"]}"
    assert server.post("/v1/batch", body)[0] == 200
    assert server.post("/v1/batch", body)[0] == 200  # a client's retry: both are dropped as seen
    assert server.post("/v1/batch", {"batch": [track("u", 2)]})[0] == 200  # the spool writer lives on
    server.wait_delivered(3)
    assert server.metric("switchyard_events_deduplicated_total") == 2
    assert set(workspace_event_ids(server.workspace)) == {"u-1", "u-2"}
    # The Track API could not have received it (JSON text cannot carry it): refused, and kept for the record.
    (record,) = [json.loads(line) for line in (tmp_path / "deadletter.ndjson").read_text().splitlines()]
    assert (record["outcome"], record["call"]["messageId"]) == ("refused", "m\udfff")
    assert "lone surrogate" in record["reason"]
    assert server.get("/ready")[0] == 200


# -- over HTTP ------------------------------------------------------------------------------------------

def test_analytics_js_requests_are_taken_as_the_browser_sends_them(served):
    server = served("--write-key", KEY)
    # analytics.js: text/plain (no preflight), short paths, the write key in the body only.
    for path, event in [("/v1/i", {"userId": "u1", "traits": {"email": "u1@example.com"}}),
                        ("/v1/t", {"userId": "u1", "event": "Clicked", "messageId": "t-1"}),
                        ("/v1/p", {"userId": "u1", "name": "Home", "messageId": "p-1",
                                 "properties": {"url": "https://shop.example/"}})]:
        status, headers, answer = server.post(path, {**event, "writeKey": KEY},
                                              headers={"Content-Type": "text/plain", "Origin": "https://shop.example"})
        assert (status, answer) == (200, {"success": True})
        assert headers["access-control-allow-origin"] == "*"
    status, headers, _ = server.post("/v1/t", b"", method="OPTIONS", headers={
        "Origin": "https://shop.example", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type, x-retry-count"})
    assert status == 204
    allowed = headers["access-control-allow-headers"].lower()
    assert all(name in allowed for name in ("authorization", "content-type", "x-retry-count"))
    server.wait_delivered(3)
    assert workspace_event_ids(server.workspace) == ["t-1", "p-1"]


def test_gzip_and_chunked_bodies_without_a_length_are_taken(served):
    server = served()
    body = gzip.compress(json.dumps({"batch": [track("u", n) for n in range(50)], "writeKey": "k"}).encode())
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    # The mobile libraries' shape: text/plain, gzip, Transfer-Encoding: chunked and no Content-Length.
    connection.request("POST", "/v1/b", body=iter([body[:100], body[100:]]), encode_chunked=True,
                       headers={"Content-Type": "text/plain", "Content-Encoding": "gzip"})
    response = connection.getresponse()
    assert (response.status, json.loads(response.read())) == (200, {"success": True})
    server.wait_delivered(50)
    assert sorted(workspace_event_ids(server.workspace)) == sorted(f"u-{n}" for n in range(50))


def test_errors_answer_with_a_code_and_nothing_refused_is_kept(served):
    server = served("--write-key", KEY)
    big = {"batch": [track("u", 1, properties={"x": "y" * 33_000})]}
    cases = [
        ("/v1/batch", {"batch": [track("u", 1)]}, None, 401, "invalid_write_key"),
        ("/v1/batch", {"batch": [track("u", 1)]}, "wrong", 401, "invalid_write_key"),
        ("/v1/batch", big, KEY, 400, "event_too_large"),
        ("/v1/batch", {"batch": [track("u", n) for n in range(2501)]}, KEY, 400, "batch_too_large"),
        ("/v1/batch", b"{oops", KEY, 400, "invalid_json"),
        ("/v1/track", b'"a string"', KEY, 400, "not_an_object"),
        ("/v2/track", {}, KEY, 404, "not_found"),
    ]
    for path, body, key, status, code in cases:
        got = server.post(path, body, key=key)
        assert (got[0], got[2].get("code")) == (status, code), (path, got)
        assert got[2]["message"]
    status, _, answer = server.post("/v1/batch", {"batch": [track("u", 2)]}, key=KEY)
    assert status == 200
    server.wait_delivered(1)
    assert workspace_event_ids(server.workspace) == ["u-2"]
    assert server.metric('switchyard_requests_total{status="401"}') == 2


def test_a_retried_message_id_is_dropped_at_ingest(served):
    server = served()
    for _ in range(3):  # a client that never saw the answer sends the same batch again
        assert server.post("/v1/batch", {"batch": [track("u", 1), track("u", 2)]}, key="k")[0] == 200
    server.wait_delivered(2)
    assert workspace_event_ids(server.workspace) == ["u-1", "u-2"]
    assert server.metric("switchyard_events_deduplicated_total") == 4
    assert server.metric("switchyard_events_accepted_total") == 2


def test_an_event_without_a_valid_type_is_acknowledged_and_dead_lettered(served, tmp_path):
    server = served()
    assert server.post("/v1/batch", {"batch": [{"type": "tarck", "userId": "u"}, track("u", 1)]})[0] == 200
    server.wait_delivered(1)
    records = [json.loads(line) for line in (tmp_path / "deadletter.ndjson").read_text().splitlines()]
    assert [(r["kind"], r["event"]["type"]) for r in records] == [("invalid_event", "tarck")]


def test_health_ready_and_metrics(served):
    server = served()
    assert server.get("/health") == (200, b'{"status":"ok"}')
    assert json.loads(server.get("/ready")[1]) == {"ready": True, "problems": []}
    server.post("/v1/batch", {"batch": [track("u", n) for n in range(5)]})
    server.wait_delivered(5)
    text = server.get("/metrics")[1].decode()
    for line in ('switchyard_requests_total{status="200"}', "switchyard_events_accepted_total 5.0",
                 'switchyard_calls_total{destination="customerio",outcome="delivered"} 5.0',
                 "switchyard_spool_depth 0.0", 'switchyard_delivery_lag_seconds{destination="customerio"} 0.0'):
        assert line in text, line
