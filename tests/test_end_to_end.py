"""The Customer.io pack end to end: the http transport against `workspace serve` gives the same workspace
as the embedded workspace transport, over the bundled story."""
from __future__ import annotations

import json
import os

from conftest import ROOT, switchyard
from engine.workspace.server import start_server

PACK = (ROOT / "rules" / "customerio.yaml").read_text()


def _workspace_json(db, command: str) -> list:
    result = switchyard("workspace", command, "--db", db, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _without_times(value):
    """The value with the times at which the workspace stored things removed, at any depth."""
    volatile = {"created_at", "updated_at", "received_at"}
    if isinstance(value, dict):
        return {k: _without_times(v) for k, v in value.items() if k not in volatile}
    if isinstance(value, list):
        return [_without_times(v) for v in value]
    return value


def test_http_transport_and_workspace_transport_agree(tmp_path):
    embedded = tmp_path / "embedded.db"
    direct = switchyard("run", "rules/customerio.yaml", "examples/events.jsonl", "--workspace", embedded,
                        "--dead-letter", tmp_path / "dead-direct", "--summary-json", tmp_path / "direct.json")
    assert direct.returncode == 1, direct.stderr  # the story's suppressed person: one call refused

    served = tmp_path / "served.db"
    rules = tmp_path / "customerio.yaml"
    rules.write_text(PACK.replace("  catalog: customerio\n", "  catalog: customerio\n  transport: http\n", 1))
    env = {**os.environ, "CUSTOMERIO_SITE_ID": "site-1", "CUSTOMERIO_API_KEY": "key-1"}
    with start_server(served, "site-1", "key-1") as server:
        env["CUSTOMERIO_BASE_URL"] = server.url
        over_http = switchyard("run", rules, "examples/events.jsonl", "--dead-letter", tmp_path / "dead-http",
                               "--summary-json", tmp_path / "http.json", env=env)
    assert over_http.returncode == 1, over_http.stderr
    assert "key-1" not in over_http.stderr + over_http.stdout

    direct_summary = json.loads((tmp_path / "direct.json").read_text())
    http_summary = json.loads((tmp_path / "http.json").read_text())
    assert http_summary["delivered"] == direct_summary["delivered"]
    assert http_summary["refused"] == direct_summary["refused"] == {"customerio / Track Event": 1}
    assert sum(direct_summary["delivered"].values()) > 300

    for command in ("people", "objects", "events"):
        assert _without_times(_workspace_json(served, command)) == _without_times(_workspace_json(embedded, command))
    people = {p["id"]: p for p in _workspace_json(embedded, "people")}
    assert "guest-8812" not in people and people["carol-1003"]["events"] >= 5  # merged by the alias
    assert "eve-1005" not in people  # deleted
