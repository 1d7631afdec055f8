"""The benchmarks measure what they claim: the compared evaluators agree, and the inputs are not trivial.

A benchmark of triggers that all say no, or of a baseline that answers differently, would be
fast and meaningless; these tests keep benchmarks/ honest as the engine changes.
"""
from __future__ import annotations

import json
import sys
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

from benchmarks.baseline import Interpreted  # noqa: E402
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
