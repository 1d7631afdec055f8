"""Payload validation: Segment's wording, which schemas are compiled, and the path for the others.

The compiled path is checked against jsonschema in test_schema_compiler.py.
"""
from __future__ import annotations

import json
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


def test_a_malformed_url_is_explained_not_raised():
    # urlsplit raises ValueError on "http://[": it used to escape as a traceback.
    assert PayloadValidator(SCHEMA).errors({"url": "http://["}) == ["URL must be a valid uri string but it was 'http://['."]


def test_a_false_schema_beside_another_error_is_explained_not_raised():
    # jsonschema reports a false schema at its parent's path with no keyword; sorting it beside another
    # error there used to raise TypeError.
    validator = PayloadValidator({"required": ["id"], "properties": {"never": False}})
    assert validator.errors({"never": 1}) == [
        "The root value False schema does not allow 1.", "The root value is missing the required field 'id'."]


def test_every_catalog_schema_is_compiled():
    for name in catalog.available():
        loaded = catalog.load(name)
        assert PayloadValidator(loaded.settings_schema)._compiled is not None, f"{name}/_destination"
        for action in loaded.actions.values():
            assert action.validator._compiled is not None, f"{name}/{action.name} is not compiled"
            for field in action.properties:
                assert catalog._field_validator(name, action.name, field)._compiled is not None, field


OUTSIDE_THE_COMPILER = {
    "oneOf": {"properties": {"id": {"oneOf": [{"type": "string"}, {"type": "integer"}]}}},
    "allOf": {"allOf": [{"type": "string"}, {"minLength": 2}]},
    "$ref": {"$defs": {"id": {"type": "string"}}, "properties": {"id": {"$ref": "#/$defs/id"}}},
    "$schema below the root": {"properties": {"id": {"$schema": "http://json-schema.org/draft-07/schema#"}}},
    "patternProperties": {"patternProperties": {"^x-": {"type": "string"}}},
    "uniqueItems": {"type": "array", "uniqueItems": True},
    "multipleOf": {"type": "number", "multipleOf": 2},
    "unknown keyword": {"type": "object", "frobnicate": True},
}


@pytest.mark.parametrize("name", sorted(OUTSIDE_THE_COMPILER))
def test_schemas_outside_the_compiler_keep_fastjsonschema_and_jsonschema(name):
    assert PayloadValidator(OUTSIDE_THE_COMPILER[name])._compiled is None


def test_a_schema_outside_the_compiler_keeps_todays_messages():
    schema = {"type": "object", "required": ["id"],
              "properties": {"id": {"title": "ID", "oneOf": [{"type": "string"}, {"type": "integer", "minimum": 1}]}}}
    validator = PayloadValidator(schema)
    assert validator._compiled is None and validator._fast is not None
    assert validator.errors({"id": "a"}) == []
    assert validator.errors({"id": 0}) == ["ID 0 is not valid under any of the given schemas."]
    assert validator.errors({"id": 1.5}) == ["ID 1.5 is not valid under any of the given schemas."]
    assert validator.errors([]) == ["The root value must be an object but it was an array."]
    assert validator.errors({"x": 1}) == ["The root value is missing the required field 'id'."]


def _random_value(rng: random.Random, depth: int = 0):
    choices = [None, True, False, 0, -1, 3, 11, 1.5, "", "x", "POST", "https://x.example/a", "not a url",
               "a@b.co", "2024-01-02T03:04:05Z", "2024-13-40", [], ["a"], ["a", "b", "c"], [1]]
    if depth < 2:
        choices += [{}, {"id": "1"}, {"id": None}]
    value = rng.choice(choices)
    if isinstance(value, dict) and rng.random() < 0.5:
        value = {**value, "k": _random_value(rng, depth + 1)}
    return value


def test_fastjsonschema_agrees_with_jsonschema_on_random_payloads():
    # A keyword outside the compiler (minProperties) keeps SCHEMA on the fastjsonschema path.
    validator = PayloadValidator({**SCHEMA, "minProperties": 0})
    assert validator._compiled is None and validator._fast is not None
    rng = random.Random(1)
    keys = list(SCHEMA["properties"]) + ["extra"]
    valid = 0
    for _ in range(5000):
        payload = {key: _random_value(rng) for key in rng.sample(keys, rng.randint(0, 5))}
        if rng.random() < 0.7:
            payload["url"] = rng.choice(["https://x.example", "nope", 5])
        slow = validator._jsonschema_errors(payload)
        assert validator.errors(payload) == slow, payload
        valid += not slow
    assert 100 < valid < 4900  # both verdicts were exercised


def test_schemas_outside_the_shared_keywords_use_jsonschema_only():
    schema = {"type": "object", "prefixItems": [{"type": "string"}], "dependentRequired": {"a": ["b"]}}
    validator = PayloadValidator(schema)
    assert validator._compiled is None and validator._fast is None
    assert validator.errors({"a": 1}) != []  # dependentRequired, which draft 7 would ignore
    assert validator.errors({"a": 1, "b": 2}) == []


def test_every_shipped_schema_is_a_valid_2020_12_schema():
    """PayloadValidator trusts the catalogs' schemas, so this is where they are checked."""
    from jsonschema import Draft202012Validator

    from engine.resources import resource

    files = sorted(resource("schemas").rglob("*.json"))
    assert len(files) > 15
    for path in files:
        Draft202012Validator.check_schema(json.loads(path.read_text(encoding="utf-8")))


def test_a_catalog_words_a_rule_keywords_cannot_say():
    schema = {"type": "object", "properties": {"id": {"type": "string"}, "anonymous_id": {"type": "string"},
                                               "attributes": {"type": "object", "not": {"required": ["relationship"]},
                                                              "x-messages": {"not": "no relationship here."}}},
              "anyOf": [{"required": ["id"]}, {"required": ["anonymous_id"]}],
              "x-messages": {"anyOf": "Track Event needs a person."}}
    validator = PayloadValidator(schema)
    assert validator._compiled is not None
    assert validator.errors({"id": "u1"}) == []
    assert validator.errors({}) == ["Track Event needs a person."]
    assert validator.errors({"anonymous_id": "a", "attributes": {"relationship": 1}}) == ["no relationship here."]
    # Other keywords keep their own words.
    assert validator.errors({"id": 5}) == ["The value at /id must be a string but it was an integer."]
