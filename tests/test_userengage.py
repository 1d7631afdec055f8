"""The User.com destination through its bundled pack into the embedded stand-in: every behaviour
Segment's documentation of the destination describes (tests/cases/userengage-stand-in.yaml),
the typing rule, the request bodies, and the 403 refusal over HTTP."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

import engine
from conftest import ROOT, load_yaml, switchyard
from engine.adapters.contract import AdapterContext, deliver_apart
from engine.adapters.userengage_http import UserengageHttpAdapter
from engine.adapters.userengage_workspace import UserengageWorkspaceAdapter
from engine.delivery import ManualClock, Retrier, RetryPolicy
from engine.model import ActionCall
from engine.userengage import inspect
from engine.userengage.app import user_key
from engine.userengage.attributes import IGNORED, convert
from engine.userengage.requests import to_request
from engine.userengage.server import start_server
from engine.userengage.store import connect, definitions

PACK = ROOT / "rules" / "userengage.yaml"
CASES = load_yaml(ROOT / "tests" / "cases" / "userengage-stand-in.yaml")


@pytest.fixture(scope="module")
def pack():
    return engine.load(str(PACK))


def calls_for(rules, events: list[dict]) -> list[ActionCall]:
    return [call for event in events for call in rules.evaluate(event).calls]


def deliver(db: Path, calls: list[ActionCall], settings: dict | None = None) -> list[str]:
    adapter = UserengageWorkspaceAdapter(AdapterContext("userengage", "userengage", "workspace", settings or {},
                                                        str(db)))
    try:
        return [outcome.state for outcome in adapter.deliver(calls)]
    finally:
        adapter.close()


def subset(expected, actual, where: str = "") -> None:
    """Every key of ``expected`` has its value in ``actual`` (dicts compared key by key, lists item by item)."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict), f"{where}: {actual!r} is not an object"
        if not expected:
            assert actual == {}, f"{where}: expected nothing, found {actual!r}"
        for key, value in expected.items():
            assert key in actual, f"{where}.{key} missing from {actual!r}"
            subset(value, actual[key], f"{where}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), f"{where}: {actual!r}"
        for index, (want, got) in enumerate(zip(expected, actual)):
            subset(want, got, f"{where}[{index}]")
    else:
        assert actual == expected, f"{where}: expected {expected!r}, found {actual!r}"


@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_stand_in_case(case, pack, tmp_path):
    db = tmp_path / "switchyard.db"
    states = deliver(db, calls_for(pack, case["events"]), case.get("settings"))
    if "outcomes" in case:
        assert states == case["outcomes"]
    connection = connect(db, create=False)
    try:
        if "users" in case:
            assert [user["custom_id"] for user in inspect.users(connection)] == case["users"]
        if "user" in case:
            wanted = case["user"]
            found = inspect.find_user(connection, id=wanted.get("custom_id") or case["events"][0].get("userId")
                                      or case["events"][0].get("anonymousId"))
            assert found is not None
            subset(wanted, found, "user")
        companies = case.get("company", [])
        for wanted in companies if isinstance(companies, list) else [companies]:
            wanted = dict(wanted)
            found = inspect.find_company(connection, id=wanted.pop("id"))
            assert found is not None
            subset(wanted, found, "company")
        if "events_stored" in case:
            subset(case["events_stored"], inspect.events(connection), "events")
        if "definitions" in case:
            subset(case["definitions"], definitions(connection), "definitions")
    finally:
        connection.close()


# -- the typing rule -------------------------------------------------------------------------------

@pytest.mark.parametrize("value, kind, expected", [
    (999, "string", "999"), (True, "string", "true"), (1.5, "string", "1.5"), ({"a": 1}, "string", '{"a":1}'),
    ("123", "number", 123), ("1.25", "number", 1.25), (True, "number", IGNORED), ("12abc", "number", IGNORED),
    ("false", "boolean", False), (1, "boolean", True), ("maybe", "boolean", IGNORED),
    ("2024-05-01", "date", "2024-05-01T00:00:00Z"), (1714557600, "date", "2024-05-01T10:00:00Z"),
    ("soon", "date", IGNORED), (None, "number", None),
])
def test_attribute_values_take_their_type_or_are_ignored(value, kind, expected):
    assert convert(value, kind) == expected or (expected is IGNORED and convert(value, kind) is IGNORED)


# -- the request bodies ----------------------------------------------------------------------------

def test_identify_sends_profile_fields_and_custom_attributes_in_one_upsert(pack):
    [call] = calls_for(pack, [{"type": "identify", "userId": "u1", "anonymousId": "a1",
                               "traits": {"email": "a@example.com", "gender": "M", "plan": "pro", "city": "Oslo"}}])
    request = to_request(call)
    assert request.kind == "identify" and request.body is None
    assert request.user == {"custom_id": "u1", "anonymous_id": "a1", "email": "a@example.com", "gender": 2,
                            "plan": "pro", "city": "Oslo"}


def test_page_and_track_bodies(pack):
    page, track = calls_for(pack, [
        {"type": "page", "userId": 42, "timestamp": "2024-05-01T10:00:00.500Z",
         "properties": {"url": "https://shop.example/a/b?c=1", "title": "B"}},
        {"type": "track", "userId": 42, "event": "Clicked", "timestamp": 1714557600, "properties": {"x": 1}}])
    assert to_request(page).user == {"custom_id": "42"}
    assert to_request(page).body == {"page_url": "https://shop.example/a/b?c=1", "page_domain": "shop.example",
                                     "page_path": "/a/b", "page_title": "B", "timestamp": 1714557600.5}
    assert to_request(track).body == {"name": "Clicked", "timestamp": 1714557600, "data": {"x": 1}}


def test_a_first_name_longer_than_user_com_keeps_is_cut_to_40(pack):
    [call] = calls_for(pack, [{"type": "identify", "userId": "u1", "traits": {"first_name": "A" * 50}}])
    assert to_request(call).user["first_name"] == "A" * 40


# -- HTTP ------------------------------------------------------------------------------------------

def _http_adapter(url: str, key: str, **kwargs) -> UserengageHttpAdapter:
    context = AdapterContext("userengage", "userengage", "http", {"api_key": key, "base_url": url})
    retrier = Retrier(RetryPolicy(max_attempts=3), clock=ManualClock())
    return UserengageHttpAdapter(context, retrier=retrier, **kwargs)


def test_a_403_fails_at_once_says_where_to_check_and_is_replayed_once_the_key_is_fixed(tmp_path):
    """A 403 was refused: after fixing the key, replay skipped every call it had stopped."""
    events, dead = tmp_path / "events.ndjson", tmp_path / "dead.ndjson"
    events.write_text("".join(json.dumps({"type": "track", "userId": f"u{n}", "event": "Signed Up",
                                          "messageId": f"m{n}"}) + "\n" for n in range(2)))
    rules = tmp_path / "userengage.yaml"
    pack_text = PACK.read_text().replace("  catalog: userengage\n", "  catalog: userengage\n  transport: http\n", 1)
    with start_server(tmp_path / "app.db", "the-right-key") as server:
        rules.write_text(pack_text.replace("${USERENGAGE_API_KEY:-}", "a-revoked-key")
                         .replace("${USERENGAGE_BASE_URL:-}", server.url))
        assert switchyard("run", rules, events, "--dead-letter", dead).returncode == 1
        records = [json.loads(line) for line in dead.read_text().splitlines()]
        rules.write_text(pack_text.replace("${USERENGAGE_API_KEY:-}", "the-right-key")
                         .replace("${USERENGAGE_BASE_URL:-}", server.url))
        replayed = switchyard("replay", dead, "--rules", rules)
    assert [(r["outcome"], r["status"], r["attempts"]) for r in records] == [("failed", 403, 1)] * 2
    reason = records[0]["reason"]
    assert "API key was revoked" in reason and "not trusted" in reason and "a-revoked-key" not in reason
    assert "Segment API keys" in reason and "App settings > Advanced > Domains" in reason
    assert replayed.returncode == 0, replayed.stderr
    connection = connect(tmp_path / "app.db", create=False)
    try:
        assert [(u["custom_id"], u["events"]) for u in inspect.users(connection)] == [("u0", 1), ("u1", 1)]
    finally:
        connection.close()


def _over_http_to_the_stand_in(pack, tmp_path, events: list[dict]) -> tuple[list[str], list[str]]:
    """The outcome of each call of ``events`` delivered over HTTP to the stand-in's server, and the requests
    it received (``POST /api/public/... HTTP/1.1``)."""
    seen: list[str] = []
    with start_server(tmp_path / "app.db", "k", log=seen.append) as server:
        adapter = _http_adapter(server.url, "k")
        states = [o.state for o in adapter.deliver(calls_for(pack, events))]
        adapter.close()
    return states, [line.split('"')[1] for line in seen if '"' in line]


def test_http_looks_each_user_and_company_up_once_per_run(pack, tmp_path):
    events = [{"type": "track", "userId": "u1", "event": f"E{n}"} for n in range(3)]
    events += [{"type": "group", "userId": "u1", "groupId": "acme", "traits": {"name": "Acme"}}] * 2
    events += [{"type": "page", "userId": "u1", "properties": {"url": "https://x.example/"}}]
    states, requests = _over_http_to_the_stand_in(pack, tmp_path, events)
    assert states == ["delivered"] * 6
    assert requests.count("POST /api/public/users/update_or_create/ HTTP/1.1") == 1
    assert requests.count("GET /api/public/companies-by-id/acme/ HTTP/1.1") == 1
    assert requests.count("POST /api/public/companies/ HTTP/1.1") == 1
    assert requests.count("PUT /api/public/companies/1/ HTTP/1.1") == 1
    assert requests.count("POST /api/public/companies/1/add_member/ HTTP/1.1") == 2
    assert requests.count("POST /api/public/events/ HTTP/1.1") == 3
    assert requests.count("POST /api/public/site-views/ HTTP/1.1") == 1


def test_an_identifys_upsert_serves_the_users_later_calls_whatever_its_traits_hold(pack, tmp_path):
    """The remembered upsert was keyed by the identify's whole body: a list trait failed the call as an
    adapter bug (after the upsert went out), and a later track of the same user upserted again."""
    events = [{"type": "identify", "userId": "u1", "traits": {"tags": ["a", "b"], "company": {"name": "Acme"}}},
              {"type": "track", "userId": "u1", "event": "E"}]
    states, requests = _over_http_to_the_stand_in(pack, tmp_path, events)
    assert states == ["delivered"] * 2
    assert requests.count("POST /api/public/users/update_or_create/ HTTP/1.1") == 1
    assert requests.count("POST /api/public/events/ HTTP/1.1") == 1


def test_traits_named_id_or_user_key_never_stand_for_the_records_own_over_http(pack, tmp_path):
    """The stand-in answered a company's custom attribute ``id`` as its id: serve's answers had no numeric id
    (every group call of such a company failed, and again on replay), and the embedded transport updated and
    joined the wrong company."""
    from engine.delivery.http import Sender

    events = [{"type": "identify", "userId": "u1", "traits": {"id": "7", "user_key": "forged"}},
              {"type": "group", "userId": "u1", "groupId": "a", "traits": {"name": "Alpha"}},
              {"type": "group", "userId": "u2", "groupId": "b", "traits": {"id": "1", "name": "Beta Ltd"}},
              {"type": "group", "userId": "u3", "groupId": "b", "traits": {"id": "acme"}}]
    with start_server(tmp_path / "app.db", "k") as server, Sender(5) as sender:
        adapter = _http_adapter(server.url, "k")
        states = [o.state for o in adapter.deliver(calls_for(pack, events))]
        adapter.close()
        found = json.loads(sender.send("GET", server.url + "/api/public/users-by-id/u1/", None,
                                       {"Authorization": "Token k"}).body)
    assert states == ["delivered"] * 4
    assert (found["id"], found["user_key"]) == (1, user_key("u1"))
    connection = connect(tmp_path / "app.db", create=False)
    try:
        assert inspect.find_company(connection, id="a")["members"] == ["u1"]
        beta = inspect.find_company(connection, id="b")
        assert (beta["fields"]["name"], beta["attributes"], beta["members"]) == ("Beta Ltd", {"id": "acme"}, ["u2", "u3"])
    finally:
        connection.close()


def test_a_user_whose_anonymous_id_changes_back_ends_with_it_on_both_transports(pack, tmp_path):
    """Upserts were remembered by (userId, anonymousId): a1, a2, then a1 again skipped the third, so User.com kept
    a2 while the stand-in, which upserts every call, kept a1."""
    events = [{"type": "track", "userId": "u1", "anonymousId": anonymous, "event": "E"}
              for anonymous in ("a1", "a2", "a1", "a1")] + [{"type": "track", "userId": "u1", "event": "E"}]
    states, requests = _over_http_to_the_stand_in(pack, tmp_path, events)
    assert states == ["delivered"] * 5
    assert requests.count("POST /api/public/users/update_or_create/ HTTP/1.1") == 3  # a1, a2, a1: each a change
    embedded = tmp_path / "embedded.db"
    assert deliver(embedded, calls_for(pack, events)) == ["delivered"] * 5
    for db in (tmp_path / "app.db", embedded):
        connection = connect(db, create=False)
        try:
            assert inspect.find_user(connection, id="u1")["anonymous_id"] == "a1"
        finally:
            connection.close()


@pytest.mark.parametrize("answer", [{"id": 7, "user_key": None}, {"id": 7}, ["not", "an", "object"]],
                         ids=["a null user_key", "no user_key", "no object"])
def test_a_page_view_whose_user_key_cannot_be_read_fails_unsent(pack, scripted, answer):
    """It was sent for client_user "None" and booked delivered, or failed as an adapter bug."""
    from scripted_server import Reply

    scripted.script(Reply(200, {"id": 7, "created": True}), path="/api/public/users/update_or_create/")
    scripted.script(Reply(200, answer), path="/api/public/users/7/")
    adapter = _http_adapter(scripted.url, "k")
    (outcome,) = adapter.deliver(calls_for(pack, [{"type": "page", "userId": "u1",
                                                   "properties": {"url": "https://x.example/a"}}]))
    adapter.close()
    assert outcome.state == "failed", [r["path"] for r in scripted.requests]
    assert outcome.message == "User.com answered users/<id>/ without a user_key"
    assert scripted.to("/api/public/site-views/") == []


def test_the_wait_limit_is_for_the_whole_call_not_for_each_of_its_requests(pack, scripted):
    """A track call upserts, then sends its event: asked to wait 40 s for each, it waited 80 s of its 60."""
    from scripted_server import Reply

    busy = Reply(429, {"detail": "slow down"}, headers={"Retry-After": "40"})
    scripted.script(busy, Reply(200, {"id": 7, "user_key": "k7"}), path="/api/public/users/update_or_create/")
    scripted.script(busy, Reply(200, {}), path="/api/public/events/")
    adapter = _http_adapter(scripted.url, "k")
    (outcome,) = adapter.deliver(calls_for(pack, [{"type": "track", "userId": "u1", "event": "E"}]))
    adapter.close()
    assert (outcome.state, outcome.waited) == ("failed", 40.0)
    assert "Retry-After 40s is more than the 20s left of the 60s wait limit" in outcome.message
    assert adapter.retrier.clock.sleeps == [40.0]


def test_a_company_made_by_a_create_whose_answer_was_lost_is_found_and_joined(pack, scripted):
    """The create's 502 hid a company made: its retry was refused as a duplicate, the call ended refused (so
    replay skipped it) and the user never joined the company."""
    from scripted_server import Reply

    scripted.script(Reply(200, {"id": 7, "user_key": "k7"}), path="/api/public/users/update_or_create/")
    scripted.script(Reply(404, {"detail": "Not found."}), Reply(200, {"id": 5, "custom_id": "acme"}),
                    path="/api/public/companies-by-id/acme/")
    scripted.script(Reply(502), Reply(400, {"custom_id": ["company with this custom id already exists."]}),
                    path="/api/public/companies/")
    scripted.script(Reply(200, {}), path="/api/public/companies/5/add_member/")
    scripted.script(Reply(200, {"id": 5}), path="/api/public/companies/5/")
    adapter = _http_adapter(scripted.url, "k")
    (outcome,) = adapter.deliver(calls_for(pack, [{"type": "group", "userId": "u1", "groupId": "acme",
                                                   "traits": {"name": "Acme"}}]))
    adapter.close()
    assert outcome.state in ("delivered", "retried"), outcome.message
    (joined,) = scripted.to("/api/public/companies/5/add_member/")
    assert joined["body"]["user_id"] == 7
    (updated,) = scripted.to("/api/public/companies/5/")  # made by another, maybe: this call's fields are sent
    assert (updated["method"], updated["body"]["name"]) == ("PUT", "Acme")


def _as_a_lane(adapter: UserengageHttpAdapter, calls: list[ActionCall]) -> list[str]:
    """Each call's outcome as a delivery lane gets it: an adapter that raises is given the calls again one by one."""
    return [o.state for o in deliver_apart(adapter.deliver, calls, "userengage")]


def test_an_answer_nested_too_deep_to_read_fails_its_own_call_and_sends_nothing_twice(pack, scripted):
    """Reading it raised RecursionError out of deliver: the lane sent the slice again call by call, so the
    event of the call before it reached User.com twice."""
    from scripted_server import Reply

    deep = b'{"id": 8, "deep": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    scripted.script(Reply(200, {"id": 7, "user_key": "k7"}), Reply(200, deep),
                    path="/api/public/users/update_or_create/")
    adapter = _http_adapter(scripted.url, "k")
    states = _as_a_lane(adapter, calls_for(pack, [{"type": "track", "userId": "u1", "event": "E1"},
                                                  {"type": "track", "userId": "u2", "event": "E2"}]))
    adapter.close()
    assert states == ["delivered", "failed"]
    assert len(scripted.to("/api/public/events/")) == 1
    assert len(scripted.to("/api/public/users/update_or_create/")) == 2


def test_a_call_that_cannot_be_written_is_refused_before_its_first_request(pack, tmp_path):
    """A lone surrogate in a groupId raised out of deliver (the call before it was sent again); one in a property
    or a page URL was refused only after the user's upsert went out, so User.com kept a user the stand-in,
    which rolls the whole call back, does not have."""
    events = [{"type": "track", "userId": "u1", "event": "E1"},
              {"type": "group", "userId": "u2", "groupId": "g\udfff", "traits": {"name": "G"}},
              {"type": "track", "userId": "u3", "event": "E3", "properties": {"note": "\udfff"}},
              {"type": "page", "userId": "u4", "properties": {"url": "https://x.example/\udfff"}}]
    seen: list[str] = []
    with start_server(tmp_path / "app.db", "k", log=seen.append) as server:
        adapter = _http_adapter(server.url, "k")
        outcomes = deliver_apart(adapter.deliver, calls_for(pack, events), "userengage")
        adapter.close()
    assert [o.state for o in outcomes] == ["delivered", "refused", "refused", "refused"]
    assert all("lone surrogate" in o.message for o in outcomes[1:])
    assert [line.split('"')[1] for line in seen] == ["POST /api/public/users/update_or_create/ HTTP/1.1",
                                                     "POST /api/public/events/ HTTP/1.1"]
    embedded = tmp_path / "embedded.db"
    assert deliver(embedded, calls_for(pack, events)) == ["delivered", "refused", "refused", "refused"]
    for db in (tmp_path / "app.db", embedded):
        connection = connect(db, create=False)
        try:
            assert [user["custom_id"] for user in inspect.users(connection)] == ["u1"]
        finally:
            connection.close()


@pytest.mark.parametrize("event", [{"type": "track", "userId": "u3", "event": "E3", "properties": {"note": "\udfff"}},
                                   {"type": "page", "userId": "u4", "properties": {"url": "https://x.example/\udfff"}}],
                         ids=["a property", "a page URL"])
def test_a_call_that_cannot_be_written_upserts_no_user_first(pack, tmp_path, event):
    seen: list[str] = []
    with start_server(tmp_path / "app.db", "k", log=seen.append) as server:
        adapter = _http_adapter(server.url, "k")
        outcomes = deliver_apart(adapter.deliver, calls_for(pack, [event]), "userengage")
        adapter.close()
    assert [o.state for o in outcomes] == ["refused"] and seen == []


def test_a_group_id_of_dots_alone_stays_one_path_segment(pack, tmp_path):
    """``companies-by-id/../`` went out as it was: a server or proxy reads it as ``/api/public/``."""
    events = [{"type": "group", "userId": "u1", "groupId": group, "traits": {"name": "Dots"}} for group in (".", "..")]
    states, requests = _over_http_to_the_stand_in(pack, tmp_path, events)
    assert states == ["delivered"] * 2
    assert "GET /api/public/companies-by-id/%2E/ HTTP/1.1" in requests
    assert "GET /api/public/companies-by-id/%2E%2E/ HTTP/1.1" in requests
    connection = connect(tmp_path / "app.db", create=False)
    try:
        assert [company["custom_id"] for company in inspect.companies(connection)] == [".", ".."]
    finally:
        connection.close()


def test_the_server_takes_token_or_basic_auth_and_answers_like_the_api(tmp_path):
    import base64

    from engine.delivery.http import Sender

    with start_server(tmp_path / "app.db", "k") as server, Sender(5) as sender:
        base = server.url + "/api/public/"
        token = {"Authorization": "Token k", "Content-Type": "application/json"}
        basic = {"Authorization": "Basic " + base64.b64encode(b"k:").decode()}
        created = sender.send("POST", base + "users/update_or_create/", b'{"custom_id": "u1"}', token)
        again = sender.send("POST", base + "users/update_or_create/", b'{"custom_id": "u1", "email": "a@x.io"}', basic)
        assert created.status == again.status == 200
        assert json.loads(created.body)["created"] is True and json.loads(again.body)["created"] is False
        found = json.loads(sender.send("GET", base + "users-by-id/u1/", None, token).body)
        assert found["email"] == "a@x.io" and found["user_key"]
        assert sender.send("GET", base + "companies-by-id/nope/", None, token).status == 404
        assert sender.send("POST", base + "events/", b'{"user_id": 99, "name": "x"}', token).status == 404
        assert sender.send("POST", base + "events/", b"not json", token).status == 400
        assert sender.send("GET", base + "users/1/", None, {}).status == 401
        assert sender.send("GET", base + "users/1/", None, {"Authorization": "Token other"}).status == 403
        assert sender.send("GET", server.url + "/api/public/users/1", None, token).status == 404  # no slash


def test_each_request_is_retried_by_the_pipeline_policy_and_a_failure_names_its_request(pack, scripted):
    from scripted_server import Reply

    scripted.script(Reply(body={"id": 7, "user_key": "k7", "created": True}), path="/api/public/users/update_or_create/")
    scripted.script(Reply(503), Reply(body={"id": 1, "created": True}), path="/api/public/events/")
    adapter = _http_adapter(scripted.url, "the-key")
    [first] = adapter.deliver(calls_for(pack, [{"type": "track", "userId": "u1", "event": "E1"}]))
    assert first.state == "retried" and first.attempts == 3  # the upsert, then the event twice
    sent = scripted.to("/api/public/events/")[-1]
    assert sent["body"] == {"user_id": 7, "name": "E1", "data": {}}
    assert sent["headers"]["Authorization"] == "Token the-key" and sent["headers"]["Accept"] == "*/*; version=2"

    scripted.script(Reply(500), Reply(500), Reply(500), path="/api/public/events/")
    [second] = adapter.deliver(calls_for(pack, [{"type": "track", "userId": "u1", "event": "E2"}]))
    adapter.close()
    assert second.state == "failed" and second.attempts == 3 and "POST events/" in second.message
    assert len(scripted.to("/api/public/users/update_or_create/")) == 1  # u1 was looked up once


def test_lookups_forget_the_oldest_ids_past_their_bound(monkeypatch):
    from engine.userengage import steps

    monkeypatch.setattr(steps, "REMEMBERED", 3)
    lookups = steps.Lookups()
    for n in range(4):
        lookups.remember_user(f"u{n}", steps.KnownUser(n, None, None))
    lookups.remember_user("u1", steps.KnownUser(1, "k1", None))  # learnt again: now the newest
    lookups.remember_user("u4", steps.KnownUser(4, None, None))
    assert list(lookups.users) == ["u3", "u1", "u4"]
    assert lookups.users["u1"] == (1, "k1", None)
    for n in range(5):
        lookups.remember_company(f"c{n}", n)
    assert list(lookups.companies) == ["c2", "c3", "c4"]
