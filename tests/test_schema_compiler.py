"""The compiled schemas against jsonschema: same errors, same messages, on thousands of random payloads.

The reference is the path every schema took before compilation: jsonschema's ``iter_errors`` worded by
``PayloadValidator._message``. Payloads are built from each schema (so valid ones are common) and then
damaged: values swapped for random JSON, fields dropped or added, numbers at the schema's bounds, bools
where integers go, 1.0 where 1 goes. The generated ``is_valid`` is checked against the closure it
replaces on the same payloads, and on copies holding subclasses of str, int, float, dict and list.
"""
from __future__ import annotations

import io
import json
import math
import random
import re
import sys
import tokenize

import pytest
from jsonschema import Draft202012Validator
from test_validation import SCHEMA as WEBHOOK_LIKE

from engine import catalog
from engine.schema_compiler import compile_schema
from engine.validation import _FORMAT_CHECKS, PayloadValidator, _jsonschema_formats, _order

# Every keyword the compiler supports, several at once, nested, with booleans as schemas.
EVERY_KEYWORD = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "Everything", "description": "d", "$comment": "c", "x-note": {"any": "thing"},
    "type": "object",
    "required": ["id", "it's", "kind"],
    "properties": {
        "id": {"title": "ID", "type": ["integer", "null"], "minimum": 1, "exclusiveMaximum": 1000},
        "it's": {"title": "Quote", "const": "yes"},
        "kind": {"title": "Kind", "enum": ["a", 1, True, None, 1.5, [1, "a"], {"k": [False]}]},
        "ratio": {"type": "number", "exclusiveMinimum": 0, "maximum": 1.5, "default": 1},
        "code": {"type": "string", "pattern": "^[A-Z]{2}-\\d+$", "minLength": 4, "maxLength": 6},
        "list": {"type": "array", "minItems": 1, "maxItems": 3, "items": {"type": "integer", "maximum": 5}},
        "empty": {"type": "array", "items": False},
        "never": False,
        "gone": False,  # two ``false`` schemas: jsonschema reports both at the parent's path, in schema order
        "anything": True,
        "zero": {"const": 0},
        "shape": {"const": {"a": [1, 2.0, None]}},
        "host": {"type": "string", "format": "hostname"},  # no checker for it: an annotation, as in jsonschema
        "a/b": {"type": "boolean", "deprecated": True},
        "0": {"type": "string", "examples": ["x"], "readOnly": True},
        "nested": {
            "title": "Nested", "type": "object", "required": ["inner"],
            "additionalProperties": {"type": "string", "maxLength": 2},
            "properties": {"inner": {
                "type": "object", "additionalProperties": False, "required": ["deep", "url"],
                "properties": {"deep": {"type": "integer"}, "url": {"format": "uri"}, "mail": {"format": "email"},
                               "at": {"format": "date-time"}},
            }},
        },
        "matrix": {"type": "array", "items": {"type": "array", "items": {"enum": [0, 1]}, "maxItems": 2}},
    },
    "additionalProperties": {"type": ["string", "integer"], "minLength": 2, "minimum": 10},
}

HAND_WRITTEN = {
    "webhook-like": WEBHOOK_LIKE,
    "every-keyword": EVERY_KEYWORD,
    "root-array": {"type": "array", "minItems": 1, "items": {
        "type": "object", "required": ["n"], "additionalProperties": False,
        "properties": {"n": {"type": "integer", "minimum": 0}, "s": {"type": "string", "maxLength": 3}}}},
    "root-scalar": {"type": ["integer", "string", "null"], "minimum": 0, "maximum": 10, "minLength": 1,
                    "enum": [0, 5, 10, "a", "", None, 5.5]},
    "root-const": {"const": [1, {"a": None}]},
    "empty": {},
    "field": {"properties": {"url": {"title": "URL", "type": "string", "format": "uri"}}},
    "closed-without-properties": {"additionalProperties": False},
    "required-only": {"required": ["a", "b", "c"]},
    "any-of-and-not": {"type": "object", "anyOf": [{"required": ["a"]}, {"required": ["b"]}],
                       "properties": {"a": {"type": "string"}, "b": {"type": "integer"},
                                      "c": {"type": "object", "not": {"required": ["r"]}}}},
    "numbers": {"type": "object", "properties": {
        "i": {"type": "integer", "minimum": -1, "maximum": 1},
        "n": {"type": "number", "exclusiveMinimum": -1.5, "exclusiveMaximum": 1.5},
        "u": {"type": ["number", "boolean"], "minimum": 0},
        "e": {"enum": [1, 2.5, False]}}},
    # Names, values and patterns that would change the generated code if they were ever spliced into it.
    "code-like": {
        "type": "object", "required": ["v", "'\"\n    return True\n#"], "additionalProperties": False,
        "properties": {
            "v": {"type": "integer", "maximum": 3},
            "'\"\n    return True\n#": {"enum": ["') or True or ('", "\\", "\n"]},
            "_c0": {"type": "string", "pattern": "^\"'$|^x", "maxLength": 3},
            "__import__('os')": {"type": "boolean"},
            "n": {"type": ["number", "string"]}}},
}

CATALOG_SCHEMAS = {
    f"{path.parent.name}/{path.stem}": json.loads(path.read_text(encoding="utf-8"))
    for path in sorted(catalog.catalogs_root().glob("*/*.json"))
}

SCALARS = [
    None, True, False, 0, 1, -1, 0.0, 1.0, -0.0, 1.5, 2, 2.0, 10, 100, 100.0, 101, 10**20, 1e300,
    math.inf, -math.inf, math.nan,
    "", "x", "1", "ab", "abcdefghijklm", "true", "null", "POST", "post", "yes", "it's", "a/b", "é", "\ud800",
    "https://x.example/a", "not a url", "http://[", "mailto:a@b.co", "a@b.co", "a @b", "AB-12", "ab-12",
    "2024-01-02T03:04:05Z", "2024-13-40", "2024-01-02",
]
EXTRA_KEYS = ["extra", "Extra", "z", "0", "", "k", "a", "n"]


class Pool:
    """What random values are made of: our scalars plus the schema's own numbers, strings and names."""

    def __init__(self, schema):
        numbers, strings, names = set(), set(), set()
        _collect(schema, numbers, strings, names)
        bounds = []
        for number in numbers:
            bounds += [number, number - 1, number + 1, number - 0.5, number + 0.5, float(number)]
        self.values = SCALARS + bounds + sorted(strings)
        self.names = sorted(names) + EXTRA_KEYS

    def value(self, rng: random.Random, depth: int = 0):
        roll = rng.random()
        if depth < 3 and roll < 0.1:
            return [self.value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
        if depth < 3 and roll < 0.2:
            return {rng.choice(self.names): self.value(rng, depth + 1) for _ in range(rng.randint(0, 3))}
        return rng.choice(self.values)


def _collect(node, numbers, strings, names):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "properties" and isinstance(value, dict):
                names.update(value)
            if key == "required":
                names.update(value)
            _collect(value, numbers, strings, names)
    elif isinstance(node, list):
        for item in node:
            _collect(item, numbers, strings, names)
    elif isinstance(node, str):
        strings.add(node)
    elif isinstance(node, (int, float)) and not isinstance(node, bool):
        numbers.add(node)


def fitting(rng: random.Random, schema, pool: Pool, depth: int = 0):
    """A value that is often valid for ``schema``, so that damage to it is near the edge."""
    if not isinstance(schema, dict) or depth > 4:
        return pool.value(rng)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return rng.choice(schema["enum"])
    types = schema.get("type", ["object", "string", "integer"])
    kind = rng.choice([types] if isinstance(types, str) else types)
    if kind == "object":
        names = list(schema.get("required", []))
        names += [name for name in schema.get("properties", {}) if rng.random() < 0.5]
        return {name: fitting(rng, schema.get("properties", {}).get(name, True), pool, depth + 1) for name in names}
    if kind == "array":
        low, high = schema.get("minItems", 0), schema.get("maxItems", 3)  # and one past each bound, now and then
        count = rng.randint(max(low - (rng.random() < 0.1), 0), high + (rng.random() < 0.1))
        return [fitting(rng, schema.get("items", True), pool, depth + 1) for _ in range(count)]
    if kind in ("integer", "number"):
        low = schema.get("minimum", schema.get("exclusiveMinimum", -3))
        high = schema.get("maximum", schema.get("exclusiveMaximum", low + 6))
        value = rng.randint(math.ceil(low), math.floor(high)) if math.ceil(low) <= math.floor(high) else low
        return value if kind == "integer" or rng.random() < 0.5 else value + rng.choice([0.0, 0.25])
    if kind == "string":
        known = {"uri": "https://x.example/a", "email": "a@b.co", "date-time": "2024-01-02T03:04:05Z"}
        if schema.get("format") in known:
            return known[schema["format"]]
        if "pattern" in schema:
            return rng.choice(["AB-12", "AB-1", "ab-12", "http://x", ""])
        low, high = schema.get("minLength", 0), schema.get("maxLength", 4)
        return "x" * rng.randint(max(low - (rng.random() < 0.1), 0), high + (rng.random() < 0.1))
    if kind == "boolean":
        return rng.random() < 0.5
    return None


def damaged(rng: random.Random, value, pool: Pool, depth: int = 0):
    """``value`` with, here and there, a field dropped, added or replaced, or a number nudged."""
    roll = rng.random()
    if roll < 0.06:
        return pool.value(rng, depth)
    if isinstance(value, bool):
        return value if roll > 0.1 else int(value)
    if isinstance(value, int) and roll < 0.15:
        return rng.choice([float(value), value + 1, value - 1, True, str(value)])
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if rng.random() > 0.08:
                out[key] = damaged(rng, item, pool, depth + 1)
        while rng.random() < 0.12:
            out[rng.choice(pool.names)] = pool.value(rng, depth + 1)
        return out
    if isinstance(value, list):
        items = [damaged(rng, item, pool, depth + 1) for item in value]
        if rng.random() < 0.1:
            items.append(pool.value(rng, depth + 1))
        return items
    return value


def payloads(schema, count: int, seed: str):
    rng = random.Random(seed)
    pool = Pool(schema)
    for _ in range(count):
        if rng.random() < 0.05:
            yield pool.value(rng)
        else:
            yield damaged(rng, fitting(rng, schema, pool), pool)


def _raw(error):
    return list(error.absolute_path), error.validator, error.message


@pytest.mark.parametrize("name", sorted(CATALOG_SCHEMAS) + sorted(HAND_WRITTEN))
def test_compiled_schema_says_what_jsonschema_says(name):
    schema = CATALOG_SCHEMAS.get(name) or HAND_WRITTEN[name]
    validator = PayloadValidator(schema)
    assert validator._compiled is not None, f"{name} is not compiled"
    reference = Draft202012Validator(schema, format_checker=_jsonschema_formats())
    verdicts = {"valid": 0, "invalid": 0, "several errors": 0}
    for payload in payloads(schema, 1500 if name in CATALOG_SCHEMAS else 4000, name):
        expected = sorted(reference.iter_errors(payload), key=_order)
        found = sorted(validator._compiled.iter_errors(payload), key=_order)
        # The same errors, field by field (the very same objects where jsonschema hands them over) ...
        assert [_raw(error) for error in found] == [_raw(error) for error in expected], payload
        for mine, theirs in zip(found, expected):
            assert mine.instance is theirs.instance and mine.schema is theirs.schema, payload
            assert mine.validator_value is theirs.validator_value, payload
        # ... the same verdict from the yes/no closure, and the same messages in the same order.
        assert validator._compiled.is_valid(payload) is (not expected), payload
        assert validator.errors(payload) == validator._jsonschema_errors(payload), payload
        verdicts["valid" if not expected else "invalid"] += 1
        verdicts["several errors"] += len(expected) > 1
    if name == "empty":
        assert verdicts["invalid"] == 0  # {} accepts any JSON value
        return
    # Both verdicts, and payloads with several problems at once, were exercised.
    assert verdicts["valid"] >= 30 and verdicts["invalid"] >= 30, verdicts
    if name not in ("root-const", "root-scalar", "field", "closed-without-properties"):
        assert verdicts["several errors"] >= 20, verdicts


JSON_EDGES = [
    1.0, True, math.nan, math.inf, -math.inf, 10**400, "\ud800", "http://[", "", [], {},
    {"": None}, [[[[[]]]]], "x" * 100_000,
]


def _deep(kind, depth=5000):
    value = [] if kind is list else {}
    for _ in range(depth):
        value = [value] if kind is list else {"k": value}
    return value


@pytest.mark.parametrize("name", sorted(CATALOG_SCHEMAS) + sorted(HAND_WRITTEN))
def test_compiled_schema_never_raises(name):
    schema = CATALOG_SCHEMAS.get(name) or HAND_WRITTEN[name]
    validator = PayloadValidator(schema)
    fields = list(schema.get("properties", {})) + ["extra"]
    # Values jsonschema itself cannot explain: past the int-to-text limit, deeper than the recursion limit.
    huge = 10 ** (sys.get_int_max_str_digits() + 10)
    for value in JSON_EDGES + [huge, -huge, _deep(list), _deep(dict)]:
        for payload in [value] + [{field: value} for field in fields]:
            messages = validator.errors(payload)
            assert isinstance(messages, list) and all(isinstance(message, str) for message in messages)


def test_an_int_too_long_to_print_is_still_explained():
    if not sys.get_int_max_str_digits():
        pytest.skip("this interpreter prints ints of any length")
    huge = 10 ** (sys.get_int_max_str_digits() + 10)
    assert PayloadValidator(WEBHOOK_LIKE).errors({"url": "https://x", "count": huge}) == [
        f"Count must be <= 10 but it was an integer of {huge.bit_length()} bits."]


# ---- the generated ``is_valid`` against the closure it stands in for ----

class _Str(str):
    pass


class _Int(int):
    pass


class _Float(float):
    pass


class _Dict(dict):
    pass


class _List(list):
    pass


_SUBCLASS = {str: _Str, int: _Int, float: _Float}


def exotic(rng: random.Random, value):
    """``value`` with, here and there, a subclass of str, int, float, dict or list in place of the class itself.

    Not JSON, but the closures accept such values (by ``isinstance``), so the generated function must hand
    them to the closures rather than judge them by their exact class.
    """
    if isinstance(value, dict):
        out = {key: exotic(rng, item) for key, item in value.items()}
        return _Dict(out) if rng.random() < 0.2 else out
    if isinstance(value, list):
        out = [exotic(rng, item) for item in value]
        return _List(out) if rng.random() < 0.2 else out
    if type(value) in _SUBCLASS and rng.random() < 0.3:
        return _SUBCLASS[type(value)](value)
    return value


# Schemas whose root cannot be an object keep the closure: there are no keys to write out.
NOT_GENERATED = {"root-array", "root-scalar", "empty"}
GENERATED = sorted(set(CATALOG_SCHEMAS) | (set(HAND_WRITTEN) - NOT_GENERATED))


@pytest.mark.parametrize("name", GENERATED)
def test_generated_is_valid_answers_as_the_closure(name):
    schema = CATALOG_SCHEMAS.get(name) or HAND_WRITTEN[name]
    generated = compile_schema(schema, _FORMAT_CHECKS)
    closure = compile_schema(schema, _FORMAT_CHECKS, generate=False)
    assert generated.source is not None and closure.source is None, f"{name}: is_valid was not generated"
    rng = random.Random(name)
    verdicts = {True: 0, False: 0}
    for payload in payloads(schema, 1500 if name in CATALOG_SCHEMAS else 4000, name):
        for each in (payload, exotic(rng, payload)):
            expected = closure.is_valid(each)
            assert generated.is_valid(each) is expected, each
            verdicts[expected] += 1
    assert verdicts[True] >= 30 and verdicts[False] >= 30, verdicts


@pytest.mark.parametrize("name", sorted(NOT_GENERATED))
def test_a_schema_that_takes_no_object_keeps_the_closure(name):
    assert compile_schema(HAND_WRITTEN[name], _FORMAT_CHECKS).source is None


# What the generated source may name: Python's keywords, a few builtins, its own locals, and the bound
# constants (``_k0``, ``_c1``, ``_t2``, ``_f3``). Its one literal is the 1 of ``n += 1``.
_OURS = {"def", "if", "else", "not", "in", "is", "and", "return", "True", "False", "None", "type", "len", "str",
         "int", "float", "bool", "dict", "list", "is_valid", "v", "x", "n", "_closure"}


@pytest.mark.parametrize("name", GENERATED)
def test_no_schema_text_reaches_the_generated_source(name):
    source = compile_schema(CATALOG_SCHEMAS.get(name) or HAND_WRITTEN[name], _FORMAT_CHECKS).source
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        assert token.type != tokenize.STRING and (token.type != tokenize.NUMBER or token.string == "1"), token
        if token.type == tokenize.NAME:
            assert token.string in _OURS or re.fullmatch(r"_[kctf]\d+", token.string), token


def test_a_source_python_refuses_leaves_the_closure(monkeypatch):
    def refuse(*args, **kwargs):
        raise SyntaxError("too many statically nested blocks")

    from engine import generated

    monkeypatch.setattr(generated, "compile", refuse, raising=False)  # shadows the builtin there
    generated._code.cache_clear()  # an earlier test may have compiled the same source
    compiled = compile_schema(WEBHOOK_LIKE, _FORMAT_CHECKS)
    assert compiled.source is None
    assert compiled.is_valid({"url": "https://x", "count": 3}) is True
    assert compiled.is_valid({"url": "https://x", "count": 11}) is False
    generated._code.cache_clear()  # nothing refused may stay cached for later tests
