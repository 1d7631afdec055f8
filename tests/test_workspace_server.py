"""The workspace over HTTP, end to end with a real client on 127.0.0.1."""
from __future__ import annotations

import base64
import http.client
import json
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import pytest

from engine.workspace import Workspace, inspect
from engine.workspace.server import start_server

AUTH = "Basic " + base64.b64encode(b"site-1:key-1").decode()
IDENTIFY = {"type": "person", "action": "identify", "identifiers": {"id": "u1"}, "attributes": {"plan": "pro"}}


@pytest.fixture
def served(tmp_path):
    """(post, db_path): ``post(path, body, auth=AUTH, method="POST")`` returns (status, JSON answer)."""
    path = tmp_path / "w.db"
    with start_server(path, "site-1", "key-1") as server:
        parts = urlsplit(server.url)

        def post(route, body, auth=AUTH, method="POST"):
            connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            headers = {"Content-Type": "application/json", **({"Authorization": auth} if auth else {})}
            connection.request(method, route, body=data, headers=headers)
            response = connection.getresponse()
            answer = json.loads(response.read() or b"null")
            connection.close()
            return response.status, answer

        yield post, path


def stored(path):
    with Workspace.open(path) as workspace:
        return inspect.people(workspace.db), inspect.rejected(workspace.db)


@pytest.mark.parametrize("auth", [None, "Basic " + base64.b64encode(b"site-1:wrong").decode(), "Bearer key-1"])
def test_bad_credentials_are_401_and_change_nothing(served, auth):
    post, path = served
    assert post("/api/v2/entity", IDENTIFY, auth=auth) == (401, {"meta": {"error": "Unauthorized request"}})
    assert stored(path) == ([], [])


def test_an_entity_is_applied_and_answered_200(served):
    post, path = served
    assert post("/api/v2/entity", IDENTIFY) == (200, {})
    (person,), _ = stored(path)
    assert (person["id"], person["attributes"]) == ("u1", {"plan": "pro"})


def test_a_refused_entity_is_400_with_the_reason_and_stored(served):
    post, path = served
    body = {"type": "object", "action": "identify", "identifiers": {"object_id": "acme"},
            "attributes": {"relationship": "x"}}
    status, answer = post("/api/v2/entity", body)
    assert status == 400 and "'relationship' is reserved" in answer["meta"]["error"]
    _, (row,) = stored(path)
    assert (row["code"], row["body"]) == ("reserved_attribute", body)


def test_a_batch_answers_each_refused_item_and_applies_the_rest(served):
    post, path = served
    batch = {"batch": [IDENTIFY, {"type": "person", "action": "event", "identifiers": {"id": "u1"}},
                       {"type": "person", "action": "page", "identifiers": {"id": "u1"}, "name": "/a"},
                       {"type": "person", "action": "nope", "identifiers": {"id": "u1"}}]}
    status, answer = post("/api/v2/batch", batch)
    assert status == 207
    assert [(e["batch_index"], e["reason"], e["field"]) for e in answer["errors"]] == [
        (1, "required", "name"), (3, "invalid", "action")]
    (person,), rejected = stored(path)
    assert person["page_views"] == 1 and [r["batch_index"] for r in rejected] == [3, 1]
    assert post("/api/v2/batch", {"batch": [IDENTIFY]}) == (200, {})


def test_a_batch_body_without_a_batch_list_is_400(served):
    post, _ = served
    answer = {"meta": {"error": 'a batch body is {"batch": [entity, ...]}'}}
    assert post("/api/v2/batch", {"items": []}) == (400, answer)


def test_metrics_are_stored_against_the_delivery(served):
    post, path = served
    body = {"delivery_id": "dlv_1", "metric": "clicked", "timestamp": 1714557600, "href": "https://example.com"}
    assert post("/api/v1/metrics", body) == (200, {})
    status, answer = post("/api/v1/metrics", {"delivery_id": "dlv_1"})
    assert status == 400 and answer["meta"]["error"] == "the metrics body has no metric"
    with Workspace.open(path) as workspace:
        (metric,) = inspect.metrics(workspace.db)
    assert (metric["delivery_id"], metric["metric"], metric["href"]) == ("dlv_1", "clicked", "https://example.com")


@pytest.mark.parametrize("raw", [b"{not json", b"\xff\xfe", b'{"type": NaN}', b"", b"[" * 30_000],
                         ids=["syntax", "not utf-8", "NaN", "empty", "too deep"])
def test_a_body_that_is_not_json_is_400_and_stored(served, raw):
    post, path = served
    status, answer = post("/api/v2/entity", raw)
    assert status == 400 and answer["meta"]["error"].startswith("the body is not JSON")
    _, (row,) = stored(path)
    assert row["code"] == "unreadable"


def test_a_bug_is_a_500_and_the_server_keeps_serving(served, monkeypatch):
    from engine.workspace import apply

    post, _ = served
    monkeypatch.setitem(apply.ENTITY_ACTIONS, ("person", "identify"), lambda call, body: 1 / 0)
    status, answer = post("/api/v2/entity", IDENTIFY)
    assert status == 500 and "ZeroDivisionError" in answer["meta"]["error"]
    monkeypatch.undo()
    assert post("/api/v2/entity", IDENTIFY) == (200, {})


def test_unknown_paths_and_methods_are_refused(served):
    post, _ = served
    assert post("/api/v2/entities", IDENTIFY)[0] == 404
    assert post("/api/v2/entity", IDENTIFY, method="GET")[0] == 405
    assert post("/api/v2/entity", IDENTIFY, auth=None, method="DELETE")[0] == 405


def test_one_connection_carries_several_requests_and_each_is_logged(tmp_path):
    lines = []
    with start_server(tmp_path / "w.db", "site-1", "key-1", log=lines.append) as server:
        parts = urlsplit(server.url)
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
        for user_id in ("u1", "u2", "u3"):
            body = json.dumps({**IDENTIFY, "identifiers": {"id": user_id}})
            connection.request("POST", "/api/v2/entity", body=body, headers={"Authorization": AUTH})
            response = connection.getresponse()
            assert (response.status, response.read()) == (200, b"{}")
        connection.close()
        assert len(stored(tmp_path / "w.db")[0]) == 3
    assert [line.split('"')[1] for line in lines] == ["POST /api/v2/entity HTTP/1.1"] * 3


def test_concurrent_requests_are_all_applied(served):
    post, path = served
    page = {"type": "person", "action": "page", "identifiers": {"id": "u1"}}
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda n: post("/api/v2/entity", {**page, "name": f"/{n}"}), range(40)))
    assert answers == [(200, {})] * 40
    (person,), _ = stored(path)
    assert person["page_views"] == 40
