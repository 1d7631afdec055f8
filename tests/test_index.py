"""The mapping index never changes a result: indexed and scanned evaluation agree on random rules and events."""
from __future__ import annotations

import json
import random

import pytest

from engine import compile_trigger, load
from engine.index import TriggerIndex

TYPES = ["track", "identify", "page", "group"]
NAMES = ["Order Completed", "Signed Up", "Product Viewed", "order completed", ""]
# Values an event may carry in `type` and `event`, including ones of the wrong kind.
ODD_VALUES = [None, 1, 1.0, True, ["track"], {"a": 1}, "Track"]


def _literal(rng: random.Random, pool: list) -> str:
    return json.dumps(rng.choice(pool + [1, True, None]))


def _condition(rng: random.Random) -> str:
    field, pool = rng.choice([("type", TYPES), ("event", NAMES), ("properties.plan", ["pro", "free"])])
    form = rng.randrange(7)
    if form == 0:
        return f"{field} = {_literal(rng, pool)}"
    if form == 1:
        return f"{field} != {_literal(rng, pool)}"
    if form == 2:
        items = ", ".join(_literal(rng, pool) for _ in range(rng.randint(0, 3)))
        return f"{field} {rng.choice(['in', 'not in'])} [{items}]"
    if form == 3:
        return f"{field} {rng.choice(['exists', 'does not exist'])}"
    if form == 4:
        return f'{field} starts with "{rng.choice(pool)[:3]}"'
    if form == 5:
        return f'contains({field}, "{rng.choice(pool)[:2]}")'
    return f"{field} is {_literal(rng, pool)}"


def _trigger(rng: random.Random, depth: int = 0) -> str:
    if depth > 2 or rng.random() < 0.35:
        return _condition(rng)
    children = [_trigger(rng, depth + 1) for _ in range(rng.randint(1, 3))]
    shape = rng.randrange(5)
    if shape == 0:
        return "(" + " and ".join(children) + ")"
    if shape == 1:
        return "(" + " or ".join(children) + ")"
    if shape == 2:
        return "ALL(" + ", ".join(children) + ")"
    if shape == 3:
        return "ANY(" + ", ".join(children) + ")"
    return "not (" + children[0] + ")"


def _event(rng: random.Random) -> dict:
    event: dict = {}
    if rng.random() < 0.9:
        event["type"] = rng.choice(TYPES + ODD_VALUES) if rng.random() < 0.2 else rng.choice(TYPES)
    if rng.random() < 0.7:
        event["event"] = rng.choice(NAMES + ODD_VALUES) if rng.random() < 0.2 else rng.choice(NAMES)
    if rng.random() < 0.5:
        event["properties"] = {"plan": rng.choice(["pro", "free", None, 3])}
    return event


def _compiled(rng: random.Random, count: int) -> list:
    triggers = []
    while len(triggers) < count:
        try:
            triggers.append(compile_trigger(_trigger(rng)))
        except Exception:  # noqa: BLE001 - a random literal of the wrong kind (SY105); draw another
            continue
    return triggers


@pytest.mark.parametrize("seed", range(40))
def test_indexed_matches_equal_a_scan_of_every_trigger(seed):
    rng = random.Random(seed)
    triggers = _compiled(rng, rng.randint(1, 30))
    index = TriggerIndex((trigger, position) for position, trigger in enumerate(triggers))
    for _ in range(300):
        event = _event(rng)
        scanned = [position for position, trigger in enumerate(triggers) if trigger.matches(event)]
        assert index.matching(event) == scanned, (event, [t.text for t in triggers])


def test_the_index_really_skips_triggers_that_cannot_match():
    triggers = [compile_trigger(f'type = "track" and event = "Event {n}"') for n in range(1000)]
    triggers.append(compile_trigger('type = "identify"'))
    triggers.append(compile_trigger("properties.total > 10"))
    index = TriggerIndex((trigger, n) for n, trigger in enumerate(triggers))
    assert [item for _, item in index.candidates({"type": "track", "event": "Event 7"})] == [7, 1001]
    assert [item for _, item in index.candidates({"type": "identify"})] == [1000, 1001]
    assert [item for _, item in index.candidates({"type": "track", "event": "Unknown"})] == [1001]


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
    triggers = [t.text for t in _compiled(rng, 25)]
    lines = ["version: 1", "destination: {name: hook, catalog: webhook, transport: file,",
             "  settings: {url: 'http://127.0.0.1:9/x', path: out.ndjson}}", "mappings:"]
    for n, text in enumerate(triggers):
        lines += [f"  - name: m{n}", f"    trigger: {text!r}".replace("\\\\", "\\"), "    action: send",
                  "    fields: {data: {type: type}}"]
    (tmp_path / "r.yaml").write_text("\n".join(lines) + "\n")
    rules = load(tmp_path / "r.yaml")
    destination = rules.destinations[0]
    for _ in range(200):
        event = _event(rng)
        event.setdefault("type", "track")
        if not isinstance(event["type"], str) or event["type"] not in TYPES:
            continue
        expected = [m.name for m in destination.mappings if m.trigger.matches(event)]
        assert [call.mapping for call in rules.evaluate(event).calls] == expected
