"""The fast paths of JavaScript's Date.parse against the port of V8's parser, on random and date-like text.

:func:`js_date_parse` reads the strict ISO form with one pattern and turns away text that
cannot be a date before reading it; both must give exactly what :func:`v8_date_parse`, the
port itself, gives. The port's own answers are checked against node in
tests/test_customerio_timestamps.py.
"""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.customerio.jsdate import (
    could_be_date,
    dayjs_utc,
    js_date_parse,
    v8_date_parse,
)

# -- text that is, or is nearly, a date -----------------------------------------------------

_DIGITS = st.from_regex(r"[0-9]{1,7}", fullmatch=True)
_WORDS = st.sampled_from([
    "Jan", "march", "MAR", "Sept", "dec", "december", "May", "am", "PM", "pm", "UTC", "GMT", "ut", "z", "Z", "T", "t",
    "EST", "pdt", "cst", "Wed", "Wednesday", "abc", "user", "anon", "e", "x", "tue", "gmtx", "utcz", "Tx", "é", "_",
    "[", "~", "Ä", "ſep", "Kelvin\u212a",
])
_SEPARATORS = st.sampled_from([
    " ", "  ", "-", "/", ":", ".", ",", "+", "-", ")", "(", "((", "T", "t", "Z", "\t", "\n", "\u00a0", "\u2003", "@",
    "#", "=", "\x1c", "٣",
])
_DATE_LIKE = st.lists(st.one_of(_DIGITS, _WORDS, _SEPARATORS), max_size=12).map("".join)


def _two(low: int, high: int) -> st.SearchStrategy[str]:
    return st.integers(low, high).map(lambda n: f"{n:02d}")


_YEAR = st.one_of(st.from_regex(r"[0-9]{4}", fullmatch=True), st.from_regex(r"[+-][0-9]{6}", fullmatch=True),
                  st.sampled_from(["-000000", "+000000", "+275760", "-271821", "0000", "9999", "123", "12345"]))
_FRACTION = st.from_regex(r"\.[0-9]{0,12}", fullmatch=True)
_ZONE = st.sampled_from(["", "Z", "z", "+01:00", "-08:00", "+0530", "-0800", "+05", "+5:30", "+24:00", "+23:59",
                         "-00:60", "+12:3", " GMT", " PDT", "UTC", "ZZ", "Z ", "+01:00 ", "T"])
_ISO_LIKE = st.tuples(
    _YEAR,
    st.one_of(st.just(""), _two(0, 13).map("-".__add__), st.sampled_from(["-1", "-123", "/12"])),
    st.one_of(st.just(""), _two(0, 32).map("-".__add__), st.sampled_from(["-1", "-123"])),
    st.sampled_from(["", "T", "t", " ", "TT", "x"]),
    st.one_of(st.just(""), _two(0, 25), st.sampled_from(["1", "123"])),
    st.one_of(st.just(""), _two(0, 60).map(":".__add__), st.sampled_from([":1", "1"])),
    st.one_of(st.just(""), _two(0, 60).map(":".__add__), st.sampled_from([":1"])),
    st.one_of(st.just(""), _FRACTION),
    _ZONE,
    st.sampled_from(["", "", "", " ", "x", "0", "(comment)", " 2020"]),
).map("".join)

_ANY_TEXT = st.one_of(st.text(), st.text(alphabet=st.characters(codec="ascii")), _DATE_LIKE, _ISO_LIKE)
_NEAR_MISSES = [
    "2023-12-25T14:30:45.123+05:30", "2023-12-25T24:00:00.000Z", "2023-12-25T24:00:00.001Z", "-000000-01-01T00:00Z",
    "+275760-09-13T00:00:00.000Z", "+275760-09-13T00:00:00.001Z", "2023-13-01", "2023-02-30", "2023-12-25t10:00z",
    "2023-12-25T10:00+2400", "2023-12-25T10:00:00.0000000001Z", "user-2023-01", "Mar 25 2015 (a comment", "Tue 5",
    "5 Tue", "-000000A:0", "-000000 abc 1", "-0000001 abc", "anon-3e46685257", "5.7.2", "SKU-487", "T1", "1 T", "a1", "1a", "12:00 pm 1/2/2020",
]

_SETTINGS = settings(max_examples=1000, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


@_SETTINGS
@given(_ANY_TEXT)
def test_could_be_date_never_turns_away_a_date(text):
    if not could_be_date(text):
        assert v8_date_parse(text) is None


@_SETTINGS
@given(_ANY_TEXT)
def test_js_date_parse_answers_as_the_port(text):
    assert js_date_parse(text) == v8_date_parse(text)


@pytest.mark.parametrize("text", _NEAR_MISSES)
def test_near_misses_answer_as_the_port(text):
    assert js_date_parse(text) == v8_date_parse(text)
    assert could_be_date(text) or v8_date_parse(text) is None


# -- what the fast reject turns away ---------------------------------------------------------

@pytest.mark.parametrize("text", [
    "", "Ada", "free", "https://shop.example/pricing",      # no digit
    "anon-3e46685257", "o-1x", "1 abc 2000",                 # a word V8 does not know after a number
    "user78908@example.com", "u96531", "SKU487",             # a word V8 does not know right before a number
])
def test_text_that_cannot_be_a_date_is_turned_away(text):
    assert not could_be_date(text)
    assert js_date_parse(text) is None


@pytest.mark.parametrize("text", [
    "2026-11-04T21:47:00.000Z", "25 Mar 2015", "Mar 25 2015 10:00 PM EST", "01/01/2019", "5.7.2", "SKU-487",
    "Wed, 25 Mar 2015 10:00:00 GMT+0100 (CET)", "Mar 25 (abc) 2015", "-000000 Jan 1 2000",
])
def test_text_that_may_be_a_date_goes_to_the_parser(text):
    assert could_be_date(text)
    assert js_date_parse(text) is not None


def test_dayjs_reads_through_the_fast_paths():
    assert dayjs_utc("2026-11-04T21:47:00.000Z") == 1793828820000
    assert dayjs_utc("anon-3e46685257") is None
