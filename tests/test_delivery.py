"""Webhook delivery over real HTTP to a server on 127.0.0.1, and what happens when it fails."""
from __future__ import annotations

import json
import os

import pytest

from conftest import switchyard

RULES = """\
version: 1
destination:
  name: hooks
  catalog: webhook
  transport: http
  settings:
    url: ${HOOK_URL}
    headers: {Authorization: "Bearer ${HOOK_TOKEN:-none}"}
    max_attempts: 1
mappings:
  - name: Orders
    trigger: event = "Order Completed"
    action: send
    fields:
      data: {id: properties.order_id, total: properties.total}
  - name: Contacts
    trigger: type = "identify"
    action: send
    fields:
      url: concat(`"$URL"`, '/contacts/', userId)
      method: "'PUT'"
      headers: {X-Source: "'switchyard'"}
      data: {email: traits.email}
"""

EVENTS = [
    {"type": "track", "event": "Order Completed", "messageId": "m1", "properties": {"order_id": "o1", "total": 9.5}},
    {"type": "identify", "userId": "u1", "messageId": "m2", "traits": {"email": "a@example.com"}},
]


def _env(url, **extra):
    return {**os.environ, "HOOK_URL": url + "/orders", **extra}


def test_calls_arrive_with_method_headers_and_body(http_server, write_rules, tmp_path):
    url, server = http_server
    rules = write_rules(RULES.replace("$URL", url))
    result = switchyard("run", rules, "--dead-letter", tmp_path / "dead", stdin="\n".join(map(json.dumps, EVENTS)),
                        env=_env(url, HOOK_TOKEN="s3cret-token"))
    assert result.returncode == 0, result.stderr
    first, second = server.requests
    assert (first["method"], first["path"], first["body"]) == ("POST", "/orders", {"id": "o1", "total": 9.5})
    assert first["headers"]["Authorization"] == "Bearer s3cret-token"
    assert first["headers"]["Content-Type"] == "application/json"
    assert (second["method"], second["path"], second["body"]) == ("PUT", "/contacts/u1", {"email": "a@example.com"})
    assert second["headers"]["X-Source"] == "switchyard"
    assert "s3cret-token" not in result.stdout + result.stderr
    assert not (tmp_path / "dead").exists()


def test_a_refused_delivery_is_dead_lettered_with_status_and_body(http_server, write_rules, tmp_path):
    url, server = http_server
    server.status, server.body = 422, b'{"error": "bad order"}'
    rules = write_rules(RULES.replace("$URL", url))
    dead = tmp_path / "dead.ndjson"
    result = switchyard("run", rules, "--dead-letter", dead, stdin=json.dumps(EVENTS[0]), env=_env(url))
    assert result.returncode == 1  # refused: not delivered, so the run says so (docs/cli.md, exit codes)
    assert [line.split() for line in result.stderr.splitlines() if "hooks / Orders" in line] == [
        ["hooks", "/", "Orders", "1", "0", "0", "1", "0", "0"]]
    record = json.loads(dead.read_text())
    assert (record["kind"], record["outcome"], record["status"]) == ("delivery_failed", "refused", 422)
    assert record["body"] == '{"error": "bad order"}'
    assert record["call"]["payload"]["data"] == {"id": "o1", "total": 9.5}
    assert "hooks / Orders" in result.stderr


def test_an_unreachable_server_loses_nothing(write_rules, tmp_path):
    rules = write_rules(RULES.replace("$URL", "http://127.0.0.1:9"))
    dead = tmp_path / "dead.ndjson"
    result = switchyard("run", rules, "--dead-letter", dead, stdin=json.dumps(EVENTS[0]),
                        env=_env("http://127.0.0.1:9"))
    assert result.returncode == 1
    # The URL was read from the environment, so it is a secret: the reason masks it (docs/rule-files.md).
    assert json.loads(dead.read_text())["reason"].startswith("cannot reach ********: ")


@pytest.mark.parametrize("token", ["tok-SECRET-1\x01", "tok-SECRET-2\x7f"], ids=["a control character", "DEL"])
def test_a_secret_header_that_cannot_be_sent_is_not_shown(write_rules, tmp_path, token):
    """The reason quoted the value with repr(), which the masking of secrets did not recognise."""
    rules = write_rules(RULES.replace("$URL", "http://127.0.0.1:9"))
    dead = tmp_path / "dead.ndjson"
    result = switchyard("run", rules, "--dead-letter", dead, stdin=json.dumps(EVENTS[0]),
                        env={**_env("http://127.0.0.1:9"), "HOOK_TOKEN": token})
    assert result.returncode == 1
    written = dead.read_text() + result.stdout + result.stderr
    assert "cannot send header Authorization: its value holds" in json.loads(dead.read_text())["reason"]
    assert "SECRET" not in written


def test_run_refuses_to_deliver_with_an_unset_variable(write_rules):
    env = {k: v for k, v in os.environ.items() if k != "HOOK_URL"}
    result = switchyard("run", write_rules(RULES.replace("$URL", "x")), stdin="", env=env)
    assert result.returncode == 1
    assert "SY501" in result.stderr and "HOOK_URL" in result.stderr
    lint = switchyard("lint", write_rules(RULES.replace("$URL", "x")), env=env)
    assert lint.returncode == 0 and "warning SY501" in lint.stdout
