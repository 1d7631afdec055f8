"""An installed switchyard finds its grammar, schemas and rules without the source tree."""
from __future__ import annotations

import zipfile

from conftest import ROOT


def test_wheel_ships_grammar_schemas_and_rules(tmp_path, monkeypatch):
    from hatchling.builders.wheel import WheelBuilder

    monkeypatch.chdir(ROOT)
    wheel = next(iter(WheelBuilder(str(ROOT)).build(directory=str(tmp_path), versions=["standard"])))
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "engine/_data/grammar/trigger.lark" in names
    assert "engine/_data/schemas/rules.schema.json" in names
    assert "engine/_data/schemas/actions/webhook/send.json" in names
    assert "engine/_data/rules/webhook.yaml" in names
    assert "engine/cli.py" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "switchyard = engine.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_resources_prefer_the_bundled_copy(tmp_path, monkeypatch):
    import engine.resources as resources

    bundled = tmp_path / "_data" / "grammar"
    bundled.mkdir(parents=True)
    monkeypatch.setattr(resources, "_PACKAGE", tmp_path)
    assert resources.resource("grammar") == bundled
    assert resources.resource("schemas") == tmp_path.parent / "schemas"
