"""The bytes sent to Customer.io: encode() for one body, batch_bytes() for a batch of encoded items."""
from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import engine
from conftest import ROOT
from engine.customerio import (
    BATCH_ENVELOPE,
    BATCH_SEPARATOR,
    UnencodableBody,
    batch_body,
    batch_bytes,
    encode,
    to_request,
)

BEYOND_64_BITS = [2**64, -(2**63) - 1, 10**30, -(10**40)]


@pytest.fixture(scope="module")
def bodies():
    from benchmarks.generate import events
    rules = engine.load(ROOT / "rules" / "customerio.yaml")
    return [to_request(call).body for event in events(300) for call in rules.evaluate(event).calls]


def test_bodies_read_back_as_they_were(bodies):
    assert len({body["action"] for body in bodies}) >= 4
    for body in bodies:
        assert json.loads(encode(body)) == body


def test_non_ascii_text_is_sent_as_utf8_not_escaped():
    body = {"attributes": {"name": "Zoë 😀", "city": "Zürich", "line": "a\u2028b"}}
    assert encode(body) == '{"attributes":{"name":"Zoë 😀","city":"Zürich","line":"a\u2028b"}}'.encode()


def test_the_largest_64_bit_integers_go_the_fast_way():
    assert encode({"n": 2**64 - 1, "m": -(2**63)}) == b'{"n":18446744073709551615,"m":-9223372036854775808}'


@pytest.mark.parametrize("number", BEYOND_64_BITS)
def test_integers_beyond_64_bits_are_written_exactly(number):
    body = {"type": "person", "attributes": {"big": number, "name": "Zoë", "when": 1.5, "tags": [number]}}
    data = encode(body)
    assert json.loads(data) == body
    assert data == json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


@pytest.mark.parametrize("extra", [{}, {"big": 2**70}])
def test_nan_and_infinity_are_null_as_in_javascript(extra):
    body = {"a": float("nan"), "b": [float("inf"), -float("inf")], **extra}
    assert json.loads(encode(body)) == {"a": None, "b": [None, None], **extra}


@pytest.mark.parametrize("body,where", [
    ({"attributes": {"name": "x\ud800y"}}, "body.attributes.name"),
    ({"attributes": {"tags": ["ok", "\udc00"]}, "big": 2**70}, "body.attributes.tags[1]"),
    ({"attributes": {"k\udfff": 1}}, "a key of body.attributes"),
])
def test_a_lone_surrogate_is_a_clear_value_error(body, where):
    with pytest.raises(UnencodableBody, match="lone surrogate") as raised:
        encode(body)
    assert isinstance(raised.value, ValueError)
    assert str(raised.value).startswith(where + " holds a lone surrogate (U+D")


def test_nesting_orjson_refuses_is_still_written():
    body: dict = {}
    inner = body
    for _ in range(300):
        inner["a"] = {}
        inner = inner["a"]
    assert json.loads(encode(body)) == body


def test_batch_bytes_is_the_batch_body_without_encoding_again(bodies):
    items = [encode(body) for body in bodies[:50]]
    data = batch_bytes(items)
    assert json.loads(data) == batch_body(bodies[:50])
    assert len(data) == BATCH_ENVELOPE + sum(map(len, items)) + BATCH_SEPARATOR * (len(items) - 1)
    assert json.loads(batch_bytes([])) == {"batch": []}
    assert len(batch_bytes([])) == BATCH_ENVELOPE
    assert json.loads(batch_bytes([encode({"big": 2**70, "name": "Zoë"})])) == {"batch": [{"big": 2**70, "name": "Zoë"}]}


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=120, deadline=None, database=None)
@given(st.lists(st.dictionaries(st.text(), _JSON, max_size=5), max_size=4))
def test_any_json_reads_back_alone_and_in_a_batch(bodies):
    for body in bodies:
        assert json.loads(encode(body)) == body
    assert json.loads(batch_bytes([encode(body) for body in bodies])) == json.loads(json.dumps(batch_body(bodies)))
