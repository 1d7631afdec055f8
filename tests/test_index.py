"""The mapping index never changes a result: indexed and scanned evaluation agree on random rules and events."""
from __future__ import annotations

import random

import pytest

import random_triggers
from engine import compile_trigger, load
from engine.index import TriggerIndex


@pytest.mark.parametrize("seed", range(40))
def test_indexed_matches_equal_a_scan_of_every_trigger(seed):
    rng = random.Random(seed)
    triggers = random_triggers.triggers(rng, rng.randint(1, 30))
    index = TriggerIndex((trigger, position) for position, trigger in enumerate(triggers))
    for _ in range(300):
        event = random_triggers.event(rng)
        scanned = [position for position, trigger in enumerate(triggers) if trigger.matches(event)]
        assert index.matching(event) == scanned, (event, [t.text for t in triggers])


def test_the_index_really_skips_triggers_that_cannot_match():
    triggers = [compile_trigger(f'type = "track" and event = "Event {n}"') for n in range(1000)]
    triggers.append(compile_trigger('type = "identify"'))
    triggers.append(compile_trigger("properties.total > 10"))
    index = TriggerIndex((trigger, n) for n, trigger in enumerate(triggers))
    assert list(index.candidates({"type": "track", "event": "Event 7"})) == [7, 1001]
    assert list(index.candidates({"type": "identify"})) == [1000, 1001]
    assert list(index.candidates({"type": "track", "event": "Unknown"})) == [1001]


@pytest.mark.parametrize("text, keys", [
    ('type = "track"', {"type": {"track"}}),
    ('type = "track" and event = "A"', {"type": {"track"}, "event": {"A"}}),
    ('event = "A" or event = "B" or event in ["C", "D"]', {"event": {"A", "B", "C", "D"}}),
    ('event = "A" or type = "page"', {}),
    ('type = "track" and (event = "A" or properties.x = 1)', {"type": {"track"}}),
    ('ALL(type in ["track", "page"], type = "page")', {"type": {"page"}}),
    ('type = "track" and type = "page"', {"type": set()}),
    ('not type = "track"', {}),
    ('type != "track"', {}),
    ('event in ["A", 1]', {}),          # a number could equal a number: not a string requirement
    ('type = 1', {}),
    ('context.type = "track"', {}),
    ('match(event, "Order*")', {}),
    ('match(event, "Order")', {"event": {"Order"}}),
])
def test_required_keys(text, keys):
    assert {field: set(values) for field, values in compile_trigger(text).keys.items()} == keys


@pytest.mark.parametrize("seed", range(10))
def test_rule_set_evaluation_equals_a_scan_of_its_mappings(seed, tmp_path):
    rng = random.Random(1000 + seed)
    triggers = [t.text for t in random_triggers.triggers(rng, 25)]
    lines = ["version: 1", "destination: {name: hook, catalog: webhook, transport: file,",
             "  settings: {url: 'http://127.0.0.1:9/x', path: out.ndjson}}", "mappings:"]
    for n, text in enumerate(triggers):
        lines += [f"  - name: m{n}", f"    trigger: {text!r}".replace("\\\\", "\\"), "    action: send",
                  "    fields: {data: {type: type}}"]
    (tmp_path / "r.yaml").write_text("\n".join(lines) + "\n")
    rules = load(tmp_path / "r.yaml")
    destination = rules.destinations[0]
    for _ in range(200):
        event = random_triggers.event(rng)
        event.setdefault("type", "track")
        if not isinstance(event["type"], str) or event["type"] not in random_triggers.TYPES:
            continue
        expected = [m.name for m in destination.mappings if m.trigger.matches(event)]
        assert [call.mapping for call in rules.evaluate(event).calls] == expected


def test_a_dropped_index_is_freed_at_once_not_by_a_full_collection():
    """A linted rule set of thousands of mappings hangs off its index; a cycle would keep it until a full
    collection (a second of a 10,000-mapping lint)."""
    import gc
    import weakref

    class Item:
        pass

    item = Item()
    index = TriggerIndex([(compile_trigger('type = "track"'), item)])
    freed = weakref.ref(item)
    del item
    gc.disable()
    try:
        del index
        assert freed() is None
    finally:
        gc.enable()
