"""Seeded random triggers and events, for tests that compare two ways of evaluating triggers."""
from __future__ import annotations

import json
import random

from engine import compile_trigger
from engine.trigger import TriggerError

TYPES = ["track", "identify", "page", "group"]
NAMES = ["Order Completed", "Signed Up", "Product Viewed", "order completed", ""]
PLANS = ["pro", "free"]
# Timestamps of the common UTC shape and others, to compare with each other.
MOMENTS = ["2026-01-02T10:00:00Z", "2026-01-02T10:00:00.5Z", "2026-01-02T09:59:59Z", "2026-01-02",
           "2026-01-02T15:00:00+05:00", "2026-01-02 10:00:00", "2026-02-30T10:00:00Z"]
# Values an event may carry where a trigger looks, including ones of the wrong kind.
ODD_VALUES = [None, 0, 1, 1.0, 2.5, True, False, ["track"], ["pro", 1], {"a": 1}, "Track", "10", "2026-01-02"]
FIELDS = [("type", TYPES), ("event", NAMES), ("properties.plan", PLANS), ("properties.total", [1, 10, "10"]),
          ("context.traits.vip", [True, False]), ("properties.items[*].sku", PLANS), ("properties.items[0]", PLANS),
          ("a.b.c.d", PLANS), ("timestamp", MOMENTS), ("properties.items[*].price", [5, 10, "10"]),
          ("properties.tags[*]", PLANS)]


def _literal(rng: random.Random, pool: list) -> str:
    return json.dumps(rng.choice(pool + [1, 2.5, True, None]))


def condition(rng: random.Random) -> str:
    field, pool = rng.choice(FIELDS)
    form = rng.randrange(10)
    if form == 0:
        return f"{field} {rng.choice(['=', '==', 'is'])} {_literal(rng, pool)}"
    if form == 1:
        return f"{field} {rng.choice(['!=', 'is not'])} {_literal(rng, pool)}"
    if form == 2:
        items = ", ".join(_literal(rng, pool) for _ in range(rng.randint(0, 3)))
        return f"{field} {rng.choice(['in', 'not in'])} [{items}]"
    if form == 3:
        return f"{field} {rng.choice(['exists', 'does not exist'])}"
    if form == 4:
        literal = rng.choice([5, 10, "10", "m", *MOMENTS[:3], MOMENTS[3], MOMENTS[4]])
        return f"{field} {rng.choice(['<', '<=', '>', '>='])} {json.dumps(literal)}"
    if form == 5:
        return f'{field} {rng.choice(["starts with", "ends with", "does not start with"])} "{str(rng.choice(pool))[:2]}"'
    if form == 6:
        return f'{rng.choice(["contains", "!contains"])}({field}, {_literal(rng, pool)})'
    if form == 7:
        return f'{field} {rng.choice(["matches", "does not match"])} "^{str(rng.choice(pool))[:2]}"'
    if form == 8:
        return f"{field} = {rng.choice(['true', 'false', 'null'])}"
    return f"{field} is {_literal(rng, pool)}"


def trigger_text(rng: random.Random, depth: int = 0) -> str:
    if depth > 2 or rng.random() < 0.35:
        return condition(rng)
    children = [trigger_text(rng, depth + 1) for _ in range(rng.randint(1, 4))]
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


def triggers(rng: random.Random, count: int) -> list:
    """``count`` compiled random triggers (drawings with a literal of the wrong kind are drawn again)."""
    found = []
    while len(found) < count:
        try:
            found.append(compile_trigger(trigger_text(rng)))
        except TriggerError:
            continue
    return found


def _value(rng: random.Random, pool: list):
    return rng.choice(ODD_VALUES) if rng.random() < 0.25 else rng.choice(pool)


def event(rng: random.Random) -> dict:
    """An event shaped like the FIELDS, with missing keys, nulls and wrong kinds along the way."""
    found: dict = {}
    if rng.random() < 0.9:
        found["type"] = _value(rng, TYPES)
    if rng.random() < 0.7:
        found["event"] = _value(rng, NAMES)
    roll = rng.random()
    if roll < 0.6:
        items = [{"sku": _value(rng, PLANS), "price": _value(rng, [5, 10, 12.5, "10"])}
                 for _ in range(rng.randint(0, 3))]
        found["properties"] = {"plan": _value(rng, PLANS), "total": _value(rng, [1, 10, 10.0, "10", 11]),
                               "items": rng.choice([items, items + ["pro"], [{"sku": _value(rng, PLANS)}], [], None, "x"]),
                               "tags": rng.choice([[_value(rng, PLANS) for _ in range(rng.randint(0, 3))], "pro", None])}
    elif roll < 0.7:
        found["properties"] = rng.choice(ODD_VALUES)
    if rng.random() < 0.5:
        found["context"] = rng.choice([{"traits": {"vip": _value(rng, [True, False])}}, {"traits": None},
                                       {"traits": "x"}, None, []])
    if rng.random() < 0.5:
        found["timestamp"] = _value(rng, MOMENTS)
    if rng.random() < 0.3:
        found["a"] = rng.choice([{"b": {"c": {"d": _value(rng, PLANS)}}}, {"b": None}, {"b": {"c": [1]}}, 7])
    return found
