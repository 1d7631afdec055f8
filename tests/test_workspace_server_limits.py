"""`workspace serve` against hostile or careless clients: auth before the body, limits, timeouts, speed."""
from __future__ import annotations

import base64
import http.client
import json
import socket
import threading
import time
from urllib.parse import urlsplit

import pytest

from engine.cli import main
from engine.workspace import Workspace, inspect
from engine.workspace.server import BATCH_LIMIT, start_server

AUTH = "Basic " + base64.b64encode(b"site-1:key-1").decode()
IDENTIFY = {"type": "person", "action": "identify", "identifiers": {"id": "u1"}, "attributes": {"plan": "pro"}}


@pytest.fixture
def server(tmp_path):
    with start_server(tmp_path / "w.db", "site-1", "key-1", timeout=0.5, max_connections=8) as running:
        running.address = (urlsplit(running.url).hostname, urlsplit(running.url).port)
        running.db = tmp_path / "w.db"
        yield running


def raw_request(address, head: bytes, body: bytes = b"", *, timeout: float = 5.0) -> tuple[int, bytes, float]:
    """Send bytes as they are; (status, whole answer, seconds until the server closed the connection)."""
    with socket.create_connection(address, timeout=timeout) as sock:
        started = time.monotonic()
        sock.sendall(head + body)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
        return int(answer.split(b" ", 2)[1]), answer, time.monotonic() - started


def head(length: str | None, auth: str | None = AUTH, path: str = "/api/v2/entity") -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: x", "Content-Type: application/json"]
    if auth:
        lines.append(f"Authorization: {auth}")
    if length is not None:
        lines.append(f"Content-Length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def people(path):
    with Workspace.open(path) as workspace:
        return inspect.people(workspace.db)


def test_an_unauthenticated_request_is_refused_before_its_body_is_read(server):
    # 100 MB announced, none sent: the answer comes at once and the connection is closed.
    status, answer, seconds = raw_request(server.address, head("100000000", auth=None))
    assert status == 401 and b"Connection: close" in answer and seconds < 0.4


@pytest.mark.parametrize(("length", "status"), [
    ("abc", 400), ("1e3", 400), ("-1", 400), ("", 400), ("٣", 400),
    ("100000000000", 413), (str(32 * 1024 + 1), 413),
])
def test_bad_or_huge_lengths_are_400_or_413_at_once(server, length, status):
    got, answer, seconds = raw_request(server.address, head(length))
    assert got == status and seconds < 0.4 and b"Traceback" not in answer
    assert "error" in json.loads(answer.split(b"\r\n\r\n", 1)[1])["meta"]


def test_a_batch_may_be_up_to_500_kb_and_an_entity_32_kb(server):
    items = [{**IDENTIFY, "identifiers": {"id": f"u{n}"}, "attributes": {"pad": "x" * 20_000}} for n in range(20)]
    body = json.dumps({"batch": items}).encode()
    assert 32 * 1024 < len(body) < BATCH_LIMIT
    status, _, _ = raw_request(server.address, head(str(len(body)), path="/api/v2/batch"), body)
    assert status == 200 and len(people(server.db)) == 20


def test_a_batch_item_over_32_kb_is_refused_alone(server):
    items = [IDENTIFY, {**IDENTIFY, "identifiers": {"id": "big"}, "attributes": {"pad": "x" * 40_000}}]
    body = json.dumps({"batch": items}).encode()
    status, answer, _ = raw_request(server.address, head(str(len(body)), path="/api/v2/batch"), body)
    errors = json.loads(answer.split(b"\r\n\r\n", 1)[1])["errors"]
    assert status == 207 and [e["batch_index"] for e in errors] == [1] and "32 KB" in errors[0]["message"]
    assert [person["id"] for person in people(server.db)] == ["u1"]


def test_a_lone_surrogate_refuses_its_item_and_the_others_are_applied(server):
    bad = '{"type": "person", "action": "identify", "identifiers": {"id": "u2"}, "attributes": {"name": "\\ud800"}}'
    body = ('{"batch": [' + json.dumps(IDENTIFY) + ", " + bad + "]}").encode()
    status, answer, _ = raw_request(server.address, head(str(len(body)), path="/api/v2/batch"), body)
    errors = json.loads(answer.split(b"\r\n\r\n", 1)[1])["errors"]
    assert status == 207 and [e["batch_index"] for e in errors] == [1] and "surrogate" in errors[0]["message"]
    assert [person["id"] for person in people(server.db)] == ["u1"]
    entity = b'{"type": "person", "action": "identify", "identifiers": {"id": "u3"}, "attributes": {"n": "\\udfff"}}'
    status, _, _ = raw_request(server.address, head(str(len(entity))), entity)
    assert status == 400


def test_an_item_with_an_integer_of_5000_digits_is_applied_with_its_neighbours(server):
    """The body was read with Python's 4,300-digit limit: the whole batch was refused as not JSON."""
    big = '{"type": "person", "action": "identify", "identifiers": {"id": "u2"}, "attributes": {"n": ' + "7" * 5000 + "}}"
    body = ('{"batch": [' + json.dumps(IDENTIFY) + ", " + big + "]}").encode()
    status, answer, _ = raw_request(server.address, head(str(len(body)), path="/api/v2/batch"), body)
    assert status == 200, answer
    assert [person["id"] for person in people(server.db)] == ["u1", "u2"]


def test_the_basic_scheme_in_lowercase_is_accepted(server):
    body = json.dumps(IDENTIFY).encode()
    status, _, _ = raw_request(server.address, head(str(len(body)), auth=AUTH.replace("Basic", "basic")), body)
    assert status == 200


def test_half_open_connections_are_closed_and_do_not_pile_up(server):
    body = json.dumps(IDENTIFY).encode()
    stalled = [socket.create_connection(server.address) for _ in range(20)]
    for sock in stalled:
        sock.sendall(head(str(len(body))) + body[:5])  # the rest never comes
    name = f"workspace-connection {server.address[1]}"

    def serving() -> int:
        return sum(thread.name == name for thread in threading.enumerate())

    deadline = time.monotonic() + 0.4
    while serving() < 8 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert serving() == 8  # at most 8 connections served at once: the others were answered 503
    time.sleep(1.0)  # past the 0.5 s timeout: every stalled connection is closed by the server
    answers = []
    for sock in stalled:
        sock.settimeout(2)
        answers.append(sock.recv(1024))
        sock.close()
    assert sum(data == b"" for data in answers) == 8
    assert sum(data.startswith(b"HTTP/1.1 503") for data in answers) == 12
    assert serving() == 0
    status, _, _ = raw_request(server.address, head(str(len(body))), body)
    assert status == 200


def test_keep_alive_clients_are_not_stalled(server):
    parts = server.address
    connection = http.client.HTTPConnection(*parts, timeout=10)
    body = json.dumps(IDENTIFY)
    started = time.monotonic()
    for _ in range(200):
        connection.request("POST", "/api/v2/entity", body=body, headers={"Authorization": AUTH})
        response = connection.getresponse()
        assert (response.status, response.read()) == (200, b"{}")
    rate = 200 / (time.monotonic() - started)
    connection.close()
    assert rate > 100, f"{rate:.0f} requests/s on one kept-alive connection"  # 23/s with 44 ms stalls


@pytest.mark.parametrize("flag", ["--site-id", "--api-key"])
def test_serve_refuses_an_empty_site_id_or_api_key(tmp_path, capsys, flag):
    argv = ["workspace", "serve", "--db", str(tmp_path / "w.db"), "--port", "0", "--site-id", "s", "--api-key", "k"]
    argv[argv.index(flag) + 1] = ""
    assert main(argv) == 2
    assert "must not be empty" in capsys.readouterr().err


def rejected(path):
    with Workspace.open(path) as workspace:
        return inspect.rejected(workspace.db)


def compact(value) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


# An identify of 31,660 bytes as a client sends it; json.dumps's spaces after "," and ":" make it 36,867.
WIDE = {**IDENTIFY, "identifiers": {"id": "wide"}, "attributes": {f"k{n}": n for n in range(2_600)}}


@pytest.mark.parametrize("path", ["/api/v2/entity", "/api/v2/batch"])
def test_a_call_under_32_kb_as_sent_is_applied(server, path):
    assert len(compact(WIDE)) < 32 * 1024 < len(json.dumps(WIDE).encode())
    body = compact({"batch": [WIDE]}) if path.endswith("batch") else compact(WIDE)
    status, answer, _ = raw_request(server.address, head(str(len(body)), path=path), body)
    assert status == 200, answer
    assert [person["id"] for person in people(server.db)] == ["wide"] and rejected(server.db) == []


def test_a_batch_item_refused_before_it_is_applied_is_stored_as_sent_with_its_reason(server):
    big = {**IDENTIFY, "identifiers": {"id": "big"}, "attributes": {"pad": "x" * 40_000}}
    lone = '{"type":"person","action":"identify","identifiers":{"id":"u2"},"attributes":{"name":"\\ud800"}}'
    body = b'{"batch":[' + compact(IDENTIFY) + b"," + compact(big) + b"," + lone.encode() + b"]}"
    status, answer, _ = raw_request(server.address, head(str(len(body)), path="/api/v2/batch"), body)
    assert status == 207, answer
    stored = {row["batch_index"]: row for row in rejected(server.db)}
    assert (stored[1]["code"], stored[1]["body"]) == ("too_large", big)
    assert stored[1]["reason"] == f"the call is {len(compact(big)):,} bytes as compact JSON, over the limit of 32 KB"
    assert (stored[2]["code"], stored[2]["body"]) == ("invalid_body", json.loads(lone))
    assert "body.attributes.name holds a lone surrogate" in stored[2]["reason"]


def test_an_entity_with_a_lone_surrogate_is_stored_as_sent_not_as_unreadable(server):
    entity = '{"type":"person","action":"identify","identifiers":{"id":"u3"},"attributes":{"n":"\\udfff"}}'
    status, answer, _ = raw_request(server.address, head(str(len(entity))), entity.encode())
    assert status == 400 and b"lone surrogate" in answer
    (row,) = rejected(server.db)
    assert (row["source"], row["code"], row["body"]) == ("entity", "invalid_body", json.loads(entity))
