"""The Customer.io HTTP adapter against a real server standing in for the Track API.

Calls come from the shipped rule pack (``rules/customerio.yaml``), so what is checked is what a
user's events produce: endpoints, basic auth, exact bodies, batching per mapping, per-item
errors and retries.
"""
from __future__ import annotations

import base64
import time

import pytest

from conftest import ROOT
from engine.adapters import SetupError
from engine.adapters.customerio_http import CustomerioHttpAdapter
from engine.customerio.requests import to_request
from engine.delivery.outcome import DELIVERED, FAILED, REFUSED, RETRIED
from engine.loader import compile_paths
from scripted_server import Reply, customerio_context, fast_retrier

AUTH = "Basic " + base64.b64encode(b"site-1:key-1").decode()


class Tick:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


@pytest.fixture(scope="module")
def shipped_rules():
    environ = {"CUSTOMERIO_SITE_ID": "site-1", "CUSTOMERIO_API_KEY": "key-1", "CUSTOMERIO_BASE_URL": "http://unused"}
    rules, problems = compile_paths([str(ROOT / "rules" / "customerio.yaml")], environ)
    assert not [p for p in problems if p.severity == "error"]
    return rules


@pytest.fixture
def pack(shipped_rules, scripted):
    """(the shipped pack's rules, a server standing in for the Track API)."""
    return shipped_rules, scripted


def settings_for(rules, server) -> dict:
    return {**rules.destination("customerio").settings, "base_url": server.url}


def calls_for(rules, *events):
    return [call for event in events for call in rules.evaluate(event).calls]


def adapter_for(pack, tick=None, **options):
    rules, server = pack
    return CustomerioHttpAdapter(customerio_context(settings_for(rules, server)), retrier=fast_retrier(),
                                 clock=tick or Tick(), **options)


def track(n, event="Order Completed"):
    return {"type": "track", "event": event, "userId": f"u{n}", "messageId": f"m{n}",
            "timestamp": "2024-01-01T00:00:00Z", "properties": {"n": n}}


IDENTIFY = {"type": "identify", "userId": "u1", "messageId": "i1", "traits": {"email": "a@example.com"}}


def test_an_unbatched_call_goes_to_the_entity_endpoint_with_basic_auth(pack):
    rules, server = pack
    (call,) = calls_for(rules, IDENTIFY)
    call = type(call)(call.destination, call.mapping, call.action, {**call.payload, "enable_batching": False},
                      call.message_id)
    adapter = adapter_for(pack)
    (outcome,) = adapter.deliver([call])
    assert adapter.close() == []
    (request,) = server.requests
    assert (request["method"], request["path"]) == ("POST", "/api/v2/entity")
    assert request["headers"]["Authorization"] == AUTH
    assert request["headers"]["Content-Type"] == "application/json"
    assert request["body"] == to_request(call).body == {
        "type": "person", "action": "identify", "identifiers": {"id": "u1"}, "attributes": {"email": "a@example.com"}}
    assert (outcome.state, outcome.call) == (DELIVERED, call)


def test_report_delivery_event_goes_to_metrics_at_once(pack):
    rules, server = pack
    (call,) = calls_for(rules, {"type": "track", "event": "Report Delivery Event", "messageId": "r1",
                                "timestamp": "2024-01-01T00:00:00Z",
                                "properties": {"deliveryId": "d1", "metric": "opened"}})
    (outcome,) = adapter_for(pack).deliver([call])
    (request,) = server.requests
    assert request["path"] == "/api/v1/metrics"
    assert request["body"] == {"delivery_id": "d1", "metric": "opened", "timestamp": 1704067200}
    assert outcome.state == DELIVERED


def test_batched_calls_wait_and_go_out_in_stream_order_at_close(pack):
    rules, server = pack
    calls = calls_for(rules, track(1), IDENTIFY, track(2))
    adapter = adapter_for(pack)
    assert [adapter.deliver([call]) for call in calls] == [[], [], []]
    assert server.requests == []
    outcomes = adapter.close()
    assert [(r["path"], len(r["body"]["batch"])) for r in server.requests] == [("/api/v2/batch", 3)]
    batch = server.requests[0]["body"]["batch"]
    assert batch == [to_request(call).body for call in calls]  # one batch, in the order of the events
    assert batch[0] == {"type": "person", "action": "event", "name": "Order Completed", "id": "m1",
                        "timestamp": 1704067200, "attributes": {"n": 1}, "identifiers": {"id": "u1"}}
    assert all(r["headers"]["Authorization"] == AUTH for r in server.requests)
    assert sorted(o.call.message_id for o in outcomes) == ["i1", "m1", "m2"]
    assert {o.state for o in outcomes} == {DELIVERED}


def test_a_batch_goes_when_it_reaches_the_mappings_batch_size(pack):
    rules, server = pack
    calls = calls_for(rules, *[track(n) for n in range(5)])
    calls = [type(c)(c.destination, c.mapping, c.action, {**c.payload, "batch_size": 2}, c.message_id)
             for c in calls]
    adapter = adapter_for(pack)
    settled = [len(adapter.deliver([call])) for call in calls]
    assert settled == [0, 2, 0, 2, 0]
    assert [len(r["body"]["batch"]) for r in server.requests] == [2, 2]
    assert len(adapter.close()) == 1


def test_a_batch_goes_when_it_would_pass_the_size_limit(pack):
    rules, server = pack
    big = [dict(track(n), properties={"blob": "x" * 200_000}) for n in range(3)]
    adapter = adapter_for(pack)
    settled = [len(adapter.deliver([call])) for call in calls_for(rules, *big)]
    assert settled == [0, 0, 2]
    assert all(len(r["raw"]) <= 500_000 for r in server.requests)
    adapter.close()
    assert [len(r["body"]["batch"]) for r in server.requests] == [2, 1]


def test_a_batch_goes_when_its_first_call_is_a_second_old(pack):
    rules, server = pack
    tick = Tick()
    adapter = adapter_for(pack, tick)
    adapter.deliver(calls_for(rules, track(1)))
    tick.now += 0.5
    assert adapter.poll() == [] and server.requests == []
    tick.now += 0.5
    (outcome,) = adapter.poll()
    assert outcome.call.message_id == "m1" and len(server.requests) == 1


def test_a_slow_streams_batch_goes_out_from_its_lane_without_waiting_for_more_events(pack):
    from engine.deadletter import DeadLetter
    from engine.pipeline import Pipeline

    rules, server = pack
    adapter = CustomerioHttpAdapter(customerio_context(settings_for(rules, server)), retrier=fast_retrier(),
                                    max_age=0.05)
    pipeline = Pipeline(rules, dead_letter=DeadLetter(None), adapters={"customerio": adapter}, hand_over=1)
    try:
        pipeline.submit(track(1), "stdin:1")
        deadline = time.monotonic() + 2
        while not server.requests and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(server.requests) == 1  # the lane polled the adapter: nothing else came in
        assert pipeline.flush(timeout=2)
        assert pipeline.summary.delivered == {("customerio", "Track Event"): 1}
    finally:
        pipeline.close()


def test_per_item_errors_fail_only_their_calls(pack):
    rules, server = pack
    server.script(Reply(207, {"errors": [{"batch_index": 1, "reason": "required", "field": "identifiers",
                                          "message": "identifiers must be set"}]}))
    adapter = adapter_for(pack)
    for call in calls_for(rules, track(1), track(2), track(3)):
        adapter.deliver([call])
    outcomes = {o.call.message_id: o for o in adapter.close()}
    assert (outcomes["m1"].state, outcomes["m3"].state, outcomes["m2"].state) == (DELIVERED, DELIVERED, REFUSED)
    assert outcomes["m2"].message == "Customer.io rejected batch item 1: identifiers required identifiers must be set"
    assert outcomes["m2"].status == 207 and '"batch_index": 1' in outcomes["m2"].body
    assert outcomes["m2"].dead_letter_record("<stdin>")["call"]["messageId"] == "m2"


def test_an_unreadable_multi_status_fails_every_item_rather_than_lose_one(pack):
    rules, server = pack
    server.script(Reply(207, b"partial"))
    adapter = adapter_for(pack)
    for call in calls_for(rules, track(1), track(2)):
        adapter.deliver([call])
    assert {o.state for o in adapter.close()} == {FAILED}


def test_a_batch_refused_as_a_whole_is_sent_call_by_call(pack):
    rules, server = pack
    server.script(Reply(400, {"meta": {"error": "invalid"}}), path="/api/v2/batch")
    server.script(Reply(200), Reply(400, {"meta": {"error": "bad identifiers"}}), Reply(200), path="/api/v2/entity")
    adapter = adapter_for(pack)
    calls = calls_for(rules, track(1), track(2), track(3))
    for call in calls:
        adapter.deliver([call])
    outcomes = {o.call.message_id: o for o in adapter.close()}
    assert [r["path"] for r in server.requests] == ["/api/v2/batch"] + ["/api/v2/entity"] * 3
    assert [r["body"] for r in server.to("/api/v2/entity")] == [to_request(c).body for c in calls]
    assert [outcomes[m].state for m in ("m1", "m2", "m3")] == [DELIVERED, REFUSED, DELIVERED]
    assert outcomes["m2"].status == 400


def test_a_failing_batch_is_retried_then_every_call_is_reported(pack):
    rules, server = pack
    server.script(Reply(503), Reply(429, headers={"Retry-After": "1"}), Reply(200))
    adapter = adapter_for(pack)
    for call in calls_for(rules, track(1), track(2)):
        adapter.deliver([call])
    outcomes = adapter.close()
    assert [(o.state, o.attempts) for o in outcomes] == [(RETRIED, 3), (RETRIED, 3)]
    assert adapter.retrier.clock.sleeps[1] == 1.0
    assert len(server.requests) == 3 and server.requests[0]["body"] == server.requests[2]["body"]


def test_a_batch_that_keeps_failing_fails_each_call_with_the_answer(pack):
    rules, server = pack
    server.default = Reply(500, b"down")
    adapter = adapter_for(pack)
    for call in calls_for(rules, track(1), track(2)):
        adapter.deliver([call])
    outcomes = adapter.close()
    assert [(o.state, o.status, o.body, o.attempts) for o in outcomes] == [(FAILED, 500, "down", 5)] * 2
    assert {o.call.message_id for o in outcomes} == {"m1", "m2"}


def test_missing_credentials_cannot_deliver(pack):
    with pytest.raises(SetupError):
        CustomerioHttpAdapter(customerio_context({"region": "us"}))


def test_calls_prepared_ahead_are_sent_exactly_as_calls_prepared_here(pack):
    """What run --workers builds in the evaluating process (call.prepared) is what deliver would build."""
    rules, server = pack
    events = [track(1), IDENTIFY, track(2), {"type": "page", "userId": "u1", "messageId": "p1",
                                            "properties": {"url": "https://shop.example/x"}}]
    sent = {}
    for way in ("here", "ahead"):
        calls = calls_for(rules, *events)
        if way == "ahead":
            calls = [call.with_prepared(CustomerioHttpAdapter.prepare(call)) for call in calls]
        adapter = adapter_for(pack)
        outcomes = adapter.deliver(calls) + adapter.close()
        sent[way] = ([(r["path"], r["raw"]) for r in server.requests], sorted(o.state for o in outcomes))
        server.requests.clear()
    assert sent["ahead"] == sent["here"] and sent["here"][0]
