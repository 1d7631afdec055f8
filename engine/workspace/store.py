"""The workspace database: its schema and migrations, its settings, connections and transactions.

This module owns every ``CREATE`` and ``ALTER`` statement and how a connection is opened:
WAL mode (readers never block the one writer), a busy timeout (a second process waits for the
lock instead of failing), foreign keys (deleting a person deletes their events, devices and
relationships). It knows nothing of the Track API; :mod:`engine.workspace.apply` does.

Every write goes through :func:`transaction`, which takes the write lock up front
(``BEGIN IMMEDIATE``), so two processes applying calls to one file are serialised and a
read-modify-write (a page view count) never loses an update.
"""
from __future__ import annotations

import json
import sqlite3
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

#: How long a connection waits for another process's write lock before giving up, in seconds.
BUSY_TIMEOUT = 30.0

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
)
SCHEMA_VERSION = len(MIGRATIONS)


class WorkspaceError(Exception):
    """The workspace cannot be used: unreadable file, newer schema, a lock held too long, a full disk."""


class SettingsError(WorkspaceError):
    """A workspace setting has a value it cannot take."""


# -- connections and transactions --------------------------------------------------------------

def connect(path, *, create: bool = True, timeout: float = BUSY_TIMEOUT,
            migrations=MIGRATIONS) -> sqlite3.Connection:
    """An open, migrated connection to the workspace at ``path``.

    With ``create=False`` a missing file is an error instead of a new, empty workspace.
    ``migrations`` exists so tests can build a database at an older version.
    """
    if not create and not Path(path).is_file():
        raise WorkspaceError(f"no workspace at {path}")
    try:
        # isolation_level=None: no implicit transactions; transaction() says where each begins.
        db = sqlite3.connect(path, timeout=timeout, isolation_level=None)
    except sqlite3.Error as error:
        raise WorkspaceError(f"cannot open workspace {path}: {error}") from None
    try:
        db.row_factory = sqlite3.Row
        _use_wal(db, timeout)
        # In WAL mode NORMAL never corrupts the database; a power cut may lose the last commits.
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA foreign_keys=ON")
        _migrate(db, migrations)
    except sqlite3.DatabaseError as error:
        db.close()
        raise WorkspaceError(f"cannot open workspace {path}: {error}") from None
    except WorkspaceError:
        db.close()
        raise
    return db


def _use_wal(db: sqlite3.Connection, timeout: float) -> None:
    """Switch to WAL mode, retrying while another process holds the lock.

    Turning a new database to WAL needs an exclusive lock, and SQLite answers "database is
    locked" at once instead of waiting when two processes create the same file together.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
        time.sleep(0.01)


def _migrate(db: sqlite3.Connection, migrations) -> None:
    if db.execute("PRAGMA user_version").fetchone()[0] == len(migrations):
        return
    with transaction(db):
        # Read again under the write lock: another process may have migrated meanwhile.
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version > len(migrations):
            raise WorkspaceError(f"the workspace has schema version {version}; this switchyard knows "
                                 f"versions up to {len(migrations)}; upgrade switchyard")
        for script in migrations[version:]:
            for statement in _statements(script):
                db.execute(statement)
        db.execute(f"PRAGMA user_version = {len(migrations):d}")


def _statements(script: str):
    """The statements of a migration script, so that each runs inside the one transaction.

    (``executescript`` would commit first.) Migration scripts contain no ``;`` inside literals.
    """
    return [statement.strip() for statement in script.split(";") if statement.strip()]


@contextmanager
def transaction(db: sqlite3.Connection):
    """One write transaction: committed when the block ends, rolled back if it raises."""
    try:
        db.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as error:
        raise WorkspaceError(f"cannot start a write transaction: {error}") from None
    try:
        yield db
    except sqlite3.OperationalError as error:  # a full disk, an I/O error: not the caller's input
        db.execute("ROLLBACK")
        raise WorkspaceError(f"write failed: {error}") from error
    except BaseException:
        db.execute("ROLLBACK")
        raise
    try:
        db.execute("COMMIT")
    except sqlite3.OperationalError as error:
        db.execute("ROLLBACK")
        raise WorkspaceError(f"cannot commit: {error}") from None


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
    changes = {}
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
