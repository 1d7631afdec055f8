"""Positions: a problem found inside a trigger or expression is reported where it is in the file."""
from __future__ import annotations

import pytest

from engine.diagnostics import Problem
from engine.source import parse

CASES = [
    # (yaml text, path, (line, column) inside the value, expected (line, column) in the file)
    ("trigger: event iz 'x'\n", ("trigger",), (1, 7), (1, 16)),
    ('trigger: "event iz x"\n', ("trigger",), (1, 7), (1, 17)),
    ("trigger: 'event iz x'\n", ("trigger",), (1, 1), (1, 11)),
    ("a:\n  trigger: |\n    type = 'track'\n    and event iz 'x'\n", ("a", "trigger"), (2, 11), (4, 15)),
    ("a:\n  trigger: |-\n\n    type = 'track'\n", ("a", "trigger"), (2, 3), (4, 7)),
    ("trigger: >\n  type = 'track'\n  and event iz 'x'\n", ("trigger",), (1, 26), (3, 13)),
    ("trigger: type = 'track'\n  and event iz 'x'\n", ("trigger",), (1, 26), (2, 13)),
    ("- {trigger: event iz x}\n", (0, "trigger"), (1, 7), (1, 19)),
]


@pytest.mark.parametrize("text, path, inner, expected", CASES, ids=[c[0].split("\n")[0] for c in CASES])
def test_position_inside_a_scalar(text, path, inner, expected):
    source = parse("f.yaml", text)
    problem = source.inside(path, *inner, Problem("SY101", "x"))
    assert (problem.line, problem.column) == expected
    assert problem.source_line == text.splitlines()[expected[0] - 1]


def test_yaml_syntax_error_is_a_problem_not_an_exception():
    source = parse("f.yaml", "a: [1, 2\nb: 3\n")
    (problem,) = source.problems
    assert problem.code == "SY001" and problem.line >= 1 and problem.file == "f.yaml"


def test_duplicate_keys_are_reported_where_they_are():
    source = parse("f.yaml", "a: 1\nb: 2\na: 3\n")
    (problem,) = source.problems
    assert (problem.code, problem.line, problem.column) == ("SY002", 3, 1)
    assert "duplicate key 'a'" in problem.message


def test_tags_cannot_construct_python_objects():
    source = parse("f.yaml", "a: !!python/object/apply:os.system ['true']\n")
    assert source.problems and source.problems[0].code == "SY001"


@pytest.mark.parametrize("opening, closing", [("[", "]"), ("{a: ", "}"), ("- ", "")],
                         ids=["flow lists", "flow mappings", "block lists"])
def test_deep_nesting_is_a_problem_not_a_recursion_error(opening, closing):
    if opening == "- ":
        text = "".join("  " * depth + "-\n" for depth in range(3000)) + "  " * 3000 + "x\n"
    else:
        text = "x: " + opening * 3000 + "1" + closing * 3000 + "\n"
    source = parse("f.yaml", text)
    (problem,) = source.problems
    assert problem.code == "SY005" and source.data is None


def test_aliases_within_the_allowance_are_values_like_any_other():
    source = parse("f.yaml", "base: &base {a: 1, b: [x, y]}\ncopy: *base\nmerged: {<<: *base, a: 2}\n")
    assert source.problems == []
    assert source.data == {"base": {"a": 1, "b": ["x", "y"]}, "copy": {"a": 1, "b": ["x", "y"]},
                           "merged": {"a": 2, "b": ["x", "y"]}}
    assert source.position(("merged", "a")) == (3, 24)  # the mapping's own value
    assert source.position(("merged", "b")) == (1, 23)  # where the merged value was written


def test_aliases_that_multiply_are_refused_before_they_expand():
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{n}: &a{n} [{', '.join([f'*a{n - 1}'] * 10)}]" for n in range(1, 10)]  # 10**10 values
    source = parse("f.yaml", "\n".join(lines) + "\n")
    (problem,) = source.problems
    assert (problem.code, problem.line) == ("SY004", 5) and source.data is None


def test_a_value_is_located_after_values_of_every_kind():
    text = "a: 1\nb: 'two'\nc: [3, {d: four}]\ne: |\n  five\nf: six\n"
    source = parse("f.yaml", text)
    assert source.position(("c", 1, "d")) == (3, 12)
    assert source.position(("f",)) == (6, 4)
    assert source.position(("f",), key=True) == (6, 1)
    assert source.position(("c", 5)) == (3, 4)  # no such item: its list


def test_quoted_and_plain_scalars_of_the_same_text_keep_their_kinds():
    source = parse("f.yaml", "- 'true'\n- true\n- '5'\n- 5\n- true\n- 'true'\n")
    assert source.data == ["true", True, "5", 5, True, "true"]
    assert [type(value) for value in source.data] == [str, bool, str, int, bool, str]


@pytest.mark.parametrize("text", ["<<\n", "a: <<\n", "- <<\n", "<<: 5\n", "? [a]\n: 1\n", "a: *x\n", "a: &x [*x]\n",
                                  "a: !!set {x}\n", "--- a\n--- b\n"])
def test_what_safe_load_refuses_is_a_syntax_problem(text):
    (problem,) = parse("f.yaml", text).problems
    assert problem.code == "SY001"


@pytest.mark.parametrize("style", [None, "'", '"', "|", ">"], ids=["plain", "single", "double", "literal", "folded"])
def test_every_character_of_a_scalar_is_found_where_it_was_written(style):
    """Random texts as PyYAML writes them in each style, folded at 12 columns: each letter or digit of the value
    is located on that very character of the file (a differential test against PyYAML's own writer)."""
    import random

    import yaml

    rng = random.Random(5)
    checked = 0
    alphabet = "ab  \t'\"\\#:-xé😀0123\n"
    for _ in range(300):
        value = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 40))).strip() or "x"
        if style in ("|", ">") and "\t" in value:
            continue  # PyYAML writes it double-quoted instead
        text = yaml.safe_dump({"k": {"trigger": value}}, default_style=style, width=12, allow_unicode=True)
        source = parse("f.yaml", text)
        if source.data["k"]["trigger"] != value:
            continue  # PyYAML does not read back what it wrote (trailing spaces in a folded scalar)
        checked += 1
        lines = text.splitlines()
        for offset, char in enumerate(value):
            if not char.isalnum():
                continue
            line = value[:offset].count("\n") + 1
            column = offset - (value.rfind("\n", 0, offset) + 1) + 1
            problem = source.inside(("k", "trigger"), line, column, Problem("SY101", "x"))
            assert lines[problem.line - 1][problem.column - 1] == char, (text, value, offset)
    assert checked > 100
