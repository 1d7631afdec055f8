"""One workspace file, several destinations: each keeps its own people, settings and refusals."""
from __future__ import annotations

import argparse
import json
import sqlite3
import urllib.request
from base64 import b64encode

import pytest

from engine.store import Catalog, connect, rewrite, statements
from engine.workspace import DestinationError, Workspace, destinations, inspect
from engine.workspace.cli import add_workspace_commands, run_workspace
from engine.workspace.server import start_server
from engine.workspace.store import MIGRATIONS


def identify(user_id: str, **attributes) -> dict:
    return {"type": "person", "action": "identify", "identifiers": {"id": user_id}, "attributes": attributes}


def switchyard(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="switchyard")
    add_workspace_commands(parser.add_subparsers(dest="command", required=True))
    return run_workspace(parser.parse_args(["workspace", *argv]))


@pytest.fixture
def two(tmp_path):
    """A file holding the workspaces of two customerio destinations, both knowing a person u1."""
    path = tmp_path / "w.db"
    with Workspace.open(path, destination="crm") as crm, Workspace.open(path, {"id_only": True},
                                                                         destination="eu") as eu:
        assert crm.apply(identify("u1", plan="pro")).ok
        assert crm.apply(identify("u2")).ok
        assert eu.apply(identify("u1", plan="free")).ok
        assert eu.apply({"type": "person", "action": "page", "identifiers": {"id": "u1"}}).code == "missing_field"
    return path


def test_two_destinations_in_one_file_do_not_share_people(two):
    assert destinations(two) == ["crm", "eu"]
    with Workspace.open(two, destination="crm") as crm, Workspace.open(two, destination="eu") as eu:
        assert [(p["id"], p["attributes"]) for p in inspect.people(crm.db)] == [("u1", {"plan": "pro"}), ("u2", {})]
        assert [(p["id"], p["attributes"]) for p in inspect.people(eu.db)] == [("u1", {"plan": "free"})]
        assert (inspect.rejected(crm.db), [r["code"] for r in inspect.rejected(eu.db)]) == ([], ["missing_field"])
        assert (crm.settings().id_only, eu.settings().id_only) == (False, True)  # settings are each one's own
        assert inspect.people(eu.db)[0]["cio_id"] == "00000001"  # numbered apart, too


def test_deleting_a_person_deletes_their_events_in_that_destination_only(two):
    page = {"type": "person", "action": "page", "identifiers": {"id": "u1"}, "name": "/a"}
    with Workspace.open(two, destination="crm") as crm, Workspace.open(two, destination="eu") as eu:
        assert crm.apply(page).ok and eu.apply(page).ok
        assert crm.apply({"type": "person", "action": "delete", "identifiers": {"id": "u1"}}).ok
        assert (inspect.totals(crm.db)["events"], inspect.totals(eu.db)["events"]) == (0, 1)
        assert [p["id"] for p in inspect.people(eu.db)] == ["u1"]


def test_without_a_destination_a_file_holding_several_names_them(two):
    with pytest.raises(DestinationError, match="several destinations \\(crm, eu\\)"):
        Workspace.open(two)


def test_inspect_commands_take_the_destination(two, capsys):
    assert switchyard("people", "--db", str(two), "--destination", "eu", "--json") == 0
    assert [p["attributes"] for p in json.loads(capsys.readouterr().out)] == [{"plan": "free"}]
    assert switchyard("person", "--db", str(two), "--destination", "crm", "--id", "u1", "--json") == 0
    assert json.loads(capsys.readouterr().out)["attributes"] == {"plan": "pro"}
    assert switchyard("person", "--db", str(two), "--destination", "eu", "--id", "u2") == 1  # not in eu


@pytest.mark.parametrize("argv, message", [
    (["people"], "several destinations (crm, eu)"),
    (["people", "--destination", "us"], "no destination 'us'; its customerio destinations: crm, eu"),
    (["rejected", "--destination", "us"], "no destination 'us'"),
    (["settings", "--destination", "us", "--id-only", "on"], "no destination 'us'"),
], ids=["none named", "unknown", "rejected", "settings"])
def test_a_missing_or_unknown_destination_is_a_usage_error_listing_the_names(two, capsys, argv, message):
    assert switchyard(*argv, "--db", str(two)) == 2
    assert message in capsys.readouterr().err
    assert destinations(two) == ["crm", "eu"]  # nothing was created


def test_the_server_applies_to_its_destination(two):
    with start_server(two, "site", "key", destination="eu") as server:
        request = urllib.request.Request(server.url + "/api/v2/entity", data=json.dumps(identify("u9")).encode(),
                                         headers={"Authorization": "Basic " + b64encode(b"site:key").decode()})
        with urllib.request.urlopen(request) as answer:
            assert answer.status == 200
    with Workspace.open(two, destination="crm") as crm, Workspace.open(two, destination="eu") as eu:
        assert ([p["id"] for p in inspect.people(crm.db)], [p["id"] for p in inspect.people(eu.db)]) == (
            ["u1", "u2"], ["u1", "u9"])


def test_a_file_from_before_destinations_is_adopted_by_the_first_destination_that_opens_it(tmp_path):
    path = tmp_path / "w.db"
    legacy = sqlite3.connect(path, isolation_level=None)
    for statement in statements(MIGRATIONS[0] + MIGRATIONS[1]):
        legacy.execute(statement)
    legacy.execute("INSERT INTO people (pk, cio_id, id, created_at, updated_at) VALUES (1, '00000001', 'u1', 0, 0)")
    legacy.execute("PRAGMA user_version = 2")
    legacy.close()
    with Workspace.open(path) as unnamed:  # inspecting it claims nothing
        assert [p["id"] for p in inspect.people(unnamed.db)] == ["u1"]
    assert destinations(path) == []
    with Workspace.open(path, destination="crm") as crm, Workspace.open(path, destination="eu") as eu:
        assert [p["id"] for p in inspect.people(crm.db)] == ["u1"]
        assert inspect.people(eu.db) == []
    assert destinations(path) == ["crm"] + ["eu"]
    with Workspace.open(path, destination="crm") as crm:
        assert [p["id"] for p in inspect.people(crm.db)] == ["u1"]


def earlier_file(path, version: int) -> None:
    """A workspace file as an earlier switchyard wrote it, at schema ``version``: unprefixed tables, WAL mode."""
    legacy = sqlite3.connect(path, isolation_level=None)
    legacy.execute("PRAGMA journal_mode=WAL")
    for statement in statements("".join(MIGRATIONS[:version])):
        legacy.execute(statement)
    legacy.execute("INSERT INTO people (pk, cio_id, id, created_at, updated_at) VALUES (1, '00000001', 'u1', 0, 0)")
    legacy.execute("INSERT INTO events (person_pk, kind, name, timestamp, received_at) VALUES (1, 'page', '/a', 0, 0)")
    legacy.execute(f"PRAGMA user_version = {version}")
    legacy.close()


@pytest.mark.parametrize("version", [2, len(MIGRATIONS)])
def test_looking_inside_a_file_from_before_destinations_writes_nothing_to_it(tmp_path, capsys, version):
    """Inspection registered the file and migrated it in place: an earlier switchyard then refused it."""
    path = tmp_path / "w.db"
    earlier_file(path, version)
    before = path.read_bytes()
    for command in (["people"], ["person", "--id", "u1"], ["events"], ["rejected"], ["objects"], ["metrics"]):
        assert switchyard(*command, "--db", str(path), "--json") == 0, command
        shown = json.loads(capsys.readouterr().out)
        if command[0] in ("people", "events"):
            assert len(shown) == 1
    assert switchyard("people", "--db", str(path), "--destination", "crm") == 2
    assert "one not named yet (give no destination)" in capsys.readouterr().err
    assert path.read_bytes() == before
    with sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True) as raw:
        assert raw.execute("PRAGMA user_version").fetchone()[0] == version  # an earlier switchyard opens it
    assert destinations(path) == []
    with Workspace.open(path, destination="crm") as crm:  # the first destination still adopts it
        assert [p["id"] for p in inspect.people(crm.db)] == ["u1"]
    assert destinations(path) == ["crm"]


def test_looking_inside_an_older_workspace_migrates_a_copy_not_the_file(tmp_path, capsys):
    path = tmp_path / "w.db"
    old = connect(path, Catalog("customerio", MIGRATIONS[:1]), destination="crm")
    old.execute("INSERT INTO people (pk, cio_id, id, created_at, updated_at) VALUES (1, '00000001', 'u1', 0, 0)")
    old.close()
    assert switchyard("people", "--db", str(path), "--json") == 0
    assert [person["page_views"] for person in json.loads(capsys.readouterr().out)] == [0]
    with sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True) as raw:
        assert raw.execute("SELECT schema_version FROM switchyard_namespaces").fetchall() == [(1,)]


def test_a_new_file_opened_without_a_destination_is_adopted_the_same_way(tmp_path):
    path = tmp_path / "w.db"
    with Workspace.open(path) as unnamed:
        assert unnamed.apply(identify("u1")).ok
    with Workspace.open(path, destination="customerio") as named:
        assert [p["id"] for p in inspect.people(named.db)] == ["u1"]
    with Workspace.open(path) as only:  # the file's only workspace, now named
        assert only.db.namespace.destination == "customerio"


def test_any_destination_name_makes_a_usable_prefix(tmp_path):
    path = tmp_path / "w.db"
    names = ["EU customers!", "eu-customers", "", "\u00e9t\u00e9", "people"]
    for name in names:
        with Workspace.open(path, destination=name or "x") as workspace:
            assert workspace.apply(identify(f"user of {name}")).ok
    for name in names:
        with Workspace.open(path, destination=name or "x") as workspace:
            assert [p["id"] for p in inspect.people(workspace.db)] == [f"user of {name}"]


def test_a_destination_holding_another_catalogs_state_is_refused(tmp_path):
    path = tmp_path / "w.db"
    other = Catalog("usercom", ("CREATE TABLE people (pk INTEGER PRIMARY KEY, name TEXT);",))
    connect(path, other, destination="crm").close()
    with pytest.raises(DestinationError, match="'crm' .* holds usercom state, not customerio"):
        Workspace.open(path, destination="crm")
    with Workspace.open(path, destination="cio") as workspace:  # its own tables beside the other catalog's
        assert workspace.apply(identify("u1")).ok
    db = connect(path, other, destination="crm")
    assert db.execute("SELECT count(*) FROM people").fetchone()[0] == 0
    db.close()


PEOPLE = frozenset({"people", "events", "people_email"})


@pytest.mark.parametrize("sql, expected", [
    ("SELECT * FROM people WHERE id = ?", "SELECT * FROM p__people WHERE id = ?"),
    ("SELECT p.*, (SELECT count(*) FROM events WHERE person_pk = p.pk) AS events FROM people p",
     "SELECT p.*, (SELECT count(*) FROM p__events WHERE person_pk = p.pk) AS events FROM p__people p"),
    ("UPDATE people SET n = (SELECT count(*) FROM events WHERE person_pk = people.pk)",
     "UPDATE p__people SET n = (SELECT count(*) FROM p__events WHERE person_pk = p__people.pk)"),
    ("INSERT OR IGNORE INTO events (name) VALUES ('people')", "INSERT OR IGNORE INTO p__events (name) VALUES ('people')"),
    ("CREATE INDEX people_email ON people (email)", "CREATE INDEX p__people_email ON p__people (email)"),
    ("SELECT e.* FROM events e LEFT JOIN people p ON p.pk = e.person_pk",
     "SELECT e.* FROM p__events e LEFT JOIN p__people p ON p.pk = e.person_pk"),
    ('SELECT * FROM "people" -- FROM people', 'SELECT * FROM "p__people" -- FROM people'),
    ("INSERT INTO people (pk) VALUES (1) ON CONFLICT (pk) DO UPDATE SET pk = excluded.pk",
     "INSERT INTO p__people (pk) VALUES (1) ON CONFLICT (pk) DO UPDATE SET pk = excluded.pk"),
    ("SELECT EXISTS (SELECT 1 FROM events), (SELECT data_version FROM pragma_data_version)",
     "SELECT EXISTS (SELECT 1 FROM p__events), (SELECT data_version FROM pragma_data_version)"),
], ids=["from", "alias", "qualified", "literal", "index", "join", "quoted and comment", "upsert", "exists"])
def test_statements_are_rewritten_where_a_table_name_stands(sql, expected):
    assert rewrite(sql, "p__", PEOPLE) == expected
