"""Mappings: the case table, the fast path's equivalence with JMESPath, and compile-once behaviour."""
from __future__ import annotations

import json
import random
from pathlib import Path

import jmespath
import pytest

from conftest import load_yaml
from engine.mapping import MappingError, compile_expression, compile_fields, merge_defaults
from engine.mapping.expressions import Expression, _interpreted, direct
from engine.mapping.fields import Array, Object
from engine.mapping.functions import OPTIONS

ROOT = Path(__file__).resolve().parent.parent
CASES = load_yaml(ROOT / "tests/cases/mappings.yaml")
WHERE = ("mappings", 0, "fields")


def exact(value) -> str:
    """JSON text, so that 1 and 1.0, or 0 and false, do not compare equal."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)


@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_case(case):
    spec = case["fields"]
    if "defaults" in case:
        spec = merge_defaults(spec, case["defaults"])
    mapper, problems = compile_fields(spec, where=WHERE)

    assert [(path, p.code, p.column) for path, p in problems] == [
        (WHERE + tuple(p["path"]), p["code"], p.get("column", 1)) for p in case.get("problems", [])
    ]
    if "literal_values" in case:
        assert exact(mapper.literal_values()) == exact(case["literal_values"])
    if "field_names" in case:
        assert list(mapper.fields) == case["field_names"]
    event = case.get("event", {})
    if "error" in case:
        with pytest.raises(MappingError) as caught:
            mapper.apply(event)
        assert caught.value.path == tuple(case["error"])
    if "expect" in case:
        assert exact(mapper.apply(event)) == exact(case["expect"])


# --- the fast path --------------------------------------------------------------------------

KEYS = ["a", "b", "c", "first name", "1"]


def random_value(rng: random.Random, depth: int):
    """A JSON value where the keys in KEYS are likely to appear, nested a few levels."""
    roll = rng.random()
    if depth > 0 and roll < 0.55:
        return {key: random_value(rng, depth - 1) for key in rng.sample(KEYS, rng.randint(0, len(KEYS)))}
    if depth > 0 and roll < 0.7:
        return [random_value(rng, depth - 1) for _ in range(rng.randint(0, 3))]
    return rng.choice([None, True, False, 0, 1.5, "", "text", "ü", [], {}])


def dotted(keys) -> str:
    return ".".join(key if key.isidentifier() else json.dumps(key) for key in keys)


def _fast_path_texts(rng: random.Random) -> list[str]:
    paths = [dotted(rng.choices(KEYS, k=rng.randint(1, 5))) for _ in range(200)] + ["a", "a.a.a.a", "@"]
    literals = ["''", "'x'", "`0`", "`false`", "`null`", "`[]`", "`{}`"]
    calls = ["coalesce(" + ", ".join(rng.choices(paths + literals, k=rng.randint(1, 4))) + ")" for _ in range(100)]
    return paths + calls + ["coalesce(coalesce(a, b), '')"]


def test_fast_path_gives_what_jmespath_gives():
    rng = random.Random(20240501)
    events = [random_value(rng, 4) for _ in range(400)] + [None, [], "text", 5, {"a": {"a": {"a": {"a": 1}}}}]
    found = 0
    for text in _fast_path_texts(rng):
        parsed = jmespath.compile(text)
        evaluate = direct(parsed.parsed)
        assert evaluate is not None, text
        for event in events:
            expected = parsed.search(event, OPTIONS)
            actual = evaluate(event)
            assert actual is expected or actual == expected, (text, event)
            assert type(actual) is type(expected), (text, event)
            found += expected is not None
    assert found > 10000, "the generated events should reach values, not only nulls"


@pytest.mark.parametrize("text", [
    "a[0]", "a[*].b", "a.b[0]", "a || b", "length(a)", "a.b | c", "{x: a}", "[a, b]",
    "a[?b].c", "!a", "a == b", "*.a", "coalesce(a[0], b)", "not_null(a, b)",
])
def test_fast_path_is_only_for_plain_paths_and_coalesce(text):
    assert direct(jmespath.compile(text).parsed) is None


# Calls whose arguments the fast path evaluates (paths, literals, @, coalesce, such calls), over
# Switchyard's functions and JMESPath's own; some have the wrong argument types for most events, or the
# wrong number of arguments, so the errors are compared too.
CALL_TEXTS = [
    "lower(a)", "upper(a.b)", "trim(a)", "concat(a, ' ', b)", "trim(concat(a, ' ', b.c))", "to_unix(a)",
    "url_segment(a)", "concat('https://x.example/', url_segment(a.a))", "lower(coalesce(a, b, 'X'))",
    "replace(a, 'e', 'E')", "split(a, 'e')", "length(a)", "to_string(a)", "to_number(a)", "join(', ', a)",
    "contains(a, 'e')", "starts_with(a, 'te')", "ends_with(b, 't')", "type(a)", "not_null(a, b, `1`)",
    "abs(a)", "floor(b)", "ceil(a.b)", "keys(a)", "values(@)", "to_array(a)", "merge(a, b)", "sum(a)",
    "max(a)", "min(b)", "avg(a)", "sort(a)", "reverse(a)", "length(@)", "lower(`5`)", "concat(a)",
    "trim(a, b)", "url_segment(to_string(a))", "to_unix(concat(a, 'T00:00:00Z'))",
]


def _outcome(evaluate, event):
    try:
        return "value", exact(evaluate(event))
    except MappingError as error:
        return "error", error.message


def test_calls_on_the_fast_path_give_what_the_interpreter_gives():
    rng = random.Random(20261206)
    texts = ["2024-01-01T00:00:00Z", "2024-01-01", "1700000000", "a b/c?d", "Text", "", "ü"]
    events = [random_value(rng, 3) for _ in range(300)] + [
        {"a": text, "b": other, "c": text} for text in texts for other in texts[:3]] + [
        {"a": [1, 2.5, -3]}, {"a": ["b", "a"]}, {"a": {"b": 1}, "b": {"c": 2}}, {"a": 1700000000}, None, 5]
    for text in CALL_TEXTS:
        parsed = jmespath.compile(text)
        fast = Expression(text, parsed).evaluate
        assert "_called" in fast.__qualname__, text  # on the fast path, not the interpreter
        slow = _interpreted(text, parsed, ())
        for event in events:
            assert _outcome(fast, event) == _outcome(slow, event), (text, event)


def _reference(node, event):
    """What a mapping node builds, by the plain loop the generated builders must agree with."""
    if isinstance(node, Object):
        built = {name: _reference(child, event) for name, child in node.fields.items()}
        return {name: value for name, value in built.items() if value is not None} or None
    if isinstance(node, Array):
        return [value for value in (_reference(item, event) for item in node.items) if value is not None] or None
    return node.evaluate(event)


def _random_spec(rng: random.Random, depth: int) -> dict:
    spec = {}
    for name in rng.sample(KEYS, rng.randint(1, len(KEYS))):
        roll = rng.random()
        if depth > 0 and roll < 0.2:
            spec[name] = _random_spec(rng, depth - 1)
        elif roll < 0.3:
            spec[name] = rng.choice([None, True, False, 0, 2.5, {"$literal": "x"}, {"$literal": {"a": 1}}])
        elif roll < 0.4:
            spec[name] = [dotted(rng.choices(KEYS, k=rng.randint(1, 3))), "`1`"]
        elif roll < 0.45:
            spec[name] = f"coalesce({dotted(rng.choices(KEYS, k=2))}, 'none')"
        elif roll < 0.55:  # of plain paths only: written out inline
            spec[name] = "coalesce(" + ", ".join(dotted(rng.choices(KEYS, k=rng.randint(1, 3)))
                                                 for _ in range(rng.randint(1, 3))) + ")"
        elif roll < 0.6:
            spec[name] = rng.choice(["`true`", "'text'", "`null`", "`50`", "`[1]`", "`{\"a\": 1}`"])
        else:
            spec[name] = dotted(rng.choices(KEYS, k=rng.randint(1, 4)))
    return spec


def test_generated_builders_build_what_the_plain_loop_builds():
    """Objects are built by generated functions (fields unrolled, paths inline); the loop is the reference."""
    rng = random.Random(99)
    events = [random_value(rng, 4) for _ in range(300)] + [None, [], "text", 5, {"a": None}, {"a": {"b": []}}]
    built = 0
    for _ in range(150):
        mapper, problems = compile_fields(_random_spec(rng, 2))
        assert not problems
        for event in events:
            expected = _reference(mapper._root, event)
            assert exact(mapper._root.evaluate(event)) == exact(expected), event
            built += expected is not None
    assert built > 10000


def test_apply_never_parses():
    mapper, _ = compile_fields({"a": "properties.a", "b": "lower(properties.b)", "c": ["userId", "`1`"]})
    real = jmespath.compile
    jmespath.compile = lambda *args, **kwargs: pytest.fail("parsed an expression while mapping an event")
    try:
        assert mapper.apply({"properties": {"a": 1, "b": "X"}, "userId": "u"}) == {"a": 1, "b": "x", "c": ["u", 1]}
    finally:
        jmespath.compile = real


def test_payloads_do_not_share_literal_objects():
    mapper, _ = compile_fields({"headers": {"$literal": {"X-A": "1"}}, "meta": "`{\"n\": [1]}`"})
    first = mapper.apply({})
    first["headers"]["X-B"] = "added by an adapter"
    first["meta"]["n"].append(2)
    assert mapper.apply({}) == {"headers": {"X-A": "1"}, "meta": {"n": [1]}}


def test_mapping_error_reads_as_path_then_reason():
    mapper, _ = compile_fields({"data": {"items": [{"sku": "upper(properties.sku)"}]}})
    with pytest.raises(MappingError) as caught:
        mapper.apply({"properties": {"sku": 7}})
    assert caught.value.path == ("data", "items", 0, "sku")
    assert str(caught.value).startswith("data.items[0].sku: upper() expects string or null, got number 7")


@pytest.mark.parametrize("spec", [
    "text", 5, [1, 2], {"a": object()}, {"a": {"b": {1.5: "x"}}}, {"a": [None, {"$literal": object()}]},
    {"a": "`1"}, {"a": "&a"}, {"a": "a[?"}, {"a": "\"unclosed"}, {"a": "a.b(c"}, {"a": "a[1:2:3:4]"},
    {"a": "(" * 5000 + "a" + ")" * 5000},
])
def test_compile_never_raises(spec):
    mapper, problems = compile_fields(spec, where=WHERE)
    assert isinstance(mapper.apply({}), dict)
    assert all(path[:3] == WHERE for path, _ in problems)


def test_compile_expression_with_problems_omits():
    evaluate, problems = compile_expression("properties..x")
    assert [p.code for p in problems] == ["SY201"]
    assert evaluate({"properties": {"x": 1}}) is None


def test_merge_defaults_leaves_the_spec_alone():
    spec = {"url": "'a'", "method": None}
    merged = merge_defaults(spec, {"method": "'POST'", "headers": "context.headers"})
    assert merged == {"url": "'a'", "method": None, "headers": "context.headers"}
    assert spec == {"url": "'a'", "method": None}
