"""The HTTP client and the webhook adapter against real servers on 127.0.0.1.

The servers are ``ScriptedServer`` (tests/scripted_server.py), shared with the retry, batcher,
OAuth and replay tests.
"""
from __future__ import annotations

import json
import time

import pytest

from conftest import switchyard
from engine.adapters.webhook import WebhookAdapter
from engine.cli import main
from engine.delivery import DELIVERED, RETRIED, ManualClock, Retrier, Sender, SendError
from engine.delivery.outcome import REFUSED
from scripted_server import Reply, fast_retrier, refused_url, send_call, webhook_context


def test_sender_sends_exact_method_target_headers_and_body(scripted):
    scripted.script(Reply(201, b"created", {"X-Request-Id": "r1"}))
    with Sender(timeout=2) as sender:
        response = sender.send("PUT", scripted.url + "/contacts/u1?dry=1", b'{"a": 1}',
                               {"Content-Type": "application/json", "X-Source": "switchyard"})
    (request,) = scripted.requests
    assert (request["method"], request["path"], request["raw"]) == ("PUT", "/contacts/u1?dry=1", b'{"a": 1}')
    assert request["headers"]["X-Source"] == "switchyard"
    assert request["headers"]["Content-Type"] == "application/json"
    assert request["headers"]["User-Agent"] == "switchyard/0.1"
    assert request["headers"]["Content-Length"] == "8"
    assert (response.status, response.body, response.headers["x-request-id"]) == (201, b"created", "r1")
    assert response.ok and response.url == scripted.url + "/contacts/u1?dry=1"


def test_sender_reuses_one_connection_per_host(scripted):
    with Sender(timeout=2) as sender:
        for _ in range(3):
            assert sender.send("POST", scripted.url + "/a", b"{}", {}).status == 200
    assert len({r["port"] for r in scripted.requests}) == 1


def test_a_keep_alive_connection_closed_by_the_server_is_replaced_before_sending(scripted):
    scripted.script(Reply(close_after=True), Reply())
    with Sender(timeout=2) as sender:
        assert sender.send("POST", scripted.url + "/a", b"1", {}).status == 200
        time.sleep(0.05)  # let the server's close reach us
        assert sender.send("POST", scripted.url + "/a", b"2", {}).status == 200
    assert [r["raw"] for r in scripted.requests] == [b"1", b"2"]  # each sent once
    assert len({r["port"] for r in scripted.requests}) == 2


def test_a_keep_alive_connection_the_server_closes_as_a_request_goes_out_sends_it_again_on_a_new_one(scripted):
    # The server read the second request on the kept-alive connection and closed it unanswered, as one
    # whose idle timeout ran out just then does: the caller gets the answer, not an error to retry later.
    scripted.script(Reply(), Reply(hang_up=True), Reply(201))
    with Sender(timeout=2) as sender:
        assert sender.send("POST", scripted.url + "/a", b"1", {}).status == 200
        assert sender.send("POST", scripted.url + "/a", b"2", {}).status == 201
    assert [r["raw"] for r in scripted.requests] == [b"1", b"2", b"2"]
    assert len({r["port"] for r in scripted.requests}) == 2


def test_a_server_silent_past_the_timeout_is_a_retryable_send_error(scripted):
    scripted.script(Reply(delay=0.5))
    started = time.monotonic()
    with Sender(timeout=0.1) as sender, pytest.raises(SendError) as error:
        sender.send("POST", scripted.url + "/slow", b"{}", {})
    assert time.monotonic() - started < 0.4
    assert str(error.value) == f"cannot reach {scripted.url}/slow: no answer within 0.1s"
    assert error.value.retryable


def test_a_server_closing_the_connection_without_answering_is_a_send_error(scripted):
    scripted.script(Reply(hang_up=True))
    with Sender(timeout=2) as sender, pytest.raises(SendError) as error:
        sender.send("POST", scripted.url + "/x", b"{}", {})
    assert "closed the connection without answering" in str(error.value)
    assert error.value.retryable


def test_a_refused_connection_is_a_send_error():
    url = refused_url()
    with Sender(timeout=2) as sender, pytest.raises(SendError) as error:
        sender.send("POST", url, b"{}", {})
    assert str(error.value).startswith(f"cannot reach {url}: ") and error.value.retryable


@pytest.mark.parametrize("url", ["ftp://example.com/x", "not a url", "http://127.0.0.1:99999/x"])
def test_a_url_that_can_never_work_is_not_retryable(url):
    with Sender() as sender, pytest.raises(SendError) as error:
        sender.send("POST", url, b"{}", {})
    assert not error.value.retryable


def test_http_proxy_from_the_environment_is_used_like_urllib_does(scripted, monkeypatch):
    for name in ("http_proxy", "HTTP_PROXY", "no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("http_proxy", scripted.url.replace("http://", "http://me:p%40ss@"))
    with Sender(timeout=2) as sender:
        assert sender.send("POST", "http://hooks.example.invalid/in?x=1", b"{}", {}).status == 200
    (request,) = scripted.requests
    assert request["path"] == "http://hooks.example.invalid/in?x=1"
    assert request["headers"]["Host"] == "hooks.example.invalid"
    assert request["headers"]["Proxy-Authorization"] == "Basic bWU6cEBzcw=="  # me:p@ss


def test_no_proxy_hosts_are_reached_directly(scripted, monkeypatch):
    monkeypatch.setenv("http_proxy", refused_url())
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    with Sender(timeout=2) as sender:
        assert sender.send("POST", scripted.url + "/direct", b"{}", {}).status == 200
    assert scripted.requests[0]["path"] == "/direct"


# -- the webhook adapter ----------------------------------------------------------------------


def test_webhook_sends_json_with_settings_and_mapping_headers(scripted):
    adapter = WebhookAdapter(webhook_context({"headers": {"Authorization": "Bearer s", "X-A": "settings"}}), retrier=fast_retrier())
    (outcome,) = adapter.deliver([send_call(scripted.url + "/orders", {"id": "o1", "name": "Zoë"},
                                           headers={"X-A": "mapping"})])
    adapter.close()
    (request,) = scripted.requests
    assert request["raw"] == '{"id":"o1","name":"Zoë"}'.encode()
    assert request["headers"]["Authorization"] == "Bearer s"
    assert request["headers"]["X-A"] == "mapping"
    assert request["headers"]["Content-Type"] == "application/json"
    assert (outcome.state, outcome.attempts, outcome.status) == (DELIVERED, 1, 200)


def test_webhook_delete_without_data_sends_no_body(scripted):
    adapter = WebhookAdapter(webhook_context({}), retrier=fast_retrier())
    adapter.deliver([send_call(scripted.url + "/contacts/u1", method="DELETE")])
    (request,) = scripted.requests
    assert (request["method"], request["raw"]) == ("DELETE", b"")


def test_webhook_retries_5xx_then_reports_retried(scripted):
    scripted.script(Reply(503, b"busy"), Reply(502, b"bad gateway"), Reply(200, b"ok"))
    retrier = fast_retrier()
    (outcome,) = WebhookAdapter(webhook_context({}), retrier=retrier).deliver([send_call(scripted.url + "/orders", {"id": 1})])
    assert (outcome.state, outcome.attempts, outcome.status, outcome.body) == (RETRIED, 3, 200, "ok")
    assert [r["body"] for r in scripted.requests] == [{"id": 1}] * 3
    assert len(retrier.clock.sleeps) == 2 and outcome.waited == pytest.approx(sum(retrier.clock.sleeps))


def test_webhook_refuses_a_400_without_retrying_and_keeps_status_and_body(scripted):
    scripted.script(Reply(400, b'{"error": "bad"}'))
    adapter = WebhookAdapter(webhook_context({}), retrier=fast_retrier())
    (outcome,) = adapter.deliver([send_call(scripted.url + "/orders", {"id": 1})])
    assert (outcome.status, outcome.body) == (400, '{"error": "bad"}')
    assert outcome.message == f"HTTP 400 from {scripted.url}/orders"
    assert outcome.state == REFUSED and outcome.attempts == 1
    assert len(scripted.requests) == 1


def test_webhook_gives_up_after_max_attempts_with_the_last_answer(scripted):
    scripted.script(*[Reply(500, f"boom {n}") for n in range(1, 6)])
    adapter = WebhookAdapter(webhook_context({"max_attempts": 3}), retrier=None)
    adapter.retrier = Retrier(adapter.retrier.policy, clock=ManualClock())
    (outcome,) = adapter.deliver([send_call(scripted.url + "/orders", {"id": 1})])
    assert len(scripted.requests) == 3
    assert (outcome.status, outcome.body) == (500, "boom 3")
    assert outcome.message == f"HTTP 500 from {scripted.url}/orders (gave up after 3 attempts)"
    assert outcome.dead_letter_record("<stdin>")["attempts"] == 3


def test_webhook_retries_a_timeout_then_delivers(scripted):
    scripted.script(Reply(delay=0.4), Reply())
    adapter = WebhookAdapter(webhook_context({"timeout": 0.1}), retrier=fast_retrier())
    (outcome,) = adapter.deliver([send_call(scripted.url + "/orders", {"id": 1})])
    assert (outcome.state, outcome.attempts) == (RETRIED, 2)


def test_webhook_retries_a_connection_closed_without_answer(scripted):
    scripted.script(Reply(hang_up=True), Reply(hang_up=True), Reply())
    (outcome,) = WebhookAdapter(webhook_context({}), retrier=fast_retrier()).deliver([send_call(scripted.url + "/o", {"id": 1})])
    assert (outcome.state, outcome.attempts) == (RETRIED, 3)
    assert len(scripted.requests) == 3


def test_webhook_unreachable_gives_up_with_no_status():
    url = refused_url()
    (outcome,) = WebhookAdapter(webhook_context({"max_attempts": 2}), retrier=fast_retrier(2)).deliver([send_call(url, {"id": 1})])
    assert outcome.message.startswith(f"cannot reach {url}: ")
    assert outcome.message.endswith("(gave up after 2 attempts)")
    assert outcome.status is None and outcome.attempts == 2


# -- through `switchyard run` -----------------------------------------------------------------

RULES = """\
version: 1
destination:
  name: hooks
  catalog: webhook
  settings: {url: "$URL/orders", max_attempts: 2, timeout: 2}
mappings:
  - name: Orders
    trigger: event = "Order Completed"
    action: send
    fields:
      data: {id: properties.order_id}
"""


def test_run_retries_then_dead_letters_with_the_last_answer(scripted, tmp_path):
    scripted.default = Reply(503, b'{"error": "down"}')
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES.replace("$URL", scripted.url))
    events = tmp_path / "events.ndjson"
    events.write_text(json.dumps({"type": "track", "event": "Order Completed", "messageId": "m1",
                                  "properties": {"order_id": "o1"}}) + "\n")
    dead = tmp_path / "dead.ndjson"
    assert switchyard("run", rules, events, "--dead-letter", dead).returncode == 1
    assert [r["body"] for r in scripted.requests] == [{"id": "o1"}, {"id": "o1"}]
    record = json.loads(dead.read_text())
    assert (record["kind"], record["status"], record["body"]) == ("delivery_failed", 503, '{"error": "down"}')
    assert record["reason"] == f"HTTP 503 from {scripted.url}/orders (gave up after 2 attempts)"


OAUTH = "oauth: {token_url: x, client_id: a, client_secret: '${OAUTH_SECRET}'"


@pytest.mark.parametrize("settings, code", [
    ("{url: x, max_attempts: 3, " + OAUTH + ", scope: s}}", None),
    ("{url: x, max_attempts: 0}", "SY306"),
    ("{url: x, max_attempts: 11}", "SY306"),
    ("{url: x, oauth: {token_url: x, client_id: a}}", "SY306"),
    ("{url: x, " + OAUTH + ", client_auth: digest}}", "SY306"),
])
def test_lint_checks_the_delivery_settings_and_never_shows_the_oauth_secret(tmp_path, capsys, monkeypatch,
                                                                           settings, code):
    monkeypatch.setenv("OAUTH_SECRET", "sup3rs3cret")
    rules = tmp_path / "rules.yaml"
    rules.write_text(f"version: 1\ndestination: {{name: d, catalog: webhook, settings: {settings}}}\nmappings: []\n")
    status = main(["lint", str(rules)])
    out = capsys.readouterr().out
    if code:
        assert status == 1 and f"error {code}" in out
    else:
        assert status == 0 and "0 error(s)" in out
    assert "sup3rs3cret" not in out
