"""The User.com pack end to end: the HTTP transport against the stand-in's server leaves the same users,
companies and events as the embedded transport, over the bundled story; and the main job feeds
both destinations into one file that `switchyard workspace` reads."""
from __future__ import annotations

import json
import os

from conftest import ROOT, switchyard
from engine.userengage import steps
from engine.userengage.server import start_server

PACK = (ROOT / "rules" / "userengage.yaml").read_text()


def _workspace_json(db, *command: str) -> list | dict:
    result = switchyard("workspace", *command, "--db", db, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _without_times(value):
    """The value without the times at which the stand-in stored things, at any depth."""
    volatile = {"created_at", "updated_at", "received_at"}
    if isinstance(value, dict):
        return {k: _without_times(v) for k, v in value.items() if k not in volatile}
    if isinstance(value, list):
        return [_without_times(v) for v in value]
    return value


def test_http_transport_and_embedded_transport_agree(tmp_path):
    served = tmp_path / "served.db"
    rules = tmp_path / "userengage.yaml"
    rules.write_text(PACK.replace("  catalog: userengage\n", "  catalog: userengage\n  transport: http\n", 1))
    env = {**os.environ, "USERENGAGE_API_KEY": "key-1"}
    with start_server(served, "key-1") as server:
        env["USERENGAGE_BASE_URL"] = server.url
        over_http = switchyard("run", rules, "examples/events.jsonl", "--dead-letter", tmp_path / "dead-http",
                               "--summary-json", tmp_path / "http.json", env=env)
    assert over_http.returncode == 0, over_http.stderr
    assert "key-1" not in over_http.stderr + over_http.stdout
    _agree_with_the_embedded_transport(tmp_path, served)


def test_the_http_transport_looks_up_again_what_it_forgot(tmp_path, monkeypatch):
    """Past REMEMBERED ids the oldest are forgotten: the users and companies come out the same."""
    monkeypatch.setattr(steps, "REMEMBERED", 2)
    served = tmp_path / "served.db"
    with start_server(served, "key-1") as server:
        rules = tmp_path / "userengage.yaml"
        rules.write_text(PACK.replace("  catalog: userengage\n", "  catalog: userengage\n  transport: http\n", 1)
                         .replace("${USERENGAGE_API_KEY:-}", "key-1").replace("${USERENGAGE_BASE_URL:-}", server.url))
        over_http = switchyard("run", rules, "examples/events.jsonl", "--dead-letter", tmp_path / "dead-http",
                               "--summary-json", tmp_path / "http.json", "--lanes", "thread")
    assert over_http.returncode == 0, over_http.stderr
    _agree_with_the_embedded_transport(tmp_path, served)


def _agree_with_the_embedded_transport(tmp_path, served) -> None:
    embedded = tmp_path / "embedded.db"
    direct = switchyard("run", "rules/userengage.yaml", "examples/events.jsonl", "--workspace", embedded,
                        "--dead-letter", tmp_path / "dead-direct", "--summary-json", tmp_path / "direct.json")
    assert direct.returncode == 0, direct.stderr

    direct_summary = json.loads((tmp_path / "direct.json").read_text())
    http_summary = json.loads((tmp_path / "http.json").read_text())
    assert http_summary["delivered"] == direct_summary["delivered"]
    assert sum(direct_summary["delivered"].values()) > 300

    for command in ("users", "companies", "events"):
        args = (command, "--limit", "1000") if command == "events" else (command,)
        assert _without_times(_workspace_json(served, *args)) == _without_times(_workspace_json(embedded, *args))
    for user in ("ada-1001", "anon-ada", "bob-1002"):
        assert (_without_times(_workspace_json(served, "user", "--id", user))
                == _without_times(_workspace_json(embedded, "user", "--id", user)))
    acme = _workspace_json(embedded, "company", "--id", "acme")
    assert acme["fields"]["name"] == "Acme GmbH" and acme["members"] == ["ada-1001", "bob-1002"]


def test_the_main_job_feeds_both_destinations_into_one_file(tmp_path):
    db = tmp_path / "switchyard.db"
    result = switchyard("run", "rules/", "examples/events.jsonl", "--workspace", db, "--dead-letter",
                        tmp_path / "dead.ndjson")
    assert result.returncode == 1, result.stderr  # Customer.io's suppressed person: one call refused
    overview = result.stdout + result.stderr
    assert "userengage / Identify User" in overview and "customerio / Create or Update Person" in overview
    ada = _workspace_json(db, "user", "--id", "ada-1001")
    assert ada["fields"]["email"] == "ada@example.com" and ada["fields"]["browser_family"] == "Safari"
    assert [company["custom_id"] for company in ada["companies"]] == ["acme"]
    assert ada["counts"]["events"] >= 4
    # The Customer.io commands still read their own workspace in the same file.
    people = _workspace_json(db, "people")
    assert any(person["id"] == "ada-1001" for person in people)
    # events goes to the User.com side when its destination is named.
    events = _workspace_json(db, "events", "--destination", "userengage", "--id", "ada-1001", "--name", "Signed Up")
    assert [event["name"] for event in events] == ["Signed Up"]
    assert _workspace_json(db, "events", "--id", "ada-1001")[0].keys() >= {"type", "person"}  # Customer.io's


def test_workspace_commands_for_a_user_com_stand_in(tmp_path):
    db = tmp_path / "app.db"
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join(json.dumps(event) for event in [
        {"type": "identify", "userId": "u1", "anonymousId": "a1", "traits": {"score": "7"}},
        {"type": "group", "userId": "u1", "groupId": "acme", "traits": {"name": "Acme"}},
    ]) + "\n")
    settings = switchyard("workspace", "settings", "--db", db, "--catalog", "userengage", "--attribute-type",
                          "score=number", "--company-attribute-type", "seats=number", "--json")
    assert settings.returncode == 0, settings.stderr
    assert json.loads(settings.stdout)["user"]["score"] == {"type": "number", "defined": True}
    assert switchyard("workspace", "settings", "--db", db, "--catalog", "userengage", "--attribute-type",
                      "score=int").returncode == 1
    assert switchyard("run", "rules/userengage.yaml", events, "--workspace", db).returncode == 0
    # The run's destination adopted the unnamed stand-in the settings made, definitions and all.
    assert _workspace_json(db, "user", "--id", "u1")["attributes"] == {"score": 7}
    assert _workspace_json(db, "user", "--anonymous-id", "a1")["custom_id"] == "u1"
    assert _workspace_json(db, "companies")[0]["members"] == 1
    text = switchyard("workspace", "user", "--db", db, "--id", "u1")
    assert text.returncode == 0 and "companies" in text.stdout and "acme" in text.stdout
    missing = switchyard("workspace", "user", "--db", db, "--id", "nobody")
    assert missing.returncode == 1 and "no user with custom id 'nobody'" in missing.stderr
    assert switchyard("workspace", "company", "--db", db, "--id", "nope").returncode == 1
    assert switchyard("workspace", "users", "--db", tmp_path / "none.db").returncode == 2
    assert switchyard("workspace", "users", "--db", db, "--destination", "other").returncode == 2


def test_the_two_destination_benchmark_folder_lints_clean(tmp_path):
    from benchmarks.delivery import write_rules
    from engine.loader import compile_paths

    paths = write_rules(tmp_path, "http://127.0.0.1:9")
    rules, problems = compile_paths([paths["workspace+userengage+webhook"]])
    assert problems == []
    assert {d.name: d.transport for d in rules.destinations} == {
        "customerio": "workspace", "userengage": "workspace", "crm": "http"}


def test_customer_io_commands_on_a_file_with_only_user_com_state_say_so(tmp_path):
    db = tmp_path / "app.db"
    assert switchyard("workspace", "settings", "--db", db, "--catalog", "userengage").returncode == 0
    people = switchyard("workspace", "people", "--db", db)
    assert people.returncode == 2 and "holds no customerio state" in people.stderr
    assert "Traceback" not in people.stderr
