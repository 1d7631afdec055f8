"""Deliveries in a process of their own (``run --lanes process``): the same outcomes as a thread lane, and a
delivery process that dies costs only its own calls, each failed with the reason."""
from __future__ import annotations

import json
import os
import pickle
import signal
import sqlite3
import time

import pytest

from conftest import switchyard
from engine.adapters.contract import AdapterContext
from engine.adapters.remote import RemoteAdapter
from engine.delivery.outcome import DELIVERED, FAILED, REFUSED
from engine.model import ActionCall


def _people(db) -> list:
    result = switchyard("workspace", "people", "--db", db, "--json")
    assert result.returncode == 0, result.stderr
    return [{key: value for key, value in person.items() if key not in ("created_at", "updated_at")}
            for person in json.loads(result.stdout)]


def test_a_run_with_process_lanes_leaves_what_a_run_with_thread_lanes_leaves(tmp_path):
    runs = {}
    for lanes in ("thread", "process"):
        db = tmp_path / f"{lanes}.db"
        result = switchyard("run", "rules/customerio.yaml", "examples/events.jsonl", "--workspace", db,
                            "--lanes", lanes, "--dead-letter", tmp_path / f"{lanes}.dead",
                            "--summary-json", tmp_path / f"{lanes}.json")
        assert result.returncode == 1, result.stderr  # the story's one refused call
        runs[lanes] = (json.loads((tmp_path / f"{lanes}.json").read_text()), _people(db))
    assert runs["process"] == runs["thread"]


def _file_context(tmp_path) -> AdapterContext:
    return AdapterContext("audit", "webhook", "file", {"path": str(tmp_path / "audit.ndjson")})


def _calls(count: int) -> list[ActionCall]:
    return [ActionCall("audit", "Orders", "send", {"url": "http://example.invalid/", "data": {"n": n}}, f"m{n}")
            for n in range(count)]


def test_every_call_comes_back_once_with_its_outcome(tmp_path):
    adapter = RemoteAdapter(_file_context(tmp_path), "engine.adapters.file:FileAdapter")
    calls = _calls(50)
    outcomes = adapter.deliver(calls[:20]) + adapter.deliver(calls[20:])
    deadline = time.monotonic() + 20
    while len(outcomes) < 50 and time.monotonic() < deadline:
        time.sleep(0.01)
        outcomes += adapter.poll()
    outcomes += adapter.close()
    assert sorted(o.call.message_id for o in outcomes) == sorted(c.message_id for c in calls)
    assert {o.state for o in outcomes} == {DELIVERED}
    assert len((tmp_path / "audit.ndjson").read_text().splitlines()) == 50


def test_a_delivery_process_that_dies_fails_the_calls_it_had_with_the_reason(tmp_path):
    adapter = RemoteAdapter(_file_context(tmp_path), "engine.adapters.file:FileAdapter")
    first = _calls(3)
    outcomes = adapter.deliver(first)
    deadline = time.monotonic() + 20
    while len(outcomes) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
        outcomes += adapter.poll()
    os.kill(adapter._process.pid, signal.SIGKILL)
    adapter._process.join(10)
    later = [ActionCall("audit", "Orders", "send", {"url": "http://example.invalid/"}, "late")]
    outcomes += adapter.deliver(later) + adapter.close()
    assert [o.state for o in outcomes if o.call.message_id != "late"] == [DELIVERED] * 3
    (late,) = [o for o in outcomes if o.call.message_id == "late"]
    assert late.state == FAILED and "delivery process of 'audit'" in late.message


def test_after_its_delivery_process_dies_a_lane_goes_on_with_a_new_one(tmp_path):
    adapter = RemoteAdapter(_file_context(tmp_path), "engine.adapters.file:FileAdapter")
    try:
        first = adapter._process
        os.kill(first.pid, signal.SIGKILL)
        first.join(10)
        outcomes: list = []
        deadline = time.monotonic() + 30
        # One call at a time, as a lane hands them: none may wait for ever on the process that is gone.
        while not any(o.state == DELIVERED for o in outcomes) and time.monotonic() < deadline:
            outcomes += adapter.deliver(_calls(1)) + adapter.poll()
            time.sleep(0.05)
        failed = [o for o in outcomes if o.state == FAILED]
        assert adapter._process is not first and any(o.state == DELIVERED for o in outcomes)
        assert all("delivery process of 'audit'" in o.message for o in failed)  # replayable, with the reason
        second = adapter._process.pid
    finally:
        outcomes = adapter.close()
    assert all(o.state == DELIVERED for o in outcomes) and not os.path.exists(f"/proc/{second}")


def test_auto_lanes_take_a_process_only_for_a_big_input_with_a_core_to_spare(monkeypatch):
    from engine import run

    big, small = run.PROCESS_LANES_FROM, run.PROCESS_LANES_FROM - 1
    monkeypatch.setattr(run, "usable_cores", lambda: 2)
    assert run.lanes_for("auto", dry_run=False, workers=1, input_bytes=big) == "process"
    assert run.lanes_for("auto", dry_run=False, workers=1, input_bytes=small) == "thread"
    assert run.lanes_for("auto", dry_run=True, workers=1, input_bytes=big) == "thread"  # nothing to deliver
    assert run.lanes_for("auto", dry_run=False, workers=2, input_bytes=big) == "thread"  # the cores evaluate
    assert run.lanes_for("thread", dry_run=False, workers=1, input_bytes=big) == "thread"  # asked for
    assert run.lanes_for("process", dry_run=False, workers=1, input_bytes=0) == "process"
    monkeypatch.setattr(run, "usable_cores", lambda: 1)
    assert run.lanes_for("auto", dry_run=False, workers=1, input_bytes=big) == "thread"
    monkeypatch.setattr(run, "usable_cores", lambda: 4)
    assert run.lanes_for("auto", dry_run=False, workers=2, input_bytes=big) == "process"


def test_the_input_size_counts_files_and_what_is_left_of_a_file_on_stdin(tmp_path, monkeypatch):
    import io
    import sys

    from engine.cli import _input_bytes

    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    first.write_bytes(b"x" * 1000)
    second.write_bytes(b"y" * 234)
    assert _input_bytes([str(first), str(second)]) == 1234
    with open(first, "rb") as stream:
        stream.seek(400)
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(stream))
        assert _input_bytes([]) == 600 and _input_bytes(["-", str(second)]) == 834
    read, write = os.pipe()
    with os.fdopen(read, "rb") as pipe, os.fdopen(write, "wb"):
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(pipe))
        assert _input_bytes(["-"]) == 0  # a pipe's length is not known before it is read


def test_serve_gives_only_an_embedded_store_a_process(monkeypatch, tmp_path):
    import engine
    from engine.serve import delivery

    rules = engine.load("rules")  # the Customer.io and User.com packs to their stand-ins, and the webhook
    by_name = {destination.catalog.name: destination for destination in rules.destinations}
    store, webhook = by_name["customerio"], by_name["webhook"]
    monkeypatch.setattr(delivery, "usable_cores", lambda: 2)
    assert delivery.in_process(store, "auto") and delivery.in_process(by_name["userengage"], "auto")
    assert not delivery.in_process(webhook, "auto") and not delivery.in_process(webhook, "process")
    assert not delivery.in_process(store, "thread")
    monkeypatch.setattr(delivery, "usable_cores", lambda: 1)
    assert not delivery.in_process(store, "auto") and delivery.in_process(store, "process")


def test_an_event_nested_nearly_as_deep_as_is_readable_crosses_to_other_processes_with_its_neighbours(tmp_path):
    # Pickling takes two of Python's 1,000 recursion levels per level of nesting: before, this event
    # failed every call of its chunk (--workers: the whole run) or of its delivery (process lanes).
    deep = '{"a":' * 960 + "1" + "}" * 960
    lines = [json.dumps({"type": "track", "userId": f"u{n}", "event": "E", "messageId": f"m{n}"}) for n in range(300)]
    lines[150] = '{"type":"track","userId":"u","event":"E","messageId":"deep","properties":' + deep + "}"
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join(lines) + "\n")
    for name, options in {"workers": ["--workers", "2"], "process": ["--lanes", "process"]}.items():
        db = tmp_path / f"{name}.db"
        result = switchyard("run", "rules/customerio.yaml", events, "--workspace", db, *options,
                            "--dead-letter", tmp_path / f"{name}.dead")
        assert "Traceback" not in result.stderr and "every event accounted for" in result.stderr
        with sqlite3.connect(db) as connection:
            stored = {row[0] for row in connection.execute("SELECT event_id FROM customerio__events")}
        assert stored - {"deep"} == {f"m{n}" for n in range(300) if n != 150}  # every neighbour
        # The deep one is stored, or, where building its request runs out of recursion, refused alone.
        dead = (tmp_path / f"{name}.dead").read_text().splitlines() if result.returncode else []
        assert ("deep" in stored) == (result.returncode == 0) and len(dead) == (result.returncode == 1)
        assert all("nested too deeply" in line for line in dead)  # too deep for json.loads to read back


def test_raising_the_recursion_limit_from_several_threads_at_once_leaves_it_as_it_was():
    import sys
    import threading

    from engine.events import _deep
    from engine.parallel import pickled

    deep: object = 1
    for _ in range(700):
        deep = {"a": deep}
    before = sys.getrecursionlimit()

    def pickle_deep() -> None:
        for _ in range(100):
            assert pickle.loads(pickled(deep)) == deep

    def read_deep() -> None:
        for _ in range(3000):
            with _deep():
                assert sys.getrecursionlimit() >= before + 1000

    threads = [threading.Thread(target=pickle_deep), threading.Thread(target=read_deep),
               threading.Thread(target=read_deep)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sys.getrecursionlimit() == before


def test_requests_built_here_while_the_delivery_process_is_busy_land_as_it_would_build_them(tmp_path):
    import engine
    from benchmarks.generate import events
    from engine.adapters.workspace import WorkspaceAdapter

    rules = engine.load("rules/customerio.yaml")
    calls = [call for event in events(12_000, 7) for call in rules.evaluate(event).calls]
    remote = RemoteAdapter(AdapterContext("customerio", "customerio", "workspace", {}, str(tmp_path / "remote.db")),
                           "engine.adapters.workspace:WorkspaceAdapter")
    built = []
    prepare = remote._prepare
    remote._prepare = lambda call: built.append(call) or prepare(call)  # type: ignore[assignment]
    outcomes = []
    for start in range(0, len(calls), remote.gather):  # as its lane hands them over
        outcomes += remote.deliver(calls[start:start + remote.gather])
    outcomes += remote.close()
    assert built, "the window never filled: nothing was built while the child was busy"
    here = WorkspaceAdapter(AdapterContext("customerio", "customerio", "workspace", {}, str(tmp_path / "here.db")))
    expected = here.deliver(calls) + here.close()
    assert [(o.call.message_id, o.state) for o in outcomes] == [(o.call.message_id, o.state) for o in expected]
    assert all(outcome.call is call for outcome, call in zip(outcomes, calls))  # the lane's own objects
    assert _people(tmp_path / "remote.db") == _people(tmp_path / "here.db")


@pytest.mark.parametrize(("files", "cpus"), [
    ({"cpu.max": "max 100000\n"}, None),                     # cgroup v2, no limit
    ({"cpu.max": "150000 100000\n"}, 1.5),                   # docker run --cpus 1.5
    ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),   # cgroup v1
    ({"cpu/cpu.cfs_quota_us": "100000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 1.0),
    ({}, None),                                              # no cgroup files at all
])
def test_a_containers_cpu_quota_counts_as_the_cores_it_may_keep_busy(tmp_path, monkeypatch, files, cpus):
    from engine import parallel

    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert parallel._cgroup_quota(str(tmp_path)) == cpus
    monkeypatch.setattr(parallel, "_cgroup_quota", lambda: cpus)
    monkeypatch.setattr(parallel.os, "sched_getaffinity", lambda _: {0, 1, 2, 3})
    assert parallel.usable_cores() == (4 if cpus is None else max(1, int(cpus)))


@pytest.mark.parametrize("data", [{"n": lambda: 0}, "deep"], ids=["not picklable", "nested 4,000 deep"])
def test_a_call_that_cannot_cross_to_the_delivery_process_is_refused_alone(tmp_path, data):
    """Failed, such a call was held by serve to be tried again, for 24 h, and its destination stalled behind it."""
    if data == "deep":
        data = []
        for _ in range(4000):
            data = [data]
    adapter = RemoteAdapter(_file_context(tmp_path), "engine.adapters.file:FileAdapter")
    good = _calls(2)
    odd = ActionCall("audit", "Orders", "send", {"url": "http://example.invalid/", "data": data}, "odd")
    outcomes = adapter.deliver([good[0], odd, good[1]])
    deadline = time.monotonic() + 20
    while len(outcomes) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
        outcomes += adapter.poll()
    outcomes += adapter.close()
    states = {o.call.message_id: o.state for o in outcomes}
    assert states == {"m0": DELIVERED, "m1": DELIVERED, "odd": REFUSED}
    (failed,) = [o for o in outcomes if o.call is odd]
    assert "cannot hand this call to the delivery process of 'audit'" in failed.message


def test_short_batches_that_wait_for_the_delivery_process_are_delivered_together(tmp_path):
    """The ends of a lane's batches are short; each costing a transaction of its own would waste the store's
    time. Behind a slow delivery, they join into slices as big as the store takes (``gather``)."""
    log = tmp_path / "deliveries.log"
    adapter = RemoteAdapter(AdapterContext("store", "webhook", "stand-in", {"log": str(log)}), "slow_store:SlowStore")
    calls = _calls(300)
    outcomes = []
    for start in range(0, 300, 30):  # ten short batches, while each delivery takes 0.3 s
        outcomes += adapter.deliver(calls[start:start + 30])
    outcomes += adapter.close()
    assert sorted(o.call.message_id for o in outcomes) == sorted(c.message_id for c in calls)
    sizes = [int(line) for line in log.read_text().split()]
    assert sum(sizes) == 300
    assert len(sizes) <= 5 and max(sizes) == 100, sizes  # not ten deliveries of 30


def _share_after(adapter: RemoteAdapter, answers: int, cpu: float, wall: float) -> float:
    """The share of requests ``adapter`` builds itself after ``answers`` answers, each saying the child used
    ``cpu`` seconds of CPU in ``wall`` seconds."""
    for _ in range(answers):
        adapter._balance(cpu=cpu, wall=wall)
    return adapter._share


@pytest.mark.parametrize("builds_here", [True, False])
def test_requests_are_built_here_less_while_the_delivery_process_has_time_to_spare(tmp_path, builds_here):
    """Building requests here takes time from evaluating events: while the child has time to spare, this side
    (or the destination) is the slower one and builds a smaller share; while the child keeps a core busy,
    a larger one. serve's store builds all its own (the server's process has requests to ingest): none here."""
    adapter = RemoteAdapter(_file_context(tmp_path), "engine.adapters.file:FileAdapter", builds_here=builds_here)
    try:
        start = adapter._share
        lower = _share_after(adapter, 5, cpu=0.05, wall=0.1)
        higher = _share_after(adapter, 40, cpu=0.2, wall=0.2)
        if not builds_here:
            assert start == lower == higher == 0.0
        else:
            assert lower < start < higher == 1.0
            assert _share_after(adapter, 60, cpu=0.05, wall=0.1) == 0.0
    finally:
        adapter.close()


def test_a_delivery_process_that_cannot_open_its_adapter_is_tried_again(tmp_path):
    """A store that cannot be opened for a moment (here: a folder where the file should be) fails the calls
    of that moment, with the reason; once it can be opened, a new delivery process delivers."""
    target = tmp_path / "audit.ndjson"
    target.mkdir()
    adapter = RemoteAdapter(AdapterContext("audit", "webhook", "file", {"path": str(target)}),
                            "engine.adapters.file:FileAdapter")
    first = adapter._process
    try:
        outcomes = adapter.deliver(_calls(1))
        deadline = time.monotonic() + 20
        while not outcomes and time.monotonic() < deadline:
            time.sleep(0.01)
            outcomes += adapter.poll()
        assert [o.state for o in outcomes] == [FAILED] and "could not open" in outcomes[0].message
        target.rmdir()
        deadline = time.monotonic() + 30
        while not any(o.state == DELIVERED for o in outcomes) and time.monotonic() < deadline:
            outcomes += adapter.deliver(_calls(1)) + adapter.poll()
            time.sleep(0.05)
        assert any(o.state == DELIVERED for o in outcomes) and adapter._process is not first
    finally:
        outcomes = adapter.close()
    assert all(o.state == DELIVERED for o in outcomes)
    assert target.is_file()


def test_in_run_a_failed_batch_in_a_delivery_process_holds_back_no_one_else(scripted):
    """run hands its calls over without saying who each is for: a batching adapter in a delivery process must not
    take them all for one person, or one failed batch held back every other call of the delivery (dead-lettered
    as 'not sent')."""
    from scripted_server import Reply, customerio_context

    scripted.script(Reply(503), path="/api/v2/batch")

    def call(message_id: str, person: str, batching: bool = True) -> ActionCall:
        return ActionCall("customerio", "Track Event", "trackEvent", {"id": person, "name": message_id,
                          "event_id": message_id, "enable_batching": batching, "batch_size": 2}, message_id)

    remote = RemoteAdapter(customerio_context({"site_id": "s", "api_key": "k", "base_url": scripted.url,
                                               "max_attempts": 1, "circuit_breaker": {"failures": 0}}),
                           "engine.adapters.customerio_http:CustomerioHttpAdapter")
    outcomes = remote.deliver([call("a1", "ann"), call("b1", "bob"), call("c1", "cid", batching=False)])
    outcomes += remote.close()
    assert sorted((o.call.message_id, o.state, o.attempts) for o in outcomes) == [
        ("a1", FAILED, 1), ("b1", FAILED, 1), ("c1", DELIVERED, 1)]
    assert [r["path"] for r in scripted.requests] == ["/api/v2/batch", "/api/v2/entity"]
