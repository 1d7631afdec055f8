"""The benchmarks measure what they claim: the compared evaluators agree, and the inputs are not trivial.

A benchmark of triggers that all say no, or of a baseline that answers differently, would be
fast and meaningless; these tests keep benchmarks/ honest as the engine changes.
"""
from __future__ import annotations

import json
import socket
import sys
import time
from pathlib import Path

import pytest
import rule_engine
import yaml

from engine import compile_trigger
from engine.index import TriggerIndex
from engine.loader import compile_paths

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))  # benchmarks/ is not part of the installed package

from benchmarks import sink as sinks  # noqa: E402
from benchmarks.baseline import Interpreted  # noqa: E402
from benchmarks.delivery import write_rules  # noqa: E402
from benchmarks.generate import EVENT_NAMES, events  # noqa: E402
from benchmarks.rulesets import LIVE, mapping_count_rules  # noqa: E402
from benchmarks.triggers import TRACK_EVENT, TRIGGERS  # noqa: E402

EVENTS = events(2000)


def of_type(kind: str) -> list[dict]:
    return [event for event in EVENTS if event["type"] == kind]


@pytest.fixture(scope="module")
def ours():
    return [compile_trigger(text) for text, _ in TRIGGERS]


def test_the_generator_is_seeded_and_realistic():
    assert events(50) == EVENTS[:50]
    assert events(50, seed=1) != EVENTS[:50]
    sizes = [len(json.dumps(event)) for event in EVENTS]
    assert 700 <= sum(sizes) / len(sizes) <= 1300, "events should be about 1 KB"
    assert {event["type"] for event in EVENTS} == {"track", "identify", "page", "screen", "group"}
    assert {"app", "device"} <= of_type("screen")[0]["context"].keys()  # mobile
    assert "userAgent" in of_type("page")[0]["context"]  # web
    assert any(isinstance(event.get("properties", {}).get("total"), str) for event in EVENTS)
    assert {event.get("event") for event in EVENTS} - {None} == set(EVENT_NAMES)


def test_the_set_has_fifty_triggers_that_each_match_some_events_but_not_all(ours):
    assert len(TRIGGERS) == 50
    assert len({text for text, _ in TRIGGERS}) == 50
    for trigger in ours:
        matched = sum(trigger.matches(event) for event in EVENTS)
        assert 0 < matched < len(EVENTS), f"{trigger.text!r} matches {matched} of {len(EVENTS)} events"


def test_the_set_names_events_that_never_occur(ours):
    named = set().union(*(trigger.keys.get("event", ()) for trigger in ours))
    assert named - set(EVENT_NAMES), "some triggers should name events the generator never emits"


def test_the_set_holds_the_track_event_chain_of_the_customerio_pack():
    pack = yaml.safe_load((ROOT / "rules" / "customerio.yaml").read_text(encoding="utf-8"))
    chain = next(mapping["trigger"] for mapping in pack["mappings"] if mapping["name"] == "Track Event")
    assert TRACK_EVENT == chain
    assert TRACK_EVENT in [text for text, _ in TRIGGERS]


def test_ours_and_the_tree_walking_baseline_agree_on_every_trigger(ours):
    index = TriggerIndex((trigger, position) for position, trigger in enumerate(ours))
    walked = [Interpreted(text) for text, _ in TRIGGERS]
    for event in EVENTS:
        expected = [position for position, baseline in enumerate(walked) if baseline.matches(event)]
        assert [position for position, trigger in enumerate(ours) if trigger.matches(event)] == expected, event
        assert index.matching(event) == expected, event


def test_ours_and_rule_engine_agree_on_every_trigger(ours):
    context = rule_engine.Context(default_value=None)
    for trigger, (text, twin) in zip(ours, TRIGGERS):
        rule = rule_engine.Rule(twin, context=context)
        for event in EVENTS[:300]:
            assert rule.matches(event) == trigger.matches(event), (text, twin, event)


def test_the_scaling_rule_sets_load_cleanly_and_match_alike(tmp_path):
    sample = EVENTS[:500]
    calls = {}
    for count in (10, 100, 1000):
        path = tmp_path / f"scaling-{count}.yaml"
        path.write_text(mapping_count_rules(count), encoding="utf-8")
        rules, problems = compile_paths([path])
        assert problems == []
        assert len(rules.destinations[0].mappings) == count
        results = [rules.evaluate(event) for event in sample]
        assert not any(result.errors for result in results)
        calls[count] = [[call.mapping for call in result.calls] for result in results]
    # The same live mappings at every size, so only the cost of the others can differ.
    assert calls[10] == calls[100] == calls[1000]
    assert sum(map(len, calls[10])) > len(sample) / 3
    assert {name for names in calls[10] for name in names} == {title for title, _, _ in LIVE}


def _answers(connection: socket.socket, count: int) -> list[bytes]:
    """Read ``count`` whole answers of the sink (each a head and a two-byte body)."""
    data = b""
    while data.count(b"\r\n\r\n") < count or not data.endswith(b"{}"):
        chunk = connection.recv(65536)
        assert chunk, f"the sink closed the connection after {data.count(b'HTTP/1.1')} answers"
        data += chunk
    return [b"HTTP/1.1" + answer for answer in data.split(b"HTTP/1.1")[1:]]


def _request(path: str, body: bytes, *headers: str) -> bytes:
    head = [f"POST {path} HTTP/1.1", "Host: sink", f"Content-Length: {len(body)}", *headers]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def test_the_sink_answers_a_pipelined_keep_alive_burst_in_order_and_counts_it():
    paths = ["/api/v2/batch", "/api/v2/entity", "/api/v1/metrics", "/contacts/u42"] * 25
    burst = [_request(path, json.dumps({"n": index}).encode() * (index % 7)) for index, path in enumerate(paths)]
    with sinks.running() as sink:
        host, port = sink.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=5) as connection:
            stream = b"".join(burst)
            for start in range(0, len(stream), 333):  # bodies and heads split across writes
                connection.sendall(stream[start:start + 333])
            answers = _answers(connection, len(burst))
            assert len(answers) == len(burst)
            assert all(answer.startswith(b"HTTP/1.1 200 OK\r\n") and answer.endswith(b"\r\n\r\n{}")
                       for answer in answers)
            # Still open: one more request on the same connection, which asks to close it.
            connection.sendall(_request("/api/v2/batch", b"{}", "Connection: close"))
            assert _answers(connection, 1)[0].startswith(b"HTTP/1.1 200 OK")
            assert connection.recv(10) == b""
        stats = sink.stats()
    assert stats["requests"] == len(burst) + 1
    assert stats["bytes"] == len(stream) + len(_request("/api/v2/batch", b"{}", "Connection: close"))
    assert stats["paths"] == {"/api/v2/batch": 26, "/api/v2/entity": 25, "/api/v1/metrics": 25, "/contacts": 25}


def test_the_delivery_rules_lint_clean_and_send_everything_to_the_sink(tmp_path):
    sink_url = "http://127.0.0.1:9"
    paths = write_rules(tmp_path, sink_url)
    for name in ("workspace", "http", "workspace+webhook", "http+webhook"):
        _, problems = compile_paths([paths[name]])
        assert problems == [], name
    rules, _ = compile_paths([paths["http+webhook"]])
    assert {d.name: d.transport for d in rules.destinations} == {"customerio": "http", "crm": "http"}
    customerio = next(d for d in rules.destinations if d.name == "customerio")
    assert customerio.settings["base_url"] == sink_url
    urls = {call.payload["url"] for event in EVENTS for call in rules.evaluate(event).calls
            if call.destination == "crm"}
    assert len(urls) > 3 and all(url.startswith(sink_url + "/") for url in urls), urls


def test_a_run_that_hangs_is_stopped_at_its_timeout(tmp_path):
    from benchmarks.run import run_child

    started = time.perf_counter()
    with pytest.raises(TimeoutError):
        run_child([sys.executable, "-c", "import time; time.sleep(60)"], tmp_path, timeout=0.5)
    assert time.perf_counter() - started < 10
