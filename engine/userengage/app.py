"""The embedded stand-in for a User.com app: REST requests applied as Segment's documentation says User.com does.

:class:`App` answers the requests of :mod:`engine.userengage.steps` (the embedded transport walks
them straight against it; :mod:`engine.userengage.server` serves them over HTTP):

- a user upsert selects the user by ``custom_id`` and creates one that does not exist; profile
  fields are stored as given, every other key is a custom attribute under the typing rule of
  :mod:`engine.userengage.attributes` (an undefined attribute is created as a string);
- an event occurrence creates its event name and attributes on first sight, same rule;
- a site view adds a page view, adds one to ``page_views`` and moves ``last_seen`` forward only;
- a company is created or updated by id, with custom attributes under the same rule; a user joins it.

A request that cannot apply raises :class:`Refusal` with the HTTP status User.com would answer;
:meth:`App.apply_many` turns that into a :class:`Rejected` kept in the ``rejected`` table.
Storage failures raise AppError.
"""
from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Self

import orjson

from ..delivery.encoding import UNSTORABLE, unstorable
from ..events import stored_json
from ..store import Connection
from .attributes import IGNORED, convert
from .requests import COMPANY_FIELDS, USER_FIELDS, UserRequest, to_json
from .steps import perform
from .store import DefinitionError, connect, define, definitions, parse_definitions, transaction


class Refusal(Exception):
    """User.com would answer this request with ``status`` (400 invalid, 404 not found)."""

    def __init__(self, status: int, code: str, reason: str):
        super().__init__(reason)
        self.status, self.code, self.reason = status, code, reason


@dataclass(frozen=True)
class Applied:
    """The request applied (``answer`` is what User.com answers)."""

    answer: dict


@dataclass(frozen=True)
class Rejected:
    status: int
    code: str
    reason: str


class App:
    """One destination's stand-in in a store file. Like its sqlite3 connection, used by one thread at a time."""

    def __init__(self, db: Connection, *, clock: Callable[[], float] = time.time):
        self.db = db
        self._clock = clock

    @classmethod
    def open(cls, path: Any, settings: Mapping | None = None, *, destination: str | None = None,
             create: bool = True) -> Self:
        """Open (creating or migrating) the stand-in; attribute definitions in ``settings`` are stored."""
        try:
            declared = parse_definitions(settings or {})
        except DefinitionError:
            raise
        app = cls(connect(path, create=create, destination=destination))
        if declared:
            try:
                with transaction(app.db):
                    define(app.db, declared)
            except BaseException:
                app.close()
                raise
        return app

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # -- entry points ------------------------------------------------------------------------------

    def apply_many(self, requests: Sequence[UserRequest]) -> list[Applied | Rejected]:
        """Walk each request's steps, in one transaction with a savepoint each: a refused request rolls back alone."""
        results: list[Applied | Rejected] = []
        operations = Operations(self.db, self._clock())
        with transaction(self.db):
            for request in requests:
                self.db.execute("SAVEPOINT request")
                try:
                    try:
                        perform(request, operations)
                    except (*UNSTORABLE, sqlite3.InterfaceError) as error:  # a value SQLite cannot take
                        raise Refusal(400, "invalid_body", unstorable(error, to_json(request))) from None
                except Refusal as refusal:
                    self.db.execute("ROLLBACK TO request")
                    operations.forget()  # what it read may have been rolled back
                    self._record(refusal, request.kind, to_json(request))
                    results.append(Rejected(refusal.status, refusal.code, refusal.reason))
                else:
                    results.append(Applied({}))
                self.db.execute("RELEASE request")
        return results

    def answer(self, name: str, *arguments: Any) -> Applied | Rejected:
        """One REST request, by its :class:`~engine.userengage.steps.Api` method name, in its own transaction."""
        operations = Operations(self.db, self._clock())
        with transaction(self.db):
            try:
                found = getattr(operations, name)(*arguments)
            except Refusal as refusal:
                self._record(refusal, name, arguments[-1] if arguments else None)
                return Rejected(refusal.status, refusal.code, refusal.reason)
        if found is None:
            return Rejected(404, "not_found", "no such company")
        return Applied(found)

    def define(self, declared: Mapping[str, Mapping[str, str]]) -> dict:
        """Store attribute definitions (scope -> name -> type); the definitions after."""
        with transaction(self.db):
            define(self.db, declared)
        return definitions(self.db)

    def definitions(self) -> dict:
        return definitions(self.db)

    def _record(self, refusal: Refusal, request: str, body: Any) -> None:
        self.db.execute("INSERT INTO rejected (received_at, request, code, reason, body) VALUES (?, ?, ?, ?, ?)",
                        (self._clock(), request, refusal.code, refusal.reason,
                         stored_json(body)))


def user_key(custom_id: str) -> str:
    """A user's key (User.com's tracking id): the same for the same custom id in every file."""
    return hashlib.sha256(custom_id.encode()).hexdigest()[:32]


class Operations:
    """The REST requests against the stand-in's tables, inside a transaction the caller holds."""

    def __init__(self, db: sqlite3.Connection, now: float):
        self.db, self.now = db, now
        self._types: dict[str, dict[str, str]] = {}  # scope -> attribute -> type, read once per transaction

    def forget(self) -> None:
        """Drop what was read: after a rollback it may no longer be so."""
        self._types.clear()

    # -- users -------------------------------------------------------------------------------------

    def update_or_create_user(self, body: dict) -> dict:
        body = _object(body)
        custom_id = _identifier(body.get("custom_id"), "custom_id")
        row = self.db.execute("SELECT * FROM users WHERE custom_id = ?", (custom_id,)).fetchone()
        created = row is None
        if created:
            cursor = self.db.execute("INSERT INTO users (custom_id, user_key, created_at, updated_at) "
                                     "VALUES (?, ?, ?, ?)", (custom_id, user_key(custom_id), self.now, self.now))
            row = self.db.execute("SELECT * FROM users WHERE pk = ?", (cursor.lastrowid,)).fetchone()
        fields, attributes = json.loads(row["fields"]), json.loads(row["attributes"])
        anonymous_id = row["anonymous_id"]
        for name, value in body.items():
            if name == "custom_id":
                continue
            if name == "anonymous_id":
                anonymous_id = _identifier(value, name) if value is not None else anonymous_id
            elif name in USER_FIELDS:
                _set(fields, name, value)
            else:
                self._typed(attributes, "user", name, value)
        stored = (anonymous_id, _dump(fields), _dump(attributes))
        # A track or page call's upsert mostly changes nothing: then neither is the row written.
        if stored != (row["anonymous_id"], row["fields"], row["attributes"]):
            self.db.execute("UPDATE users SET anonymous_id = ?, fields = ?, attributes = ?, updated_at = ? "
                            "WHERE pk = ?", (*stored, self.now, row["pk"]))
        return {"created": created, "id": row["pk"], "user_key": row["user_key"]}

    def user(self, user_id: int) -> dict:
        row = self.db.execute("SELECT * FROM users WHERE pk = ?", (user_id,)).fetchone()
        if row is None:
            raise Refusal(404, "not_found", f"no user with id {user_id}")
        return _user(row)

    def user_by_custom_id(self, custom_id: str) -> dict:
        row = self.db.execute("SELECT * FROM users WHERE custom_id = ?", (custom_id,)).fetchone()
        if row is None:
            raise Refusal(404, "not_found", f"no user with custom_id {custom_id!r}")
        return _user(row)

    # -- events and page views ------------------------------------------------------------------------

    def create_event(self, body: dict) -> dict:
        body = _object(body)
        user = self._user_pk(body.get("user_id"))
        name = body.get("name")
        if not isinstance(name, str) or not name:
            raise Refusal(400, "missing_field", "an event needs a name")
        data = body.get("data") or {}
        if not isinstance(data, dict):
            raise Refusal(400, "invalid_field", "an event's data is an object")
        created = self.db.execute("INSERT INTO event_names (name, created_at) VALUES (?, ?) ON CONFLICT DO NOTHING",
                                  (name, self.now)).rowcount == 1
        typed: dict = {}
        for key, value in data.items():
            self._typed(typed, "event", key, value)
        cursor = self.db.execute("INSERT INTO events (user_pk, name, timestamp, data, received_at) "
                                 "VALUES (?, ?, ?, ?, ?)",
                                 (user, name, _seconds(body.get("timestamp"), self.now), _dump(typed), self.now))
        return {"id": cursor.lastrowid, "created": created}

    def create_site_view(self, body: dict) -> dict:
        body = _object(body)
        key = body.get("client_user")
        row = (self.db.execute("SELECT pk FROM users WHERE user_key = ?", (key,)).fetchone()
               if isinstance(key, str) else None)
        if row is None:
            raise Refusal(404, "not_found", f"no user with user_key {key!r}")
        when = _seconds(body.get("timestamp"), self.now)
        texts = [body.get(name) if isinstance(body.get(name), str) else None
                 for name in ("page_url", "page_domain", "page_path", "page_title")]
        cursor = self.db.execute("INSERT INTO page_views (user_pk, url, domain, path, title, timestamp, received_at) "
                                 "VALUES (?, ?, ?, ?, ?, ?, ?)", (row["pk"], *texts, when, self.now))
        # last_seen moves forward only: a page view older than the one stored leaves it.
        self.db.execute("UPDATE users SET page_views = page_views + 1, "
                        "last_seen = CASE WHEN last_seen IS NULL OR last_seen < ? THEN ? ELSE last_seen END "
                        "WHERE pk = ?", (when, when, row["pk"]))
        return {"id": cursor.lastrowid}

    # -- companies ---------------------------------------------------------------------------------

    def company_by_custom_id(self, custom_id: str) -> dict | None:
        row = self.db.execute("SELECT * FROM companies WHERE custom_id = ?", (custom_id,)).fetchone()
        return None if row is None else _company(row)

    def create_company(self, body: dict) -> dict:
        body = _object(body)
        name = body.get("name")
        if name in (None, ""):
            raise Refusal(400, "missing_field", "a company needs a name")
        custom_id = body.get("custom_id")
        if custom_id is not None:
            custom_id = _identifier(custom_id, "custom_id")
            if self.company_by_custom_id(custom_id) is not None:
                raise Refusal(400, "duplicate", f"a company with custom_id {custom_id!r} exists")
        cursor = self.db.execute("INSERT INTO companies (custom_id, created_at, updated_at) VALUES (?, ?, ?)",
                                 (custom_id, self.now, self.now))
        return self.update_company(int(cursor.lastrowid or 0), {k: v for k, v in body.items() if k != "custom_id"})

    def update_company(self, company_id: int, body: dict) -> dict:
        body = _object(body)
        row = self._company_row(company_id)
        fields, attributes = json.loads(row["fields"]), json.loads(row["attributes"])
        for name, value in body.items():
            if name == "custom_id":
                continue
            if name in COMPANY_FIELDS:
                _set(fields, name, value)
            else:
                self._typed(attributes, "company", name, value)
        self.db.execute("UPDATE companies SET fields = ?, attributes = ?, updated_at = ? WHERE pk = ?",
                        (_dump(fields), _dump(attributes), self.now, company_id))
        return _company(self._company_row(company_id))

    def add_member(self, company_id: int, body: dict) -> dict:
        body = _object(body)
        self._company_row(company_id)
        user = self._user_pk(body.get("user_id"))
        self.db.execute("INSERT INTO memberships (company_pk, user_pk, joined_at) VALUES (?, ?, ?) "
                        "ON CONFLICT DO NOTHING", (company_id, user, self.now))
        return {}

    # -- shared --------------------------------------------------------------------------------------

    def _user_pk(self, user_id: Any) -> int:
        if not isinstance(user_id, int) or isinstance(user_id, bool):
            raise Refusal(400, "missing_field", "user_id (the user's numeric id) is required")
        if self.db.execute("SELECT 1 FROM users WHERE pk = ?", (user_id,)).fetchone() is None:
            raise Refusal(404, "not_found", f"no user with id {user_id}")
        return user_id

    def _company_row(self, company_id: int) -> sqlite3.Row:
        row = self.db.execute("SELECT * FROM companies WHERE pk = ?", (company_id,)).fetchone()
        if row is None:
            raise Refusal(404, "not_found", f"no company with id {company_id}")
        return row

    def _typed(self, into: dict, scope: str, name: str, value: Any) -> None:
        """Set a custom attribute under the typing rule; an attribute not defined yet is created as a string."""
        types = self._types.get(scope)
        if types is None:
            types = self._types[scope] = {row[0]: row[1] for row in self.db.execute(
                "SELECT name, type FROM attributes WHERE scope = ?", (scope,))}
        kind = types.get(name)
        if kind is None:
            kind = types[name] = "string"
            self.db.execute("INSERT INTO attributes (scope, name, type, defined) VALUES (?, ?, 'string', 0)",
                            (scope, name))
        converted = convert(value, kind)
        if converted is not IGNORED:
            _set(into, name, converted)


def _object(body: Any) -> dict:
    if not isinstance(body, dict):
        raise Refusal(400, "invalid_body", "the body is a JSON object")
    return body


def _identifier(value: Any, name: str) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = json.dumps(value)
    if not isinstance(value, str) or not value:
        raise Refusal(400, "missing_field", f"{name} is required")
    return value


def _set(into: dict, name: str, value: Any) -> None:
    if value is None:
        into.pop(name, None)
    else:
        into[name] = value


def _seconds(value: Any, default: float) -> float:
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else default


def _dump(values: dict) -> str:
    """Stored JSON, keys sorted, so that equal values are equal text."""
    return orjson.dumps(values, option=orjson.OPT_SORT_KEYS).decode()


def _user(row: sqlite3.Row) -> dict:
    """A user as User.com answers it: custom attributes first, so that one named ``id`` or ``user_key`` (any
    trait may be) never stands for the user's own."""
    return {**json.loads(row["attributes"]), **json.loads(row["fields"]),
            "id": row["pk"], "custom_id": row["custom_id"], "user_key": row["user_key"],
            "page_views": row["page_views"], "last_seen": row["last_seen"]}


def _company(row: sqlite3.Row) -> dict:
    """A company as User.com answers it: its own id wins over a custom attribute ``id`` (Segment's group trait)."""
    return {**json.loads(row["attributes"]), **json.loads(row["fields"]),
            "id": row["pk"], "custom_id": row["custom_id"]}
