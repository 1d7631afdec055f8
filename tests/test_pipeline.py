"""The pipeline: one lane per destination, exactly one outcome per call, nothing lost to a bad adapter."""
from __future__ import annotations

import json
import sqlite3
import time

import pytest
from buggy_store import BuggyStore

from engine.adapters.contract import RAISING_ALONE, AdapterContext
from engine.adapters.remote import RemoteAdapter
from engine.deadletter import DeadLetter
from engine.delivery.outcome import DELIVERED, Outcome
from engine.loader import compile_paths
from engine.model import ActionCall
from engine.pipeline import Lane, Ledger, Pipeline
from engine.run import open_adapters
from scripted_server import Reply

TWO_WEBHOOKS = """\
version: 1
destination:
  name: {name}
  catalog: webhook
  settings: {{url: "{url}/{name}", max_attempts: 1, timeout: 5}}
mappings:
  - name: Orders
    trigger: event = "Order Completed"
    action: send
    fields:
      data: {{id: properties.order_id, user: userId}}
"""


def order(n: int, user: str = "u1") -> dict:
    return {"type": "track", "event": "Order Completed", "userId": user, "messageId": f"m{n}",
            "properties": {"order_id": f"o{n}"}}


def two_destinations(tmp_path, url):
    for name in ("slow", "fast"):
        (tmp_path / f"{name}.yaml").write_text(TWO_WEBHOOKS.format(name=name, url=url))
    rules, problems = compile_paths([str(tmp_path)])
    assert rules is not None, problems
    return rules


def test_a_destination_that_hangs_does_not_hold_back_another(scripted, tmp_path):
    scripted.script(*[Reply(delay=0.5) for _ in range(20)], path="/slow")
    rules = two_destinations(tmp_path, scripted.url)
    pipeline = Pipeline(rules, dead_letter=DeadLetter(None), adapters=open_adapters(rules), hand_over=1)
    started = time.monotonic()
    for n in range(20):
        pipeline.submit(order(n), f"events:{n + 1}")
    assert pipeline.lanes["fast"].wait_idle(timeout=3)
    fast_done = time.monotonic() - started
    assert len(scripted.to("/fast")) == 20 and fast_done < 2  # the slow one takes 10 s for its 20 calls
    assert pipeline.lanes["slow"].pending > 10
    pipeline.lanes["slow"].adapter.sender.timeout = 0.01  # let the rest fail fast: the test is done
    scripted.scripts.clear()
    summary = pipeline.close()
    assert summary.delivered[("fast", "Orders")] == 20
    assert sum(summary.calls.values()) == 40 and summary.accounted


def test_each_persons_calls_reach_the_destination_in_event_order(scripted, tmp_path):
    rules = two_destinations(tmp_path, scripted.url)
    pipeline = Pipeline(rules, dead_letter=DeadLetter(None), adapters=open_adapters(rules), hand_over=3)
    events = [order(n, user=f"u{n % 3}") for n in range(30)]
    for n, event in enumerate(events):
        pipeline.submit(event, f"events:{n + 1}")
    pipeline.close()
    for user in ("u0", "u1", "u2"):
        expected = [e["properties"]["order_id"] for e in events if e["userId"] == user]
        assert [r["body"]["id"] for r in scripted.to("/fast") if r["body"]["user"] == user] == expected


class _Broken:
    """An adapter with a bug: it raises for some calls and never answers for others."""

    def __init__(self, context: AdapterContext):
        self.held: list = []
        self.seen = 0

    def deliver(self, calls):
        self.seen += len(calls)
        if any(call.payload["data"]["id"] == "o1" for call in calls):
            raise RuntimeError("boom")
        forgotten = [call for call in calls if call.payload["data"]["id"] in ("o3", "o4")]
        self.held += forgotten  # and never answers for them
        return [Outcome(DELIVERED, 1, call=call) for call in calls if call not in forgotten]

    def poll(self):
        return []

    def close(self):
        return []


def test_an_adapter_bug_fails_its_own_calls_and_every_call_still_has_one_outcome(scripted, tmp_path):
    rules = two_destinations(tmp_path, scripted.url)
    adapters = open_adapters(rules)
    adapters["slow"].close()
    adapters["slow"] = _Broken(AdapterContext("slow", "webhook", "http", {}))
    dead = tmp_path / "dead.ndjson"
    dead_letter = DeadLetter(str(dead))
    pipeline = Pipeline(rules, dead_letter=dead_letter, adapters=adapters)
    for n in range(6):
        pipeline.submit(order(n), f"events:{n + 1}")
        deadline = time.monotonic() + 5
        while adapters["slow"].seen <= n and time.monotonic() < deadline:  # one call per deliver
            time.sleep(0.005)
    summary = pipeline.close()
    dead_letter.close()
    assert summary.delivered[("fast", "Orders")] == 6
    slow = ("slow", "Orders")
    assert (summary.delivered[slow], summary.failed[slow]) == (3, 3)
    reasons = [line for line in dead.read_text().splitlines()]
    assert any("failed: RuntimeError: boom" in line for line in reasons)
    assert any("gave no outcome for this call" in line for line in reasons)
    assert summary.accounted and summary.dead_lettered == summary.failed[slow]


def test_flush_waits_for_every_outcome_and_the_dead_letters_are_on_disk(scripted, tmp_path):
    scripted.default = Reply(503)
    rules = two_destinations(tmp_path, scripted.url)
    dead = tmp_path / "dead.ndjson"
    pipeline = Pipeline(rules, dead_letter=DeadLetter(str(dead)), adapters=open_adapters(rules))
    for n in range(5):
        pipeline.submit(order(n), f"events:{n + 1}")
    assert pipeline.flush(timeout=10)
    assert len(dead.read_text().splitlines()) == 10  # before close: flushed as they were booked
    pipeline.close()


def test_a_batch_answer_settles_each_call_with_every_field_of_the_answer():
    from dataclasses import fields, replace

    from engine.model import ActionCall

    answer = Outcome("failed", 3, 503, "busy", "retries used up", 1.5, None, response=object())
    call = ActionCall("customerio", "m", "event", "id-1", {"name": "x"})
    settled = answer.for_call(call)
    assert settled.call is call
    assert all(getattr(settled, f.name) is getattr(replace(answer, call=call), f.name) for f in fields(Outcome))


class Recording:
    """An adapter that delivers at once and notes the size of each ``deliver``; ``gather`` if given."""

    def __init__(self, gather: int | None = None):
        self.sizes: list[int] = []
        if gather is not None:
            self.gather = gather

    def deliver(self, calls):
        self.sizes.append(len(calls))
        return [Outcome(DELIVERED, 1, call=call) for call in calls]

    def poll(self):
        return []

    def close(self):
        return []


def test_a_lane_hands_an_adapter_that_names_its_gather_that_many_calls_even_while_journaling(tmp_path):
    from engine.resume import ProgressJournal

    (tmp_path / "rules.yaml").write_text(TWO_WEBHOOKS.format(name="hooks", url="http://127.0.0.1:9"))
    rules, problems = compile_paths([str(tmp_path / "rules.yaml")])
    assert rules is not None, problems
    for gather, biggest in ((None, 64), (300, 300)):
        adapter = Recording(gather)
        journal = ProgressJournal(str(tmp_path / "progress"), "key", ["events"])
        pipeline = Pipeline(rules, dead_letter=DeadLetter(None), adapters={"hooks": adapter}, journal=journal)
        pipeline.submit_many([(f"events:{n + 1}", order(n)) for n in range(1000)])
        pipeline.close()
        assert sum(adapter.sizes) == 1000
        # Paced, a journaling lane starts at 64 calls; an adapter with a gather gets its number at once.
        assert adapter.sizes[0] == biggest and max(adapter.sizes) <= (4096 if gather is None else gather)


def _store_calls(count: int, broken: set[int]) -> list[ActionCall]:
    return [ActionCall("store", "Orders", "send", {"m": n} if n in broken else {"n": n}, f"m{n}")
            for n in range(count)]


@pytest.mark.parametrize("lanes", ["thread", "process"])
def test_calls_that_make_an_adapter_raise_fail_alone_and_their_slice_is_delivered(tmp_path, lanes):
    """A bug the adapter meets on three calls of a slice of 2,000 (one transaction) costs those three calls:
    the slice is given to it again a call at a time; the others land once each, in order."""
    store = tmp_path / "store.db"
    context = AdapterContext("store", "webhook", "stand-in", {"path": str(store)})
    adapter = BuggyStore(context) if lanes == "thread" else RemoteAdapter(context, "buggy_store:BuggyStore")
    dead = tmp_path / "dead.ndjson"
    ledger = Ledger(DeadLetter(str(dead)))
    lane = Lane("store", adapter, ledger)
    broken = {5, 999, 1998}
    calls = _store_calls(2000, broken)
    lane.put([(call, f"events:{n + 1}") for n, call in enumerate(calls)])
    lane.close()
    ledger.dead_letter.close()
    summary = ledger.summary
    assert (summary.delivered["store", "Orders"], summary.failed["store", "Orders"]) == (1997, 3)
    records = [json.loads(line) for line in dead.read_text().splitlines()]
    assert [(r["source"], r["reason"]) for r in records] == [
        (f"events:{n + 1}", "the adapter of 'store' failed: KeyError: 'n'") for n in sorted(broken)]
    with sqlite3.connect(store) as db:
        assert [n for (n,) in db.execute("SELECT n FROM applied ORDER BY rowid")] == \
            [n for n in range(2000) if n not in broken]
        assert db.execute("SELECT count(*), sum(raised) FROM deliveries").fetchone() == (2001, 4)


def test_an_adapter_that_raises_for_every_call_fails_a_slice_after_a_bounded_number_of_tries(tmp_path):
    store = tmp_path / "store.db"
    ledger = Ledger(DeadLetter(None))
    lane = Lane("store", BuggyStore(AdapterContext("store", "webhook", "stand-in", {"path": str(store)})), ledger)
    lane.put([(call, None) for call in _store_calls(4000, set(range(4000)))])
    lane.close()
    assert ledger.summary.failed["store", "Orders"] == 4000
    with sqlite3.connect(store) as db:
        tried = 1 + RAISING_ALONE  # the slice, then calls alone until that many raised
        assert db.execute("SELECT count(*), sum(raised) FROM deliveries").fetchone() == (tried, tried)


class _SendsInOrder:
    """A transport that sends each call as it goes and raises on some: what it sent before it raised went out."""

    def __init__(self, bad: set[str]):
        self.bad, self.sent = bad, []

    def deliver(self, calls):
        outcomes = []
        for call in calls:
            if call.message_id in self.bad:
                raise RuntimeError(f"cannot take {call.message_id}")
            self.sent.append(call.message_id)
            outcomes.append(Outcome(DELIVERED, 1, call=call))
        return outcomes

    def poll(self):
        return []

    def close(self):
        return []


def test_a_call_is_sent_at_most_twice_when_its_slice_raised():
    from engine.adapters.contract import deliver_apart

    transport = _SendsInOrder({"m4095"})
    calls = [ActionCall("hooks", "Orders", "send", {}, f"m{n}") for n in range(4096)]
    outcomes = deliver_apart(transport.deliver, calls, "hooks")
    assert [o.state for o in outcomes].count("failed") == 1 and len(outcomes) == 4096
    assert max(transport.sent.count(f"m{n}") for n in range(4095)) == 2


def test_a_persons_calls_after_one_that_failed_are_held_back_in_order():
    """Under serve: bob's call raises, ann's first call comes back failed; neither's later call is sent."""
    from engine.adapters.contract import HELD_BACK, deliver_apart
    from engine.delivery.outcome import FAILED

    people = {"a1": "ann", "b1": "bob", "a2": "ann", "b2": "bob", "c1": "cid"}
    sent = []

    def deliver(calls):
        if any(call.message_id == "b1" for call in calls):
            raise RuntimeError("bug")
        sent.extend(call.message_id for call in calls)
        return [Outcome(FAILED if call.message_id == "a1" else DELIVERED, 1, call=call) for call in calls]

    calls = [ActionCall("hooks", "Orders", "send", {}, name) for name in ("a1", "b1", "a2", "b2", "c1")]
    outcomes = deliver_apart(deliver, calls, "hooks", person=lambda call: people[call.message_id])
    states = {o.call.message_id: (o.state, o.message == HELD_BACK) for o in outcomes}
    assert states == {"a1": ("failed", False), "b1": ("failed", False), "a2": ("failed", True),
                      "b2": ("failed", True), "c1": ("delivered", False)}
    assert sent == ["a1", "c1"]


class _PollBreaks:
    """A batching adapter whose poll raises: it holds each call, then its lane's thread ends."""

    def deliver(self, calls):
        return []

    def poll(self):
        raise RuntimeError("poll broke")

    def close(self):
        return []


def test_calls_handed_to_a_lane_that_stopped_are_failed_and_a_closed_pipeline_takes_nothing(scripted, tmp_path):
    """Both lost calls without a trace: the lane's thread had ended, so what was put on its queue stayed there,
    and flush said every call had its outcome."""
    from engine.pipeline import PipelineClosed

    rules = two_destinations(tmp_path, scripted.url)
    adapters = open_adapters(rules)
    adapters["slow"].close()
    adapters["slow"] = _PollBreaks()
    dead = tmp_path / "dead.ndjson"
    pipeline = Pipeline(rules, dead_letter=DeadLetter(str(dead)), adapters=adapters, hand_over=1)
    pipeline.submit(order(0), "events:1")
    deadline = time.monotonic() + 5
    while pipeline.lanes["slow"]._thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    for n in range(1, 4):
        pipeline.submit(order(n), f"events:{n + 1}")
    assert pipeline.flush(timeout=5)
    summary = pipeline.close()
    slow = ("slow", "Orders")
    assert (summary.calls[slow], summary.failed[slow]) == (4, 4) and summary.accounted
    reasons = [json.loads(line)["reason"] for line in dead.read_text().splitlines()]
    assert sum("stopped: RuntimeError: poll broke" in reason for reason in reasons) == 3
    with pytest.raises(PipelineClosed):
        pipeline.submit(order(9), "events:10")
