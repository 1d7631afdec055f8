"""The circuit breaker: a destination that keeps failing is paused, probed later, and holds back no other."""
from __future__ import annotations

import json
import time

import pytest

from conftest import audit_rules
from engine.adapters.customerio_http import CustomerioHttpAdapter
from engine.adapters.webhook import WebhookAdapter
from engine.cli import main
from engine.delivery.breaker import Breaker, circuit_breaker
from engine.delivery.outcome import DELIVERED, FAILED, REFUSED
from scripted_server import Reply, customerio_context, fast_retrier, refused_url, send_call, webhook_context

RULES = """\
version: 1
destination:
  name: down
  catalog: webhook
  settings: {{url: "{url}", max_attempts: 3, circuit_breaker: {{failures: 3, pause: 60}}}}
mappings:
  - name: Orders
    trigger: event = "Order Completed"
    action: send
    fields:
      data: {{id: properties.order_id}}
"""


def test_a_refused_port_pauses_its_destination_and_the_other_goes_on(tmp_path):
    rules, events, dead, out = tmp_path / "rules", tmp_path / "e.ndjson", tmp_path / "dead.ndjson", tmp_path / "a"
    rules.mkdir()
    (rules / "down.yaml").write_text(RULES.format(url=refused_url()))
    (rules / "audit.yaml").write_text(audit_rules(out))
    events.write_text("".join(json.dumps({"type": "track", "event": "Order Completed", "messageId": f"m{n}",
                                          "properties": {"order_id": f"o{n}"}}) + "\n" for n in range(500)))
    started = time.monotonic()
    assert main(["run", str(rules), str(events), "--dead-letter", str(dead)]) == 1
    # Three calls wait out their retries (up to 0.5 + 1 s each); the other 497 fail at once.
    assert time.monotonic() - started < 10
    records = [json.loads(line) for line in dead.read_text().splitlines()]
    assert len(records) == 500 and all(r["outcome"] == "failed" for r in records)  # replayable, none lost
    assert all("paused by its circuit breaker" not in r["reason"] for r in records[:3])
    assert all("paused by its circuit breaker" in r["reason"] and r["attempts"] == 0 for r in records[3:])
    assert len(out.read_text().splitlines()) == 500  # the other destination delivered everything


def test_user_com_over_http_is_paused_too(tmp_path):
    """Without a breaker, every call to a User.com that was down waited out all its attempts: 12 calls took 48 s."""
    rules, events, dead = tmp_path / "userengage.yaml", tmp_path / "e.ndjson", tmp_path / "dead.ndjson"
    rules.write_text("version: 1\ndestination:\n  name: ue\n  catalog: userengage\n  transport: http\n"
                     f"  settings: {{api_key: k, base_url: \"{refused_url().removesuffix('/hook')}\", max_attempts: 3, "
                     "circuit_breaker: {failures: 3, pause: 60}}\n"
                     "mappings:\n  - {name: Track, trigger: type = \"track\", action: trackEvent}\n")
    events.write_text("".join(json.dumps({"type": "track", "userId": f"u{n}", "event": "E", "messageId": f"m{n}"})
                              + "\n" for n in range(40)))
    started = time.monotonic()
    assert main(["run", str(rules), str(events), "--dead-letter", str(dead)]) == 1
    assert time.monotonic() - started < 10  # three calls wait out their retries; the other 37 fail at once
    records = [json.loads(line) for line in dead.read_text().splitlines()]
    assert len(records) == 40 and all(r["outcome"] == "failed" for r in records)
    assert all("paused by its circuit breaker" not in r["reason"] for r in records[:3])
    assert all("paused by its circuit breaker" in r["reason"] and r["attempts"] == 0 for r in records[3:])


def test_a_user_com_probe_that_is_answered_goes_on_with_its_call(scripted):
    from engine.adapters.contract import AdapterContext
    from engine.adapters.userengage_http import UserengageHttpAdapter
    from engine.model import ActionCall

    now = [0.0]
    context = AdapterContext("ue", "userengage", "http", {"api_key": "k", "base_url": scripted.url,
                                                          "circuit_breaker": {"failures": 1, "pause": 30}})
    adapter = UserengageHttpAdapter(context, retrier=fast_retrier(max_attempts=2))
    adapter.breaker = Breaker("ue", failures=1, pause=30, clock=lambda: now[0])
    calls = [ActionCall("ue", "Track", "trackEvent", {"user_id": f"u{n}", "name": "E"}, f"m{n}") for n in range(3)]
    scripted.script(Reply(503), Reply(503), path="/api/public/users/update_or_create/")
    assert [o.state for o in adapter.deliver(calls)] == [FAILED] * 3
    assert len(scripted.requests) == 2  # the first call's two attempts; the others were not sent

    scripted.script(Reply(200, {"id": 7, "user_key": "k7"}), Reply(200, {"id": 8, "user_key": "k8"}),
                    path="/api/public/users/update_or_create/")
    now[0] = 31.0  # the probe (the upsert) is answered: the call sends its event, and the next call goes
    assert [o.state for o in adapter.deliver(calls[:2])] == [DELIVERED] * 2
    assert [r["path"] for r in scripted.requests[2:]] == ["/api/public/users/update_or_create/", "/api/public/events/",
                                                          "/api/public/users/update_or_create/", "/api/public/events/"]
    adapter.close()


def test_paused_calls_send_no_request_then_a_probe_closes_the_breaker(scripted):
    now = [0.0]
    adapter = WebhookAdapter(webhook_context({"circuit_breaker": {"failures": 2, "pause": 30}}),
                             retrier=fast_retrier(max_attempts=3))
    adapter.breaker = Breaker("hooks", failures=2, pause=30, clock=lambda: now[0])
    scripted.default = Reply(503)
    call = send_call(scripted.url + "/hook", {"a": 1})
    first = adapter.deliver([call, call])
    assert [o.state for o in first] == [FAILED, FAILED] and len(scripted.requests) == 6  # 2 calls x 3 attempts
    paused = adapter.deliver([call] * 10)
    assert all(o.state == FAILED and "paused by its circuit breaker" in o.message for o in paused)
    assert len(scripted.requests) == 6  # no request while paused

    now[0] = 31.0  # the pause is over: one call goes, with one attempt, and fails: paused again
    probe = adapter.deliver([call, call])
    assert len(scripted.requests) == 7 and "HTTP 503" in probe[0].message
    assert "paused by its circuit breaker" in probe[1].message

    scripted.default = Reply(200)
    now[0] = 62.0  # the destination is back: the probe is answered and calls go as usual
    back = adapter.deliver([call] * 3)
    assert [o.state for o in back] == [DELIVERED] * 3 and len(scripted.requests) == 10


def test_a_refusal_or_an_auth_error_says_the_destination_is_up(scripted):
    adapter = WebhookAdapter(webhook_context({"circuit_breaker": {"failures": 2}}),
                             retrier=fast_retrier(max_attempts=1))
    call = send_call(scripted.url + "/hook", {"a": 1})
    scripted.script(Reply(503), Reply(400), Reply(503), Reply(401), Reply(503), Reply(503))
    states = [o.state for o in adapter.deliver([call] * 7)]
    assert states == [FAILED, REFUSED, FAILED, FAILED, FAILED, FAILED, FAILED]
    assert len(scripted.requests) == 6  # only after the last two 503s in a row is the seventh not sent


def test_calls_that_could_not_be_sent_say_nothing_of_the_destination(scripted):
    # URLs taken from the events: those that cannot be written fail at once, unsent; the good ones still go.
    adapter = WebhookAdapter(webhook_context({"circuit_breaker": {"failures": 2}}),
                             retrier=fast_retrier(max_attempts=3))
    unsendable = [send_call(scripted.url + f"/caf\u00e9{n}", {"a": n}) for n in range(4)]
    unsendable.append(send_call("http://a..b/hook", {"a": 4}))
    outcomes = adapter.deliver(unsendable + [send_call(scripted.url + "/hook", {"a": 5})])
    assert [o.state for o in outcomes] == [FAILED] * 5 + [DELIVERED]
    assert not any("circuit breaker" in o.message for o in outcomes)
    assert len(scripted.requests) == 1


def test_customerio_batches_share_the_breaker(scripted):
    scripted.default = Reply(502)
    adapter = CustomerioHttpAdapter(customerio_context({"site_id": "s", "api_key": "k", "base_url": scripted.url,
                                                        "circuit_breaker": {"failures": 1, "pause": 60}}),
                                    retrier=fast_retrier(max_attempts=2))
    from engine.model import ActionCall
    calls = [ActionCall("customerio", "People", "createUpdatePerson",
                        {"identifiers": {"id": f"u{n}"}, "traits": {}, "enable_batching": False}, f"m{n}")
             for n in range(5)]
    outcomes = adapter.deliver(calls) + adapter.close()
    assert len(outcomes) == 5 and all(o.state == FAILED for o in outcomes)
    assert len(scripted.requests) == 2  # the first call's two attempts; then paused
    assert "paused by its circuit breaker" in outcomes[-1].message


@pytest.mark.parametrize(("settings", "expected"), [
    ({}, (5, 30.0)),
    ({"circuit_breaker": {"failures": 2, "pause": 1.5}}, (2, 1.5)),
    ({"circuit_breaker": {"failures": 0}}, None),
])
def test_settings(settings, expected):
    breaker = circuit_breaker("d", settings)
    assert (None if breaker is None else (breaker.failures, breaker.pause)) == expected


def test_the_setting_is_checked_by_lint(tmp_path, capsys):
    rules = tmp_path / "rules.yaml"
    rules.write_text("version: 1\ndestination: {name: d, catalog: webhook, settings: "
                     "{circuit_breaker: {failures: -1, pause: 0}}}\nmappings: []\n")
    assert main(["lint", str(rules)]) == 1
    assert "circuit_breaker" in capsys.readouterr().out
