"""The embedding API: load, evaluate, explain, and the promises made about them."""
from __future__ import annotations

import copy
import threading

import pytest

import engine
from conftest import ROOT
from engine.explain import explain

ORDER = {"type": "track", "event": "Order Completed", "messageId": "m-1",
         "properties": {"order_id": "o1", "total": 30, "ssn": "123"}, "context": {"ip": "203.0.113.9"}}


@pytest.fixture(scope="module")
def rules():
    return engine.load(ROOT / "rules" / "webhook.yaml")


def test_evaluate_returns_typed_calls(rules):
    result = rules.evaluate(ORDER)
    assert result.discarded is None and result.errors == []
    (call,) = result.calls
    assert isinstance(call, engine.ActionCall)
    assert (call.destination, call.mapping, call.action, call.message_id) == ("crm", "Orders to CRM", "send", "m-1")
    assert call.payload["data"]["order_id"] == "o1"


def test_evaluate_never_modifies_the_event(rules):
    before = copy.deepcopy(ORDER)
    rules.evaluate(ORDER)
    assert ORDER == before  # the Strip PII filter removed ssn from a copy only


def test_discarded_reasons(rules):
    from engine.model import Discarded

    unmatched = rules.evaluate({"type": "page"})
    assert (unmatched.discarded, unmatched.reason) == (Discarded.NO_MATCH, "no matching mapping")
    internal = rules.evaluate({**ORDER, "context": {"ip": "10.0.0.1"}})
    assert (internal.discarded, internal.reason) == (Discarded.FILTERED, "filtered by Drop internal traffic")
    untyped = rules.evaluate({"event": "x"})
    assert untyped.discarded is Discarded.INVALID_EVENT
    assert untyped.reason.startswith("invalid event: 'type' must be one of")
    assert rules.evaluate([1, 2]).reason == "invalid event: not a JSON object"


def test_invalid_payload_is_an_error_not_a_call(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("""\
version: 1
destination: {name: d, catalog: webhook}
mappings:
  - name: M
    trigger: "true"
    action: send
    fields: {url: properties.url, method: properties.method}
""")
    rules = engine.load(path)
    result = rules.evaluate({"type": "page", "properties": {"method": "GET"}})
    assert result.calls == []
    (error,) = result.errors
    assert error.mapping == "M"
    assert "The root value is missing the required field 'url'." in error.message
    assert 'Method must be one of: "POST", "PUT", "PATCH", "DELETE".' in error.message
    assert result.discarded is None


def test_load_raises_rule_error_listing_every_problem(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("version: 1\ndestination: {name: d, catalog: nope}\nmappings:\n"
                    "  - {name: a, trigger: 'event ==', action: send}\n")
    with pytest.raises(engine.RuleError) as caught:
        engine.load(path)
    codes = sorted(p.code for p in caught.value.problems)
    assert codes == ["SY101", "SY301"]
    assert f"{path}:2:" in str(caught.value)


def test_evaluate_is_thread_safe(rules):
    events = [{**ORDER, "properties": {"order_id": f"o{i}", "total": i}} for i in range(200)]
    expected = [rules.evaluate(e).calls[0].payload["data"]["order_id"] for e in events]
    results = [None] * 4

    def worker(slot):
        results[slot] = [rules.evaluate(e).calls[0].payload["data"]["order_id"] for e in events]

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [expected] * 4


def test_environment_comes_from_the_given_mapping(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("version: 1\ndestination: {name: d, catalog: webhook, settings: {url: '${U}'}}\n"
                    "mappings: [{name: m, trigger: 'true', action: send}]\n")
    rules = engine.load(path, environ={"U": "https://secret.example/hook"})
    settings = rules.destination("d").settings
    assert settings["url"] == "https://secret.example/hook"
    assert "secret.example" not in repr(settings)
    assert rules.evaluate({"type": "page"}).calls[0].payload["url"] == "https://secret.example/hook"


def test_compile_trigger_on_its_own():
    trigger = engine.compile_trigger('properties.total > 100 and context.device.type = "ios"')
    assert trigger.matches({"properties": {"total": 101}, "context": {"device": {"type": "ios"}}})
    assert not trigger.matches({"properties": {"total": "101"}, "context": {"device": {"type": "ios"}}})


def test_nothing_on_the_event_path_parses_text_or_reads_schemas(rules, monkeypatch):
    """Compile once: after load, evaluating and explaining never parse a trigger, an expression or a schema."""
    import json as json_module

    import jmespath
    import lark

    import engine.catalog
    import engine.trigger.parser

    def forbidden(*args, **kwargs):
        raise AssertionError("parsed on the event path")

    rules.evaluate(ORDER)  # warm
    monkeypatch.setattr(engine.trigger.parser, "parse", forbidden)
    monkeypatch.setattr(lark.Lark, "parse", forbidden)
    monkeypatch.setattr(jmespath, "compile", forbidden)
    monkeypatch.setattr(jmespath.parser.Parser, "parse", forbidden)
    monkeypatch.setattr(engine.catalog, "load", forbidden)
    monkeypatch.setattr(json_module, "loads", forbidden)
    for event in (ORDER, {"type": "identify", "userId": "u1", "traits": {"email": "a@example.com"}},
                  {"type": "track", "event": "Signed Up", "properties": {"plan": "pro"}}):
        assert rules.evaluate(event).calls
        assert explain(rules, event)["matched"]


def test_calls_built_on_the_event_path_are_ordinary_frozen_action_calls():
    import dataclasses

    from engine.model import ActionCall, call_factory

    made = call_factory()("crm", "Orders", "send", {"total": 5}, "m-1")
    assert made == ActionCall("crm", "Orders", "send", {"total": 5}, "m-1")
    assert type(made) is ActionCall and made.to_dict()["messageId"] == "m-1"
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.payload = {}


def test_a_call_crosses_processes_whole_with_what_its_adapter_prepared():
    import dataclasses
    import pickle

    from engine.model import ActionCall

    call = ActionCall("crm", "Orders", "send", {"total": 5, "items": [{"sku": "a"}]}, "m-1")
    prepared = call.with_prepared(("track", {"name": "Orders"}))
    again = pickle.loads(pickle.dumps(prepared))
    assert type(again) is ActionCall and again == call
    assert again.prepared == ("track", {"name": "Orders"}) and again.message_id == "m-1"
    assert pickle.loads(pickle.dumps(call)).prepared is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        again.payload = {}


def test_explain_observes_the_walk_that_evaluates_on_every_example_event():
    """The traced walk (explain) and the indexed one (evaluate) fire the same mappings with the same payloads."""
    from conftest import ROOT
    from engine.events import read
    from engine.loader import compile_paths

    rules, _ = compile_paths([str(ROOT / "rules")])
    with open(ROOT / "examples" / "events.jsonl", "rb") as stream:
        events = [event for _, event in read(stream, "events") if isinstance(event, dict)]
    assert len(events) > 300
    for event in events:
        report = explain(rules, event)
        traced = [(d["name"], m["name"], m.get("payload")) for d in report.get("destinations", [])
                  for m in d["mappings"] if m["matched"] and m["enabled"] and "payload" in m]
        evaluated = [(c.destination, c.mapping, c.payload) for c in rules.evaluate(event).calls]
        assert traced == evaluated, event
