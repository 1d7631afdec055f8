"""The progress journal: after ``kill -9``, the same command goes on where it stopped; ``--restart`` does not."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest
from hooks import Hook

from conftest import ROOT, audit_rules
from engine.cli import main
from engine.pipeline import JOURNAL_GATHER

RULES = """\
version: 1
destination:
  name: hooks
  catalog: webhook
  settings: {{url: "{url}/orders", max_attempts: 1, timeout: 5}}
mappings:
  - name: Orders
    trigger: event = "Order Completed"
    action: send
    fields:
      data: {{id: properties.order_id}}
"""


@pytest.fixture
def hook():
    server = Hook(delay=0.002)
    yield server
    server.close()


def orders(path, count: int, start: int = 0) -> None:
    with open(path, "w") as stream:
        for n in range(start, start + count):
            stream.write(json.dumps({"type": "track", "event": "Order Completed", "messageId": f"m{n}",
                                     "properties": {"order_id": f"o{n}"}}) + "\n")


def command(rules, events, dead, *extra) -> list[str]:
    return [sys.executable, "-m", "engine", "run", str(rules), *map(str, events), "--dead-letter", str(dead), *extra]


def wait_for(check, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


# With process lanes, the delivery process may have delivered one more slice whose answers were still on
# their way when the run was killed; it delivers nothing once the run is gone.
@pytest.mark.parametrize(("lanes", "most_twice"), [("thread", JOURNAL_GATHER), ("process", 2 * JOURNAL_GATHER)])
def test_kill_9_then_the_same_command_sends_the_rest_and_at_most_one_batch_twice(hook, tmp_path, lanes, most_twice):
    rules, events, dead = tmp_path / "rules.yaml", tmp_path / "events.ndjson", tmp_path / "dead.ndjson"
    rules.write_text(RULES.format(url=hook.base))
    orders(events, 3000)
    process = subprocess.Popen(command(rules, [events], dead, "--lanes", lanes), cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wait_for(lambda: len(hook.received) >= 400)
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=10)
    first = hook.received[:settled_count(hook)]
    assert len(first) < 3000, "the run ended before the kill: nothing tested"
    journal = json.loads((tmp_path / "dead.ndjson.progress").read_text())
    assert journal["done"]["hooks"][0] == 0 and journal["done"]["hooks"][1] > 1

    hook.delay = 0
    again = subprocess.run(command(rules, [events], dead), cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    counts = Counter(body["id"] for body in hook.received)
    assert set(counts) == {f"o{n}" for n in range(3000)}  # none lost
    twice = [order_id for order_id, count in counts.items() if count > 1]
    assert len(twice) <= most_twice  # at most the calls in flight at the kill
    assert all(count <= 2 for count in counts.values())
    already = 3000 - (len(hook.received) - len(first))
    assert f"already done           {already} calls" in again.stderr
    assert "every event accounted for" in again.stderr
    assert not (tmp_path / "dead.ndjson.progress").exists()  # read to the end: nothing left to resume


def settled_count(hook) -> int:
    """What the hook received from a killed run, once a request it was still reading has been counted."""
    count = -1
    while count != len(hook.received):
        count = len(hook.received)
        time.sleep(0.3)
    return count


def test_restart_ignores_the_journal_and_sends_everything(hook, tmp_path):
    rules, events, dead = tmp_path / "rules.yaml", tmp_path / "events.ndjson", tmp_path / "dead.ndjson"
    rules.write_text(RULES.format(url=hook.base))
    orders(events, 300)
    process = subprocess.Popen(command(rules, [events], dead), cwd=ROOT, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    wait_for(lambda: len(hook.received) >= 150)
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=10)
    sent = settled_count(hook)
    assert (tmp_path / "dead.ndjson.progress").exists()
    hook.delay = 0
    assert main(["run", str(rules), str(events), "--dead-letter", str(dead), "--restart"]) == 0
    assert len(hook.received) == sent + 300


def test_a_journal_of_other_rules_or_inputs_is_not_used(tmp_path, capsys):
    out, dead = tmp_path / "audit.ndjson", tmp_path / "dead.ndjson"
    rules, events, other = tmp_path / "rules.yaml", tmp_path / "a.ndjson", tmp_path / "b.ndjson"
    rules.write_text(audit_rules(out))
    orders(events, 10)
    orders(other, 10, start=10)
    # A journal an interrupted run of the same command would leave: 6 events of a.ndjson done.
    from engine.resume import command_key, journal_path
    key = command_key(str(rules), [str(events)])
    progress = journal_path(str(dead))
    with open(progress, "w") as stream:
        json.dump({"key": key, "inputs": [str(events)], "done": {"audit": [0, 7]}}, stream)
    assert main(["run", str(rules), str(other), "--dead-letter", str(dead)]) == 0  # other inputs: all sent
    assert len(out.read_text().splitlines()) == 10
    with open(progress, "w") as stream:
        json.dump({"key": key, "inputs": [str(events)], "done": {"audit": [0, 7]}}, stream)
    assert main(["run", str(rules), str(events), "--dead-letter", str(dead)]) == 0  # the same command
    sent = [json.loads(line)["payload"]["data"]["id"] for line in out.read_text().splitlines()[10:]]
    assert sent == [f"o{n}" for n in range(6, 10)]  # lines 1..6 done before
    summary = capsys.readouterr().err
    assert "already done           6 calls" in summary and "every event accounted for" in summary
    assert not os.path.exists(progress)


def test_a_run_from_stdin_keeps_no_journal(tmp_path):
    out, dead, rules = tmp_path / "audit.ndjson", tmp_path / "dead.ndjson", tmp_path / "rules.yaml"
    rules.write_text(audit_rules(out))
    orders(tmp_path / "in.ndjson", 3)
    process = subprocess.run(command(rules, [], dead), cwd=ROOT, stdin=open(tmp_path / "in.ndjson", "rb"),
                             capture_output=True, timeout=60)
    assert process.returncode == 0
    assert len(out.read_text().splitlines()) == 3
    assert not (tmp_path / "dead.ndjson.progress").exists()


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_resumed_run_writes_no_dead_letter_record_twice(tmp_path, capsys, workers):
    out, dead, rules, events = tmp_path / "audit.ndjson", tmp_path / "dead.ndjson", tmp_path / "r.yaml", tmp_path / "e"
    rules.write_text(audit_rules(out))
    orders(events, 10)
    lines = events.read_text().splitlines(keepends=True)
    events.write_text("".join(lines[:3] + ["not json 1\n"] + lines[3:7] + ["not json 2\n"] + lines[7:]))
    from engine.resume import command_key, journal_path
    # An earlier run wrote the record of line 4 and delivered the calls of lines 1 to 5, then was killed.
    dead.write_text(json.dumps({"kind": "unreadable", "source": f"{events}:4", "line": "not json 1"}) + "\n")
    with open(journal_path(str(dead)), "w") as stream:
        json.dump({"key": command_key(str(rules), [str(events)]), "inputs": [str(events)],
                   "done": {"audit": [0, 6], "": [0, 5]}}, stream)
    assert main(["run", str(rules), str(events), "--dead-letter", str(dead), "--workers", workers]) == 0
    assert [json.loads(line)["source"] for line in dead.read_text().splitlines()] == [f"{events}:4", f"{events}:9"]
    assert [json.loads(line)["payload"]["data"]["id"] for line in out.read_text().splitlines()] == \
        [f"o{n}" for n in range(4, 10)]
    summary = capsys.readouterr().err
    assert "unreadable lines       2" in summary and "already done           4 calls" in summary


def test_kill_9_of_a_run_into_the_workspace_on_a_process_lane_then_the_same_command_stores_every_event(tmp_path):
    import sqlite3

    events, dead, db = tmp_path / "events.ndjson", tmp_path / "dead.ndjson", tmp_path / "w.db"
    count = 40_000
    with open(events, "w") as stream:
        for n in range(count):
            stream.write(json.dumps({"type": "track", "event": "Order Completed", "userId": f"u{n % 5000}",
                                     "messageId": f"m{n}", "properties": {"order_id": f"o{n}"}}) + "\n")
    run = command(ROOT / "rules" / "customerio.yaml", [events], dead, "--workspace", db, "--lanes", "process")

    def stored() -> list[str]:
        try:
            with sqlite3.connect(db, timeout=10) as connection:
                return [row[0] for row in connection.execute("SELECT event_id FROM customerio__events")]
        except sqlite3.OperationalError:  # not created yet
            return []

    process = subprocess.Popen(run, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wait_for(lambda: (tmp_path / "dead.ndjson.progress").exists())  # a transaction's outcomes are booked
    helpers = _descendants(process.pid)
    assert helpers, "the run has no delivery process"
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=10)
    first = len(stored())
    assert first < count, "the run ended before the kill: nothing tested"
    time.sleep(1)  # the store's process finishes its transaction in hand, then stops on its own
    assert len(stored()) - first <= 2 * 4096
    wait_for(lambda: not any(os.path.exists(f"/proc/{pid}") and _state(pid) != "Z" for pid in helpers), 10)
    again = subprocess.run(run, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    ids = stored()
    assert sorted(ids) == sorted(f"m{n}" for n in range(count))  # every event once: none lost, none twice
    assert "already done" in again.stderr and "every event accounted for" in again.stderr


def _state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


def _descendants(pid: int) -> set[int]:
    """Every process under ``pid``: its children, theirs, and so on."""
    parents: dict[int, int] = {}
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{entry}/stat") as stat:
                parents[int(entry)] = int(stat.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError):
            continue
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _position(source):
    """As a journal of the inputs b.ndjson and c.ndjson reads sources; a pretty-printed object's source
    is its file's bare name, which names no line."""
    name, _, number = (source or "").rpartition(":")
    return ({"b.ndjson": 0, "c.ndjson": 1}[name], int(number)) if name else None


BOOKED_CASES = [
    # (sources of the calls handed over, in order; the calls settled at each step; the journal's move at each)
    ("every call booked: past the last event", ["b.ndjson:1", "b.ndjson:2"], [[0, 1]], [(0, 3)]),
    ("a call not booked holds the journal at its event", ["b.ndjson:1", "b.ndjson:2", "b.ndjson:3"], [[0], [2], [1]],
     [(0, 2), None, (0, 4)]),
    ("a source that names no line is passed over", ["b.ndjson:1", "b.ndjson:2", "a.json"], [[0, 1, 2]], [(0, 3)]),
    ("and remembered past it", ["b.ndjson:1", "a.json"], [[0], [1]], [None, (0, 2)]),
    ("the next input", ["b.ndjson:7", "c.ndjson:1"], [[1, 0]], [(1, 2)]),
    ("nothing that reads as a position", ["a.json", None], [[0, 1]], [None]),
]


@pytest.mark.parametrize("sources, steps, moves", [case[1:] for case in BOOKED_CASES],
                         ids=[case[0] for case in BOOKED_CASES])
def test_where_a_lanes_journal_moves_as_its_calls_are_booked(sources, steps, moves):
    from engine.pipeline import _Booked

    booked, calls = _Booked(_position), [object() for _ in sources]
    for call, source in zip(calls, sources):
        booked.handed(call, source)  # type: ignore[arg-type]
    assert [booked.settled([calls[index] for index in step]) for step in steps] == moves  # type: ignore[misc]
