"""Action catalogs: a folder of JSON Schemas per catalog, loaded once and cached.

A catalog folder holds one JSON Schema per action, and ``_destination.json`` for the
destination settings, with:

- ``x-transports``: the delivery transports it supports, and ``x-default-transport``;
- ``x-adapters``: per transport, the adapter factory as ``"module:attribute"`` (see
  :mod:`engine.adapters.registry`);
- ``x-transport-needs``: per transport, the settings it cannot deliver without, as groups of which
  one must be set (``{"http": [["api_key"], ["app", "base_url"]]}``), for lint to say so;
- per setting, ``x-secret``: masked wherever a value could be printed.

Per-field extensions of actions: ``x-default`` (a JMESPath expression used when a mapping does
not set the field, like Segment's default mappings) and ``x-setting`` (fall back to a destination
setting of that name).

Catalogs come from ``schemas/actions/<name>/`` (bundled) and from installed packages that
declare an entry point in the group ``switchyard.catalogs``: its name is the catalog's name, and
it loads to the catalog folder (a path, or a function returning one). A bundled catalog wins
over a plugin of the same name. See docs/actions.md, "Writing a catalog".
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from .resources import resource
from .validation import PayloadValidator

ENTRY_POINT_GROUP = "switchyard.catalogs"


@dataclass(frozen=True)
class Action:
    """One action of a catalog, with its compiled payload validator."""

    catalog: str
    name: str
    schema: dict
    validator: PayloadValidator

    @property
    def title(self) -> str:
        return str(self.schema.get("title", self.name))

    @property
    def properties(self) -> dict:
        return dict(self.schema.get("properties", {}))

    @property
    def required(self) -> list[str]:
        return list(self.schema.get("required", []))

    @property
    def open(self) -> bool:
        """Whether fields beyond the listed ones are accepted."""
        return self.schema.get("additionalProperties", True) is not False

    def defaults(self) -> dict[str, str]:
        return {name: spec["x-default"] for name, spec in self.properties.items() if "x-default" in spec}

    def field_errors(self, name: str, value: Any) -> list[str]:
        """Why ``value`` is not valid for the field ``name`` (checks a literal at lint time)."""
        return list(_field_validator(self.catalog, self.name, name).errors({name: value}))


@lru_cache(maxsize=None)
def _field_validator(catalog: str, action: str, name: str) -> PayloadValidator:
    # Compiled once per field: a rule set with a thousand mappings checks the same few fields.
    found = load(catalog)
    assert found is not None, catalog
    spec = found.actions[action].properties[name]
    return PayloadValidator({"properties": {name: spec}})


@dataclass(frozen=True)
class Catalog:
    name: str
    actions: dict[str, Action]
    settings_schema: dict
    folder: Path | None = None

    @property
    def transports(self) -> list[str]:
        return list(self.settings_schema.get("x-transports", []))

    @property
    def default_transport(self) -> str | None:
        default = self.settings_schema.get("x-default-transport")
        return default if isinstance(default, str) else None

    @property
    def adapters(self) -> dict[str, str]:
        """Transport -> ``"module:attribute"`` of its adapter factory."""
        return dict(self.settings_schema.get("x-adapters", {}))

    def needs(self, transport: str) -> list[list[str]]:
        """The settings ``transport`` needs: groups of names, one of each group set."""
        return [list(group) for group in self.settings_schema.get("x-transport-needs", {}).get(transport, [])]

    @property
    def secret_settings(self) -> frozenset[str]:
        """The settings marked ``x-secret``: never printed."""
        properties = self.settings_schema.get("properties", {})
        return frozenset(name for name, spec in properties.items() if isinstance(spec, dict) and spec.get("x-secret"))


def catalogs_root() -> Path:
    return resource("schemas") / "actions"


@lru_cache(maxsize=1)
def _plugins() -> dict[str, Any]:
    """Catalog name -> entry point, for installed packages that provide catalogs."""
    from importlib.metadata import entry_points  # a tenth of the start-up, for rules that name a plugin's catalog

    return {point.name: point for point in entry_points(group=ENTRY_POINT_GROUP)}


def _folder(name: str) -> Path | None:
    """Where the catalog ``name`` lives: bundled first, then an installed plugin."""
    bundled = catalogs_root() / name
    if bundled.is_dir():
        return bundled
    point = _plugins().get(name)
    if point is None:
        return None
    target = point.load()
    folder = Path(target() if callable(target) else target)
    return folder if folder.is_dir() else None


def available() -> list[str]:
    """The names of every catalog: bundled and from plugins."""
    root = catalogs_root()
    bundled = {path.name for path in root.iterdir() if path.is_dir()} if root.is_dir() else set()
    return sorted(bundled | set(_plugins()))


@lru_cache(maxsize=None)
def load(name: str) -> Catalog | None:
    """The catalog ``name``, or None when there is no such catalog."""
    if not name or "/" in name or "\\" in name or name.startswith("."):
        return None
    folder = _folder(name)
    if folder is None:
        return None
    actions = {}
    settings_schema: dict = {}
    for path in sorted(folder.glob("*.json")):
        schema = json.loads(path.read_text(encoding="utf-8"))
        if path.stem == "_destination":
            settings_schema = schema
        else:
            actions[path.stem] = Action(name, path.stem, schema, PayloadValidator(schema))
    return Catalog(name, actions, settings_schema, folder)
