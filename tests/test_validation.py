"""Payload validation: Segment's wording, and a fast path that never disagrees with jsonschema."""
from __future__ import annotations

import random

import pytest

from engine import catalog
from engine.validation import PayloadValidator

SCHEMA = {
    "type": "object",
    "required": ["url"],
    "additionalProperties": False,
    "properties": {
        "url": {"title": "URL", "type": "string", "format": "uri"},
        "name": {"title": "Event Name", "type": "string", "minLength": 1},
        "method": {"title": "Method", "enum": ["POST", "PUT"]},
        "count": {"title": "Count", "type": "integer", "minimum": 0, "maximum": 10},
        "size": {"type": "number", "exclusiveMinimum": 0},
        "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 2},
        "data": {"type": "object", "required": ["id"], "properties": {"id": {"type": ["string", "number"]}}},
        "flag": {"type": "boolean"},
        "email": {"type": "string", "format": "email"},
        "when": {"type": "string", "format": "date-time"},
    },
}

MESSAGES = [
    ({}, "The root value is missing the required field 'url'."),
    ({"url": "https://x", "name": {"a": 1}}, "Event Name must be a string but it was an object."),
    ({"url": "https://x", "method": "GET"}, 'Method must be one of: "POST", "PUT".'),
    ({"url": "not a url"}, "URL must be a valid uri string but it was 'not a url'."),
    ({"url": "https://x", "count": 11}, "Count must be <= 10 but it was 11."),
    ({"url": "https://x", "count": 1.5}, "Count must be an integer but it was a number."),
    ({"url": "https://x", "flag": 1}, "The value at /flag must be a boolean but it was an integer."),
    ({"url": "https://x", "data": {}}, "The value at /data is missing the required field 'id'."),
    ({"url": "https://x", "tags": ["a", 1]}, "The value at /tags/1 must be a string but it was an integer."),
    ({"url": "https://x", "extra": 1}, "The root value has an unexpected property, extra, which is not allowed."),
    ({"url": "https://x", "name": ""}, "Event Name must be at least 1 characters long."),
]


@pytest.mark.parametrize("payload, message", MESSAGES, ids=[m for _, m in MESSAGES])
def test_messages_read_like_segments(payload, message):
    assert message in PayloadValidator(SCHEMA).errors(payload)


def _random_value(rng: random.Random, depth: int = 0):
    choices = [None, True, False, 0, -1, 3, 11, 1.5, "", "x", "POST", "https://x.example/a", "not a url",
               "a@b.co", "2024-01-02T03:04:05Z", "2024-13-40", [], ["a"], ["a", "b", "c"], [1]]
    if depth < 2:
        choices += [{}, {"id": "1"}, {"id": None}]
    value = rng.choice(choices)
    if isinstance(value, dict) and rng.random() < 0.5:
        value = {**value, "k": _random_value(rng, depth + 1)}
    return value


def test_fast_path_agrees_with_jsonschema_on_random_payloads():
    validator = PayloadValidator(SCHEMA)
    assert validator._fast is not None
    rng = random.Random(1)
    keys = list(SCHEMA["properties"]) + ["extra"]
    agreed = valid = 0
    for _ in range(5000):
        payload = {key: _random_value(rng) for key in rng.sample(keys, rng.randint(0, 5))}
        if rng.random() < 0.7:
            payload["url"] = rng.choice(["https://x.example", "nope", 5])
        slow = list(validator._validator.iter_errors(payload))
        assert (validator.errors(payload) == []) == (not slow), payload
        agreed += 1
        valid += not slow
    assert agreed == 5000 and valid > 100  # both verdicts were exercised


def test_schemas_outside_the_shared_keywords_use_jsonschema_only():
    schema = {"type": "object", "prefixItems": [{"type": "string"}], "dependentRequired": {"a": ["b"]}}
    validator = PayloadValidator(schema)
    assert validator._fast is None
    assert validator.errors({"a": 1}) != []  # dependentRequired, which draft 7 would ignore
    assert validator.errors({"a": 1, "b": 2}) == []


def test_every_catalog_action_gets_the_fast_path():
    for name in catalog.available():
        for action in catalog.load(name).actions.values():
            assert action.validator._fast is not None, f"{name}/{action.name} falls back to the slow path"
