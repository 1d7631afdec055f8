"""Action catalogs: ``schemas/actions/<catalog>/<action>.json``, loaded once and cached.

A catalog folder holds one JSON Schema per action, and ``_destination.json`` for the
destination settings (with ``x-transports``: the delivery transports it supports).
Per-field extensions: ``x-default`` (a JMESPath expression used when a mapping does not set
the field, like Segment's default mappings) and ``x-setting`` (fall back to a destination
setting of that name).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from .resources import resource
from .validation import PayloadValidator


@dataclass(frozen=True)
class Action:
    """One action of a catalog, with its compiled payload validator."""

    catalog: str
    name: str
    schema: dict
    validator: PayloadValidator

    @property
    def title(self) -> str:
        return self.schema.get("title", self.name)

    @property
    def properties(self) -> dict:
        return self.schema.get("properties", {})

    @property
    def required(self) -> list[str]:
        return list(self.schema.get("required", []))

    @property
    def open(self) -> bool:
        """Whether fields beyond the listed ones are accepted."""
        return self.schema.get("additionalProperties", True) is not False

    def defaults(self) -> dict[str, str]:
        return {name: spec["x-default"] for name, spec in self.properties.items() if "x-default" in spec}

    def field_errors(self, name: str, value) -> list[str]:
        """Why ``value`` is not valid for the field ``name`` (checks a literal at lint time)."""
        return _field_validator(self.catalog, self.name, name).errors({name: value})


@lru_cache(maxsize=None)
def _field_validator(catalog: str, action: str, name: str) -> PayloadValidator:
    # Compiled once per field: a rule set with a thousand mappings checks the same few fields.
    spec = load(catalog).actions[action].properties[name]
    return PayloadValidator({"properties": {name: spec}})


@dataclass(frozen=True)
class Catalog:
    name: str
    actions: dict
    settings_schema: dict

    @property
    def transports(self) -> list[str]:
        return list(self.settings_schema.get("x-transports", []))

    @property
    def default_transport(self) -> str | None:
        return self.settings_schema.get("x-default-transport")


def catalogs_root() -> Path:
    return resource("schemas") / "actions"


def available() -> list[str]:
    root = catalogs_root()
    return sorted(path.name for path in root.iterdir() if path.is_dir()) if root.is_dir() else []


@lru_cache(maxsize=None)
def load(name: str) -> Catalog | None:
    """The catalog ``name``, or None when there is no such folder."""
    folder = catalogs_root() / name
    if not name or "/" in name or name.startswith(".") or not folder.is_dir():
        return None
    actions = {}
    settings_schema: dict = {}
    for path in sorted(folder.glob("*.json")):
        schema = json.loads(path.read_text(encoding="utf-8"))
        if path.stem == "_destination":
            settings_schema = schema
        else:
            actions[path.stem] = Action(name, path.stem, schema, PayloadValidator(schema))
    return Catalog(name, actions, settings_schema)
