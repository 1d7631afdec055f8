"""Lint codes and positions, from the table in tests/cases/lint.yaml."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from engine.loader import compile_paths

CASES = yaml.safe_load((Path(__file__).parent / "cases" / "lint.yaml").read_text(encoding="utf-8"))


@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_lint_case(case, tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text(case["rules"], encoding="utf-8")
    _, problems = compile_paths([path], environ={})
    found = sorted((p.code, p.line, p.column) for p in problems)
    expected = sorted((code, line, column) for code, line, column, _ in case["problems"])
    assert found == expected, "\n".join(f"{p.code} {p.line}:{p.column} {p.message}" for p in problems)
    for code, line, column, part in case["problems"]:
        (problem,) = [p for p in problems if (p.code, p.line, p.column) == (code, line, column)]
        assert part in problem.message
        assert problem.file == str(path)


def test_duplicate_destination_across_files(tmp_path):
    text = 'version: 1\ndestination: {name: d, catalog: webhook}\nmappings: []\n'
    (tmp_path / "a.yaml").write_text(text)
    (tmp_path / "b.yaml").write_text(text)
    rules, problems = compile_paths([tmp_path], environ={})
    (problem,) = problems
    assert (problem.code, problem.file, problem.line, problem.column) == ("SY402", str(tmp_path / "b.yaml"), 2, 21)
    assert [d.name for d in rules.destinations] == ["d"]


def test_files_load_in_name_order(tmp_path):
    for name in ("b", "a", "c"):
        (tmp_path / f"{name}.yaml").write_text(f"version: 1\ndestination: {{name: {name}, catalog: webhook}}\n"
                                               "mappings: []\n")
    (tmp_path / "notes.txt").write_text("not a rule file")
    rules, _ = compile_paths([tmp_path], environ={})
    assert [d.name for d in rules.destinations] == ["a", "b", "c"]


def test_every_lint_code_is_documented():
    from engine.diagnostics import CODES

    cli_doc = (Path(__file__).parent.parent / "docs" / "cli.md").read_text(encoding="utf-8")
    assert [code for code in CODES if f"| {code} |" not in cli_doc] == []
