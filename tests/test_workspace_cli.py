"""``switchyard workspace ...``: the tables people read and the JSON tools read."""
from __future__ import annotations

import argparse
import json
import socket

import pytest

from engine.workspace import Workspace
from engine.workspace.cli import add_workspace_commands, run_workspace

NOW = 1_714_557_600  # 2024-05-01 10:00:00 UTC


def switchyard(*argv: str) -> int:
    """``switchyard workspace ...`` as engine/cli.py wires it: the parser, then the handler."""
    parser = argparse.ArgumentParser(prog="switchyard")
    add_workspace_commands(parser.add_subparsers(dest="command", required=True))
    return run_workspace(parser.parse_args(["workspace", *argv]))


@pytest.fixture
def db(tmp_path):
    """A workspace with a story: a visitor browses, signs up, joins a company, installs the app."""
    path = tmp_path / "w.db"
    person = {"type": "person"}
    calls = [
        {**person, "action": "page", "identifiers": {"anonymous_id": "anon-1"}, "name": "https://shop.example/pricing",
         "attributes": {"title": "Pricing"}, "timestamp": NOW - 3600},
        {"type": "object", "action": "identify_anonymous", "identifiers": {"object_id": "acme", "object_type_id": "1"},
         "attributes": {"name": "Acme Inc."}, "cio_relationships": [{"identifiers": {"anonymous_id": "anon-2"}}]},
        {**person, "action": "identify", "identifiers": {"id": "u1"},
         "attributes": {"email": "ada@example.com", "first_name": "Ada", "plan": "pro", "seats": 3,
                        "anonymous_id": "anon-1"},
         "cio_relationships": [{"identifiers": {"object_type_id": "1", "object_id": "initech"},
                                "relationship_attributes": {"role": "admin"}}]},
        {**person, "action": "event", "identifiers": {"id": "u1"}, "name": "Order Completed",
         "attributes": {"total": 30}, "timestamp": NOW},
        {**person, "action": "add_device", "identifiers": {"id": "u1"},
         "device": {"token": "tok-1", "platform": "ios", "last_used": NOW, "attributes": {"app_version": "1.2.3"}}},
        {**person, "action": "identify", "identifiers": {"id": "u2"}, "attributes": {"email": "ADA@example.com"}},
        {**person, "action": "identify", "identifiers": {"id": "u3"}},
        {**person, "action": "suppress", "identifiers": {"id": "u3"}},
        {**person, "action": "event", "identifiers": {"id": "u3"}, "name": "Came Back"},
    ]
    with Workspace.open(path, clock=lambda: NOW) as workspace:
        for call in calls:
            workspace.apply(call)
        workspace.apply_metrics({"delivery_id": "dlv_1", "metric": "opened", "timestamp": NOW})
    return str(path)


def test_people_lists_everyone_with_counts_and_a_footer(db, capsys):
    assert switchyard("people", "--db", db) == 0
    assert capsys.readouterr().out.splitlines() == [
        "cio_id    id  email            unsubscribed  events  page views  devices  objects  last seen",
        "00000001  u1  ada@example.com  no            2       1           1        1        2024-05-01 09:00:00",
        "1 of 1 people",
        "anonymous events not merged 0, group calls waiting for an identify 1, suppressions 1, refused calls 2, "
        "ignored values 0",
    ]


def test_people_filters_by_email_without_regard_to_case(db, capsys):
    assert switchyard("people", "--db", db, "--email", "ADA@EXAMPLE.COM", "--json") == 0
    assert [p["id"] for p in json.loads(capsys.readouterr().out)] == ["u1"]
    assert switchyard("people", "--db", db, "--id", "nobody", "--json") == 0
    assert json.loads(capsys.readouterr().out) == []


def test_person_shows_identifiers_attributes_devices_relationships_counts_and_events(db, capsys):
    assert switchyard("person", "--db", db, "--id", "u1") == 0
    assert capsys.readouterr().out == """\
person 00000001
  cio_id         00000001
  id             u1
  email          ada@example.com
  anonymous ids  anon-1
  unsubscribed   no
  created        2024-05-01 10:00:00
  last seen      2024-05-01 09:00:00
  counts         events 2 (pages 1, screens 0), page views 1, devices 1, relationships 1

attributes
  name        value
  first_name  "Ada"
  plan        "pro"
  seats       3

devices
  token  platform  last used            attributes
  tok-1  ios       2024-05-01 10:00:00  {"app_version": "1.2.3"}

relationships
  type  object   attributes
  1     initech  {"role": "admin"}

recent events (2 of 2, newest first)
  time                 type   name                          data
  2024-05-01 10:00:00  event  Order Completed               {"total": 30}
  2024-05-01 09:00:00  page   https://shop.example/pricing  {"title": "Pricing"}
"""


def test_person_json_is_the_same_data(db, capsys):
    assert switchyard("person", "--db", db, "--cio-id", "00000001", "--events", "1", "--json") == 0
    person = json.loads(capsys.readouterr().out)
    assert person["attributes"] == {"first_name": "Ada", "plan": "pro", "seats": 3}
    assert person["counts"] == {"events": 2, "pages": 1, "screens": 0, "page_views": 1, "devices": 1,
                                "relationships": 1}
    assert [e["name"] for e in person["recent_events"]] == ["Order Completed"]
    assert person["devices"] == [{"token": "tok-1", "platform": "ios", "last_used": NOW,
                                  "attributes": {"app_version": "1.2.3"}}]


def test_a_suppressed_person_says_so(db, capsys):
    assert switchyard("person", "--db", db, "--id", "u3") == 0
    assert capsys.readouterr().out == ("id 'u3' is suppressed since 2024-05-01 10:00:00 (cio_id 00000002, id u3); "
                                       "its profile was deleted; 1 later call(s) refused\n")


def test_an_unknown_person_is_exit_1(db, capsys):
    assert switchyard("person", "--db", db, "--email", "nobody@example.com") == 1
    assert capsys.readouterr().err == "switchyard: no person with email 'nobody@example.com'\n"


def test_objects_lists_objects_and_waiting_group_calls(db, capsys):
    assert switchyard("objects", "--db", db) == 0
    assert capsys.readouterr().out.splitlines() == [
        "type  object   people  attributes",
        "1     initech  1       {}",
        "1 object(s)",
        "waiting for an identify of anonymous id 'anon-2': {\"object_id\": \"acme\", \"object_type_id\": \"1\"}",
    ]
    assert switchyard("objects", "--db", db, "--json") == 0
    data = json.loads(capsys.readouterr().out)
    assert [o["object_id"] for o in data["objects"]] == ["initech"]
    assert [w["anonymous_id"] for w in data["waiting"]] == ["anon-2"]


def test_object_shows_its_people(db, capsys):
    assert switchyard("object", "--db", db, "--id", "initech", "--json") == 0
    assert json.loads(capsys.readouterr().out)["people"] == [
        {"cio_id": "00000001", "id": "u1", "email": "ada@example.com", "relationship_attributes": {"role": "admin"}}]
    assert switchyard("object", "--db", db, "--type", "2", "--id", "initech") == 1


def test_events_filter_by_type(db, capsys):
    assert switchyard("events", "--db", db, "--type", "page") == 0
    assert capsys.readouterr().out.splitlines() == [
        "time                 type  name                          person    anonymous id  data",
        "2024-05-01 09:00:00  page  https://shop.example/pricing  00000001  anon-1        {\"title\": \"Pricing\"}",
        "1 event(s)",
    ]


def test_rejected_lists_refused_calls_with_reasons(db, capsys):
    assert switchyard("rejected", "--db", db) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["time", "source", "code", "field", "reason"]
    assert "suppressed" in lines[1] and "identifier_conflict" in lines[2] and lines[-1] == "2 refused call(s)"
    assert switchyard("rejected", "--db", db, "--code", "suppressed", "--json") == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["body"] == {"type": "person", "action": "event", "identifiers": {"id": "u3"}, "name": "Came Back"}


def test_metrics_lists_delivery_metrics(db, capsys):
    assert switchyard("metrics", "--db", db, "--delivery-id", "dlv_1", "--json") == 0
    assert [(m["metric"], m["timestamp"]) for m in json.loads(capsys.readouterr().out)] == [("opened", NOW)]


def test_settings_are_shown_and_changed(tmp_path, capsys):
    db = str(tmp_path / "new.db")
    assert switchyard("settings", "--db", db, "--id-only", "on", "--attribute-type", "age=number") == 0
    assert capsys.readouterr().out.splitlines() == [
        "setting           value", "id_only           yes", "anonymous_merge   yes", "typed_attributes  no",
        "attribute_types   age=number"]
    assert switchyard("settings", "--db", db, "--json") == 0
    assert json.loads(capsys.readouterr().out)["id_only"] is True
    assert switchyard("settings", "--db", db, "--attribute-type", "age=integer") == 2  # a bad argument
    assert "not one of string, number, boolean, timestamp" in capsys.readouterr().err
    assert switchyard("settings", "--db", db, "--attribute-type", "age") == 2


def test_a_missing_workspace_is_a_usage_error(tmp_path, capsys):
    assert switchyard("people", "--db", str(tmp_path / "missing.db")) == 2
    assert "no workspace at" in capsys.readouterr().err
    assert not (tmp_path / "missing.db").exists()


def test_serve_reports_a_port_in_use(db, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        assert switchyard("serve", "--db", db, "--port", port, "--site-id", "s", "--api-key", "k") == 1
    assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err


def test_a_refused_call_holding_a_lone_surrogate_is_shown_with_its_escape(tmp_path):
    """Printed as JSON to a UTF-8 stream, the surrogate was a UnicodeEncodeError traceback."""
    from conftest import switchyard as cli

    events = tmp_path / "events.jsonl"
    events.write_text('{"type":"identify","userId":"u1","traits":{"email":"a@b.c","name":"x\\udfff"}}\n')
    db = tmp_path / "ws.db"
    assert cli("run", "rules/customerio.yaml", events, "--workspace", db, "--dead-letter", tmp_path / "dead",
               process=True).returncode == 1  # the call is refused
    for json_flag in ([], ["--json"]):
        shown = cli("workspace", "rejected", "--db", db, *json_flag, process=True)
        assert shown.returncode == 0 and "Traceback" not in shown.stderr, shown.stderr
    (row,) = json.loads(shown.stdout)
    assert row["body"]["attributes"]["name"] == "x\udfff" and "lone surrogate" in row["reason"]


MILLISECONDS = 1_714_550_400_000  # 2024-05-01 08:00:00 sent in milliseconds: stored as seconds, year 56301


def test_a_time_no_calendar_has_is_shown_as_stored_and_the_listing_goes_on(tmp_path):
    """Milliseconds sent as seconds are accepted and stored; showing them was a traceback for the whole file."""
    from conftest import switchyard as cli

    db = tmp_path / "w.db"
    with Workspace.open(db, clock=lambda: NOW) as workspace:
        workspace.apply({"type": "person", "action": "page", "identifiers": {"id": "u1"}, "name": "/pricing",
                         "timestamp": MILLISECONDS})
        workspace.apply({"type": "person", "action": "add_device", "identifiers": {"id": "u1"},
                         "device": {"token": "tok-1", "platform": "ios", "last_used": MILLISECONDS}})
        workspace.apply_metrics({"delivery_id": "dlv_1", "metric": "opened", "timestamp": MILLISECONDS})
    people = cli("workspace", "people", "--db", db)
    assert people.returncode == 0, people.stderr
    assert people.stdout.splitlines()[1].split() == ["00000001", "u1", "no", "1", "1", "1", "0", str(MILLISECONDS)]
    person = cli("workspace", "person", "--db", db, "--id", "u1")
    assert person.returncode == 0, person.stderr
    assert "created        2024-05-01 10:00:00" in person.stdout
    assert f"tok-1  ios       {MILLISECONDS}" in person.stdout and f"{MILLISECONDS}  page" in person.stdout
    for command in ("events", "metrics"):
        shown = cli("workspace", command, "--db", db)
        assert shown.returncode == 0 and shown.stdout.splitlines()[1].startswith(str(MILLISECONDS)), shown.stderr


def test_a_user_com_time_no_calendar_has_is_shown_as_stored(tmp_path):
    from conftest import switchyard as cli

    events = tmp_path / "events.jsonl"
    events.write_text("\n".join(json.dumps(event) for event in [
        {"type": "identify", "userId": "u1", "timestamp": MILLISECONDS, "traits": {"email": "ada@example.com"}},
        {"type": "track", "userId": "u1", "event": "Signed Up", "timestamp": MILLISECONDS},
        {"type": "page", "userId": "u1", "name": "Pricing", "timestamp": MILLISECONDS,
         "properties": {"url": "https://shop.example/pricing"}},
    ]) + "\n")
    db = tmp_path / "app.db"
    run = cli("run", "rules/userengage.yaml", events, "--workspace", db, "--dead-letter", tmp_path / "dead")
    assert run.returncode == 0, run.stderr
    for command in (["users"], ["user", "--id", "u1"], ["events"]):
        shown = cli("workspace", *command, "--db", db)
        assert shown.returncode == 0 and str(MILLISECONDS) in shown.stdout, shown.stderr


def test_what_a_file_holds_that_json_or_a_listing_did_not_expect_is_shown_as_it_is(tmp_path):
    """An integer of 5,000 digits a refused call kept, and JSON columns another program wrote: each was a
    traceback for the whole listing."""
    from conftest import switchyard as cli

    events = tmp_path / "events.jsonl"
    events.write_text('{"type":"identify","userId":"u0","traits":{"email":"a@b.c"}}\n'  # u1 may not take its email
                      '{"type":"identify","userId":"u1","traits":{"email":"a@b.c","n":' + "7" * 5000 + "}}\n"
                      '{"type":"identify","userId":"u2","traits":{"plan":"pro"}}\n')
    db = tmp_path / "w.db"
    assert cli("run", "rules/customerio.yaml", events, "--workspace", db, "--dead-letter", tmp_path / "dead",
               ).returncode == 1  # the first call is refused and kept with its body
    with Workspace.open(db) as workspace:  # its connection names the destination's tables
        workspace.db.execute("UPDATE people SET attributes = 'not JSON' WHERE id = 'u2'")
    for json_flag in ([], ["--json"]):
        rejected = cli("workspace", "rejected", "--db", db, *json_flag)
        assert rejected.returncode == 0, rejected.stderr
        person = cli("workspace", "person", "--db", db, "--id", "u2", *json_flag)
        assert person.returncode == 0 and "not JSON" in person.stdout, person.stderr
    assert "7" * 5000 in rejected.stdout
    with Workspace.open(db) as workspace:
        workspace.db.execute("UPDATE people SET attributes = '[1, 2]' WHERE id = 'u2'")
    person = cli("workspace", "person", "--db", db, "--id", "u2")
    assert person.returncode == 0 and "[1, 2]" in person.stdout, person.stderr


def test_an_email_set_with_another_non_ascii_letter_is_found_by_it_in_any_ascii_case(tmp_path, capsys):
    """Python once folded Ö to ö and kept the old address, which --email (SQLite folds A-Z only) then missed."""
    db = str(tmp_path / "w.db")
    with Workspace.open(db) as workspace:
        for email in ("jörg@example.de", "JÖRG@example.de"):
            assert workspace.apply({"type": "person", "action": "identify", "identifiers": {"id": "u1"},
                                    "attributes": {"email": email}}).ok
    assert switchyard("person", "--db", db, "--email", "JÖRG@EXAMPLE.DE", "--json") == 0
    assert json.loads(capsys.readouterr().out)["email"] == "JÖRG@example.de"
    assert switchyard("people", "--db", db, "--email", "jörg@example.de", "--json") == 0
    assert json.loads(capsys.readouterr().out) == []


def test_values_not_stored_are_counted_apart_from_refused_calls_which_match_the_runs(tmp_path):
    """A typed value that cannot convert leaves its call applied: it was counted as one more refused call."""
    from conftest import switchyard as cli

    db, summary, events = tmp_path / "w.db", tmp_path / "summary.json", tmp_path / "events.jsonl"
    events.write_text('{"type":"identify","userId":"u1","traits":{"seats":"many","plan":"pro"}}\n'
                      '{"type":"identify","userId":"u2","traits":{"email":"ada@example.com"}}\n'
                      '{"type":"identify","userId":"u3","traits":{"email":"ada@example.com"}}\n')
    assert cli("workspace", "settings", "--db", db, "--typed-attributes", "on",
               "--attribute-type", "seats=number").returncode == 0
    run = cli("run", "rules/customerio.yaml", events, "--workspace", db, "--dead-letter", tmp_path / "dead",
              "--summary-json", summary)
    assert run.returncode == 1, run.stderr  # u3's identify is refused: ada@example.com is u2's
    assert json.loads(summary.read_text())["refused"] == {"customerio / Create or Update Person": 1}
    people = cli("workspace", "people", "--db", db).stdout.splitlines()
    assert people[-1].endswith("refused calls 1, ignored values 1")
    rejected = cli("workspace", "rejected", "--db", db).stdout.splitlines()
    assert [line.split()[3] for line in rejected[1:-1]] == ["identifier_conflict", "attribute_ignored"]
    assert rejected[-1] == "1 refused call(s), 1 ignored value(s)"
