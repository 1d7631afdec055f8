"""Dead-letter and replay: failed calls are sent again, never lost, never sent twice."""
from __future__ import annotations

import io
import json

import pytest

from engine.loader import compile_paths
from engine.replay import ReplayError, journal_path, record_key, replay
from engine.run import DeadLetter, Progress, run
from scripted_server import Reply, refused_url

RULES = """\
version: 1
destination:
  name: hooks
  catalog: webhook
  settings: {url: "$URL/orders", max_attempts: 1, timeout: 2}
mappings:
  - name: Orders
    trigger: event = "Order Completed"
    action: send
    fields:
      data: {id: properties.order_id}
  - name: Contacts
    trigger: type = "identify"
    action: send
    fields:
      url: concat(`"$URL"`, '/contacts/', userId)
      data: {email: traits.email}
"""

EVENTS = [
    {"type": "track", "event": "Order Completed", "messageId": "m1", "properties": {"order_id": "o1"}},
    {"type": "identify", "userId": "u1", "messageId": "m2", "traits": {"email": "a@example.com"}},
    {"type": "track", "event": "Order Completed", "messageId": "m3", "properties": {"order_id": "o3"}},
    {"type": "bogus"},
]


@pytest.fixture
def failed_run(scripted, tmp_path):
    """A run whose deliveries all failed: (rules, dead-letter path, server)."""
    path = tmp_path / "rules.yaml"
    path.write_text(RULES.replace("$URL", scripted.url))
    rules, _ = compile_paths([str(path)])
    dead = tmp_path / "dead.ndjson"
    scripted.default = Reply(503, b'{"error": "not yet"}')
    dead_letter = DeadLetter(str(dead))
    summary = run(rules, [("events.ndjson", event) for event in EVENTS], dry_run=False, out=io.StringIO(),
                  dead_letter=dead_letter, progress=Progress(io.StringIO()))
    dead_letter.close()
    assert sum(summary.failed.values()) == 3 and len(scripted.requests) == 3
    scripted.requests.clear()
    scripted.default = Reply()
    return rules, dead, scripted


def sent(server) -> list:
    return [(r["path"], r["body"]) for r in server.requests]


def journal(dead) -> list[dict]:
    return [json.loads(line) for line in journal_path(dead).read_text().splitlines()]


ALL_THREE = [("/orders", {"id": "o1"}), ("/contacts/u1", {"email": "a@example.com"}), ("/orders", {"id": "o3"})]


def test_refused_calls_stay_in_place_unless_asked(scripted, tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text(RULES.replace("$URL", scripted.url))
    rules, _ = compile_paths([str(path)])
    dead = tmp_path / "dead.ndjson"
    scripted.default = Reply(422, b'{"error": "no such plan"}')
    dead_letter = DeadLetter(str(dead))
    summary = run(rules, [("events.ndjson", event) for event in EVENTS], dry_run=False, out=io.StringIO(),
                  dead_letter=dead_letter, progress=Progress(io.StringIO()))
    dead_letter.close()
    assert sum(summary.refused.values()) == 3 and not sum(summary.failed.values())
    assert {json.loads(line).get("outcome") for line in dead.read_text().splitlines()} >= {"refused"}
    scripted.requests.clear()
    scripted.default = Reply()

    skipped = replay(rules, dead, out_dead_letter=tmp_path / "again.ndjson")
    assert skipped.refused_skipped == 3 and sent(scripted) == [] and skipped.ok
    forced = replay(rules, dead, out_dead_letter=tmp_path / "again.ndjson", include_refused=True)
    assert sent(scripted) == ALL_THREE and sum(forced.delivered.values()) == 3


def test_replay_sends_each_failed_call_and_journals_it(failed_run, tmp_path):
    rules, dead, server = failed_run
    before = dead.read_text()
    summary = replay(rules, dead, out_dead_letter=tmp_path / "again.ndjson")
    assert sent(server) == ALL_THREE
    assert server.requests[0]["headers"]["Content-Type"] == "application/json"
    assert (summary.records, summary.other_kinds, summary.already_replayed) == (4, 1, 0)
    assert summary.delivered == {("hooks", "Orders"): 2, ("hooks", "Contacts"): 1} and not summary.failed
    assert summary.ok and not (tmp_path / "again.ndjson").exists()
    assert [(e["result"], e["messageId"], e["mapping"]) for e in journal(dead)] == [
        ("delivered", "m1", "Orders"), ("delivered", "m2", "Contacts"), ("delivered", "m3", "Orders")]
    assert dead.read_text() == before  # the dead-letter file itself is never changed


def test_replaying_twice_sends_nothing_twice(failed_run, tmp_path):
    rules, dead, server = failed_run
    replay(rules, dead, out_dead_letter=tmp_path / "again.ndjson")
    second = replay(rules, dead, out_dead_letter=tmp_path / "again.ndjson")
    assert sent(server) == ALL_THREE
    assert second.already_replayed == 3 and not second.delivered and len(journal(dead)) == 3


def test_calls_that_fail_again_move_to_the_new_dead_letter_file(failed_run, tmp_path):
    rules, dead, server = failed_run
    server.script(Reply(503, b'{"error": "still down"}'), path="/contacts/u1")
    again = tmp_path / "again.ndjson"
    summary = replay(rules, dead, out_dead_letter=again)
    assert summary.failed == {("hooks", "Contacts"): 1} and not summary.ok
    (record,) = [json.loads(line) for line in again.read_text().splitlines()]
    assert (record["kind"], record["status"], record["body"], record["attempts"]) == (
        "delivery_failed", 503, '{"error": "still down"}', 1)
    assert record["reason"] == f"HTTP 503 from {server.url}/contacts/u1"
    assert record["call"]["messageId"] == "m2" and record["call"]["payload"]["data"] == {"email": "a@example.com"}
    assert [(e["result"], e.get("to")) for e in journal(dead)] == [
        ("delivered", None), ("requeued", str(again)), ("delivered", None)]

    # The requeued call now belongs to the new file: replaying the old one again sends nothing,
    # replaying the new one delivers it, once.
    replay(rules, dead, out_dead_letter=again)
    assert len(server.requests) == 3
    final = replay(rules, again, out_dead_letter=tmp_path / "third.ndjson")
    assert final.delivered == {("hooks", "Contacts"): 1}
    replay(rules, again, out_dead_letter=tmp_path / "third.ndjson")
    assert sent(server)[3:] == [("/contacts/u1", {"email": "a@example.com"})]


def test_the_same_file_can_be_its_own_new_dead_letter_file(failed_run):
    rules, dead, server = failed_run
    server.script(Reply(500), path="/contacts/u1")
    first = replay(rules, dead, out_dead_letter=dead)
    assert first.failed == {("hooks", "Contacts"): 1}
    second = replay(rules, dead, out_dead_letter=dead)
    assert second.delivered == {("hooks", "Contacts"): 1} and second.already_replayed == 3
    third = replay(rules, dead, out_dead_letter=dead)
    assert third.already_replayed == 4 and not third.delivered
    assert [p for p, _ in sent(server)].count("/contacts/u1") == 2


def test_identical_failed_calls_are_separate_records(failed_run, tmp_path):
    rules, dead, server = failed_run
    lines = dead.read_text().splitlines()
    first_failure = next(line for line in lines if '"delivery_failed"' in line)
    dead.write_text("\n".join(lines + [first_failure]) + "\n")
    summary = replay(rules, dead, out_dead_letter=tmp_path / "again.ndjson")
    assert summary.delivered[("hooks", "Orders")] == 3
    assert [p for p, b in sent(server)] == ["/orders", "/contacts/u1", "/orders", "/orders"]
    keys = [e["key"] for e in journal(dead)]
    assert len(set(keys)) == 4 and keys[-1].endswith("#1")


def test_a_journal_line_cut_short_by_a_crash_means_not_settled(failed_run, tmp_path):
    rules, dead, server = failed_run
    call = json.loads(next(line for line in dead.read_text().splitlines() if '"delivery_failed"' in line))["call"]
    journal_path(dead).write_text(json.dumps({"key": record_key(call, 0), "result": "delivered"}) + '\n{"key": "ab')
    summary = replay(rules, dead, out_dead_letter=tmp_path / "again.ndjson")
    assert summary.already_replayed == 1 and sum(summary.delivered.values()) == 2
    assert sent(server) == ALL_THREE[1:]


def test_records_for_unknown_destinations_stay_in_place(failed_run, tmp_path):
    rules, dead, server = failed_run
    record = {"kind": "delivery_failed", "reason": "x", "call": {
        "destination": "gone", "mapping": "M", "action": "send", "messageId": "z", "payload": {"url": "http://x"}}}
    with dead.open("a") as stream:
        stream.write(json.dumps(record) + "\nnot json\n")
    summary = replay(rules, dead, out_dead_letter=tmp_path / "again.ndjson")
    assert (summary.unroutable, summary.unreadable) == (1, 1) and not summary.ok
    assert len(journal(dead)) == 3  # the unroutable record is not journaled: a later replay can still send it
    assert "left in place" in summary.render()


def test_a_second_replay_of_the_same_file_at_once_is_refused(failed_run, tmp_path):
    fcntl = pytest.importorskip("fcntl")
    rules, dead, server = failed_run
    with open(journal_path(dead), "a") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(ReplayError, match="another replay"):
            replay(rules, dead, out_dead_letter=tmp_path / "again.ndjson")
    assert server.requests == []


def test_a_missing_dead_letter_file_is_an_error(tmp_path):
    with pytest.raises(ReplayError):
        replay(None, tmp_path / "nope.ndjson", out_dead_letter=tmp_path / "out.ndjson")


def test_the_summary_renders_per_mapping_counts(failed_run, tmp_path):
    rules, dead, server = failed_run
    server.script(Reply(503), Reply(200), path="/orders")
    server.script(Reply(404), path="/contacts/u1")
    # max_attempts is 1 in these rules: the 503 fails, the 404 is refused, only the third call gets through.
    summary = replay(rules, dead, out_dead_letter=tmp_path / "again.ndjson")
    text = summary.render()
    assert "failed again         1  -> " in text and "refused again        1  -> " in text
    assert summary.to_dict()["delivered"] == {"hooks / Orders": 1}
    assert summary.to_dict()["failed"] == {"hooks / Orders": 1}
    assert summary.to_dict()["refused"] == {"hooks / Contacts": 1}


def test_calls_settled_later_by_a_batching_adapter_are_journaled_too(scripted, tmp_path, monkeypatch):
    from conftest import ROOT
    from engine.adapters.customerio_http import CustomerioHttpAdapter
    from engine.delivery import FAILED, Outcome
    from scripted_server import customerio_context, fast_retrier
    environ = {"CUSTOMERIO_SITE_ID": "s", "CUSTOMERIO_API_KEY": "k", "CUSTOMERIO_BASE_URL": scripted.url}
    rules, _ = compile_paths([str(ROOT / "rules" / "customerio.yaml")], environ)
    events = [{"type": "track", "event": "Order Completed", "userId": f"u{n}", "messageId": f"m{n}"} for n in range(3)]
    dead = tmp_path / "dead.ndjson"
    dead.write_text("".join(json.dumps(Outcome(FAILED, 5, 503, "down", "HTTP 503", call=call).dead_letter_record(
        "events.ndjson")) + "\n" for event in events for call in rules.evaluate(event).calls))
    monkeypatch.setattr("engine.replay.open_adapter", lambda destination, store=None: CustomerioHttpAdapter(
        customerio_context(destination.settings), retrier=fast_retrier()))
    scripted.script(Reply(207, {"errors": [{"batch_index": 2, "reason": "invalid", "message": "no"}]}))

    summary = replay(rules, dead, out_dead_letter=tmp_path / "again.ndjson")
    (request,) = scripted.requests
    assert request["path"] == "/api/v2/batch" and len(request["body"]["batch"]) == 3
    assert summary.delivered == {("customerio", "Track Event"): 2}
    assert summary.refused == {("customerio", "Track Event"): 1}
    assert [(e["messageId"], e["result"]) for e in journal(dead)] == [
        ("m0", "delivered"), ("m1", "delivered"), ("m2", "requeued")]
    assert replay(rules, dead, out_dead_letter=tmp_path / "again.ndjson").already_replayed == 3
    assert len(scripted.requests) == 1


def test_records_holding_a_lone_surrogate_or_a_5000_digit_integer_are_replayed_not_a_traceback(scripted, tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text(RULES.replace("$URL", scripted.url))
    rules, _ = compile_paths([str(path)])
    big = 7 * (10 ** 5000 - 1) // 9  # 5,000 sevens
    dead = tmp_path / "dead.ndjson"
    writer = DeadLetter(str(dead))
    for message_id, order_id in (("m1", "o\udfff"), ("m2", big), ("m3", "o3")):
        writer.write({"kind": "delivery_failed", "outcome": "failed", "source": "f:1", "reason": "HTTP 503",
                      "call": {"destination": "hooks", "mapping": "Orders", "action": "send", "messageId": message_id,
                               "payload": {"url": f"{scripted.url}/orders", "data": {"id": order_id}}}})
    writer.close()
    summary = replay(rules, dead, out_dead_letter=tmp_path / "again.ndjson")
    # The surrogate cannot be sent (JSON text cannot carry it): refused again; the others are delivered.
    bodies = [request["raw"] for request in scripted.requests]
    assert bodies == [b'{"id":' + b"7" * 5000 + b"}", b'{"id":"o3"}']  # the integer as written, whole
    assert (sum(summary.delivered.values()), sum(summary.refused.values())) == (2, 1)
    assert record_key({"id": "o\udfff"}, 0) != record_key({"id": "o\ufffd"}, 0)  # keys stay distinct


def test_a_replay_killed_with_kill_9_sends_again_at_most_the_slice_it_was_sending(scripted, tmp_path):
    """Its journal line follows each slice: the whole file went to the destination in one delivery, booked
    only at its end, and the next replay sent again every call the killed one had delivered (2,672 of 3,000)."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from collections import Counter

    from conftest import ROOT

    path = tmp_path / "rules.yaml"
    path.write_text(RULES.replace("$URL", scripted.url))
    dead = tmp_path / "dead.ndjson"
    calls = [{"kind": "delivery_failed", "outcome": "failed", "source": f"events:{n}", "reason": "down",
              "status": 503, "attempts": 1, "call": {"destination": "hooks", "mapping": "Orders", "action": "send",
                                                    "messageId": f"m{n}", "payload": {"url": f"{scripted.url}/orders",
                                                                                     "method": "POST",
                                                                                     "data": {"id": n}}}}
             for n in range(3000)]
    dead.write_text("".join(json.dumps(record) + "\n" for record in calls))
    argv = [sys.executable, "-m", "engine", "replay", str(dead), "--rules", str(path)]
    killed = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while len(scripted.requests) < 1000 and killed.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait()
    before = len(scripted.requests)
    assert 1000 <= before < 3000, before
    finished = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert finished.returncode == 0, finished.stderr
    times = Counter(request["body"]["id"] for request in scripted.requests)
    assert set(times) == set(range(3000))
    again = sum(count - 1 for count in times.values())
    assert again <= 256, f"{again} calls sent twice"


def test_a_replay_sends_to_the_url_the_destination_has_now_and_keeps_a_url_the_mapping_wrote(scripted, tmp_path):
    # The webhook moved: its `url` setting now names the new server. The Orders calls took their URL from
    # that setting and go there; the Contacts mapping wrote its own URL, which is the call's data, kept.
    old = refused_url()
    path = tmp_path / "rules.yaml"
    path.write_text(RULES.replace("$URL", old))
    rules, _ = compile_paths([str(path)])
    dead = tmp_path / "dead.ndjson"
    dead_letter = DeadLetter(str(dead))
    run(rules, [("events.ndjson", event) for event in EVENTS], dry_run=False, out=io.StringIO(),
        dead_letter=dead_letter, progress=Progress(io.StringIO()))
    dead_letter.close()
    path.write_text(RULES.replace('"$URL/orders"', f'"{scripted.url}/orders"').replace("$URL", old))
    moved, _ = compile_paths([str(path)])
    summary = replay(moved, dead, out_dead_letter=tmp_path / "again.ndjson")
    assert sent(scripted) == [("/orders", {"id": "o1"}), ("/orders", {"id": "o3"})]
    assert sum(summary.delivered.values()) == 2 and sum(summary.failed.values()) == 1
    (again,) = [json.loads(line) for line in (tmp_path / "again.ndjson").read_text().splitlines()]
    assert again["call"]["payload"]["url"] == f"{old}/contacts/u1"
