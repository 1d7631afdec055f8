"""Catalogs as plugins: an installed distribution provides a catalog through the ``switchyard.catalogs``
entry points, and lint, test, explain and run use it as they use a bundled one.

The plugin here is a real distribution on disk (a package and its ``.dist-info`` with
``entry_points.txt``) found on ``PYTHONPATH`` by importlib.metadata, exactly as ``pip install`` leaves
one in site-packages; nothing is patched.
"""
from __future__ import annotations

import json
import os
import textwrap

import pytest

from conftest import switchyard

ADAPTER = '''
"""A catalog from a plugin: 'echo' appends each call to a file and refuses calls it is told to."""
import json
from pathlib import Path

from engine.adapters.contract import AdapterContext, SetupError
from engine.delivery.outcome import DELIVERED, REFUSED, Outcome


def catalog_folder():
    return Path(__file__).parent / "catalog"


class EchoAdapter:
    def __init__(self, context: AdapterContext):
        if not context.settings.get("path"):
            raise SetupError("echo needs the 'path' setting")
        self.stream = open(context.settings["path"], "a", encoding="utf-8")

    def deliver(self, calls):
        outcomes = []
        for call in calls:
            if call.payload.get("refuse"):
                outcomes.append(Outcome(REFUSED, 1, message="echo refuses this one", call=call))
                continue
            self.stream.write(json.dumps(call.payload) + "\\n")
            outcomes.append(Outcome(DELIVERED, 1, call=call))
        self.stream.flush()
        return outcomes

    def poll(self):
        return []

    def close(self):
        self.stream.close()
        return []
'''

DESTINATION = {
    "title": "Echo destination settings", "type": "object", "additionalProperties": False,
    "x-transports": ["memory"], "x-default-transport": "memory",
    "x-adapters": {"memory": "switchyard_echo:EchoAdapter"},
    "properties": {"path": {"type": "string"}},
}
SAY = {
    "title": "Say", "type": "object", "required": ["text"], "additionalProperties": False,
    "properties": {"text": {"title": "Text", "type": "string", "x-default": "event"},
                   "refuse": {"title": "Refuse", "type": "boolean"}},
}

RULES = """\
version: 1
destination:
  name: parrot
  catalog: echo
  settings: {path: "$OUT"}
mappings:
  - name: Say it
    trigger: type = "track"
    action: say
    fields:
      refuse: properties.refuse
tests:
  - name: a track event is said
    event: {type: track, event: Hello}
    expect:
      - mapping: Say it
        payload: {text: Hello}
"""


@pytest.fixture
def plugin(tmp_path):
    """A site folder holding the installed plugin distribution; returns the environment that finds it."""
    site = tmp_path / "site"
    package = site / "switchyard_echo"
    (package / "catalog").mkdir(parents=True)
    (package / "__init__.py").write_text(textwrap.dedent(ADAPTER))
    (package / "catalog" / "_destination.json").write_text(json.dumps(DESTINATION))
    (package / "catalog" / "say.json").write_text(json.dumps(SAY))
    info = site / "switchyard_echo-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: switchyard-echo\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[switchyard.catalogs]\necho = switchyard_echo:catalog_folder\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))}
    return env


def test_a_plugin_catalog_is_linted_tested_explained_and_delivered_like_a_bundled_one(plugin, tmp_path):
    out = tmp_path / "said.ndjson"
    rules = tmp_path / "rules" / "parrot.yaml"
    rules.parent.mkdir()
    rules.write_text(RULES.replace("$OUT", str(out)))

    lint = switchyard("lint", rules, env=plugin)
    assert lint.returncode == 0 and "0 error(s)" in lint.stdout, lint.stdout + lint.stderr
    tested = switchyard("test", rules, env=plugin)
    assert tested.returncode == 0 and "1 passed, 0 failed" in tested.stdout, tested.stdout + tested.stderr
    explained = switchyard("explain", rules, "--event", "-", stdin='{"type": "track", "event": "Hi"}', env=plugin)
    assert "mapping 'Say it' -> say: MATCHED" in explained.stdout

    events = "\n".join(json.dumps(e) for e in [
        {"type": "track", "event": "One"}, {"type": "identify", "userId": "u1"},
        {"type": "track", "event": "Two", "properties": {"refuse": True}}])
    dead = tmp_path / "dead.ndjson"
    ran = switchyard("run", rules, "--dead-letter", dead, stdin=events, env=plugin)
    assert ran.returncode == 1, ran.stderr  # one call refused
    assert [json.loads(line) for line in out.read_text().splitlines()] == [{"text": "One"}]
    (record,) = [json.loads(line) for line in dead.read_text().splitlines()]
    assert (record["outcome"], record["reason"]) == ("refused", "echo refuses this one")


def test_without_the_plugin_the_catalog_is_unknown(tmp_path):
    rules = tmp_path / "parrot.yaml"
    rules.write_text(RULES.replace("$OUT", str(tmp_path / "x")))
    lint = switchyard("lint", rules)
    assert lint.returncode == 1 and "SY301" in lint.stdout and "unknown catalog 'echo'" in lint.stdout


def test_a_plugin_adapter_that_cannot_start_stops_the_run_before_the_first_event(plugin, tmp_path):
    rules = tmp_path / "parrot.yaml"
    rules.write_text(RULES.replace('settings: {path: "$OUT"}', "settings: {}"))
    ran = switchyard("run", rules, stdin='{"type": "track", "event": "One"}', env=plugin)
    assert ran.returncode == 1
    assert "destination 'parrot': echo needs the 'path' setting" in ran.stderr
    assert "Traceback" not in ran.stderr
