"""Convert Timestamps: the case table tests/cases/customerio-timestamps.yaml, then what a table cannot show."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from conftest import load_yaml
from engine.customerio.timestamps import (
    convert_attribute_timestamps,
    convert_valid_timestamp,
    dayjs_utc,
    is_iso_timestamp,
    js_date_parse,
)

CASES = load_yaml(Path(__file__).parent / "cases" / "customerio-timestamps.yaml")
SEED_ROWS = [
    "25 Mar 2015", "Mar 25 2015", "01/01/2019", "2019-02-01", "2007-01-02T18:04:07", "2006-01-02T18:04:07Z",
    "2006-01-02T18:04:07+01:00", "2006-01-02T15:04:05.007", "2006-01-02T15:04:05.007Z",
    "2006-01-02T15:04:05.007+01:00", "2025-08-13T15:45:17.451Z", "2025-08-13T02:08:40.1418726Z",
]


def _expected(case: dict, column: str):
    return case["value"] if case[column] == "same" else case[column]


def _same(got, want) -> bool:
    """Equal and of the same JSON type: "1" is not 1, and 1 is not 1.0."""
    return json.dumps(got, sort_keys=True) == json.dumps(want, sort_keys=True)


def _params(column: str) -> list:
    return [pytest.param(case, id=f"{json.dumps(case['value'], ensure_ascii=False)} -> {case[column]}") for case in CASES]


@pytest.mark.parametrize("case", _params("attribute"))
def test_as_an_attribute(case):
    got = convert_attribute_timestamps({"purchase_time": case["value"]})["purchase_time"]
    assert _same(got, _expected(case, "attribute"))


@pytest.mark.parametrize("case", _params("created_at"))
def test_as_created_at(case):
    got = convert_attribute_timestamps({"created_at": case["value"]})["created_at"]
    assert _same(got, _expected(case, "created_at"))


@pytest.mark.parametrize("case", _params("timestamp"))
def test_as_the_event_timestamp(case):
    assert _same(convert_valid_timestamp(case["value"]), _expected(case, "timestamp"))


def test_every_row_of_the_seed_table_is_a_case():
    seeded = [case["value"] for case in CASES if case.get("seed")]
    assert seeded == SEED_ROWS


def test_the_seed_example_uses_the_correct_unix_time():
    # The seed says 1136253847, eight hours (28800 s) later than the real instant.
    converted = convert_attribute_timestamps({"purchase_time": "2006-01-02T18:04:07Z"})
    assert converted == {"purchase_time": 1136225047}
    assert 1136253847 - 1136225047 == 8 * 3600


def test_nested_objects_convert_and_arrays_are_not_entered():
    attributes = {
        "plan": {"renewal": "2019-02-01", "history": {"started": "2007-01-02T18:04:07", "note": "x"}},
        "dates": ["2019-02-01", {"at": "2019-02-01"}],
        "phone": "555-1234",
        "count": 3,
        "flag": None,
    }
    assert convert_attribute_timestamps(attributes) == {
        "plan": {"renewal": 1548979200, "history": {"started": 1167761047, "note": "x"}},
        "dates": ["2019-02-01", {"at": "2019-02-01"}],
        "phone": "555-1234",
        "count": 3,
        "flag": None,
    }


def test_created_at_is_lax_at_any_depth():
    converted = convert_attribute_timestamps({"company": {"created_at": "Mar 25 2015", "founded": "Mar 25 2015"}})
    assert converted == {"company": {"created_at": 1427241600, "founded": "Mar 25 2015"}}


def test_conversion_never_modifies_its_input():
    attributes = {"at": "2019-02-01", "nested": {"at": "2019-02-01"}}
    before = copy.deepcopy(attributes)
    convert_attribute_timestamps(attributes)
    assert attributes == before


def test_is_iso_timestamp_needs_the_shape_and_a_real_date():
    assert is_iso_timestamp("2019-02-01T10:00:00.123Z")
    assert not is_iso_timestamp("2019-02-01T10:00:00.1234Z")   # sub-millisecond
    assert not is_iso_timestamp("2019-13-01")                   # the shape, but no such month
    assert not is_iso_timestamp(1548979200)


# Date.parse results from node 20 with TZ=UTC (milliseconds; None is NaN). The port of V8's
# parser was also compared with node on 7,000 generated strings.
DATE_PARSE = {
    "2023-12-25": 1703462400000,
    "2023-12-25T14:30:45.123+05:30": 1703494845123,
    "2023-12-25T14:30:45.1234567890": 1703514645123,
    "Mar 25": 985478400000,                       # V8 reads a missing year as 2001
    "12/25/99": 946080000000,
    "Sun, 06 Nov 1994 08:49:37 GMT": 784111777000,
    "Nov 6 08:49:37 1994": 784111777000,
    "2020-03-01 12:00 EST": 1583082000000,
    "Mar 1 2020 12:00 am": 1583020800000,
    "Mar 1 2020 12 am": None,                     # am/pm needs a time with a colon
    "+275760-09-13T00:00:00Z": 8640000000000000,
    "+275760-09-13T00:00:00.001Z": None,          # past the end of JavaScript time
    "2023-12-25T14:30:45 PDT": None,
    "2000-01-01T24:01": None,
    "Jan 32 2020": None,
    "1 abc 2000": None,
    "yesterday": None,
    "": None,
}


@pytest.mark.parametrize("text,expected", DATE_PARSE.items(), ids=[repr(t) for t in DATE_PARSE])
def test_js_date_parse_reads_like_v8(text, expected):
    assert js_date_parse(text) == expected


def test_dayjs_reads_its_own_pattern_before_date_parse():
    # dayjs keeps the fraction's first three digits as written: ".5" is 5 ms, not 500.
    assert dayjs_utc("2023-12-25 14:30:45.5") == 1703514645005
    assert dayjs_utc("2023-12-25T14:30:45.5Z") == 1703514645500   # ends in Z: Date.parse
    assert dayjs_utc("2023") == 1672531200000
    assert dayjs_utc("not a date") is None
