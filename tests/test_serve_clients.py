"""Segment's own client libraries, pointed at ``switchyard serve``, leave the workspace ``switchyard run`` leaves.

analytics-python comes from PyPI (the ``test`` extra); @segment/analytics-node from npm, installed
into a cache folder by the ``node_client`` fixture when Node is on the machine.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from conftest import ROOT, switchyard
from serving import Served, no_server_left_running  # noqa: F401  (an autouse fixture)

PACK = ROOT / "rules" / "customerio.yaml"
PEOPLE = 200
NODE_PACKAGE = "@segment/analytics-node@2"


def calls(people: int = PEOPLE) -> list[dict]:
    """identify, track, page and group calls for ``people`` people, with their messageIds and times."""
    made = []
    for person in range(people):
        user, at = f"user-{person}", f"2026-01-01T00:{person // 60:02d}:{person % 60:02d}.000Z"
        made += [
            {"type": "identify", "userId": user, "traits": {"email": f"{user}@example.com", "plan": "pro"}},
            {"type": "track", "userId": user, "event": "Signed Up", "properties": {"plan": "pro", "seats": person}},
            {"type": "page", "userId": user, "name": "Pricing", "properties": {"url": "https://example.com/pricing"}},
            {"type": "group", "userId": user, "groupId": f"team-{person % 7}",
             "traits": {"name": f"Team {person % 7}"}},
            {"type": "track", "userId": user, "event": "Clicked", "properties": {"n": person}},
        ]
        for number, call in enumerate(made[-5:]):
            call["messageId"], call["timestamp"] = f"{user}-{number}", at
    return made


def workspace_json(db: Path, command: str) -> list:
    every = ("--limit", "100000") if command == "events" else ()  # `events` shows the last 50 unless told
    result = switchyard("workspace", command, "--db", db, "--json", *every)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def as_set(items: list) -> list:
    """Rows without the times they were stored at (and the event times, which the server corrects for the
    client's clock skew as Segment does), nor the ids given in arrival order; sorted."""
    return sorted(json.dumps(without_times(item), sort_keys=True) for item in items)


def without_times(value):
    volatile = {"created_at", "updated_at", "received_at", "cio_id", "timestamp"}
    if isinstance(value, dict):
        return {k: without_times(v) for k, v in value.items() if k not in volatile}
    if isinstance(value, list):
        return [without_times(v) for v in value]
    return value


def assert_same_workspace_as_run(served: Served, sent: list[dict], tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text("".join(json.dumps(call) + "\n" for call in sent))
    result = switchyard("run", PACK, events, "--workspace", tmp_path / "by-run.db", "--dead-letter",
                        tmp_path / "run-dead.ndjson")
    assert result.returncode == 0, result.stderr
    for command in ("people", "objects", "events"):
        by_serve, by_run = workspace_json(served.workspace, command), workspace_json(tmp_path / "by-run.db", command)
        assert len(by_run) > 0
        assert as_set(by_serve) == as_set(by_run), command


def wait_for_spool(server: Served, accepted: int) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        accepted_now = server.metric("switchyard_events_accepted_total")
        if accepted_now >= accepted and server.metric("switchyard_spool_depth") == 0:
            return
        time.sleep(0.1)
    raise AssertionError(server.get("/metrics")[1].decode())


def test_analytics_python_sends_and_the_workspace_matches_run(tmp_path):
    from segment.analytics.client import Client

    server = Served(PACK, tmp_path, "--write-key", "python-key").start()
    errors = []
    client = Client("python-key", host=server.url, gzip=True, upload_size=100, max_queue_size=100_000,
                    on_error=lambda error, batch: errors.append(error))
    sent = calls()
    for call in sent:
        kind, common = call["type"], {"user_id": call["userId"], "message_id": call["messageId"],
                                      "timestamp": _time(call["timestamp"])}
        if kind == "identify":
            client.identify(traits=call["traits"], **common)
        elif kind == "track":
            client.track(event=call["event"], properties=call["properties"], **common)
        elif kind == "page":
            client.page(name=call["name"], properties=call["properties"], **common)
        elif kind == "group":
            client.group(group_id=call["groupId"], traits=call["traits"], **common)
    client.flush()
    client.shutdown()
    assert errors == []
    wait_for_spool(server, len(sent))
    assert server.stop() == 0
    assert_same_workspace_as_run(server, sent, tmp_path)


def _time(text: str):
    from datetime import datetime

    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.fixture(scope="session")
def node_client():
    """The folder where @segment/analytics-node is installed (npm, once per machine's cache), or skip."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        if os.environ.get("SWITCHYARD_REQUIRE_NODE"):
            pytest.fail("node and npm are needed (SWITCHYARD_REQUIRE_NODE is set)")
        pytest.skip("node and npm are not installed")
    folder = Path(os.environ.get("SWITCHYARD_NODE_DIR") or Path.home() / ".cache" / "switchyard-node")
    if not (folder / "node_modules" / "@segment" / "analytics-node").is_dir():
        folder.mkdir(parents=True, exist_ok=True)
        result = subprocess.run([npm, "install", "--no-audit", "--no-fund", "--prefix", str(folder), NODE_PACKAGE],
                                capture_output=True, text=True, timeout=300)
        if result.returncode != 0:
            message = f"npm install {NODE_PACKAGE} failed:\n{result.stderr[-2000:]}"
            if os.environ.get("SWITCHYARD_REQUIRE_NODE"):
                pytest.fail(message)
            pytest.skip(message)
    return folder


NODE_SCRIPT = r"""
const { Analytics } = require('@segment/analytics-node');
const calls = JSON.parse(require('fs').readFileSync(process.argv[2], 'utf8'));
const analytics = new Analytics({ writeKey: 'node-key', host: process.argv[3], maxEventsInBatch: 100,
                                  flushInterval: 200 });
const errors = [];
analytics.on('error', (error) => errors.push(String(error && error.message || error)));
for (const call of calls) {
  const common = { userId: call.userId, messageId: call.messageId, timestamp: call.timestamp };
  if (call.type === 'identify') analytics.identify({ ...common, traits: call.traits });
  else if (call.type === 'track') analytics.track({ ...common, event: call.event, properties: call.properties });
  else if (call.type === 'page') analytics.page({ ...common, name: call.name, properties: call.properties });
  else if (call.type === 'group') analytics.group({ ...common, groupId: call.groupId, traits: call.traits });
}
analytics.closeAndFlush({ timeout: 60000 }).then(() => {
  console.log(JSON.stringify({ errors }));
});
"""


def test_analytics_node_sends_and_the_workspace_matches_run(tmp_path, node_client):
    server = Served(PACK, tmp_path, "--write-key", "node-key").start()
    sent = calls()
    (tmp_path / "calls.json").write_text(json.dumps(sent))
    (tmp_path / "send.js").write_text(NODE_SCRIPT)
    env = {**os.environ, "NODE_PATH": str(node_client / "node_modules")}
    result = subprocess.run(["node", str(tmp_path / "send.js"), str(tmp_path / "calls.json"), server.url],
                            capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1]) == {"errors": []}
    wait_for_spool(server, len(sent))
    assert server.stop() == 0
    assert_same_workspace_as_run(server, sent, tmp_path)
