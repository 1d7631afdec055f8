"""The stand-in's schema: its migrations, attribute definitions, connections and transactions.

The tables live in their destination's namespace of a shared store file (:mod:`engine.store`),
next to other destinations' (a Customer.io workspace, another User.com app). This module owns
every ``CREATE`` statement and the definitions table; :mod:`engine.userengage.app` applies
requests. Every write goes through :func:`transaction` (``BEGIN IMMEDIATE``), so two processes
writing one file are serialised and a counter (``page_views``) never loses an update.
"""
from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from typing import Any, ContextManager

from .. import store
from ..store import BUSY_TIMEOUT, Catalog, Connection
from .attributes import SCOPES, TYPES

# Each entry upgrades the schema by one version. Never edit a released entry: add one.
MIGRATIONS = (
    # 1: users, attribute definitions, event names and occurrences, page views, companies, members.
    """
    CREATE TABLE attributes (
        scope TEXT NOT NULL,
        name TEXT NOT NULL,
        type TEXT NOT NULL,
        defined INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (scope, name)
    );
    CREATE TABLE users (
        pk INTEGER PRIMARY KEY AUTOINCREMENT,
        custom_id TEXT NOT NULL UNIQUE,
        user_key TEXT NOT NULL UNIQUE,
        anonymous_id TEXT,
        fields TEXT NOT NULL DEFAULT '{}',
        attributes TEXT NOT NULL DEFAULT '{}',
        page_views INTEGER NOT NULL DEFAULT 0,
        last_seen NUMERIC,
        created_at NUMERIC NOT NULL,
        updated_at NUMERIC NOT NULL
    );
    CREATE INDEX users_anonymous ON users (anonymous_id);
    CREATE TABLE event_names (name TEXT PRIMARY KEY, created_at NUMERIC NOT NULL);
    CREATE TABLE events (
        pk INTEGER PRIMARY KEY AUTOINCREMENT,
        user_pk INTEGER NOT NULL,
        name TEXT NOT NULL,
        timestamp NUMERIC NOT NULL,
        data TEXT NOT NULL DEFAULT '{}',
        received_at NUMERIC NOT NULL
    );
    CREATE INDEX events_user ON events (user_pk, timestamp);
    CREATE TABLE page_views (
        pk INTEGER PRIMARY KEY AUTOINCREMENT,
        user_pk INTEGER NOT NULL,
        url TEXT,
        domain TEXT,
        path TEXT,
        title TEXT,
        timestamp NUMERIC NOT NULL,
        received_at NUMERIC NOT NULL
    );
    CREATE INDEX page_views_user ON page_views (user_pk, timestamp);
    CREATE TABLE companies (
        pk INTEGER PRIMARY KEY AUTOINCREMENT,
        custom_id TEXT UNIQUE,
        fields TEXT NOT NULL DEFAULT '{}',
        attributes TEXT NOT NULL DEFAULT '{}',
        created_at NUMERIC NOT NULL,
        updated_at NUMERIC NOT NULL
    );
    CREATE TABLE memberships (
        company_pk INTEGER NOT NULL,
        user_pk INTEGER NOT NULL,
        joined_at NUMERIC NOT NULL,
        PRIMARY KEY (company_pk, user_pk)
    );
    CREATE INDEX memberships_user ON memberships (user_pk);
    CREATE TABLE rejected (
        pk INTEGER PRIMARY KEY AUTOINCREMENT,
        received_at NUMERIC NOT NULL,
        request TEXT NOT NULL,
        code TEXT NOT NULL,
        reason TEXT NOT NULL,
        body TEXT NOT NULL
    );
    """,
)

#: The stand-in's tables, for :mod:`engine.store`: kept apart per destination in a shared file.
CATALOG = Catalog("userengage", MIGRATIONS)
#: Destination settings that define attributes, by the scope they define.
DEFINITION_SETTINGS = {"attribute_types": "user", "event_attribute_types": "event",
                       "company_attribute_types": "company"}


class AppError(Exception):
    """The stand-in cannot be used: an unreadable file, a newer schema, a lock held too long, a full disk."""


class DestinationError(AppError):
    """No destination was named and the file holds several User.com apps, or the one named is not there."""


class DefinitionError(AppError):
    """An attribute definition names a type User.com does not have."""


def connect(path: Any, *, create: bool = True, destination: str | None = None,
            timeout: float = BUSY_TIMEOUT, read_only: bool = False) -> Connection:
    """An open, migrated connection to ``destination``'s stand-in in the file at ``path``; ``read_only``
    writes nothing to the file (:func:`engine.store.connect`)."""
    try:
        return store.connect(path, CATALOG, destination=destination, create=create, timeout=timeout,
                             read_only=read_only)
    except store.DestinationError as error:
        raise DestinationError(str(error)) from None
    except store.StoreError as error:
        raise AppError(str(error)) from None


def destinations(path: Any) -> list[str]:
    """The names of the User.com destinations the file at ``path`` holds, sorted."""
    try:
        return store.destinations(path, CATALOG.name)
    except store.StoreError as error:
        raise AppError(str(error)) from None


def transaction(db: sqlite3.Connection) -> ContextManager[sqlite3.Connection]:
    """One write transaction: committed when the block ends, rolled back if it raises
    (:func:`engine.store.transaction`, failures of the database raised as AppError)."""
    return store.transaction(db, AppError)


# -- attribute definitions -------------------------------------------------------------------------

def parse_definitions(settings: Mapping) -> dict[str, dict[str, str]]:
    """Scope -> {attribute: type} from destination settings (or CLI flags); empty values mean "not set"."""
    found: dict[str, dict[str, str]] = {}
    for setting, scope in DEFINITION_SETTINGS.items():
        declared = settings.get(setting)
        if declared in (None, "", {}):
            continue
        if not isinstance(declared, Mapping):
            raise DefinitionError(f"setting '{setting}' must map attribute names to types")
        for name, kind in declared.items():
            if kind not in TYPES:
                raise DefinitionError(f"attribute type '{kind}' for '{name}' is not one of {', '.join(TYPES)}")
        found[scope] = dict(declared)
    return found


def define(db: sqlite3.Connection, definitions: Mapping[str, Mapping[str, str]]) -> None:
    """Store definitions (a defined type replaces one created on first use); call inside :func:`transaction`."""
    for scope, declared in definitions.items():
        assert scope in SCOPES, scope
        db.executemany("INSERT INTO attributes (scope, name, type, defined) VALUES (?, ?, ?, 1) "
                       "ON CONFLICT (scope, name) DO UPDATE SET type = excluded.type, defined = 1",
                       [(scope, name, kind) for name, kind in declared.items()])


def definitions(db: sqlite3.Connection) -> dict[str, dict[str, dict]]:
    """Scope -> attribute -> ``{"type", "defined"}`` (``defined`` false: created on first use)."""
    found: dict[str, dict[str, dict]] = {scope: {} for scope in SCOPES}
    for row in db.execute("SELECT scope, name, type, defined FROM attributes ORDER BY scope, name"):
        found[row["scope"]][row["name"]] = {"type": row["type"], "defined": bool(row["defined"])}
    return found
