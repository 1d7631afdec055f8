"""OAuth2 client credentials for the webhook catalog, against a real token endpoint and API."""
from __future__ import annotations

import base64
import json
import os
from urllib.parse import parse_qs

import pytest

from conftest import switchyard
from engine.adapters import SetupError
from engine.adapters.webhook import WebhookAdapter
from engine.cli import main
from engine.delivery import (
    DELIVERED,
    RETRIED,
    ClientCredentials,
    ManualClock,
    Sender,
    TokenError,
)
from scripted_server import Reply, fast_retrier, send_call, webhook_context

SECRET = "s3cr3t/with:odd&chars"


def token(value: str, expires_in=3600) -> Reply:
    answer = {"access_token": value, "token_type": "Bearer"}
    if expires_in is not None:
        answer["expires_in"] = expires_in
    return Reply(200, answer)


def oauth_settings(server, **extra) -> dict:
    return {"oauth": {"token_url": server.url + "/token", "client_id": "my client", "client_secret": SECRET,
                      **extra}}


def bearer(request) -> str:
    return request["headers"]["Authorization"]


def form(request) -> dict:
    return {k: v[0] for k, v in parse_qs(request["raw"].decode()).items()}


def test_the_token_is_fetched_with_client_credentials_and_sent_as_bearer(scripted):
    scripted.script(token("t1"), path="/token")
    adapter = WebhookAdapter(webhook_context(oauth_settings(scripted, scope="events:write")), retrier=fast_retrier())
    (outcome,) = adapter.deliver([send_call(scripted.url + "/api", {"id": 1})])
    fetch, call = scripted.requests
    assert (fetch["method"], fetch["path"]) == ("POST", "/token")
    assert fetch["headers"]["Content-Type"] == "application/x-www-form-urlencoded"
    assert form(fetch) == {"grant_type": "client_credentials", "scope": "events:write"}
    # RFC 6749 section 2.3.1: id and secret are form-encoded, then joined for HTTP Basic.
    expected = base64.b64encode(b"my+client:s3cr3t%2Fwith%3Aodd%26chars").decode()
    assert fetch["headers"]["Authorization"] == f"Basic {expected}"
    assert (call["path"], bearer(call), call["body"]) == ("/api", "Bearer t1", {"id": 1})
    assert (outcome.state, outcome.attempts) == (DELIVERED, 1)


def test_client_auth_body_sends_the_credentials_as_form_fields(scripted):
    scripted.script(token("t1"), path="/token")
    WebhookAdapter(webhook_context(oauth_settings(scripted, client_auth="body")), retrier=fast_retrier()).deliver([
        send_call(scripted.url + "/api", {"id": 1})])
    fetch = scripted.to("/token")[0]
    assert "Authorization" not in fetch["headers"]
    assert form(fetch) == {"grant_type": "client_credentials", "client_id": "my client", "client_secret": SECRET}


def test_the_token_is_cached_until_it_expires(scripted):
    scripted.script(token("t1", expires_in=600), token("t2", expires_in=600), path="/token")
    retrier = fast_retrier()
    adapter = WebhookAdapter(webhook_context(oauth_settings(scripted)), retrier=retrier)
    for n in range(3):
        adapter.deliver([send_call(scripted.url + "/api", {"n": n})])
    retrier.clock.now += 600 - 30  # into the last 10% of its life: renewed before it can expire in flight
    adapter.deliver([send_call(scripted.url + "/api", {"n": 3})])
    assert len(scripted.to("/token")) == 2
    assert [bearer(r) for r in scripted.to("/api")] == ["Bearer t1"] * 3 + ["Bearer t2"]


def test_a_401_refreshes_the_token_once_and_sends_again(scripted):
    scripted.script(token("old"), token("new"), path="/token")
    scripted.script(Reply(401, b'{"error": "token expired"}'), Reply(200, b"ok"), path="/api")
    (outcome,) = WebhookAdapter(webhook_context(oauth_settings(scripted)), retrier=fast_retrier()).deliver([
        send_call(scripted.url + "/api", {"id": 1})])
    assert [r["path"] for r in scripted.requests] == ["/token", "/api", "/token", "/api"]
    assert [bearer(r) for r in scripted.to("/api")] == ["Bearer old", "Bearer new"]
    assert [r["body"] for r in scripted.to("/api")] == [{"id": 1}, {"id": 1}]
    assert (outcome.state, outcome.attempts, outcome.status) == (RETRIED, 2, 200)


def test_a_second_401_fails_without_another_refresh(scripted):
    scripted.script(token("old"), token("new"), token("newer"), path="/token")
    scripted.default = Reply(401, b'{"error": "invalid token"}')
    retrier = fast_retrier()
    (outcome,) = WebhookAdapter(webhook_context(oauth_settings(scripted)), retrier=retrier).deliver([send_call(scripted.url + "/api", {"id": 1})])
    assert [r["path"] for r in scripted.requests] == ["/token", "/api", "/token", "/api"]
    assert (outcome.status, outcome.body) == (401, '{"error": "invalid token"}')
    assert outcome.attempts == 2 and retrier.clock.sleeps == []


def test_only_one_refresh_per_call_even_across_retries(scripted):
    scripted.script(token("a"), token("b"), token("c"), path="/token")
    scripted.script(Reply(401), Reply(503), Reply(401), Reply(200), path="/api")
    (outcome,) = WebhookAdapter(webhook_context(oauth_settings(scripted)), retrier=fast_retrier()).deliver([
        send_call(scripted.url + "/api", {"id": 1})])
    assert outcome.status == 401
    assert len(scripted.to("/token")) == 2 and len(scripted.to("/api")) == 3


def test_a_rejected_client_is_not_retried_and_says_where_it_failed(scripted):
    scripted.script(Reply(400, {"error": "invalid_client"}), path="/token")
    (outcome,) = WebhookAdapter(webhook_context(oauth_settings(scripted)), retrier=fast_retrier()).deliver([
        send_call(scripted.url + "/api", {"id": 1})])
    assert outcome.message == f"OAuth2 token request to {scripted.url}/token failed: HTTP 400"
    assert (outcome.status, json.loads(outcome.body)) == (400, {"error": "invalid_client"})
    assert outcome.state == "failed"  # the call itself was never judged: replay sends it once the client is fixed
    assert scripted.to("/api") == [] and len(scripted.to("/token")) == 1
    assert SECRET not in outcome.message


def test_a_token_endpoint_that_is_down_is_retried_like_any_server(scripted):
    scripted.script(Reply(503, headers={"Retry-After": "2"}), token("t1"), path="/token")
    retrier = fast_retrier()
    (outcome,) = WebhookAdapter(webhook_context(oauth_settings(scripted)), retrier=retrier).deliver([
        send_call(scripted.url + "/api", {"id": 1})])
    assert (outcome.state, outcome.attempts, retrier.clock.sleeps) == (RETRIED, 2, [2.0])
    assert [bearer(r) for r in scripted.to("/api")] == ["Bearer t1"]


@pytest.mark.parametrize("answer", [b"not json", b'{"token_type": "Bearer"}', b'{"access_token": ""}'])
def test_an_answer_without_a_token_fails_without_retrying(scripted, answer):
    scripted.script(Reply(200, answer), path="/token")
    (outcome,) = WebhookAdapter(webhook_context(oauth_settings(scripted)), retrier=fast_retrier()).deliver([
        send_call(scripted.url + "/api", {"id": 1})])
    assert "without an access_token" in outcome.message
    assert len(scripted.requests) == 1


def test_a_token_without_expiry_is_kept_until_a_401(scripted):
    scripted.script(token("t1", expires_in=None), token("t2", expires_in=None), path="/token")
    clock = ManualClock()
    with Sender(timeout=2) as sender:
        credentials = ClientCredentials(sender, scripted.url + "/token", "id", "secret", clock=clock)
        assert credentials.token() == "t1"
        clock.now += 10 ** 6
        assert credentials.token() == "t1"
        assert credentials.refresh("t1") == "t2"
        assert credentials.refresh("t1") == "t2"  # already replaced: no second fetch
    assert credentials.fetches == 2
    assert "secret" not in repr(credentials)


def test_an_unreachable_token_endpoint_is_a_retryable_token_error():
    from scripted_server import refused_url
    with Sender(timeout=2) as sender, pytest.raises(TokenError) as error:
        ClientCredentials(sender, refused_url(), "id", "secret").token()
    assert error.value.retryable and str(error.value).startswith("OAuth2 token request failed: cannot reach")


def test_incomplete_oauth_settings_cannot_deliver():
    with pytest.raises(SetupError):
        WebhookAdapter(webhook_context({"oauth": {"token_url": "http://x/token"}}))


RULES = """\
version: 1
destination:
  name: hooks
  catalog: webhook
  settings:
    url: $URL/api
    oauth: {token_url: $URL/token, client_id: switchyard, client_secret: "${HOOK_CLIENT_SECRET}"}
mappings:
  - name: Orders
    trigger: event = "Order Completed"
    action: send
    fields:
      data: {id: properties.order_id}
"""


def test_run_delivers_with_oauth_and_never_prints_the_secret(scripted, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HOOK_CLIENT_SECRET", SECRET)
    scripted.script(token("t1"), path="/token")
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES.replace("$URL", scripted.url))
    events = tmp_path / "events.ndjson"
    events.write_text("\n".join(json.dumps({"type": "track", "event": "Order Completed", "messageId": f"m{n}",
                                            "properties": {"order_id": n}}) for n in range(3)) + "\n")
    result = switchyard("run", rules, events, "--dead-letter", tmp_path / "dead", env={**os.environ})
    assert result.returncode == 0, result.stderr
    assert main(["lint", str(rules)]) == 0
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"type": "track", "event": "Order Completed", "properties": {"order_id": 1}}))
    assert main(["explain", str(rules), "--event", str(event)]) == 0
    printed = capsys.readouterr()
    assert SECRET not in printed.out + printed.err + result.stdout + result.stderr
    assert len(scripted.to("/token")) == 1
    assert [(bearer(r), r["body"]) for r in scripted.to("/api")] == [("Bearer t1", {"id": n}) for n in range(3)]
