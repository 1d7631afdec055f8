"""Lint codes and positions, from the table in tests/cases/lint.yaml."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml  # type: ignore[import-untyped]

from conftest import load_yaml
from engine.diagnostics import format_text
from engine.loader import compile_paths, lint_paths

CASES = load_yaml(Path(__file__).parent / "cases" / "lint.yaml")


@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_lint_case(case, tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text(case["rules"], encoding="utf-8")
    _, problems = compile_paths([path], environ={})
    found = sorted((p.code, p.line, p.column) for p in problems)
    expected = sorted((code, line, column) for code, line, column, _ in case["problems"])
    assert found == expected, "\n".join(f"{p.code} {p.line}:{p.column} {p.message}" for p in problems)
    for code, line, column, part in case["problems"]:
        matching = [p for p in problems if (p.code, p.line, p.column) == (code, line, column) and part in p.message]
        assert matching and all(problem.file == str(path) for problem in matching), (code, line, column, part)
    # lint keeps nothing it compiles, and finds the same, with the same words and source lines.
    linted = lint_paths([path], environ={})
    assert [(p, p.source_line) for p in linted] == [(p, p.source_line) for p in problems]


def test_duplicate_destination_across_files(tmp_path):
    text = 'version: 1\ndestination: {name: d, catalog: webhook}\nmappings: []\n'
    (tmp_path / "a.yaml").write_text(text)
    (tmp_path / "b.yaml").write_text(text)
    rules, problems = compile_paths([tmp_path], environ={})
    (problem,) = problems
    assert (problem.code, problem.file, problem.line, problem.column) == ("SY402", str(tmp_path / "b.yaml"), 2, 21)
    assert [d.name for d in rules.destinations] == ["d"]
    assert lint_paths([tmp_path], environ={}) == problems


def test_a_file_named_twice_is_read_once(tmp_path, monkeypatch):
    text = 'version: 1\ndestination: {name: d, catalog: webhook, settings: {url: "https://x.example"}}\nmappings: []\n'
    (tmp_path / "a.yaml").write_text(text)
    monkeypatch.chdir(tmp_path)
    rules, problems = compile_paths([tmp_path, "a.yaml", "./a.yaml"], environ={})
    assert problems == [] and [d.name for d in rules.destinations] == ["d"]


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


def _mutations(rng, document):
    """Copies of ``document`` with one random change: a key dropped, added or given a value of another kind."""
    import copy

    values = [None, True, 0, 1.5, "", "x", [], {}, ["x"], {"x": 1}, "PUT", 1]
    for _ in range(300):
        mutated = copy.deepcopy(document)
        containers, stack = [], [mutated]
        while stack:
            node = stack.pop()
            containers.append(node)
            stack.extend(child for child in (node.values() if isinstance(node, dict) else node)
                         if isinstance(child, (dict, list)))
        target = rng.choice(containers)
        if isinstance(target, dict) and target:
            key = rng.choice(sorted(target, key=str))
            roll = rng.random()
            if roll < 0.3:
                del target[key]
            elif roll < 0.5:
                target[rng.choice(["extra", "then", "if", "name", "filter"])] = rng.choice(values)
            else:
                target[key] = rng.choice(values)
        elif isinstance(target, list) and target:
            target[rng.randrange(len(target))] = rng.choice(values)
        yield mutated


def test_the_fast_structure_check_agrees_with_jsonschema():
    """Rule files are checked by a compiled yes/no check first; jsonschema only explains a failure."""
    import random

    from engine.loader import _rules_check, _rules_validator

    rng = random.Random(11)
    verdicts = {True: 0, False: 0}
    for path in sorted((Path(__file__).resolve().parent.parent / "rules").glob("*.yaml")):
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
        for mutated in [document, *_mutations(rng, document)]:
            expected = not any(True for _ in _rules_validator().iter_errors(mutated))
            assert _rules_check()(mutated) is expected, mutated
            verdicts[expected] += 1
    assert min(verdicts.values()) > 100, verdicts


def test_compiling_leaves_the_garbage_collector_as_it_found_it(tmp_path):
    import gc

    path = tmp_path / "rules.yaml"
    path.write_text("version: 1\ndestination: {name: d, catalog: webhook}\nmappings: []\n")
    before = gc.get_threshold()
    compile_paths([path], environ={})
    assert gc.get_threshold() == before


def test_an_integer_past_python_s_4300_digits_is_reported_cut_short_not_a_traceback(tmp_path):
    huge = "9" * 5000
    path = tmp_path / "rules.yaml"
    path.write_text(f"version: {huge}\ndestination: {{name: {huge}, catalog: webhook}}\nmappings: []\n"
                    f"tests: [{{name: t, event: {{type: track}}, expect: [{{mapping: {huge}}}]}}]\n")
    _, problems = compile_paths([path], environ={})
    assert [(p.code, p.line) for p in problems] == [("SY002", 1), ("SY002", 2), ("SY002", 4)]
    assert all(len(p.message) <= 300 for p in problems) and "unsupported version 99999" in problems[0].message
    assert "YAML reads this as a number, not text: quote it" in problems[1].message


@pytest.mark.parametrize("line", ["    api_key: sk_live_SECRET42 key: rotated",
                                  "    oauth: {client_secret: sk_live_SECRET42 key: rotated}",
                                  '    headers: {"Authorization": "Bearer sk_live_SECRET42" key: x}',
                                  "    api_key: !sk_live_SECRET42", "    api_key: *sk_live_SECRET42",
                                  "    private_key: sk_live_SECRET42 key: x",
                                  '    url: "https://user:sk_live_SECRET42@h/x" key: y',
                                  "    secret_key: !sk_live_SECRET42", "    X-Secret-Key: !sk_live_SECRET42",
                                  "    api_key_value: !sk_live_SECRET42"])
def test_a_secret_on_a_line_yaml_cannot_read_is_not_quoted(tmp_path, line):
    path = tmp_path / "rules.yaml"
    path.write_text(f"version: 1\ndestination:\n  name: c\n  catalog: customerio\n  settings:\n{line}\n")
    for problems in (compile_paths([path], environ={})[1], lint_paths([path], environ={})):
        (problem,) = problems
        assert problem.code == "SY001" and "SECRET42" not in problem.source_line + problem.message


@pytest.mark.parametrize("data, line, column", [(b"version: 1\n# caf\xe9\n", 2, 6),
                                                (b"version: 1\r# \xc3\xa9\xc3\xa9\xc3\xa9 \xff\n", 2, 7)],
                         ids=["ascii before", "characters, not bytes, and a lone CR"])
def test_a_file_that_is_not_utf8_is_located_at_its_first_bad_byte(tmp_path, data, line, column):
    path = tmp_path / "rules.yaml"
    path.write_bytes(data + b"destination: {name: d, catalog: webhook}\n")
    (problem,) = compile_paths([path], environ={})[1]
    assert (problem.code, problem.line, problem.column) == ("SY003", line, column)
    assert f"at line {line}, column {column}); save it as UTF-8" in problem.message


def test_a_key_that_only_starts_with_a_secret_word_is_shown_on_a_line_yaml_cannot_read(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text("version: 1\ndestination: {name: d, catalog: webhook}\nmappings: []\n"
                    "tests: [{name: t, event: {type: track, properties: {token_count: 3, plan: pro]}}]\n")
    (problem,) = compile_paths([path], environ={})[1]
    assert problem.code == "SY001" and "token_count: 3, plan: pro]" in problem.source_line


def test_a_literal_secret_beside_an_unset_variable_is_masked_in_lint_s_lines(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text('version: 1\ndestination:\n  name: d\n  catalog: webhook\n  settings:\n    url: "http://x/"\n'
                    '    oauth: {token_url: "https://a/t", client_id: x, client_secret: literalSECRET42,'
                    ' client_auth: "${AUTHX}", scope: [1]}\nmappings: []\n')
    problems = compile_paths([path], environ={})[1]
    assert problems and all("literalSECRET42" not in (p.source_line or "") + p.message for p in problems)


def test_a_literal_credential_written_beside_a_variable_is_masked_in_lint_s_lines(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text('version: 1\ndestination:\n  name: d\n  catalog: webhook\n  settings:\n    url: "http://x/"\n'
                    '    headers: {Authorization: "Basic sk_literal_AAA111 ${UNSET_A}", X-Num: 5}\nmappings: []\n')
    for environ in ({}, {"UNSET_A": "set-now"}):
        problems = compile_paths([path], environ=environ)[1]
        assert problems and all("sk_literal_AAA111" not in (p.source_line or "") + p.message for p in problems)


@pytest.mark.parametrize("settings, under", [
    # Literal secrets, masked on the quoted line: the caret follows the shorter line.
    ('{url: "http://x/", oauth: {token_url: "https://auth.example/token", client_id: switchyard, '
     'client_secret: "s3cr3tvalue99", scope: orders, client_auth: bodyy}}', "bodyy"),
    # A line YAML cannot read: its secret-named key's value is masked.
    ('{url: "https://user:longpassword1@h.example/x", headers: {X-Id: "a" b}}', 'b}}'),
])
def test_the_caret_stays_under_the_problem_when_secrets_on_its_line_are_masked(tmp_path, settings, under):
    path = tmp_path / "rules.yaml"
    path.write_text(f"version: 1\ndestination:\n  name: hooks\n  catalog: webhook\n  settings: {settings}\n"
                    "mappings: []\n")
    (problem,) = compile_paths([path], environ={})[1]
    shown, caret = format_text(problem).splitlines()[1:3]
    assert "s3cr3tvalue99" not in shown and "longpassword1" not in shown
    assert shown[caret.index("^"):].startswith(under), f"\n{shown}\n{caret}"
