"""Typed calls to Track API requests: the case table tests/cases/customerio-requests.yaml, then the API around it."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

import engine
from conftest import ROOT, load_yaml
from engine.customerio import (
    EU_HOST,
    PATHS,
    US_HOST,
    TrackRequest,
    batch_body,
    host_for,
    resolve_identifiers,
    to_request,
)
from engine.model import ActionCall

CASES = load_yaml(Path(__file__).parent / "cases" / "customerio-requests.yaml")


@pytest.fixture(scope="module")
def pack():
    return engine.load(ROOT / "rules" / "customerio.yaml")


def _json(value) -> str:
    """Compare as JSON text, so "1" differs from 1 and 1 from 1.0."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def _calls(pack, case) -> list:
    if "call" in case:
        call = case["call"]
        return [ActionCall("customerio", "by hand", call["action"], call["payload"], "m-test")]
    result = pack.evaluate(case["event"])
    assert result.errors == [], result.errors
    return result.calls


@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_event_to_track_api_request(pack, case):
    calls = _calls(pack, case)
    now = case.get("now", 1700000000.9)
    got = []
    for call in calls:
        request = to_request(call, now=lambda: now)
        got.append({"mapping": call.mapping, "endpoint": request.endpoint, "batchable": request.batchable,
                    "body": request.body})
    want = [dict(expected, mapping=expected.get("mapping", "by hand")) for expected in case["requests"]]
    assert _json(got) == _json(want)


def test_every_action_has_a_case():
    actions = {case["call"]["action"] for case in CASES if "call" in case}
    pack_rules = engine.load(ROOT / "rules" / "customerio.yaml").destinations[0]
    mapped = {m.name: m.action.name for m in pack_rules.mappings}
    actions |= {mapped[r["mapping"]] for case in CASES if "event" in case for r in case["requests"]}
    assert actions == set(pack_rules.catalog.actions)


def test_the_request_is_the_same_item_in_a_batch(pack):
    # Segment's own tests expect the same entity from /entity and as batch[0] of /batch.
    calls = pack.evaluate({"type": "track", "event": "Signed Up", "userId": "u1", "properties": {"plan": "pro"}}).calls
    single = to_request(calls[0]).body
    assert batch_body([single]) == {"batch": [single]}
    assert batch_body(iter([single, single]))["batch"] == [single, single]
    assert batch_body([]) == {"batch": []}


def test_to_request_never_modifies_the_call():
    payload = {"id": "u1", "custom_attributes": {"createdAt": "2019-02-01", "relationshipAttributes": {"a": 1},
                                                 "when": "2019-02-01"},
               "anonymous_id": "anon", "convert_timestamp": True}
    call = ActionCall("customerio", "m", "createUpdatePerson", payload)
    before = copy.deepcopy(payload)
    body = to_request(call).body
    assert payload == before
    assert body["attributes"] == {"when": 1548979200, "anonymous_id": "anon"}


def test_unknown_action_is_a_value_error():
    with pytest.raises(ValueError, match="no action 'send'"):
        to_request(ActionCall("customerio", "m", "send", {}))


def test_request_is_a_frozen_value():
    request = to_request(ActionCall("customerio", "m", "deletePerson", {"person_id": "u1", "enable_batching": True}))
    assert request == TrackRequest("entity", {"type": "person", "action": "delete", "identifiers": {"id": "u1"}}, True)
    with pytest.raises(AttributeError):
        request.body = {}


@pytest.mark.parametrize("settings,host", [
    ({}, US_HOST),
    ({"region": "us"}, US_HOST),
    ({"region": "US 🇺🇸"}, US_HOST),
    ({"region": "eu"}, EU_HOST),
    ({"region": "EU 🇪🇺"}, EU_HOST),
    ({"region": "eu", "base_url": "http://127.0.0.1:8080/"}, "http://127.0.0.1:8080"),
    ({"region": "eu", "base_url": ""}, EU_HOST),
])
def test_host_for(settings, host):
    assert host_for(settings) == host


def test_hosts_and_paths():
    assert (US_HOST, EU_HOST) == ("https://track.customer.io", "https://track-eu.customer.io")
    assert PATHS == {"entity": "/api/v2/entity", "batch": "/api/v2/batch", "metrics": "/api/v1/metrics"}


def test_host_for_reads_the_packs_settings(tmp_path):
    rules = engine.load(ROOT / "rules" / "customerio.yaml", environ={"CUSTOMERIO_REGION": "eu"})
    assert host_for(rules.destinations[0].settings) == EU_HOST
    rules = engine.load(ROOT / "rules" / "customerio.yaml", environ={"CUSTOMERIO_BASE_URL": "http://127.0.0.1:9"})
    assert host_for(rules.destinations[0].settings) == "http://127.0.0.1:9"
    assert host_for(engine.load(ROOT / "rules" / "customerio.yaml", environ={}).destinations[0].settings) == US_HOST


@pytest.mark.parametrize("given,expected", [
    ({"object_id": "o1", "person_id": "u1"}, {"object_id": "o1", "object_type_id": "1"}),
    ({"object_id": "o1", "object_type_id": "4", "person_id": "u1"}, {"object_id": "o1", "object_type_id": "4"}),
    ({"object_id": "o1", "object_type_id": "", "person_id": "u1"}, {"id": "u1"}),
    ({"person_id": "cio_abc", "email": "a@example.com"}, {"cio_id": "abc"}),
    ({"person_id": "a@example.com"}, {"email": "a@example.com"}),
    ({"person_id": "user@localhost"}, {"id": "user@localhost"}),
    ({"person_id": "u1", "email": "a@example.com", "anonymous_id": "x"}, {"id": "u1"}),
    ({"email": "a@example.com", "anonymous_id": "x"}, {"email": "a@example.com"}),
    ({"anonymous_id": "x"}, {"anonymous_id": "x"}),
    ({"person_id": "", "email": ""}, None),
    ({}, None),
])
def test_resolve_identifiers_first_rule_wins(given, expected):
    assert resolve_identifiers(**given) == expected
