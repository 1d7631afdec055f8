"""``switchyard serve`` through a destination outage: held, delivered again in order, or dead-lettered at a limit.

A real webhook receiver on 127.0.0.1 answers 503 while it is "down"; the server runs as a real
process (tests/serving.py) with short backoff options, so an outage lasts a second, not an hour.
"""
from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hooks import Hook

from conftest import ROOT
from serving import Served, hook_rules, no_server_left_running, track, wait, workspace_event_ids  # noqa: F401  (an autouse fixture)

PACK = (ROOT / "rules" / "customerio.yaml").read_text()
FAST = ("--backoff-first", "50ms", "--backoff-max", "200ms")



@pytest.fixture
def hook():
    hook = Hook(down=True)
    yield hook
    hook.close()


def dead_letters(tmp_path) -> list[dict]:
    path = tmp_path / "deadletter.ndjson"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def in_person_order(received: list[dict]) -> bool:
    """Each person's calls arrived with their numbers rising (first deliveries; a repeat may follow)."""
    seen: dict[str, list[int]] = {}
    for body in received:
        numbers = seen.setdefault(body["user"], [])
        if body["n"] not in numbers:
            numbers.append(body["n"])
    return all(numbers == sorted(numbers) for numbers in seen.values())


def test_an_outage_holds_the_calls_and_delivers_them_in_order_after_it_while_the_others_go_on(tmp_path, hook):
    server = Served(hook_rules(tmp_path, hook.url, timeout=5, breaker=False), tmp_path, *FAST).start()
    for start in (0, 10, 20):
        assert server.post("/v1/batch", {"batch": [track(n) for n in range(start, start + 10)]})[0] == 200
    wait(lambda: len(workspace_event_ids(server.workspace)) == 30)  # the other destination goes on
    wait(lambda: hook.refused >= 6)  # tried again, not given up
    # Held: the calls of the chunks in hand (at most two; how the 30 events fell into chunks depends on
    # when the destination read them); the rest waits in the spool.
    wait(lambda: server.metric('switchyard_calls_waiting_retry{destination="hook"}') >= 10)
    assert server.metric('switchyard_calls_waiting_retry{destination="hook"}') <= 30
    assert server.metric('switchyard_oldest_waiting_retry_seconds{destination="hook"}') > 0
    assert server.metric('switchyard_calls_total{destination="hook"') == 0
    assert server.metric("switchyard_spool_depth") == 30  # the backlog waits in the spool
    assert server.post("/v1/batch", {"batch": [track(n) for n in range(30, 33)]})[0] == 200  # ingestion goes on

    hook.down = False
    wait(lambda: len(hook.received) == 33)
    assert [body["n"] for body in hook.received if body["user"] == "u0"] == list(range(0, 33, 3))
    assert in_person_order(hook.received)
    wait(lambda: server.metric("switchyard_spool_depth") == 0)
    assert server.metric('switchyard_calls_waiting_retry{destination="hook"}') == 0
    assert server.metric('switchyard_calls_total{destination="hook",outcome="delivered"}') == 33
    assert dead_letters(tmp_path) == []
    assert server.stop() == 0


def customerio_over_http(tmp_path, url: str) -> Path:
    """The Customer.io pack over HTTP to ``url`` (batching on, as shipped), one attempt a request, no breaker."""
    folder = tmp_path / "rules"
    folder.mkdir(exist_ok=True)
    settings = (f"  settings:\n    site_id: s\n    api_key: k\n    base_url: {url}\n    max_attempts: 1\n"
                "    timeout: 5\n    circuit_breaker: {failures: 0}\n")
    shipped = PACK[PACK.index("  settings:\n"):PACK.index("\nmappings:")]
    pack = PACK.replace(shipped, "  transport: http\n" + settings, 1)
    (folder / "customerio.yaml").write_text(pack)
    return folder


def test_a_batching_transport_holds_failed_batches_and_delivers_them_in_order_after_the_outage(tmp_path, hook):
    server = Served(customerio_over_http(tmp_path, hook.base), tmp_path, *FAST).start()
    assert server.post("/v1/batch", {"batch": [track(n) for n in range(30)]})[0] == 200  # one chunk: all held
    wait(lambda: server.metric('switchyard_calls_waiting_retry{destination="customerio"}') == 30)
    wait(lambda: hook.refused >= 3)  # batches tried again while it is down
    assert server.metric("switchyard_spool_depth") == 30 and dead_letters(tmp_path) == []

    hook.down = False
    wait(lambda: server.metric("switchyard_spool_depth") == 0)
    items = [item for body in hook.received for item in body.get("batch", [body])]
    numbers = [(item["identifiers"]["id"], item["attributes"]["n"]) for item in items]
    assert sorted({n for _, n in numbers}) == list(range(30))
    for user in ("u0", "u1", "u2"):
        mine = [n for who, n in numbers if who == user]
        assert mine == sorted(mine), mine
    assert server.metric('switchyard_calls_total{destination="customerio"') == 30
    assert server.metric('switchyard_calls_waiting_retry{destination="customerio"}') == 0
    assert dead_letters(tmp_path) == []
    assert server.stop() == 0


def test_a_reload_at_its_deadline_with_a_batch_in_hand_dead_letters_nothing_and_loses_nothing(tmp_path, hook):
    server = Served(customerio_over_http(tmp_path, hook.base), tmp_path, *FAST, "--stop-deadline", "0.2").start()
    assert server.post("/v1/batch", {"batch": [track(n) for n in range(9)]})[0] == 200
    time.sleep(0.3)  # read from the spool and handed to the transport, whose batch waits a second
    server.process.send_signal(signal.SIGHUP)  # the deadline passes first; closing, the old transport sends
    wait(lambda: "reload: rules loaded" in server.log.read_text())  # its batch, which fails
    time.sleep(0.5)
    assert dead_letters(tmp_path) == []  # the new rules deliver those events again from the spool

    hook.down = False
    wait(lambda: server.metric("switchyard_spool_depth") == 0)
    items = [item for body in hook.received for item in body.get("batch", [body])]
    assert {item["attributes"]["n"] for item in items} == set(range(9))
    assert dead_letters(tmp_path) == []
    assert server.stop() == 0


def test_past_give_up_after_the_calls_are_dead_lettered_as_failed_and_replay_delivers_them(tmp_path, hook):
    rules = hook_rules(tmp_path, hook.url, timeout=5, breaker=False)
    server = Served(rules, tmp_path, *FAST, "--give-up-after", "1s").start()
    assert server.post("/v1/batch", {"batch": [track(n, users=2) for n in range(6)]})[0] == 200
    wait(lambda: len(dead_letters(tmp_path)) == 6)
    records = dead_letters(tmp_path)
    first = [r for r in records if r["call"]["messageId"] in ("m-0", "m-1")]
    behind = [r for r in records if r not in first]
    assert {(r["outcome"], r["status"], r["call"]["destination"]) for r in first} == {("failed", 503, "hook")}
    assert all(r["attempts"] >= 2 for r in first), records
    # Each person's later calls were never sent: they waited behind the first one.
    assert {(r["outcome"], r["status"], r["attempts"]) for r in behind} == {("failed", None, 0)}
    assert all("held behind an earlier call" in r["reason"] for r in behind)
    assert "not delivered within 1s" in records[0]["reason"]
    # In each person's order in the file, so a replay keeps it.
    for user in ("u0", "u1"):
        numbers = [r["call"]["payload"]["data"]["n"] for r in records if r["call"]["payload"]["data"]["user"] == user]
        assert numbers == sorted(numbers)
    wait(lambda: server.metric("switchyard_spool_depth") == 0)  # dead-lettered: the destination moved on
    assert server.stop() == 0

    hook.down = False
    replayed = subprocess.run([sys.executable, "-m", "engine", "replay", str(tmp_path / "deadletter.ndjson"),
                               "--rules", str(rules / "hook.yaml"), "--dead-letter", str(tmp_path / "again.ndjson")],
                              cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert replayed.returncode == 0, replayed.stderr
    assert sorted(body["n"] for body in hook.received) == list(range(6))
    assert in_person_order(hook.received)


def test_max_delivery_attempts_dead_letters_after_that_many_deliveries(tmp_path, hook):
    server = Served(hook_rules(tmp_path, hook.url, timeout=5, breaker=False), tmp_path, *FAST, "--max-delivery-attempts", "3").start()
    assert server.post("/v1/batch", {"batch": [track(0)]})[0] == 200
    wait(lambda: len(dead_letters(tmp_path)) == 1)
    (record,) = dead_letters(tmp_path)
    assert (record["outcome"], record["status"], record["attempts"]) == ("failed", 503, 3)
    assert hook.refused == 3
    assert server.stop() == 0


def test_kill_9_during_an_outage_then_a_restart_after_it_delivers_everything(tmp_path, hook):
    rules = hook_rules(tmp_path, hook.url, timeout=5, breaker=False)
    server = Served(rules, tmp_path, *FAST).start()
    # One request, one commit: the destination reads all 40 in one chunk, so all of them are held. (Sent as
    # several requests, a slow machine could split them over more chunks than a destination takes at once.)
    assert server.post("/v1/batch", {"batch": [track(n) for n in range(40)]})[0] == 200
    wait(lambda: len(workspace_event_ids(server.workspace)) == 40)
    wait(lambda: server.metric('switchyard_calls_waiting_retry{destination="hook"}') == 40)
    server.kill()

    hook.down = False
    server.start()
    wait(lambda: {body["n"] for body in hook.received} == set(range(40)))
    assert in_person_order(hook.received)
    wait(lambda: server.metric("switchyard_spool_depth") == 0)
    assert dead_letters(tmp_path) == []
    assert server.stop() == 0
    assert len(workspace_event_ids(server.workspace)) == 40  # applied once


def test_a_stop_during_an_outage_leaves_held_calls_in_the_spool_not_the_dead_letter_file(tmp_path, hook):
    server = Served(hook_rules(tmp_path, hook.url, timeout=5, breaker=False), tmp_path, *FAST, "--stop-deadline", "5").start()
    assert server.post("/v1/batch", {"batch": [track(n) for n in range(9)]})[0] == 200
    wait(lambda: server.metric('switchyard_calls_waiting_retry{destination="hook"}') == 9)
    began = time.monotonic()
    assert server.stop() == 0
    assert time.monotonic() - began < 4  # held calls do not keep the stop waiting for its deadline
    assert dead_letters(tmp_path) == []

    hook.down = False
    server.start()
    wait(lambda: sorted(body["n"] for body in hook.received) == list(range(9)))
    assert in_person_order(hook.received)
    assert server.stop() == 0


def test_reloads_during_an_outage_leave_no_thread_behind_and_lose_nothing(tmp_path, hook):
    server = Served(hook_rules(tmp_path, hook.url, timeout=5, breaker=False), tmp_path, *FAST).start()
    assert server.post("/v1/batch", {"batch": [track(n) for n in range(9)]})[0] == 200
    wait(lambda: server.metric('switchyard_calls_waiting_retry{destination="hook"}') == 9)
    tasks = Path(f"/proc/{server.process.pid}/task")
    before = len(list(tasks.iterdir()))
    for reloads in range(1, 4):
        server.process.send_signal(signal.SIGHUP)
        wait(lambda reloads=reloads: server.log.read_text().count("reload: rules loaded") == reloads)
        wait(lambda: server.metric('switchyard_calls_waiting_retry{destination="hook"}') == 9)
    # The old rules' delivery threads ended with their reload (they used to stay, idle, one a reload).
    wait(lambda: len(list(tasks.iterdir())) <= before)
    assert dead_letters(tmp_path) == []

    hook.down = False
    wait(lambda: sorted({body["n"] for body in hook.received}) == list(range(9)))
    assert in_person_order(hook.received)
    wait(lambda: server.metric("switchyard_spool_depth") == 0)
    assert dead_letters(tmp_path) == []
    assert server.stop() == 0


def test_a_request_after_sigterm_while_one_is_in_flight_gets_503_stopping_and_the_process_exits_0(tmp_path):
    rules = tmp_path / "customerio.yaml"
    rules.write_text(PACK)
    server = Served(rules, tmp_path).start()
    slow = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    body = json.dumps({"batch": [track(1)]}).encode()
    slow.putrequest("POST", "/v1/batch")
    slow.putheader("Content-Type", "application/json")
    slow.putheader("Content-Length", str(len(body)))
    slow.endheaders()
    slow.send(body[:5])  # the request is in flight: its body is still coming
    time.sleep(0.2)
    server.process.send_signal(signal.SIGTERM)
    time.sleep(0.2)
    status, _, answer = server.post("/v1/batch", {"batch": [track(2)]})
    assert (status, answer["code"]) == (503, "stopping")
    slow.send(body[5:])
    assert slow.getresponse().status == 200  # the request in flight finished
    assert server.process.wait(30) == 0
    assert workspace_event_ids(server.workspace) in ([], ["m-1"])  # spooled; delivered unless the stop came first
    server.start()
    wait(lambda: workspace_event_ids(server.workspace) == ["m-1"])
    assert server.stop() == 0


# -- the held calls, with a real webhook adapter and a scripted server --------------------------------

class Now:
    """A clock the test moves by hand."""

    def __init__(self):
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def patient_webhook(scripted, patience):
    from engine.adapters.patient import PatientAdapter
    from engine.adapters.webhook import WebhookAdapter
    from scripted_server import fast_retrier, webhook_context

    clock = Now()
    people = {}

    def call(message_id: str, person: str):
        from engine.model import ActionCall

        people[message_id] = (person, clock.now)
        return ActionCall("hooks", "Orders", "send", {"url": f"{scripted.url}/{message_id}", "data": {}},
                          message_id)

    adapter = PatientAdapter(WebhookAdapter(webhook_context({"circuit_breaker": {"failures": 0}}),
                                            retrier=fast_retrier(max_attempts=1)),
                             patience, lambda c: people[c.message_id], clock=clock, random=lambda: 1.0)
    return adapter, call, clock


def states(outcomes) -> list[tuple[str, str]]:
    return [(outcome.call.message_id, outcome.state) for outcome in outcomes]


def patient_remote_webhook(scripted):
    """A webhook in a delivery process of its own (as serve runs an embedded store) behind held calls; the webhook
    stands in for any adapter that answers each call. Returns the held calls, the remote adapter, ``call`` and
    the clock."""
    from engine.adapters.patient import Patience, PatientAdapter
    from engine.adapters.remote import RemoteAdapter
    from engine.model import ActionCall
    from scripted_server import webhook_context

    clock, people = Now(), {}

    def call(message_id: str, person: str) -> ActionCall:
        people[message_id] = (person, clock.now)
        return ActionCall("hooks", "Orders", "send", {"url": f"{scripted.url}/{message_id}", "data": {}}, message_id)

    remote = RemoteAdapter(webhook_context({"max_attempts": 1, "circuit_breaker": {"failures": 0}}),
                           "engine.adapters.webhook:WebhookAdapter")
    adapter = PatientAdapter(remote, Patience(give_up_after=60, first_wait=1, max_wait=4),
                             lambda c: people[c.message_id], clock=clock, random=lambda: 1.0)
    return adapter, remote, call, clock


def a2_only_after_a1(adapter, clock, scripted, settled: list) -> None:
    """Once the next round is due, ann's a1 is delivered again and her a2 after it, never before."""
    clock.now += 1
    settled = polled_until(adapter, lambda _: not adapter.waiting, settled)
    assert states(settled)[1:] == [("a1", "retried"), ("a2", "delivered")]
    assert [r["path"] for r in scripted.requests][2:] == ["/a1", "/a2"]


def polled_until(adapter, done, settled: list) -> list:
    """``settled`` and the outcomes ``adapter.poll()`` gives until ``done(them)`` (20 s at most): a delivery
    process answers after ``deliver`` has returned."""
    deadline = time.monotonic() + 20
    while not done(settled) and time.monotonic() < deadline:
        time.sleep(0.01)
        settled += adapter.poll()
    return settled


def test_a_held_persons_later_calls_wait_behind_while_other_people_go_on(scripted):
    from engine.adapters.patient import Patience
    from scripted_server import Reply

    adapter, call, clock = patient_webhook(scripted, Patience(give_up_after=60, first_wait=1, max_wait=4))
    scripted.script(Reply(503), path="/a1")
    assert states(adapter.deliver([call("a1", "ann"), call("b1", "bob")])) == [("b1", "delivered")]
    # ann is held: her next call waits behind, bob's and cid's go.
    assert states(adapter.deliver([call("a2", "ann"), call("b2", "bob"), call("c1", "cid")])) == [
        ("b2", "delivered"), ("c1", "delivered")]
    assert adapter.waiting == 2 and adapter.poll() == []  # the round is not due yet
    clock.now += 1
    assert states(adapter.poll()) == [("a1", "retried"), ("a2", "delivered")]
    assert [r["path"] for r in scripted.requests] == ["/a1", "/b1", "/b2", "/c1", "/a1", "/a2"]
    assert adapter.waiting == 0 and adapter.oldest is None


def test_the_wait_doubles_to_its_cap_and_the_limit_gives_up_in_order_with_the_last_answer(scripted):
    from engine.adapters.patient import Patience
    from scripted_server import Reply

    scripted.default = Reply(503, b"down")
    adapter, call, clock = patient_webhook(scripted, Patience(give_up_after=20, first_wait=1, max_wait=4))
    assert adapter.deliver([call("a1", "ann"), call("a2", "ann")]) == []
    waits = []
    for _ in range(4):
        waits.append(adapter.next_round - clock.now)
        clock.now = adapter.next_round
        assert adapter.poll() == []
    assert waits == [1, 2, 4, 4]
    clock.now += 20
    first, second = adapter.poll()
    assert (first.call.message_id, first.state, first.status, first.body, first.attempts) == (
        "a1", "failed", 503, "down", 5)
    assert "not delivered within 20s" in first.reason
    # Never sent: held behind a1 from the first delivery on.
    assert (second.call.message_id, second.state, second.attempts) == ("a2", "failed", 0)
    assert "held behind an earlier call" in second.reason
    assert adapter.waiting == 0


def test_refused_is_final_and_close_settles_what_is_held(scripted):
    from engine.adapters.patient import Patience
    from scripted_server import Reply

    scripted.script(Reply(400), path="/a1")
    scripted.script(Reply(503), path="/b1")
    adapter, call, clock = patient_webhook(scripted, Patience())
    assert states(adapter.deliver([call("a1", "ann"), call("b1", "bob")])) == [("a1", "refused")]
    assert states(adapter.close()) == [("b1", "failed")]


@pytest.mark.parametrize("lanes", ["thread", "process"])
def test_a_call_its_adapter_raises_on_is_held_alone_and_the_person_behind_it_waits(tmp_path, lanes):
    """A bug the real adapter meets on one call is that call's failure inside the held calls, never an exception
    that would leave them half changed: ann's call is held (with the bug as its last answer), her later calls
    wait behind it, everyone else's calls of the same delivery are applied. 4,200 calls: more than the
    store's 4,096 a transaction, so a delivery process cuts them in two slices; ann's last call is in the
    second, and must wait all the same."""
    from buggy_store import BuggyStore

    from engine.adapters.contract import AdapterContext
    from engine.adapters.patient import Patience, PatientAdapter
    from engine.adapters.remote import RemoteAdapter
    from engine.model import ActionCall

    clock = Now()
    context = AdapterContext("store", "webhook", "stand-in", {"path": str(tmp_path / "store.db")})
    store = BuggyStore(context) if lanes == "thread" else RemoteAdapter(context, "buggy_store:BuggyStore")
    ann = {3, 10, 4199}
    people = {f"m{n}": ("ann" if n in ann else f"p{n}", clock.now) for n in range(4200)}
    adapter = PatientAdapter(store, Patience(give_up_after=60, first_wait=1, max_wait=4),
                             lambda c: people[c.message_id], destination="store", clock=clock, random=lambda: 1.0)
    calls = [ActionCall("store", "Orders", "send", {"m": n} if n == 3 else {"n": n}, f"m{n}") for n in range(4200)]
    outcomes = adapter.deliver(calls)
    deadline = time.monotonic() + 30
    while len(outcomes) < 4197 and time.monotonic() < deadline:  # a delivery process answers as it goes
        time.sleep(0.01)
        outcomes += adapter.poll()
    assert sorted(states(outcomes)) == sorted((f"m{n}", "delivered") for n in range(4200) if n not in ann)
    assert adapter.waiting == 3  # m3, and m10 and m4199 behind it
    clock.now += 61
    given_up = adapter.poll()
    assert [(o.call.message_id, o.state) for o in given_up] == [("m3", "failed"), ("m10", "failed"),
                                                                 ("m4199", "failed")]
    assert "the adapter of 'store' failed: KeyError: 'n'" in given_up[0].reason
    adapter.close()


def test_a_persons_call_lost_with_a_delivery_process_that_died_keeps_their_next_call_behind(scripted):
    """ann's a1 is in the delivery process when it is killed; her a2 comes in the next deliver, which starts
    a new process, before this side has handed a1's failure on. The new process knows nothing of a1: a2
    must be held back here, and go only after a1."""
    from engine.adapters.remote import RESTART_PAUSE
    from scripted_server import Reply

    adapter, remote, call, clock = patient_remote_webhook(scripted)
    try:
        time.sleep(RESTART_PAUSE)  # so that the next deliver starts a new process at once
        scripted.script(Reply(delay=30), path="/a1")
        settled = polled_until(adapter, lambda _: bool(scripted.requests), adapter.deliver([call("a1", "ann")]))
        os.kill(remote._process.pid, signal.SIGKILL)
        remote._reader.join(10)  # the pipe is closed: the next deliver collects a1's failure first
        settled = polled_until(adapter, bool, settled + adapter.deliver([call("a2", "ann"), call("b1", "bob")]))
        assert states(settled) == [("b1", "delivered")] and adapter.waiting == 2  # a1, and a2 behind it
        assert [r["path"] for r in scripted.requests] == ["/a1", "/b1"]
        a2_only_after_a1(adapter, clock, scripted, settled)
    finally:
        adapter.close()


def patient_flaky_store(tmp_path, **patience):
    """The test's flaky store (tests/flaky_store.py) in a delivery process of its own behind held calls, as serve
    runs an embedded store. Returns the held calls, ``call(message_id, person, **payload)``, the clock and the
    file of applied message ids."""
    from engine.adapters.contract import AdapterContext
    from engine.adapters.patient import Patience, PatientAdapter
    from engine.adapters.remote import RemoteAdapter
    from engine.model import ActionCall

    clock, people, applied = Now(), {}, tmp_path / "applied.txt"
    applied.write_text("")

    def call(message_id: str, person: str, **payload) -> ActionCall:
        people[message_id] = (person, clock.now)
        return ActionCall("store", "Orders", "send", payload, message_id)

    remote = RemoteAdapter(AdapterContext("store", "webhook", "stand-in", {"path": str(applied)}),
                           "flaky_store:FlakyStore", builds_here=False)
    adapter = PatientAdapter(remote, Patience(give_up_after=600, first_wait=1, max_wait=4, **patience),
                             lambda c: people[c.message_id], clock=clock, random=lambda: 1.0)
    return adapter, call, clock, applied


def test_a_call_held_back_in_the_delivery_process_stays_before_the_persons_calls_handed_over_after(tmp_path):
    """ann's a2 is handed over before a1 fails; the delivery process holds it back, but says so only with bob's
    slow b1. Meanwhile a1's failure is known here and ann's a3 comes: a2 must still go before a3."""
    adapter, call, clock, applied = patient_flaky_store(tmp_path)
    try:
        settled = adapter.deliver([call("a1", "ann", fail_once=True, sleep=0.5)])
        time.sleep(0.2)  # the store has a1's slice in hand
        settled += adapter.deliver([call("a2", "ann"), call("b1", "bob", sleep=1.5)])
        settled = polled_until(adapter, lambda _: adapter.waiting >= 1, settled)  # a1's failure is known here
        settled += adapter.deliver([call("a3", "ann")])
        settled = polled_until(adapter, lambda them: "b1" in dict(states(them)), settled)
        clock.now += 5
        settled = polled_until(adapter, lambda _: not adapter.waiting, settled)
        assert applied.read_text().split() == ["b1", "a1", "a2", "a3"]
        assert sorted(states(settled)) == [("a1", "retried"), ("a2", "delivered"), ("a3", "delivered"),
                                           ("b1", "delivered")]
    finally:
        adapter.close()


def test_a_retry_that_waits_behind_a_failure_not_yet_told_is_not_counted_as_a_delivery(tmp_path):
    """With --max-delivery-attempts 2, a1 fails once and is delivered on its second try, whatever the order in
    which the delivery process's answers come; it was given up after one request, as 'held behind'."""
    adapter, call, clock, applied = patient_flaky_store(tmp_path, max_attempts=2)
    try:
        settled = adapter.deliver([call("a1", "ann", fail_once=True, sleep=0.5)])
        time.sleep(0.2)
        settled += adapter.deliver([call("a2", "ann"), call("b1", "bob", sleep=1.0)])
        settled = polled_until(adapter, lambda _: adapter.waiting >= 1, settled)
        clock.now += 1
        time.sleep(1.5)  # a2's and b1's answers come meanwhile
        settled = polled_until(adapter, lambda _: not adapter.waiting, settled + adapter.poll())
        assert sorted((o.call.message_id, o.state, o.attempts) for o in settled) == [
            ("a1", "retried", 2), ("a2", "delivered", 1), ("b1", "delivered", 1)]
        assert applied.read_text().split() == ["b1", "a1", "a2"]
    finally:
        adapter.close()


def test_closing_with_a_retry_in_flight_gives_it_one_outcome(scripted):
    """The delivery process answers a retry after the round has returned; a close meanwhile gave the call up
    and then passed on its real answer too: two outcomes for one call."""
    from scripted_server import Reply

    adapter, _, call, clock = patient_remote_webhook(scripted)
    scripted.script(Reply(503), path="/a1")
    scripted.script(Reply(delay=0.5), path="/a1")
    settled = polled_until(adapter, lambda _: adapter.waiting == 1, adapter.deliver([call("a1", "ann")]))
    clock.now += 5
    settled += adapter.poll()  # the round: a1 goes again, its answer comes later
    assert adapter._queues["ann"][0].in_flight
    assert states(settled + adapter.close()) == [("a1", "retried")]


@pytest.mark.parametrize("text, seconds", [("30s", 30), ("15m", 900), ("24h", 86400), ("2d", 172800),
                                           ("500ms", 0.5), ("0", 0), ("1.5", 1.5)])
def test_durations(text, seconds):
    from engine.serve.cli import duration

    assert duration(text) == seconds


def test_a_bad_duration_is_a_usage_error(tmp_path):
    done = subprocess.run([sys.executable, "-m", "engine", "serve", str(ROOT / "rules" / "customerio.yaml"),
                           "--give-up-after", "soon"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "not a duration" in done.stderr


def test_a_persons_next_call_never_overtakes_their_failed_one_when_the_destination_comes_back_between(scripted):
    from engine.adapters.patient import Patience
    from scripted_server import Reply

    # a1 meets the outage; the destination is back for a2, sent next in the same delivery.
    scripted.script(Reply(503), path="/a1")
    adapter, call, clock = patient_webhook(scripted, Patience(give_up_after=60, first_wait=1, max_wait=4))
    assert states(adapter.deliver([call("a1", "ann"), call("b1", "bob"), call("a2", "ann")])) == [
        ("b1", "delivered")]
    assert adapter.waiting == 2  # a2 waits behind a1 instead of going first
    clock.now += 1
    assert states(adapter.poll()) == [("a1", "retried"), ("a2", "delivered")]
    assert [r["path"] for r in scripted.requests] == ["/a1", "/b1", "/a1", "/a2"]


def test_a_round_while_still_down_costs_one_request_and_after_it_the_backlog_goes_in_waves(scripted):
    from engine.adapters.patient import Patience
    from scripted_server import Reply

    scripted.default = Reply(503)
    adapter, call, clock = patient_webhook(scripted, Patience(give_up_after=60, first_wait=1, max_wait=1))
    assert adapter.deliver([call("a1", "ann"), call("b1", "bob"), call("a2", "ann"), call("b2", "bob")]) == []
    assert [r["path"] for r in scripted.requests] == ["/a1", "/b1"]  # one call per person at a time
    for _ in range(3):  # still down: each round tries one call
        clock.now = adapter.next_round
        assert adapter.poll() == []
    assert len(scripted.requests) == 5
    scripted.default = Reply(200)
    clock.now = adapter.next_round
    delivered = states(adapter.poll())
    assert sorted(delivered) == [("a1", "retried"), ("a2", "delivered"), ("b1", "retried"), ("b2", "delivered")]
    paths = [r["path"] for r in scripted.requests[5:]]
    assert paths.index("/a1") < paths.index("/a2") and paths.index("/b1") < paths.index("/b2")
    assert adapter.waiting == 0


def patient_customerio(scripted, patience):
    """A PatientAdapter over the real Customer.io HTTP adapter, batching in twos, and a clock of its own."""
    from engine.adapters.customerio_http import CustomerioHttpAdapter
    from engine.adapters.patient import PatientAdapter
    from engine.model import ActionCall
    from scripted_server import customerio_context, fast_retrier

    clock = Now()
    people = {}

    def call(message_id: str, person: str, *, batching: bool = True):
        people[message_id] = (person, clock.now)
        return ActionCall("customerio", "Track Event", "trackEvent",
                          {"id": person, "name": message_id, "event_id": message_id,
                           "enable_batching": batching, "batch_size": 2}, message_id)

    inner = CustomerioHttpAdapter(customerio_context({"site_id": "s", "api_key": "k", "base_url": scripted.url,
                                                      "circuit_breaker": {"failures": 0}}),
                                  retrier=fast_retrier(max_attempts=1), clock=clock)
    adapter = PatientAdapter(inner, patience, lambda c: people[c.message_id], clock=clock, random=lambda: 1.0)
    return adapter, call, clock


def sent_names(request) -> list[str]:
    body = request["body"]
    return [item["name"] for item in body["batch"]] if "batch" in body else [body["name"]]


def test_a_batching_transport_sends_none_of_a_persons_waiting_calls_after_one_of_theirs_fails(scripted):
    from engine.adapters.patient import Patience
    from scripted_server import Reply

    # The first batch (a1, b1) meets the outage; the destination is back at once. a2 was already
    # waiting in the next batch and a3 comes in the same delivery: both wait behind a1, bob's and
    # cid's calls go on.
    scripted.script(Reply(503), path="/api/v2/batch")
    adapter, call, clock = patient_customerio(scripted, Patience(give_up_after=60, first_wait=1, max_wait=4))
    outcomes = adapter.deliver([call("a1", "ann"), call("b1", "bob"), call("a2", "ann"), call("c1", "cid"),
                                call("a3", "ann", batching=False), call("b2", "bob"), call("c2", "cid")])
    assert [sent_names(r) for r in scripted.requests] == [["a1", "b1"], ["c1", "c2"]]
    assert states(outcomes) == [("c1", "delivered"), ("c2", "delivered")]
    assert adapter.waiting == 5
    clock.now += 1
    assert sorted(states(adapter.poll())) == [("a1", "retried"), ("a2", "delivered"), ("a3", "delivered"),
                                              ("b1", "retried"), ("b2", "delivered")]
    sent = [name for request in scripted.requests[2:] for name in sent_names(request)]
    assert sent.index("a1") < sent.index("a2") < sent.index("a3") and sent.index("b1") < sent.index("b2")
    assert adapter.waiting == 0


def test_a_call_held_behind_and_never_sent_is_dead_lettered_as_not_sent(scripted):
    from engine.adapters.patient import Patience
    from scripted_server import Reply

    scripted.default = Reply(503, b"down")
    adapter, call, clock = patient_customerio(scripted, Patience(give_up_after=5, first_wait=1, max_wait=1))
    assert adapter.deliver([call("a1", "ann"), call("b1", "bob"), call("a2", "ann")]) == []
    clock.now += 5
    given_up = {outcome.call.message_id: outcome for outcome in adapter.poll()}
    assert given_up["a1"].attempts >= 1 and given_up["a1"].status == 503
    assert given_up["a2"].attempts == 0 and given_up["a2"].status is None
    assert "held behind an earlier call" in given_up["a2"].reason
    assert all(outcome.state == "failed" for outcome in given_up.values())


@pytest.mark.parametrize("patience", [dict(give_up_after=0), dict(max_attempts=1)], ids=["give-up-after-0", "one-try"])
def test_a_call_held_back_behind_one_given_up_at_once_is_still_sent(scripted, patience):
    from engine.adapters.patient import Patience
    from scripted_server import Reply

    scripted.script(Reply(503), path="/api/v2/batch")
    adapter, call, clock = patient_customerio(scripted, Patience(first_wait=1, max_wait=1, **patience))
    outcomes = {outcome.call.message_id: outcome for outcome in
                adapter.deliver([call("a1", "ann"), call("b1", "bob"), call("a2", "ann"), call("c1", "cid")])}
    # a1 is dead-lettered at its first failure; a2, kept back behind it unsent, goes after it, never counted as tried.
    assert {name: outcome.state for name, outcome in outcomes.items()} == {
        "a1": "failed", "b1": "failed", "a2": "delivered", "c1": "delivered"}
    assert [sent_names(r) for r in scripted.requests] == [["a1", "b1"], ["c1", "a2"]]
    assert adapter.waiting == 0


def test_an_adapter_in_a_process_of_its_own_keeps_a_held_persons_next_call_behind(scripted):
    """``deliver`` returns before the delivery process has answered: ann's a2 is handed over before a1's failure
    is known here, and must still never be sent before a1 is delivered again."""
    from scripted_server import Reply

    adapter, _, call, clock = patient_remote_webhook(scripted)
    try:
        scripted.script(Reply(503), path="/a1")
        settled = adapter.deliver([call("a1", "ann")]) + adapter.deliver([call("a2", "ann"), call("b1", "bob")])
        settled = polled_until(adapter, lambda them: adapter.waiting == 2 and bool(them), settled)
        assert states(settled) == [("b1", "delivered")] and adapter.waiting == 2  # a2 waits behind a1
        assert sorted(r["path"] for r in scripted.requests) == ["/a1", "/b1"]
        a2_only_after_a1(adapter, clock, scripted, settled)
    finally:
        adapter.close()
