"""Event paths: parsing, reading (``get``) and copy-on-write removal (``without``)."""
from __future__ import annotations

import copy
import pickle

import pytest

from engine.paths import MISSING, WILDCARD, Path, PathError, parse_path, unquote
from engine.trigger import compile_trigger

EVENT = {
    "type": "track",
    "userId": None,
    "properties": {"total": 30, "items": [{"sku": "a", "price": 10}, {"sku": "b"}, 7], "empty": []},
    "context": {"device": {"type": "ios"}, "ip": "10.0.0.1"},
    "traits": {"first.name": "Ann", "a b": 1, "0": "zero", "say \"x\"": 2},
}


@pytest.mark.parametrize("text, segments", [
    ("type", ("type",)),
    ("properties.total", ("properties", "total")),
    ("context.device.type", ("context", "device", "type")),
    ("a.b.c.d.e", ("a", "b", "c", "d", "e")),
    ('traits."first.name"', ("traits", "first.name")),
    ("traits.'a b'", ("traits", "a b")),
    (r'traits."say \"x\""', ("traits", 'say "x"')),
    ('traits.""', ("traits", "")),
    ('traits."*"', ("traits", "*")),
    ("items[0].sku", ("items", 0, "sku")),
    ("items[-1]", ("items", -1)),
    ("items.0.sku", ("items", 0, "sku")),
    ("items.007", ("items", "007")),
    ("properties.1st", ("properties", "1st")),
    ("items[*].price", ("items", WILDCARD, "price")),
    ("a[*][*]", ("a", WILDCARD, WILDCARD)),
    ("$email", ("$email",)),
    ("context.user-agent", ("context", "user-agent")),
    ("prénom", ("prénom",)),
], ids=lambda value: value if isinstance(value, str) else None)
def test_parse_path(text, segments):
    path = parse_path(text)
    assert path.segments == segments
    assert path.text == text
    # The trigger grammar's PATH token delimits exactly what parse_path reads.
    assert compile_trigger(f"{text} exists").explain({}).path == text


@pytest.mark.parametrize("text, column", [
    ("", 1), (".a", 1), ("1a", 1), ("a..b", 2), ("a.", 2), ("a[x]", 2), ("a[01]", 2), ("a[]", 2),
    ("a b", 2), ("a[0]b", 5), ('a."open', 2), ("a.b c", 4),
])
def test_bad_paths_say_where(text, column):
    with pytest.raises(PathError) as raised:
        parse_path(text)
    assert raised.value.column == column and raised.value.message


@pytest.mark.parametrize("text, expected", [
    ("type", "track"),
    ("userId", None),
    ("anonymousId", MISSING),
    ("properties.total", 30),
    ("properties.missing", MISSING),
    ("properties.total.deeper", MISSING),
    ("context.device.type", "ios"),
    ("context.device.type.x", MISSING),
    ("context.nothing.type", MISSING),
    ("userId.x", MISSING),
    ("type.x", MISSING),
    ('traits."first.name"', "Ann"),
    ("traits.'a b'", 1),
    ('traits."say \\"x\\""', 2),
    ("properties.items[0].sku", "a"),
    ("properties.items.1.sku", "b"),
    ("properties.items[-1]", 7),
    ("properties.items[-4]", MISSING),
    ("properties.items[3]", MISSING),
    ("properties.items[2].sku", MISSING),
    ("properties.items.sku", MISSING),
    ("traits[0]", "zero"),
    ("type[0]", MISSING),
    ("properties.items[*].sku", ["a", "b"]),
    ("properties.items[*].price", [10]),
    ("properties.items[*]", [{"sku": "a", "price": 10}, {"sku": "b"}, 7]),
    ("properties.empty[*].x", []),
    ("properties.total[*]", []),
    ("nothing[*].x", []),
])
def test_get(text, expected):
    found = parse_path(text).get(EVENT)
    assert found == expected if expected is not MISSING else found is MISSING


def _reference_get(segments: tuple, value):
    """The definition the specialised getters must agree with, written plainly."""
    for i, segment in enumerate(segments):
        if segment is WILDCARD:
            found = []
            for element in value if isinstance(value, list) else []:
                inner = _reference_get(segments[i + 1:], element)
                found.extend(inner if WILDCARD in segments[i + 1:] else [] if inner is MISSING else [inner])
            return found
        if isinstance(value, dict) and str(segment) in value:
            value = value[str(segment)]
        elif isinstance(value, list) and isinstance(segment, int) and -len(value) <= segment < len(value):
            value = value[segment]
        else:
            return MISSING if WILDCARD not in segments else []
    return value


@pytest.mark.parametrize("text", ["type", "a.b", "a.b.c", "a.b.c.d", "a[0]", "a[*].b", "a.b[*]"])
@pytest.mark.parametrize("event", [
    None, [], "type", 3, True, {"type": None}, {"a": None}, {"a": "b"}, {"a": [None]}, {"a": {"b": 5}},
    {"a": {"b": {"c": None}}}, {"a": {"b": {"c": {"d": 0}}}}, {"a": [{"b": 1}, {"c": 2}, {"b": None}]},
    {"a": {"b": [1, None]}}, {"a": {"b": "str"}},
])
def test_getters_agree_with_the_plain_definition(text, event):
    path = parse_path(text)
    found = path.get(event)
    expected = _reference_get(path.segments, event)
    assert found == expected if expected is not MISSING else found is MISSING


def test_nested_wildcards_flatten():
    event = {"orders": [{"items": [{"sku": "a"}, {"sku": "b"}]}, {"items": []}, {"items": [{"sku": "c"}]}]}
    assert parse_path("orders[*].items[*].sku").get(event) == ["a", "b", "c"]


def test_missing_is_a_falsy_singleton_that_survives_copies():
    assert not MISSING and repr(MISSING) == "MISSING"
    assert copy.copy(MISSING) is MISSING and copy.deepcopy(MISSING) is MISSING
    assert pickle.loads(pickle.dumps(MISSING)) is MISSING
    assert MISSING != None  # noqa: E711 - missing and null are different things


def test_paths_compare_by_segments():
    assert parse_path("items[0]") == parse_path("items.0")
    assert len({parse_path("a.b"), parse_path("a.'b'")}) == 1
    assert isinstance(parse_path("a"), Path)


def test_unquote():
    assert unquote(r'"a\"b"') == 'a"b'
    assert unquote(r"'it\'s'") == "it's"
    assert unquote(r'"\\ \/ \n \r \t"') == "\\ / \n \r \t"
    assert unquote(r'"\u00e9\ud83d\ude00"') == "é😀"
    assert unquote(r'"\udfff"') == "\udfff" and unquote(r'"a\ud800\ud83d\ude00"') == "a\ud800😀"  # lone, as JSON
    assert unquote(r'"^\d+\b"') == r"^\d+\b"  # other escapes are kept, so regexes read naturally


# --- without: copy-on-write removal -------------------------------------------------------


def _without(text: str, event):
    before = copy.deepcopy(event)
    result = parse_path(text).without(event)
    assert event == before, "without must never mutate its input"
    return result


def test_without_removes_a_nested_key_and_shares_the_rest():
    result = _without("context.ip", EVENT)
    assert result["context"] == {"device": {"type": "ios"}}
    assert result is not EVENT and result["context"] is not EVENT["context"]
    assert result["properties"] is EVENT["properties"]
    assert result["context"]["device"] is EVENT["context"]["device"]


def test_without_a_top_level_key():
    result = _without("type", EVENT)
    assert "type" not in result and result["traits"] is EVENT["traits"]


def test_without_a_quoted_key():
    assert "first.name" not in _without('traits."first.name"', EVENT)["traits"]


@pytest.mark.parametrize("text", ["nothing", "properties.nothing", "context.device.type.x", "userId.x",
                                  "properties.items[9]", "properties.items[2].sku", "type[*]", "nothing[*].x"])
def test_without_returns_the_event_itself_when_nothing_is_there(text):
    assert _without(text, EVENT) is EVENT


def test_without_through_an_index():
    result = _without("properties.items[0].price", EVENT)
    assert result["properties"]["items"][0] == {"sku": "a"}
    assert result["properties"]["items"][1] is EVENT["properties"]["items"][1]


def test_without_an_index_removes_the_element():
    assert _without("properties.items[-1]", EVENT)["properties"]["items"] == [{"sku": "a", "price": 10}, {"sku": "b"}]


def test_without_a_wildcard_removes_from_every_element():
    event = {"items": [{"sku": "a", "pii": 1}, {"sku": "b"}, {"pii": 2}, 5]}
    result = _without("items[*].pii", event)
    assert result == {"items": [{"sku": "a"}, {"sku": "b"}, {}, 5]}
    assert result["items"][1] is event["items"][1]


def test_without_a_trailing_wildcard_empties_the_array():
    assert _without("tags[*]", {"tags": [1, 2]}) == {"tags": []}


def test_without_on_odd_events():
    for event in (None, [], "text", 5):
        assert parse_path("a.b").without(event) is event
