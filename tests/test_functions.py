"""Switchyard's JMESPath functions: the case table, and the examples in docstrings and docs."""
from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest

from conftest import load_yaml
from engine.mapping import CUSTOM_FUNCTION_NAMES, MappingError, compile_expression
from engine.mapping.functions import SwitchyardFunctions

ROOT = Path(__file__).resolve().parent.parent
CASES = load_yaml(ROOT / "tests/cases/functions.yaml")
DOCS = (ROOT / "docs/mappings.md").read_text(encoding="utf-8")
EXAMPLE_LINE = re.compile(r"^\s*(?P<expr>\S.*?)\s+=>\s+(?P<result>.+?)\s*$")


def exact(value) -> str:
    """JSON text, so that 1 and 1.0, or 0 and false, do not compare equal."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def evaluate(expr: str, event):
    evaluate, problems = compile_expression(expr)
    assert problems == [], f"{expr}: {problems}"
    return evaluate(event)


@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_case(case):
    evaluate_, problems = compile_expression(case["expr"])
    if "problems" in case:
        assert [(p.code, p.column) for p in problems] == [(p["code"], p["column"]) for p in case["problems"]]
        return
    assert problems == []
    event = case.get("event", {})
    if case.get("error"):
        with pytest.raises(MappingError):
            evaluate_(event)
    elif "pattern" in case:
        assert re.fullmatch(case["pattern"], evaluate_(event))
    else:
        assert exact(evaluate_(event)) == exact(case["expect"])


def docstring_examples(name: str) -> list[tuple[str, str]]:
    doc = SwitchyardFunctions.FUNCTION_TABLE[name]["function"].__doc__
    return [(m["expr"], m["result"]) for m in map(EXAMPLE_LINE.match, doc.splitlines()) if m]


def docs_examples() -> list[tuple[str, str]]:
    """The ``expression  =>  result`` lines of every ```jmespath block in docs/mappings.md."""
    blocks = re.findall(r"```jmespath\n(.*?)```", DOCS, flags=re.S)
    return [(m["expr"], m["result"]) for block in blocks for m in map(EXAMPLE_LINE.match, block.splitlines()) if m]


def docs_event() -> dict:
    """The example event: the first ```json block of docs/mappings.md."""
    return json.loads(re.search(r"```json\n(.*?)```", DOCS, flags=re.S).group(1))


@pytest.mark.parametrize("name", CUSTOM_FUNCTION_NAMES)
def test_docstring_examples_hold(name):
    examples = docstring_examples(name)
    assert examples, f"{name}() has no example in its docstring"
    for expr, result in examples:
        assert name in expr
        assert exact(evaluate(expr, {})) == exact(json.loads(result)), expr


def test_docs_examples_hold():
    event = docs_event()
    examples = docs_examples()
    for expr, result in examples:
        assert exact(evaluate(expr, event)) == exact(json.loads(result)), expr
    called = {name for expr, _ in examples for name in re.findall(r"(\w+)\(", expr)}
    assert set(CUSTOM_FUNCTION_NAMES) <= called, "every function needs an example in docs/mappings.md"


def test_docs_have_a_section_for_every_function():
    headings = "\n".join(line for line in DOCS.splitlines() if line.startswith("### "))
    for name in CUSTOM_FUNCTION_NAMES:
        assert f"`{name}(" in headings, f"docs/mappings.md has no section for {name}()"


def test_type_error_names_function_and_value():
    evaluate_, _ = compile_expression("lower(properties.n)", path=("data", "name"))
    with pytest.raises(MappingError) as caught:
        evaluate_({"properties": {"n": 5}})
    assert caught.value.path == ("data", "name")
    assert str(caught.value).startswith("data.name: lower() expects string or null, got number 5")


def test_timestamps_parse_to_the_moment_dateutil_reads():
    """to_unix reads the common shape with datetime.fromisoformat; dateutil's isoparse is the reference."""
    from dateutil.parser import isoparse

    from engine.mapping.functions import parse_timestamp

    rng = random.Random(7)
    checked = 0
    for _ in range(5000):
        text = (f"{rng.choice(['0000', '0001', '1969', '2024', '9999'])}-{rng.randint(0, 13):02d}-{rng.randint(0, 32):02d}"
                f"T{rng.randint(0, 24):02d}:{rng.randint(0, 60):02d}:{rng.randint(0, 60):02d}"
                f"{rng.choice(['', '.5', '.123', '.123456', '.1234567'])}"
                f"{rng.choice(['', 'Z', '+02:00', '-05:30', '+23:59', '+24:00', '-00:00'])}")
        try:
            expected = isoparse(text)
        except (ValueError, OverflowError):
            expected = None
        try:
            actual = parse_timestamp(text)
        except (ValueError, OverflowError):
            actual = None
        assert actual == expected, text
        if expected is not None:
            assert actual.utcoffset() == expected.utcoffset(), text
        checked += expected is not None
    assert checked > 500


def test_an_integer_longer_than_python_prints_by_default_is_written_whole_as_text():
    # A numeric userId of 5,000 digits becomes the text Customer.io is sent; Python alone refuses at 4,300.
    from engine.integers import any_size
    from engine.mapping.functions import text_of

    with any_size():
        number = int("7" * 5000)
    assert text_of(number) == "7" * 5000


@pytest.mark.parametrize("expression", ["to_string(userId)", "concat('id-', userId)"])
def test_standard_functions_take_an_integer_of_5000_digits_as_the_others_do(expression):
    """to_string is JMESPath's own, whose json.dumps refused it: the call became an invalid payload."""
    from engine.integers import any_size

    with any_size():
        number = int("7" * 5000)
    evaluate, problems = compile_expression(expression)
    assert not problems and evaluate({"userId": number}).endswith("7" * 5000)
