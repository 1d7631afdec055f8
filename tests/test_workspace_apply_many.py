"""``Workspace.apply_many``: an adapter's calls in one transaction, the same as applying them one at a time."""
from __future__ import annotations

import math
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import engine
from engine.customerio.requests import to_request
from engine.workspace import Workspace, inspect

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
import generate

NOW = 1_700_000_000


def identify(user_id: str, **attributes) -> tuple[str, dict]:
    return "entity", {"type": "person", "action": "identify", "identifiers": {"id": user_id}, "attributes": attributes}


def event(who: dict, name: str = "Signed Up", **more) -> tuple[str, dict]:
    return "entity", {"type": "person", "action": "event", "identifiers": who, "name": name, **more}


def snapshot(workspace: Workspace) -> dict:
    db = workspace.db
    return {"people": inspect.people(db), "objects": inspect.objects(db), "events": inspect.events(db, limit=10**6),
            "rejected": inspect.rejected(db, limit=10**6), "metrics": inspect.metrics(db, limit=10**6),
            "waiting": inspect.waiting(db), "totals": inspect.totals(db)}


def tricky(rng: random.Random, count: int) -> list[tuple[str, dict]]:
    """Calls that refuse before writing, refuse after writing, delete, suppress, merge and repeat."""
    users = [f"u{n}" for n in range(12)]
    calls: list[tuple[str, dict]] = []
    for index in range(count):
        user = {"id": rng.choice(users)}
        calls.append(rng.choice([
            identify(user["id"], email=f"{rng.choice(users)}@example.com", plan=rng.choice(["a", "b"])),
            identify(user["id"], anonymous_id=f"anon-{rng.randint(1, 4)}"),
            event({"anonymous_id": f"anon-{rng.randint(1, 4)}"}, id=f"m{rng.randint(1, 30)}"),
            event(user, id=f"m{rng.randint(1, 30)}"),
            ("entity", {"type": "person", "action": "page", "identifiers": user, "name": "/p", "timestamp": index}),
            ("entity", {"type": "person", "action": "add_device", "identifiers": user,  # a new person: refused after
                        "device": {"token": f"t{rng.randint(1, 5)}"}}),                # the person was written
            ("entity", {"type": "person", "action": "add_device", "identifiers": user,
                        "device": {"token": f"t{rng.randint(1, 5)}", "platform": "ios"}}),
            ("entity", {"type": "person", "action": rng.choice(["delete", "suppress", "unsuppress"]),
                        "identifiers": user}),
            ("entity", {"type": "person", "action": "merge", "primary": user, "secondary": {"id": rng.choice(users)}}),
            ("entity", {"type": "object", "action": "identify_anonymous", "identifiers": {"object_id": "g1"},
                        "cio_relationships": [{"identifiers": {"anonymous_id": f"anon-{rng.randint(1, 4)}"}}]}),
            ("entity", {"type": "person", "action": "event", "identifiers": user}),  # refused before writing
            ("metrics", {"delivery_id": f"d{index}", "metric": rng.choice(["opened", "sent"])}),
            identify(user["id"], plan=math.nan, score=-math.inf),  # null, as sent over HTTP: applied again
            ("entity", {"type": "person", "action": "add_device", "identifiers": user,  # NaN met after a write
                        "device": {"token": f"t{rng.randint(1, 5)}", "platform": "ios", "attributes": {"x": math.nan}}}),
        ]))
    return calls


def generated(count: int) -> list[tuple[str, dict]]:
    rules = engine.load(str(ROOT / "rules/customerio.yaml"))
    calls = [call for item in generate.events(count, seed=7) for call in rules.evaluate(item).calls]
    requests = [to_request(call, now=lambda: NOW) for call in calls]
    return [(request.endpoint, request.body) for request in requests]


@pytest.mark.parametrize("calls, refused", [(lambda: tricky(random.Random(3), 400), True),
                                            (lambda: generated(600), False)], ids=["tricky", "generated"])
def test_apply_many_leaves_the_workspace_as_applying_each_call_alone_does(tmp_path, calls, refused):
    calls = calls()
    with Workspace.open(tmp_path / "one.db", clock=lambda: NOW) as one:
        alone = [one.apply(body) if endpoint == "entity" else one.apply_metrics(body) for endpoint, body in calls]
        expected = snapshot(one)
    # A named destination: every statement runs rewritten to its own tables, too.
    with Workspace.open(tmp_path / "many.db", destination="crm", clock=lambda: NOW) as many:
        together = [outcome for start in range(0, len(calls), 50) for outcome in many.apply_many(calls[start:start + 50])]
        assert together == alone
        assert snapshot(many) == expected
        assert many.db.execute("PRAGMA foreign_key_check").fetchall() == []
    assert any(not outcome.ok for outcome in alone) == refused


def test_a_call_refused_after_it_wrote_leaves_its_neighbours_applied_and_nothing_of_itself(tmp_path):
    no_platform = ("entity", {"type": "person", "action": "add_device", "identifiers": {"id": "u2"},
                              "device": {"token": "t1"}})
    with Workspace.open(tmp_path / "w.db") as workspace:
        outcomes = workspace.apply_many([identify("u1"), no_platform, identify("u3")])
        assert [o.ok for o in outcomes] == [True, False, True]
        assert [(p["id"], p["cio_id"]) for p in inspect.people(workspace.db)] == [("u1", "00000001"),
                                                                                  ("u3", "00000002")]
        assert [(r["source"], r["code"]) for r in inspect.rejected(workspace.db)] == [("entity", "missing_field")]


def test_an_unknown_endpoint_applies_nothing(tmp_path):
    with Workspace.open(tmp_path / "w.db") as workspace:
        with pytest.raises(ValueError, match="no workspace endpoint 'batch'"):
            workspace.apply_many([identify("u1"), ("batch", {"batch": []})])
        assert inspect.people(workspace.db) == []
        assert workspace.apply_many([]) == []


def test_settings_changed_by_another_process_apply_to_the_next_calls(tmp_path):
    path = tmp_path / "w.db"
    with Workspace.open(path) as workspace:
        assert workspace.apply_many([identify("u1")])[0].ok  # settings read: email identifies
        with Workspace.open(path) as other:
            other.configure({"id_only": True})
        by_email = ("entity", {"type": "person", "action": "identify", "identifiers": {"email": "a@example.com"}})
        assert workspace.apply_many([by_email, identify("u2")])[0].code == "email_not_identifier"


LOOP = """
import sys
from engine.workspace import Workspace
workspace = Workspace.open(sys.argv[1])
for batch in range(10**6):
    calls = [("entity", {"type": "person", "action": "event", "identifiers": {"id": f"u{batch % 50}"},
                         "name": "Looped", "id": f"b{batch}-{n}", "attributes": {"n": n}}) for n in range(200)]
    assert all(outcome.ok for outcome in workspace.apply_many(calls))
    print(batch, flush=True)
"""


def test_a_killed_process_loses_no_batch_it_reported_applied(tmp_path):
    path = tmp_path / "w.db"
    Workspace.open(path, destination="crm").close()
    process = subprocess.Popen([sys.executable, "-c", LOOP, str(path)], cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        reported = [int(process.stdout.readline()) for _ in range(25)]
    finally:
        process.send_signal(signal.SIGKILL)  # mid-batch, most likely: no cleanup at all
        process.wait(timeout=60)
    assert reported == list(range(25)), process.stderr.read()
    with Workspace.open(path) as workspace:
        assert workspace.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        stored = {row[0] for row in workspace.db.execute("SELECT event_id FROM events")}
        assert {f"b{batch}-{n}" for batch in reported for n in range(200)} <= stored
        assert len(stored) % 200 == 0  # whole batches only


def test_nan_met_after_a_call_wrote_is_applied_again_as_null_not_refused(tmp_path):
    """Creating the person comes before storing the device's attributes: the call is applied again, whole."""
    device = ("entity", {"type": "person", "action": "add_device", "identifiers": {"id": "u2"},
                         "device": {"token": "t1", "platform": "ios", "attributes": {"x": math.nan, "y": 1}}})
    with Workspace.open(tmp_path / "w.db") as workspace:
        outcomes = workspace.apply_many([identify("u1"), device, identify("u3")])
        assert [o.ok for o in outcomes] == [True, True, True]
        person = inspect.find_person(workspace.db, id="u2")
        assert person is not None and [d["attributes"] for d in person["devices"]] == [{"y": 1}]  # null removes it
        assert [p["id"] for p in inspect.people(workspace.db)] == ["u1", "u2", "u3"]
        assert inspect.rejected(workspace.db) == []


def test_an_integer_of_5000_digits_is_stored_exactly_beside_a_nan(tmp_path):
    from engine.integers import any_size

    with any_size():
        big = int("9" * 5000)
    with Workspace.open(tmp_path / "w.db") as workspace:
        outcomes = workspace.apply_many([identify("u1", n=big, m=math.nan, k=1), identify("u2", k=2)])
        assert [o.ok for o in outcomes] == [True, True]
        (stored,) = workspace.db.execute("SELECT attributes FROM people WHERE id = 'u1'").fetchone()
        assert stored == '{"n":' + "9" * 5000 + ',"k":1}'
        # What is stored is read back by every later call: each one applies, the integer kept as it was.
        device = {"token": "t1", "platform": "ios", "attributes": {"n": big}}
        group = {"type": "object", "identifiers": {"object_type_id": "1", "object_id": "acme"}}
        later = [identify("u1", plan="pro"),
                 ("entity", {"type": "person", "action": "add_device", "identifiers": {"id": "u1"}, "device": device}),
                 ("entity", {"type": "person", "action": "add_device", "identifiers": {"id": "u1"},
                             "device": {**device, "attributes": {"m": 1}}}),
                 ("entity", {**group, "action": "identify", "attributes": {"n": big}}),
                 ("entity", {**group, "action": "identify", "attributes": {"m": 1}}),
                 ("entity", {"type": "object", "action": "identify_anonymous", "identifiers": {"object_id": "g2"},
                             "attributes": {"n": big}, "cio_relationships": [{"identifiers": {"anonymous_id": "a1"}}]}),
                 identify("u3", anonymous_id="a1"),
                 ("entity", {"type": "person", "action": "merge", "primary": {"id": "u2"}, "secondary": {"id": "u1"}})]
        assert [(o.ok, getattr(o, "reason", "")) for o in workspace.apply_many(later)] == [(True, "")] * len(later)
        (stored,) = workspace.db.execute("SELECT attributes FROM people WHERE id = 'u2'").fetchone()
        assert '"n":' + "9" * 5000 in stored and '"plan":"pro"' in stored
