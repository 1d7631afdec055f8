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
