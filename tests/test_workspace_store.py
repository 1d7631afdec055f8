"""The workspace's storage: whole calls or nothing, crashes, several processes, migrations, settings."""
from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from engine.store import statements
from engine.workspace import (
    SCHEMA_VERSION,
    SettingsError,
    Workspace,
    WorkspaceError,
    inspect,
    objects,
)
from engine.workspace.store import MIGRATIONS, connect

ROOT = Path(__file__).resolve().parent.parent


def identify(user_id: str, **attributes) -> dict:
    return {"type": "person", "action": "identify", "identifiers": {"id": user_id}, "attributes": attributes}


def page(user_id: str, url: str, timestamp: int = 1) -> dict:
    return {"type": "person", "action": "page", "identifiers": {"id": user_id}, "name": url, "timestamp": timestamp}


GROUP = {"type": "object", "action": "identify", "identifiers": {"object_id": "acme", "object_type_id": "1"},
         "attributes": {"name": "Acme"}, "cio_relationships": [{"identifiers": {"id": "u1"}}]}


def count(db, table: str) -> int:
    return db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


# -- transactions ------------------------------------------------------------------------------------

def test_a_refused_batch_item_is_recorded_with_its_index_and_body(tmp_path):
    with Workspace.open(tmp_path / "w.db") as workspace:
        bad = {"type": "person", "action": "event", "identifiers": {"id": "u1"}}
        outcomes = workspace.apply_batch({"batch": [identify("u1"), bad, page("u1", "/a")]})
        assert [o.ok for o in outcomes] == [True, False, True]
        assert outcomes[1].code == "missing_field" and outcomes[1].field == "name"
        (row,) = inspect.rejected(workspace.db)
        assert (row["source"], row["batch_index"], row["code"], row["body"]) == ("batch", 1, "missing_field", bad)
        assert inspect.people(workspace.db)[0]["page_views"] == 1


def test_an_error_in_the_middle_of_a_call_leaves_nothing_of_it(tmp_path, monkeypatch):
    with Workspace.open(tmp_path / "w.db") as workspace:
        def broken(*args):
            raise RuntimeError("disk on fire")
        monkeypatch.setattr(objects, "_relate", broken)  # after the person and the object are written
        with pytest.raises(RuntimeError):
            workspace.apply(GROUP)
        assert (count(workspace.db, "people"), count(workspace.db, "objects")) == (0, 0)


def test_an_error_in_a_batch_leaves_nothing_of_the_batch(tmp_path, monkeypatch):
    with Workspace.open(tmp_path / "w.db") as workspace:
        monkeypatch.setattr(objects, "_relate", lambda *args: 1 / 0)
        with pytest.raises(ZeroDivisionError):
            workspace.apply_batch({"batch": [identify("u1"), identify("u2"), GROUP]})
        assert count(workspace.db, "people") == 0
        monkeypatch.undo()
        assert workspace.apply(identify("u3")).ok  # the connection is usable afterwards


CRASH = """
import os, sys
from engine.workspace import Workspace, objects
def crash(*args):
    os._exit(9)   # no cleanup at all, as when the process is killed
objects._relate = crash
workspace = Workspace.open(sys.argv[1])
body = {BODY}
workspace.apply_batch(body) if "batch" in body else workspace.apply(body)
"""


@pytest.mark.parametrize("body", [GROUP, {"batch": [identify("u7"), page("u7", "/a"), GROUP]}],
                         ids=["entity", "batch"])
def test_a_crash_in_the_middle_of_a_call_leaves_nothing_half_written(tmp_path, body):
    path = tmp_path / "w.db"
    with Workspace.open(path) as workspace:
        assert workspace.apply(identify("before")).ok
    script = CRASH.replace("{BODY}", repr(body))
    done = subprocess.run([sys.executable, "-c", script, str(path)], cwd=ROOT, capture_output=True, timeout=60,
                          check=False)
    assert done.returncode == 9, done.stderr
    with Workspace.open(path) as workspace:
        assert workspace.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert [p["id"] for p in inspect.people(workspace.db)] == ["before"]
        assert (count(workspace.db, "objects"), count(workspace.db, "events")) == (0, 0)
        assert workspace.apply(GROUP).ok


def test_sql_is_parameterised(tmp_path):
    sly = "u1'; DROP TABLE people; --"
    with Workspace.open(tmp_path / "w.db") as workspace:
        assert workspace.apply(identify(sly, **{"name\"); --": "x"})).ok
        assert inspect.find_person(workspace.db, id=sly)["attributes"] == {"name\"); --": "x"}


# -- several writers ---------------------------------------------------------------------------------

WRITER = """
import sys
from engine.workspace import Workspace
path, worker, calls = sys.argv[1], sys.argv[2], int(sys.argv[3])
page = lambda user, url, ts: {"type": "person", "action": "page", "identifiers": {"id": user}, "name": url,
                              "timestamp": ts}
print("ready", flush=True)
sys.stdin.readline()  # everyone starts together
with Workspace.open(path) as workspace:
    for index in range(calls):
        assert workspace.apply(page("shared", f"/{worker}/{index}", index)).ok
        if index % 10 == 0:
            identify = {"type": "person", "action": "identify", "identifiers": {"id": "w" + worker},
                        "attributes": {"n": index}}
            assert all(o.ok for o in workspace.apply_batch({"batch": [identify, page("w" + worker, "/x", 1)]}))
"""


def test_several_processes_write_one_workspace_without_losing_updates(tmp_path):
    # Separate interpreters, not forks: a fork of the test process could inherit a lock held by a thread.
    path = str(tmp_path / "w.db")  # created and migrated by whichever worker gets there first
    workers = [subprocess.Popen([sys.executable, "-c", WRITER, path, str(worker), "60"], cwd=ROOT, text=True,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
               for worker in range(4)]
    for process in workers:
        assert process.stdout.readline() == "ready\n"
    for process in workers:
        process.stdin.write("go\n")
        process.stdin.flush()
    results = [process.communicate(timeout=60) for process in workers]
    assert [process.returncode for process in workers] == [0, 0, 0, 0], results
    with Workspace.open(path) as workspace:
        people = {p["id"]: p for p in inspect.people(workspace.db)}
        assert people["shared"]["page_views"] == 240  # a read-modify-write per call, none lost
        assert [people[f"w{w}"]["page_views"] for w in range(4)] == [6, 6, 6, 6]
        assert count(workspace.db, "events") == 264


def test_a_writer_waits_for_the_lock_instead_of_failing(tmp_path):
    path = tmp_path / "w.db"
    Workspace.open(path).close()
    locked = threading.Event()

    def hold_the_lock():
        holder = connect(path)
        holder.execute("BEGIN IMMEDIATE")
        locked.set()
        time.sleep(0.3)
        holder.execute("COMMIT")
        holder.close()

    thread = threading.Thread(target=hold_the_lock)
    thread.start()
    locked.wait()
    try:
        with Workspace.open(path) as workspace:
            started = time.monotonic()
            assert workspace.apply(identify("u1")).ok
            assert time.monotonic() - started >= 0.2
    finally:
        thread.join()


def test_a_lock_held_past_the_timeout_is_a_workspace_error(tmp_path):
    path = tmp_path / "w.db"
    holder = connect(path)
    holder.execute("BEGIN IMMEDIATE")
    try:
        workspace = Workspace(connect(path, timeout=0.05))
        with pytest.raises(WorkspaceError, match="write transaction"):
            workspace.apply(identify("u1"))
        workspace.close()
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_the_workspace_is_in_wal_mode(tmp_path):
    with Workspace.open(tmp_path / "w.db") as workspace:
        assert workspace.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


# -- schema versions ---------------------------------------------------------------------------------

def legacy_workspace(path, version: int = 1) -> None:
    """A workspace file as switchyard wrote it before files held several destinations: unprefixed tables."""
    db = sqlite3.connect(path, isolation_level=None)
    for script in MIGRATIONS[:version]:
        for statement in statements(script):
            db.execute(statement)
    db.execute(f"PRAGMA user_version = {version}")
    db.execute("INSERT INTO people (pk, cio_id, id, created_at, updated_at) VALUES (1, '00000001', 'u1', 0, 0)")
    db.executemany("INSERT INTO events (person_pk, kind, name, timestamp, received_at) VALUES (1, ?, ?, ?, 0)",
                   [("page", "/a", 100), ("page", "/b", 300), ("event", "Signed Up", 900)])
    db.close()


def assert_migrated_with_its_data(workspace: Workspace) -> None:
    assert workspace.db.namespace.schema_version == SCHEMA_VERSION == 3
    (person,) = inspect.people(workspace.db)
    assert (person["id"], person["events"], person["page_views"], person["last_seen"]) == ("u1", 3, 2, 300)
    assert workspace.apply({"type": "person", "action": "suppress", "identifiers": {"id": "u1"}}).ok
    assert workspace.apply(page("u1", "/c")).code == "suppressed"


def test_a_workspace_from_before_destinations_is_migrated_and_keeps_its_data(tmp_path):
    path = tmp_path / "w.db"
    legacy_workspace(path, version=1)
    with Workspace.open(path) as workspace:
        assert_migrated_with_its_data(workspace)
        assert workspace.apply(identify("u2")).summary == "created person 00000002 (u2)"


def test_an_older_workspace_is_migrated_and_keeps_its_data(tmp_path):
    path = tmp_path / "w.db"
    old = connect(path, destination="crm", migrations=MIGRATIONS[:1])
    assert old.namespace.schema_version == 1
    old.execute("INSERT INTO people (pk, cio_id, id, created_at, updated_at) VALUES (1, '00000001', 'u1', 0, 0)")
    old.executemany("INSERT INTO events (person_pk, kind, name, timestamp, received_at) VALUES (1, ?, ?, ?, 0)",
                    [("page", "/a", 100), ("page", "/b", 300), ("event", "Signed Up", 900)])
    old.close()
    with Workspace.open(path, destination="crm") as workspace:
        assert_migrated_with_its_data(workspace)


def test_a_newer_workspace_is_refused_with_a_reason(tmp_path):
    path = tmp_path / "w.db"
    sqlite3.connect(path).execute("PRAGMA user_version = 99").connection.close()
    with pytest.raises(WorkspaceError, match="schema version 99.*upgrade switchyard"):
        Workspace.open(path)


def test_a_file_that_is_not_a_workspace_is_refused_with_a_reason(tmp_path):
    path = tmp_path / "w.db"
    path.write_text("these are not the droids\n" * 100)
    with pytest.raises(WorkspaceError, match="cannot open workspace"):
        Workspace.open(path)
    with pytest.raises(WorkspaceError, match="no workspace at"):
        Workspace.open(tmp_path / "missing.db", create=False)


# -- settings ----------------------------------------------------------------------------------------

def test_settings_are_stored_in_the_workspace_and_only_named_ones_change(tmp_path):
    path = tmp_path / "w.db"
    Workspace.open(path, {"id_only": True, "workspace": "w.db", "attribute_types": {"age": "number"}}).close()
    with Workspace.open(path, {"anonymous_merge": "off", "id_only": "", "typed_attributes": None}) as workspace:
        assert workspace.settings().to_dict() == {"id_only": True, "anonymous_merge": False,
                                                  "typed_attributes": False, "attribute_types": {"age": "number"}}


@pytest.mark.parametrize("settings, message", [
    ({"id_only": "sometimes"}, "'id_only' must be true or false"),
    ({"attribute_types": ["age"]}, "must map attribute names to types"),
    ({"attribute_types": {"age": "integer"}}, "'integer' for 'age' is not one of string, number"),
])
def test_a_bad_setting_is_refused_with_a_reason(tmp_path, settings, message):
    with pytest.raises(SettingsError, match=message):
        Workspace.open(tmp_path / "w.db", settings)


def test_leaving_id_only_mode_is_refused_while_two_people_share_an_email(tmp_path):
    with Workspace.open(tmp_path / "w.db", {"id_only": True}) as workspace:
        for user_id in ("u1", "u2"):
            assert workspace.apply(identify(user_id, email="shared@example.com")).ok
        with pytest.raises(SettingsError, match="shared@example.com"):
            workspace.configure({"id_only": False})
        assert workspace.settings().id_only is True


def test_a_body_that_is_not_json_is_recorded(tmp_path):
    with Workspace.open(tmp_path / "w.db") as workspace:
        outcome = workspace.record_unreadable("entity", "{nope", "the body is not JSON")
        assert outcome.code == "unreadable"
        (row,) = inspect.rejected(workspace.db)
        assert row["body"] == {"unreadable_body": "{nope"}
