"""The workspace database: its schema and migrations, its settings, connections and transactions.

This module owns every ``CREATE`` and ``ALTER`` statement (deleting a person deletes their
events, devices and relationships, by trigger) and opens connections through
:mod:`engine.store`, which keeps each destination's workspace in its own tables of a shared file
and sets up WAL mode (readers never block the one writer) and a busy timeout (a second process
waits for the lock instead of failing). It knows nothing of the Track API;
:mod:`engine.workspace.apply` does.

Every write goes through :func:`transaction`, which takes the write lock up front
(``BEGIN IMMEDIATE``), so two processes applying calls to one file are serialised and a
read-modify-write (a page view count) never loses an update.
"""
from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from typing import Any, ContextManager

from .. import store
from ..store import BUSY_TIMEOUT, Catalog, Connection

# Each entry upgrades the schema by one version; a new database runs them all, in order.
# Never edit a released entry: add one.
MIGRATIONS = (
    # 1: people, their events and devices, objects and relationships, refused calls.
    """
    CREATE TABLE settings (name TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE attribute_types (name TEXT PRIMARY KEY, type TEXT NOT NULL);
    CREATE TABLE people (
        pk INTEGER PRIMARY KEY AUTOINCREMENT,
        cio_id TEXT UNIQUE,
        id TEXT UNIQUE,
        email TEXT COLLATE NOCASE,
        unsubscribed INTEGER NOT NULL DEFAULT 0,
        attributes TEXT NOT NULL DEFAULT '{}',
        created_at NUMERIC NOT NULL,
        updated_at NUMERIC NOT NULL
    );
    CREATE INDEX people_email ON people (email);
    CREATE TABLE anonymous_ids (
        anonymous_id TEXT PRIMARY KEY,
        person_pk INTEGER NOT NULL REFERENCES people (pk) ON DELETE CASCADE
    );
    CREATE TABLE events (
        pk INTEGER PRIMARY KEY AUTOINCREMENT,
        person_pk INTEGER REFERENCES people (pk) ON DELETE CASCADE,
        anonymous_id TEXT,
        kind TEXT NOT NULL,
        name TEXT NOT NULL,
        data TEXT NOT NULL DEFAULT '{}',
        timestamp NUMERIC NOT NULL,
        event_id TEXT,
        received_at NUMERIC NOT NULL
    );
    CREATE INDEX events_person ON events (person_pk, timestamp);
    CREATE INDEX events_anonymous ON events (anonymous_id) WHERE person_pk IS NULL;
    CREATE UNIQUE INDEX events_event_id ON events (event_id) WHERE event_id IS NOT NULL;
    CREATE TABLE devices (
        token TEXT PRIMARY KEY,
        person_pk INTEGER NOT NULL REFERENCES people (pk) ON DELETE CASCADE,
        platform TEXT,
        last_used NUMERIC,
        attributes TEXT NOT NULL DEFAULT '{}',
        updated_at NUMERIC NOT NULL
    );
    CREATE TABLE objects (
        pk INTEGER PRIMARY KEY AUTOINCREMENT,
        object_type_id TEXT NOT NULL,
        object_id TEXT NOT NULL,
        attributes TEXT NOT NULL DEFAULT '{}',
        created_at NUMERIC NOT NULL,
        updated_at NUMERIC NOT NULL,
        UNIQUE (object_type_id, object_id)
    );
    CREATE TABLE relationships (
        person_pk INTEGER NOT NULL REFERENCES people (pk) ON DELETE CASCADE,
        object_pk INTEGER NOT NULL REFERENCES objects (pk) ON DELETE CASCADE,
        attributes TEXT NOT NULL DEFAULT '{}',
        PRIMARY KEY (person_pk, object_pk)
    );
    CREATE INDEX relationships_object ON relationships (object_pk);
    CREATE TABLE rejected (
        pk INTEGER PRIMARY KEY AUTOINCREMENT,
        received_at NUMERIC NOT NULL,
        source TEXT NOT NULL,
        batch_index INTEGER,
        code TEXT NOT NULL,
        field TEXT NOT NULL DEFAULT '',
        reason TEXT NOT NULL,
        body TEXT NOT NULL
    );
    """,
    # 2: page view counts and last_seen (backfilled from stored page events), suppression,
    # group calls waiting for an identify, delivery metrics.
    """
    ALTER TABLE people ADD COLUMN page_views INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE people ADD COLUMN last_seen NUMERIC;
    UPDATE people SET
        page_views = (SELECT count(*) FROM events WHERE person_pk = people.pk AND kind = 'page'),
        last_seen = (SELECT max(timestamp) FROM events WHERE person_pk = people.pk AND kind = 'page');
    CREATE TABLE suppressions (
        pk INTEGER PRIMARY KEY AUTOINCREMENT,
        suppressed_at NUMERIC NOT NULL,
        refused INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE suppressed_identifiers (
        kind TEXT NOT NULL,
        value TEXT NOT NULL,
        suppression_pk INTEGER NOT NULL REFERENCES suppressions (pk) ON DELETE CASCADE,
        PRIMARY KEY (kind, value)
    );
    CREATE TABLE waiting (
        pk INTEGER PRIMARY KEY AUTOINCREMENT,
        anonymous_id TEXT NOT NULL,
        body TEXT NOT NULL,
        received_at NUMERIC NOT NULL
    );
    CREATE INDEX waiting_anonymous ON waiting (anonymous_id);
    CREATE TABLE metrics (
        pk INTEGER PRIMARY KEY AUTOINCREMENT,
        delivery_id TEXT NOT NULL,
        metric TEXT NOT NULL,
        timestamp NUMERIC NOT NULL,
        recipient TEXT,
        reason TEXT,
        href TEXT,
        metadata TEXT NOT NULL DEFAULT '{}',
        received_at NUMERIC NOT NULL
    );
    CREATE INDEX metrics_delivery ON metrics (delivery_id);
    """,
    # 3: deleting cascades through triggers, as the foreign keys' ON DELETE CASCADE did, so that
    # connections need not enforce foreign keys: checking them on every insert was a quarter
    # of the cost of applying a call, and every insert names a row the same call just read.
    """
    CREATE TRIGGER people_deleted AFTER DELETE ON people BEGIN
        DELETE FROM anonymous_ids WHERE person_pk = OLD.pk;
        DELETE FROM events WHERE person_pk = OLD.pk;
        DELETE FROM devices WHERE person_pk = OLD.pk;
        DELETE FROM relationships WHERE person_pk = OLD.pk;
    END;
    CREATE TRIGGER objects_deleted AFTER DELETE ON objects BEGIN
        DELETE FROM relationships WHERE object_pk = OLD.pk;
    END;
    CREATE TRIGGER suppressions_deleted AFTER DELETE ON suppressions BEGIN
        DELETE FROM suppressed_identifiers WHERE suppression_pk = OLD.pk;
    END;
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)


class WorkspaceError(Exception):
    """The workspace cannot be used: unreadable file, newer schema, a lock held too long, a full disk."""


class DestinationError(WorkspaceError):
    """No destination was named and the file holds several workspaces, or the one named is not in the file."""


class SettingsError(WorkspaceError):
    """A workspace setting has a value it cannot take."""


# -- connections and transactions --------------------------------------------------------------

#: The workspace's tables, for :mod:`engine.store`: kept apart per destination in a shared file.
CATALOG = Catalog("customerio", MIGRATIONS)


def connect(path: Any, *, create: bool = True, timeout: float = BUSY_TIMEOUT, destination: str | None = None,
            migrations: tuple[str, ...] = MIGRATIONS, read_only: bool = False) -> Connection:
    """An open, migrated connection to ``destination``'s workspace in the file at ``path``.

    ``destination`` None means the file's only workspace (see :func:`engine.store.connect`).
    With ``create=False`` a missing file, or a destination the file does not hold, is an error
    instead of a new, empty workspace. ``read_only`` (inspection) writes nothing to the file, as
    :func:`engine.store.connect` says. ``migrations`` exists so tests can build a workspace at
    an older version.
    """
    catalog = CATALOG if migrations is MIGRATIONS else Catalog(CATALOG.name, migrations)
    try:
        return store.connect(path, catalog, destination=destination, create=create, timeout=timeout,
                             read_only=read_only)
    except store.DestinationError as error:
        raise DestinationError(str(error)) from None
    except store.StoreError as error:
        raise WorkspaceError(str(error)) from None


def destinations(path: Any) -> list[str]:
    """The names of the destinations whose workspaces the file at ``path`` holds, sorted."""
    try:
        return store.destinations(path, CATALOG.name)
    except store.StoreError as error:
        raise WorkspaceError(str(error)) from None


def transaction(db: sqlite3.Connection) -> ContextManager[sqlite3.Connection]:
    """One write transaction: committed when the block ends, rolled back if it raises
    (:func:`engine.store.transaction`, failures of the database raised as WorkspaceError)."""
    return store.transaction(db, WorkspaceError)


# -- settings ----------------------------------------------------------------------------------

ATTRIBUTE_TYPES = ("string", "number", "boolean", "timestamp")


@dataclass(frozen=True)
class Settings:
    """A workspace's settings, stored in the workspace itself so every process applies the same rules.

    ``attribute_types`` holds the declared types and, in typed mode, the ones created on first use.
    """

    id_only: bool = False           # older workspaces: people are identified by id; email is an attribute
    anonymous_merge: bool = True    # anonymous events join the person whose identify names their anonymous id
    typed_attributes: bool = False  # person attributes are converted to declared types (string when undeclared)
    attribute_types: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"id_only": self.id_only, "anonymous_merge": self.anonymous_merge,
                "typed_attributes": self.typed_attributes, "attribute_types": dict(self.attribute_types)}


SETTING_NAMES = ("id_only", "anonymous_merge", "typed_attributes", "attribute_types")
_FLAGS = {"true": True, "on": True, "yes": True, "false": False, "off": False, "no": False}


def parse_settings(values) -> dict:
    """Validated setting changes from a mapping (a destination's settings, CLI flags).

    Only the names present change; others keep what the workspace has. A null or empty value
    means "not set", as everywhere in rule files (``${VAR:-}``). Unknown names are not an error,
    so a destination's own settings (``workspace``, ``site_id``) may sit alongside.
    """
    values = {name: value for name, value in values.items() if value is not None and value != ""}
    changes: dict[str, Any] = {}
    for name in ("id_only", "anonymous_merge", "typed_attributes"):
        if name in values:
            value = values[name]
            if isinstance(value, str) and value.strip().lower() in _FLAGS:
                value = _FLAGS[value.strip().lower()]
            if not isinstance(value, bool):
                raise SettingsError(f"setting '{name}' must be true or false, not {value!r}")
            changes[name] = value
    if "attribute_types" in values:
        declared = values["attribute_types"]
        if not isinstance(declared, dict):
            raise SettingsError("setting 'attribute_types' must map attribute names to types")
        for name, kind in declared.items():
            if kind not in ATTRIBUTE_TYPES:
                raise SettingsError(f"attribute type '{kind}' for '{name}' is not one of {', '.join(ATTRIBUTE_TYPES)}")
        changes["attribute_types"] = dict(declared)
    return changes


def read_settings(db: sqlite3.Connection) -> Settings:
    stored = {row["name"]: json.loads(row["value"]) for row in db.execute("SELECT name, value FROM settings")}
    types = {row["name"]: row["type"] for row in db.execute("SELECT name, type FROM attribute_types ORDER BY name")}
    return Settings(**{name: stored[name] for name in ("id_only", "anonymous_merge", "typed_attributes")
                       if name in stored}, attribute_types=types)


def write_settings(db: sqlite3.Connection, changes: dict) -> None:
    """Store ``changes`` (from :func:`parse_settings`); call inside :func:`transaction`.

    Leaving id-only mode makes email an identifier again, which two people cannot share.
    """
    if changes.get("id_only") is False:
        shared = db.execute("SELECT email FROM people WHERE email IS NOT NULL GROUP BY email HAVING count(*) > 1"
                            " LIMIT 1").fetchone()
        if shared is not None:
            raise SettingsError(f"cannot leave id-only mode: email '{shared[0]}' belongs to more than one person")
    for name, value in changes.items():
        if name == "attribute_types":
            db.executemany("INSERT INTO attribute_types (name, type) VALUES (?, ?) "
                           "ON CONFLICT (name) DO UPDATE SET type = excluded.type", value.items())
        else:
            db.execute("INSERT INTO settings (name, value) VALUES (?, ?) "
                       "ON CONFLICT (name) DO UPDATE SET value = excluded.value", (name, json.dumps(value)))
