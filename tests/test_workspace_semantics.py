"""The workspace's semantics: each rule of issue 4 section 2 is a case in tests/cases/workspace-semantics.yaml."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import load_yaml
from engine.workspace import Rejected, Workspace, inspect

ROOT = Path(__file__).resolve().parent.parent
CASES = load_yaml(ROOT / "tests/cases/workspace-semantics.yaml")
NOW = 1_700_000_000


def exact(value) -> str:
    """JSON text, so that 1 and 1.0, 1 and "1", or 0 and false do not compare equal."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def label(outcome) -> str:
    return "applied" if outcome.ok else outcome.code


def send(workspace: Workspace, call):
    if isinstance(call, dict) and set(call) == {"batch"}:
        outcomes = workspace.apply_batch(call)
        return label(outcomes) if isinstance(outcomes, Rejected) else [label(o) for o in outcomes]
    if isinstance(call, dict) and set(call) == {"metrics"}:
        return label(workspace.apply_metrics(call["metrics"]))
    return label(workspace.apply(call))


def assert_rows(actual: list[dict], expected: list[dict], what: str) -> None:
    assert len(actual) == len(expected), f"{what}: {json.dumps(actual, indent=1)}"
    for index, (row, want) in enumerate(zip(actual, expected)):
        assert_keys(row, want, f"{what}[{index}]")


def assert_keys(actual: dict | None, expected: dict | None, what: str) -> None:
    if expected is None:
        assert actual is None, what
        return
    assert actual is not None, f"{what}: not found"
    for key, value in expected.items():
        assert exact(actual.get(key)) == exact(value), f"{what}.{key}: {json.dumps(actual, indent=1)}"


@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_case(case, tmp_path):
    with Workspace.open(tmp_path / "workspace.db", case.get("settings"), clock=lambda: NOW) as workspace:
        assert [send(workspace, call) for call in case["calls"]] == case["outcomes"]
        db = workspace.db
        if "people" in case:
            assert_rows(inspect.people(db), case["people"], "people")
        if "person" in case:
            assert_keys(inspect.find_person(db, **case["person"]["find"]), case["person"]["expect"], "person")
        if "objects" in case:
            assert_rows(inspect.objects(db), case["objects"], "objects")
        if "object" in case:
            assert_keys(inspect.find_object(db, **case["object"]["find"]), case["object"]["expect"], "object")
        if "events" in case:
            events = [{**e, "person_id": e["person"] and e["person"]["id"]}
                      for e in reversed(inspect.events(db, limit=1000))]
            assert_rows(events, case["events"], "events")
        if "rejected" in case:
            assert [r["code"] for r in reversed(inspect.rejected(db, limit=1000))] == case["rejected"]
        if "suppression" in case:
            kind, value = case["suppression"]["find"]
            assert_keys(inspect.find_suppression(db, kind, value), case["suppression"]["expect"], "suppression")
        if "metrics" in case:
            assert_rows(list(reversed(inspect.metrics(db, limit=1000))), case["metrics"], "metrics")


def test_every_rejection_code_is_documented():
    from engine.workspace import REJECTION_CODES

    documented = (ROOT / "docs/workspace.md").read_text(encoding="utf-8")
    assert [code for code in REJECTION_CODES if f"`{code}`" not in documented] == []
