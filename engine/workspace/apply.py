"""Applying Track API calls to a workspace, with the semantics Customer.io documents.

One entry point per endpoint, each one transaction: :meth:`Workspace.apply` (``POST
/api/v2/entity``), :meth:`Workspace.apply_batch` (``/api/v2/batch``, one transaction for the
whole batch, a savepoint per item so one refused item leaves its neighbours applied) and
:meth:`Workspace.apply_metrics` (``/api/v1/metrics``). A call either applies whole or is
refused whole: it is stored in ``rejected`` with a stable code and reason and comes back as
:class:`Rejected`. Nothing here raises on bad input; storage failures raise WorkspaceError.

The rules are the seed documents' (Customer.io's Segment pages, ``docs/workspace.md`` has the
list); where they are silent, the choice is written next to the code that makes it.
"""
from __future__ import annotations

import json
import math
import re
import sqlite3
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, ClassVar

from .store import Settings, connect, parse_settings, read_settings, transaction, write_settings


@dataclass(frozen=True)
class Applied:
    """The call changed the workspace (or, said in ``summary``, needed no change or waits)."""

    summary: str
    ok: ClassVar[bool] = True


@dataclass(frozen=True)
class Rejected:
    """The call was refused and nothing of it was applied; ``field`` is where in the body, if known."""

    code: str
    reason: str
    field: str = ""
    ok: ClassVar[bool] = False


#: Why calls are refused. Tests assert the code; docs/workspace.md lists them.
REJECTION_CODES = {
    "unreadable": "the request body is not JSON",
    "invalid_body": "not a Track API body, or a part of it has the wrong JSON type",
    "unknown_action": "no such type and action",
    "missing_field": "a required field is missing or empty",
    "invalid_identifiers": "identifiers missing, more than one, or of a kind the call does not take",
    "email_not_identifier": "an id-only workspace was given an email as the identifier",
    "not_found": "the cio_id, or a person to merge, does not exist",
    "identifier_conflict": "the id and the email belong to two different people, or an identifier is taken",
    "identifier_change": "changing an id (or the email a call addresses) needs the person's cio_id",
    "reserved_attribute": "`relationship` is reserved and cannot name an object attribute",
    "invalid_timestamp": "neither Unix seconds nor an ISO-8601 date",
    "invalid_value": "a value outside its choices",
    "suppressed": "the person is suppressed",
    "attribute_ignored": "a value that cannot convert to its declared type; the rest of the call was applied",
}

#: The metrics ``/api/v1/metrics`` and ``type: delivery`` entities take (reference section 8).
METRICS = ("delivered", "opened", "clicked", "converted", "spammed", "bounced", "dropped", "deferred")

_MISSING = object()
# ajv-formats' "full" email pattern, as Segment uses it to read a person id as an email
# (reference section 4, rule 3).
_EMAIL = re.compile(r"[a-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
                    r"@(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+[a-z0-9](?:[a-z0-9-]*[a-z0-9])?",
                    re.IGNORECASE | re.ASCII)
_UNIX = re.compile(r"[0-9]+(\.[0-9]+)?")
_INTEGER = re.compile(r"[+-]?[0-9]+")
_DECIMAL = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")


class _Refusal(Exception):
    """Raised anywhere inside a call to refuse it; the savepoint around the call is rolled back."""

    def __init__(self, code: str, reason: str, field: str = "", suppression: int | None = None):
        super().__init__(reason)
        self.code, self.reason, self.field, self.suppression = code, reason, field, suppression


class Workspace:
    """An open workspace. Like the sqlite3 connection it holds, use one per thread."""

    def __init__(self, db: sqlite3.Connection, *, clock: Callable[[], float] = time.time):
        self.db = db
        self._clock = clock

    @classmethod
    def open(cls, path, settings=None, *, create: bool = True, clock: Callable[[], float] = time.time):
        """Open (and create or migrate) the workspace at ``path``, storing any ``settings`` given.

        ``settings`` is a mapping such as a destination's settings; only the names
        :data:`~engine.workspace.store.SETTING_NAMES` present change. Raises WorkspaceError
        (SettingsError for a bad value).
        """
        workspace = cls(connect(path, create=create), clock=clock)
        if settings:
            try:
                workspace.configure(settings)
            except BaseException:
                workspace.close()
                raise
        return workspace

    def configure(self, values) -> Settings:
        """Store the settings named in ``values``; returns them all."""
        changes = parse_settings(values)
        with transaction(self.db):
            write_settings(self.db, changes)
        return self.settings()

    def settings(self) -> Settings:
        return read_settings(self.db)

    def close(self) -> None:
        self.db.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def apply(self, body) -> Applied | Rejected:
        """Apply one entity body (``{"type": ..., "action": ..., "identifiers": ...}``)."""
        with transaction(self.db):
            return self._call().run(body, "entity", None, _entity)

    def apply_batch(self, body) -> list[Applied | Rejected] | Rejected:
        """Apply ``{"batch": [entity, ...]}``: one outcome per item, or Rejected when the body is not a batch."""
        items = body.get("batch") if isinstance(body, dict) else None
        if not isinstance(items, list):
            return self._refuse_whole(body, "batch", "invalid_body", 'a batch body is {"batch": [entity, ...]}')
        with transaction(self.db):
            call = self._call()
            return [call.run(item, "batch", index, _entity) for index, item in enumerate(items)]

    def apply_metrics(self, body) -> Applied | Rejected:
        """Apply a ``/api/v1/metrics`` body: a delivery metric stored against its delivery id."""
        with transaction(self.db):
            return self._call().run(body, "metrics", None, _metrics)

    def record_unreadable(self, source: str, text: str, reason: str) -> Rejected:
        """Store a request whose body could not be read as JSON; returns how it was refused."""
        return self._refuse_whole({"unreadable_body": text[:10_000]}, source, "unreadable", reason)

    def _refuse_whole(self, body, source, code, reason) -> Rejected:
        outcome = Rejected(code, reason)
        with transaction(self.db):
            _record(self.db, self._clock(), source, None, outcome, body)
        return outcome

    def _call(self) -> "_Call":
        return _Call(self.db, read_settings(self.db), self._clock())


def _record(db, now, source, index, outcome: Rejected, body) -> None:
    db.execute("INSERT INTO rejected (received_at, source, batch_index, code, field, reason, body) "
               "VALUES (?, ?, ?, ?, ?, ?, ?)",
               (now, source, index, outcome.code, outcome.field, outcome.reason,
                json.dumps(body, ensure_ascii=False, default=repr)))


class _Call:
    """What the handlers of one transaction share: the connection, the settings, the time."""

    def __init__(self, db, settings: Settings, now: float):
        self.db, self.settings, self.now = db, settings, now
        self.ignored: list[tuple[str, str]] = []  # (field, reason) of typed values not stored

    def run(self, body, source: str, index: int | None, handler) -> Applied | Rejected:
        """Apply ``body`` with ``handler`` inside a savepoint: all of it, or none of it and a record why."""
        outer, self.ignored = self.ignored, []
        self.db.execute("SAVEPOINT call")
        try:
            summary = handler(self, body)
        except _Refusal as refusal:
            self.db.execute("ROLLBACK TO call")
            self.db.execute("RELEASE call")
            if refusal.suppression is not None:
                self.db.execute("UPDATE suppressions SET refused = refused + 1 WHERE pk = ?", (refusal.suppression,))
            outcome = Rejected(refusal.code, refusal.reason, refusal.field)
            _record(self.db, self.now, source, index, outcome, body)
            return outcome
        finally:
            ignored, self.ignored = self.ignored, outer
        self.db.execute("RELEASE call")
        for field, reason in ignored:
            _record(self.db, self.now, source, index, Rejected("attribute_ignored", reason, field), body)
        if ignored:
            summary += f"; not stored: {', '.join(field for field, _ in ignored)}"
        return Applied(summary)


# -- reading the body ----------------------------------------------------------------------------

def _dict(body: dict, key: str, where: str | None = None) -> dict:
    """``body[key]`` as a dict copy, {} when absent or null."""
    value = body.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _Refusal("invalid_body", f"{where or key} must be an object", where or key)
    return dict(value)


def _text(value, where: str, code: str = "invalid_body") -> str:
    """An identifier-like value as text: JSON numbers are accepted as Segment turns them into text."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise _Refusal(code, f"{where} must be text, not {json.dumps(value, default=repr)}", where)


def _dumps(value, where: str) -> str:
    try:
        return json.dumps(value, ensure_ascii=False, allow_nan=False)
    except ValueError:
        raise _Refusal("invalid_body", f"{where} holds NaN or Infinity, which JSON has not", where) from None


def _number(value: float) -> float | int:
    return int(value) if float(value).is_integer() else value


def _unix(value):
    """Unix seconds from a number, a string of digits or an ISO-8601 date (UTC when it has no offset); else None."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return _number(value) if math.isfinite(value) else None
    if isinstance(value, str):
        if _UNIX.fullmatch(value):
            return _number(float(value))
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=timezone.utc)
        return _number(parsed.timestamp())
    return None


def _timestamp(call: _Call, value, where: str):
    """A body's timestamp as Unix seconds; the time of the call when it has none."""
    if value is None:
        return call.now
    seconds = _unix(value)
    if seconds is None:
        raise _Refusal("invalid_timestamp", f"{where} {json.dumps(value, default=repr)} is neither Unix seconds "
                                            "nor an ISO-8601 date", where)
    return seconds


def _merged(current: dict, changes: dict, *, empty_removes: bool = False) -> dict:
    """``current`` updated with ``changes``: null (and for objects "") removes an attribute."""
    for name, value in changes.items():
        if value is None or (empty_removes and value == ""):
            current.pop(name, None)
        else:
            current[name] = value
    return current


# -- people and identifiers ----------------------------------------------------------------------

_PERSON_KINDS = ("id", "email", "cio_id")


def _person_ref(call: _Call, identifiers, where: str = "identifiers", *, anonymous: bool = False):
    """``(kind, value)`` for exactly one of id, email, cio_id (or anonymous_id when allowed).

    An ``id`` of ``cio_<value>`` addresses that cio_id, and an ``id`` shaped like an email
    addresses the email unless the workspace is id-only: the reading Customer.io gives a
    person identifier (reference section 4), so any client's bodies land where Segment's would.
    """
    if identifiers is None:
        raise _Refusal("invalid_identifiers", f"{where} is missing", where)
    if not isinstance(identifiers, dict):
        raise _Refusal("invalid_body", f"{where} must be an object", where)
    allowed = _PERSON_KINDS + (("anonymous_id",) if anonymous else ())
    given = {key: value for key, value in identifiers.items() if value is not None and value != ""}
    if len(given) != 1 or next(iter(given)) not in allowed:
        raise _Refusal("invalid_identifiers", f"{where} must hold exactly one of {', '.join(allowed)}; got "
                                              f"{json.dumps(identifiers, default=repr)}", where)
    ((kind, value),) = given.items()
    value = _text(value, f"{where}.{kind}", "invalid_identifiers")
    if kind == "id" and value.startswith("cio_"):
        kind, value = "cio_id", value[4:]
        if not value:
            raise _Refusal("invalid_identifiers", f"{where}.id 'cio_' names no cio_id", where)
    elif kind == "id" and not call.settings.id_only and _EMAIL.fullmatch(value):
        kind = "email"
    if kind == "email" and call.settings.id_only:
        raise _Refusal("email_not_identifier", "this workspace identifies people by id only; email is an "
                                               "attribute, not an identifier", where)
    return kind, value


def _find(call: _Call, kind: str, value: str):
    column = {"id": "id", "email": "email", "cio_id": "cio_id"}[kind]  # never from the body
    return call.db.execute(f"SELECT * FROM people WHERE {column} = ?", (value,)).fetchone()


def _check_suppressed(call: _Call, kind: str, value: str) -> None:
    row = _suppression(call, kind, value)
    if row is not None:
        raise _Refusal("suppressed", f"{kind} '{value}' is suppressed; the call was not applied",
                       suppression=row["suppression_pk"])


def _suppression(call: _Call, kind: str, value: str):
    collation = "NOCASE" if kind == "email" else "BINARY"  # emails are case-insensitive identifiers
    return call.db.execute(f"SELECT suppression_pk FROM suppressed_identifiers WHERE kind = ? "
                           f"AND value = ? COLLATE {collation}", (kind, value)).fetchone()


def _create_person(call: _Call, id: str | None = None, email: str | None = None):
    pk = call.db.execute("INSERT INTO people (id, email, created_at, updated_at) VALUES (?, ?, ?, ?)",
                         (id, email, call.now, call.now)).lastrowid
    # cio_id: generated once, never changes; sequential, so example output is reproducible.
    call.db.execute("UPDATE people SET cio_id = ? WHERE pk = ?", (f"{pk:08x}", pk))
    return call.db.execute("SELECT * FROM people WHERE pk = ?", (pk,)).fetchone()


def _person_for(call: _Call, ref, *, create: bool):
    """The person a call addresses; created when new if ``create`` (not for an unknown cio_id)."""
    kind, value = ref
    _check_suppressed(call, kind, value)
    person = _find(call, kind, value)
    if person is None and create:
        if kind == "cio_id":
            raise _Refusal("not_found", f"no person has cio_id '{value}'", "identifiers.cio_id")
        person = _create_person(call, **{kind: value})
    return person


def _name(person) -> str:
    label = person["id"] if person["id"] is not None else person["email"]
    return f"person {person['cio_id']}" + (f" ({label})" if label is not None else "")


def _identify(call: _Call, body: dict) -> str:
    attributes = _dict(body, "attributes")
    wanted = {}
    for kind in ("id", "email"):
        if kind in attributes:
            value = attributes.pop(kind)
            if value != "":
                wanted[kind] = None if value is None else _text(value, f"attributes.{kind}")
    if "cio_id" in attributes:
        raise _Refusal("identifier_change", "cio_id is generated by the workspace and cannot be set",
                       "attributes.cio_id")
    anonymous_id = attributes.pop("anonymous_id", None)
    unsubscribed = attributes.pop("unsubscribed", _MISSING)
    identifiers = body.get("identifiers")
    if wanted.get("email") and (identifiers is None or (isinstance(identifiers, dict) and not any(
            value not in (None, "") for value in identifiers.values()))):
        identifiers = {"email": wanted["email"]}  # an empty id and an email: a lead
    ref = _person_ref(call, identifiers)
    person, created = _identified(call, ref, wanted)

    changes = {}
    if unsubscribed is None or isinstance(unsubscribed, bool):
        changes["unsubscribed"] = int(bool(unsubscribed))
    elif unsubscribed is not _MISSING:
        call.ignored.append(("attributes.unsubscribed", f"unsubscribed must be true or false, not "
                                                        f"{json.dumps(unsubscribed, default=repr)}"))
    stored = _person_attributes(call, json.loads(person["attributes"]), attributes)
    call.db.execute("UPDATE people SET attributes = ?, unsubscribed = coalesce(?, unsubscribed), updated_at = ? "
                    "WHERE pk = ?", (_dumps(stored, "attributes"), changes.get("unsubscribed"), call.now, person["pk"]))
    related = _relate_to_objects(call, person["pk"], body)
    summary = f"{'created' if created else 'updated'} {_name(_find(call, 'cio_id', person['cio_id']))}"
    if related:
        summary += f"; related to {related} object(s)"
    if anonymous_id not in (None, ""):
        summary += _link_anonymous(call, person["pk"], _text(anonymous_id, "attributes.anonymous_id"))
    return summary


def _identified(call: _Call, ref, wanted: dict):
    """The person an identify is about, with the id and email it sets; ``(row, created)``.

    Follows the seed's lead rules: a new id with a lead's email gives the lead the id, unless
    the lead has an id already or the id belongs to someone else; identifiers change through
    the id only for the email (when no one else has it), through the cio_id for both.
    """
    kind, value = ref
    _check_suppressed(call, kind, value)
    if kind in wanted and wanted[kind] is not None and not _same(kind, wanted[kind], value):
        raise _Refusal("identifier_change", f"the call addresses {kind} '{value}' and sets {kind} "
                                            f"'{wanted[kind]}'; changing an identifier needs the cio_id",
                       f"attributes.{kind}")
    if kind in ("id", "email"):
        wanted.setdefault(kind, value)
    for other, new in wanted.items():
        if new is not None and not (other == "email" and call.settings.id_only):
            _check_suppressed(call, other, new)
    person = _find(call, kind, value)
    if person is None and kind == "cio_id":
        raise _Refusal("not_found", f"no person has cio_id '{value}'", "identifiers.cio_id")
    unique = ("id",) if call.settings.id_only else ("id", "email")
    owners = {}
    for other in unique:
        if wanted.get(other) is not None:
            owner = _find(call, other, wanted[other])
            if owner is not None and (person is None or owner["pk"] != person["pk"]):
                owners[other] = owner
    if len({owner["pk"] for owner in owners.values()}) > 1 or (person is not None and owners):
        taken = next(iter(owners))
        raise _Refusal("identifier_conflict", f"{kind} '{value}' and {taken} '{wanted[taken]}' belong to two "
                                              "different people; nothing was changed", f"attributes.{taken}")
    if person is None and not owners:
        return _create_person(call, wanted.get("id"), wanted.get("email")), True
    if person is None:
        ((other, person),) = owners.items()
        if person[kind] is not None:
            raise _Refusal("identifier_conflict", f"{other} '{wanted[other]}' belongs to the person with {kind} "
                                                  f"'{person[kind]}'; nothing was changed", f"attributes.{other}")
    updates = {}
    for other, new in wanted.items():
        old = person[other]
        if _same(other, new, old):
            continue
        if old is not None and kind != "cio_id" and (other == "id" or kind == "email"):
            raise _Refusal("identifier_change", f"changing {other} '{old}' needs the person's cio_id "
                                                f"(identify cio_{person['cio_id']})", f"attributes.{other}")
        updates[other] = new
    if updates:
        final = {key: updates.get(key, person[key]) for key in ("id", "email")}
        if final["id"] is None and (final["email"] is None or call.settings.id_only):
            raise _Refusal("invalid_identifiers", "a person needs an id" + ("" if call.settings.id_only else
                                                                           " or an email"), "attributes")
        call.db.execute("UPDATE people SET id = ?, email = ? WHERE pk = ?", (final["id"], final["email"], person["pk"]))
    return person, False


def _same(kind: str, a, b) -> bool:
    if kind == "email" and isinstance(a, str) and isinstance(b, str):
        return a.lower() == b.lower()
    return a == b


# -- attributes, typed or not ---------------------------------------------------------------------

def _person_attributes(call: _Call, current: dict, changes: dict) -> dict:
    """``current`` updated with ``changes``: values keep their JSON types, null removes, names are case-sensitive.

    In typed mode (the UserEngage seed's behaviour) each value converts to its attribute's
    declared type; an undeclared attribute is declared ``string`` on first use; a value that
    cannot convert is not stored and is reported as ``attribute_ignored``.
    """
    for name, value in changes.items():
        if value is None:
            current.pop(name, None)
            continue
        if call.settings.typed_attributes:
            value = _typed(call, name, value)
            if value is _MISSING:
                continue
        current[name] = value
    return current


def _typed(call: _Call, name: str, value):
    row = call.db.execute("SELECT type FROM attribute_types WHERE name = ?", (name,)).fetchone()
    if row is None:
        call.db.execute("INSERT INTO attribute_types (name, type) VALUES (?, 'string')", (name,))
    kind = "string" if row is None else row["type"]
    converted = _CONVERSIONS[kind](value)
    if converted is _MISSING:
        call.ignored.append((f"attributes.{name}", f"attribute '{name}' is a {kind}; "
                                                   f"{json.dumps(value, default=repr)} cannot be converted"))
    return converted


def _as_string(value):
    if isinstance(value, str):
        return value
    if isinstance(value, (bool, int, float)):
        return json.dumps(value)  # 999 -> "999", true -> "true"
    return _MISSING


def _as_number(value):
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        text = value.strip()
        if _INTEGER.fullmatch(text):
            return int(text)
        if _DECIMAL.fullmatch(text) and math.isfinite(float(text)):
            return float(text)
    return _MISSING


def _as_boolean(value):
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return _MISSING


def _as_timestamp(value):
    seconds = _unix(value)
    return _MISSING if seconds is None else seconds


_CONVERSIONS = {"string": _as_string, "number": _as_number, "boolean": _as_boolean, "timestamp": _as_timestamp}


# -- anonymous activity --------------------------------------------------------------------------

def _linked(call: _Call, anonymous_id: str) -> int | None:
    row = call.db.execute("SELECT person_pk FROM anonymous_ids WHERE anonymous_id = ?", (anonymous_id,)).fetchone()
    return None if row is None else row["person_pk"]


def _link_anonymous(call: _Call, person_pk: int, anonymous_id: str) -> str:
    """Tie ``anonymous_id`` to the person: merge its events (if the setting is on), run its waiting group calls.

    A later identify naming the same anonymous id moves the tie to that person (the last
    sign-in on a shared device wins); events already merged stay where they are.
    """
    call.db.execute("INSERT INTO anonymous_ids (anonymous_id, person_pk) VALUES (?, ?) "
                    "ON CONFLICT (anonymous_id) DO UPDATE SET person_pk = excluded.person_pk",
                    (anonymous_id, person_pk))
    notes = ""
    if call.settings.anonymous_merge:
        pages, newest = call.db.execute("SELECT count(*), max(timestamp) FROM events WHERE person_pk IS NULL "
                                        "AND anonymous_id = ? AND kind = 'page'", (anonymous_id,)).fetchone()
        moved = call.db.execute("UPDATE events SET person_pk = ? WHERE person_pk IS NULL AND anonymous_id = ?",
                                (person_pk, anonymous_id)).rowcount
        _count_pages(call, person_pk, pages, newest)
        if moved:
            notes += f"; merged {moved} anonymous event(s)"
    waiting = call.db.execute("SELECT pk, body FROM waiting WHERE anonymous_id = ? ORDER BY pk",
                              (anonymous_id,)).fetchall()
    applied = 0
    for row in waiting:
        call.db.execute("DELETE FROM waiting WHERE pk = ?", (row["pk"],))
        applied += call.run(json.loads(row["body"]), "waiting", None, _entity).ok
    if waiting:
        notes += f"; applied {applied} of {len(waiting)} waiting group call(s)"
    return notes


def _count_pages(call: _Call, person_pk: int, count: int, newest) -> None:
    """Add page views; ``last_seen`` only moves forward."""
    if count:
        call.db.execute("UPDATE people SET page_views = page_views + ?, last_seen = max(coalesce(last_seen, ?), ?) "
                        "WHERE pk = ?", (count, newest, newest, person_pk))


# -- events, pages, screens ----------------------------------------------------------------------

def _event(kind: str):
    def store(call: _Call, body: dict) -> str:
        name = body.get("name")
        if not isinstance(name, str) or not name:
            what = "a page call needs its URL as the name" if kind == "page" else f"a {kind} call needs a name"
            raise _Refusal("missing_field", what, "name")
        data = _dumps(_dict(body, "attributes"), "attributes")
        timestamp = _timestamp(call, body.get("timestamp"), "timestamp")
        event_id = None if body.get("id") in (None, "") else _text(body["id"], "id")
        who, value = _person_ref(call, body.get("identifiers"), anonymous=True)
        if who != "anonymous_id":
            _check_suppressed(call, who, value)
        # Customer.io deduplicates events by their id: a retried call is not stored twice.
        if event_id is not None and call.db.execute("SELECT 1 FROM events WHERE event_id = ?", (event_id,)).fetchone():
            return f"{kind} '{name}' with id '{event_id}' is already stored; the repeat was not stored again"
        if who == "anonymous_id":
            person_pk = _linked(call, value) if call.settings.anonymous_merge else None
            anonymous_id, owner = value, f"anonymous id '{value}'"
        else:
            person = _person_for(call, (who, value), create=True)
            person_pk, anonymous_id, owner = person["pk"], None, _name(person)
        call.db.execute("INSERT INTO events (person_pk, anonymous_id, kind, name, data, timestamp, event_id, "
                        "received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        (person_pk, anonymous_id, kind, name, data, timestamp, event_id, call.now))
        if person_pk is not None and kind == "page":
            _count_pages(call, person_pk, 1, timestamp)
        return f"stored {kind} '{name}' for {owner}"
    return store


# -- devices -------------------------------------------------------------------------------------

def _device_token(body: dict) -> tuple[dict, str]:
    device = _dict(body, "device")
    if device.get("token") in (None, ""):
        raise _Refusal("missing_field", "the device has no token", "device.token")
    return device, _text(device["token"], "device.token")


def _add_device(call: _Call, body: dict) -> str:
    device, token = _device_token(body)
    platform = None if device.get("platform") in (None, "") else _text(device["platform"], "device.platform")
    last_used = None if device.get("last_used") is None else _timestamp(call, device["last_used"], "device.last_used")
    attributes = _dict(device, "attributes", "device.attributes")
    person = _person_for(call, _person_ref(call, body.get("identifiers")), create=True)
    row = call.db.execute("SELECT person_pk, attributes FROM devices WHERE token = ?", (token,)).fetchone()
    if row is None and platform is None:
        raise _Refusal("missing_field", "a new device needs a platform (ios or android)", "device.platform")
    stored = _merged(json.loads(row["attributes"]) if row else {}, attributes)
    # A token belongs to one person: adding it for someone else moves it (a shared or resold phone).
    call.db.execute("INSERT INTO devices (token, person_pk, platform, last_used, attributes, updated_at) "
                    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (token) DO UPDATE SET person_pk = excluded.person_pk, "
                    "platform = coalesce(excluded.platform, platform), "
                    "last_used = coalesce(excluded.last_used, last_used), "
                    "attributes = excluded.attributes, updated_at = excluded.updated_at",
                    (token, person["pk"], platform, last_used, _dumps(stored, "device.attributes"), call.now))
    moved = row is not None and row["person_pk"] != person["pk"]
    return (f"{'added' if row is None else 'updated'} device '{token}' for {_name(person)}"
            + ("; moved from another person" if moved else ""))


def _delete_device(call: _Call, body: dict) -> str:
    _, token = _device_token(body)
    person = _person_for(call, _person_ref(call, body.get("identifiers")), create=False)
    deleted = person is not None and call.db.execute("DELETE FROM devices WHERE token = ? AND person_pk = ?",
                                                     (token, person["pk"])).rowcount
    return f"deleted device '{token}'" if deleted else f"the person has no device '{token}'; nothing to delete"


# -- deleting, suppressing, merging people -------------------------------------------------------

def _delete_person(call: _Call, body: dict) -> str:
    kind, value = _person_ref(call, body.get("identifiers"))
    person = _person_for(call, (kind, value), create=False)
    if person is None:
        return f"no person has {kind} '{value}'; nothing to delete"
    call.db.execute("DELETE FROM people WHERE pk = ?", (person["pk"],))
    return f"deleted {_name(person)} with their events, devices and relationships"


def _suppress(call: _Call, body: dict) -> str:
    """Delete the person and refuse later calls for any of their identifiers, as Customer.io does.

    Suppressing an identifier no one has yet still stops it from being created.
    """
    kind, value = _person_ref(call, body.get("identifiers"))
    if _suppression(call, kind, value) is not None:
        return f"{kind} '{value}' is already suppressed"
    person = _find(call, kind, value)
    if person is None:
        identifiers = [(kind, value)]
    else:
        identifiers = [(key, person[key]) for key in _PERSON_KINDS
                       if person[key] is not None and not (key == "email" and call.settings.id_only)]
    suppression = call.db.execute("INSERT INTO suppressions (suppressed_at) VALUES (?)", (call.now,)).lastrowid
    call.db.executemany("INSERT OR IGNORE INTO suppressed_identifiers (kind, value, suppression_pk) VALUES (?, ?, ?)",
                        [(key, identifier, suppression) for key, identifier in identifiers])
    if person is None:
        return f"suppressed {kind} '{value}' (no such person yet)"
    call.db.execute("DELETE FROM people WHERE pk = ?", (person["pk"],))
    return f"suppressed and deleted {_name(person)}"


def _unsuppress(call: _Call, body: dict) -> str:
    kind, value = _person_ref(call, body.get("identifiers"))
    row = _suppression(call, kind, value)
    if row is None:
        return f"{kind} '{value}' is not suppressed; nothing to do"
    call.db.execute("DELETE FROM suppressions WHERE pk = ?", (row["suppression_pk"],))
    return f"unsuppressed {kind} '{value}'; the deleted profile is not restored"


def _merge(call: _Call, body: dict) -> str:
    """Move the secondary's events, devices, relationships and anonymous ids to the primary; delete the secondary.

    Attributes the primary lacks are copied from the secondary; the primary's own values,
    identifiers and relationship attributes win.
    """
    people = []
    for side in ("primary", "secondary"):
        kind, value = _person_ref(call, body.get(side), side)
        person = _person_for(call, (kind, value), create=False)
        if person is None:
            raise _Refusal("not_found", f"the {side} person ({kind} '{value}') does not exist", side)
        people.append(person)
    primary, secondary = people
    if primary["pk"] == secondary["pk"]:
        return "primary and secondary are the same person; nothing to merge"
    keep, gone = primary["pk"], secondary["pk"]
    for table in ("events", "devices", "anonymous_ids"):
        call.db.execute(f"UPDATE {table} SET person_pk = ? WHERE person_pk = ?", (keep, gone))
    call.db.execute("INSERT OR IGNORE INTO relationships (person_pk, object_pk, attributes) "
                    "SELECT ?, object_pk, attributes FROM relationships WHERE person_pk = ?", (keep, gone))
    attributes = {**json.loads(secondary["attributes"]), **json.loads(primary["attributes"])}
    call.db.execute("UPDATE people SET attributes = ?, page_views = page_views + ?, "
                    "last_seen = max(coalesce(last_seen, ?), coalesce(?, last_seen)), updated_at = ? WHERE pk = ?",
                    (json.dumps(attributes, ensure_ascii=False), secondary["page_views"], secondary["last_seen"],
                     secondary["last_seen"], call.now, keep))
    call.db.execute("DELETE FROM people WHERE pk = ?", (gone,))
    return f"merged {_name(secondary)} into {_name(primary)}"


# -- objects and relationships -------------------------------------------------------------------

def _object_ref(identifiers, where: str) -> tuple[str, str]:
    """``(object_type_id, object_id)``; the type defaults to 1, as in Customer.io."""
    if not isinstance(identifiers, dict):
        raise _Refusal("invalid_identifiers", f"{where} must be an object with object_id and object_type_id", where)
    if identifiers.get("object_id") in (None, ""):
        raise _Refusal("invalid_identifiers", f"{where}.object_id is missing", f"{where}.object_id")
    object_id = _text(identifiers["object_id"], f"{where}.object_id", "invalid_identifiers")
    type_id = identifiers.get("object_type_id")
    type_id = "1" if type_id in (None, "") else _text(type_id, f"{where}.object_type_id", "invalid_identifiers")
    if not type_id.isdigit() or int(type_id) < 1:
        raise _Refusal("invalid_identifiers", f"{where}.object_type_id must be a whole number from 1, not "
                                              f"'{type_id}'", f"{where}.object_type_id")
    return str(int(type_id)), object_id


def _relationships(call: _Call, body: dict, *, to_people: bool) -> list:
    """``cio_relationships`` as ``(identifier, relationship attributes)`` pairs, validated before anything changes."""
    items = body.get("cio_relationships")
    if items is None:
        return []
    if not isinstance(items, list):
        raise _Refusal("invalid_body", "cio_relationships must be a list", "cio_relationships")
    pairs = []
    for index, item in enumerate(items):
        where = f"cio_relationships[{index}]"
        if not isinstance(item, dict):
            raise _Refusal("invalid_body", f"{where} must be an object", where)
        attributes = _dict(item, "relationship_attributes", f"{where}.relationship_attributes")
        identifiers = item.get("identifiers")
        ref = (_person_ref(call, identifiers, f"{where}.identifiers", anonymous=True) if to_people
               else _object_ref(identifiers, f"{where}.identifiers"))
        pairs.append((ref, attributes))
    return pairs


def _object_row(call: _Call, ref):
    return call.db.execute("SELECT pk, attributes FROM objects WHERE object_type_id = ? AND object_id = ?",
                           ref).fetchone()


def _upsert_object(call: _Call, ref, attributes: dict) -> tuple[int, bool]:
    row = _object_row(call, ref)
    stored = _dumps(_merged(json.loads(row["attributes"]) if row else {}, attributes, empty_removes=True),
                    "attributes")
    if row is not None:
        call.db.execute("UPDATE objects SET attributes = ?, updated_at = ? WHERE pk = ?", (stored, call.now, row["pk"]))
        return row["pk"], False
    pk = call.db.execute("INSERT INTO objects (object_type_id, object_id, attributes, created_at, updated_at) "
                         "VALUES (?, ?, ?, ?, ?)", (*ref, stored, call.now, call.now)).lastrowid
    return pk, True


def _relate(call: _Call, person_pk: int, object_pk: int, attributes: dict) -> None:
    row = call.db.execute("SELECT attributes FROM relationships WHERE person_pk = ? AND object_pk = ?",
                          (person_pk, object_pk)).fetchone()
    stored = _merged(json.loads(row["attributes"]) if row else {}, attributes, empty_removes=True)
    call.db.execute("INSERT INTO relationships (person_pk, object_pk, attributes) VALUES (?, ?, ?) "
                    "ON CONFLICT (person_pk, object_pk) DO UPDATE SET attributes = excluded.attributes",
                    (person_pk, object_pk, _dumps(stored, "relationship_attributes")))


def _relate_to_objects(call: _Call, person_pk: int, body: dict) -> int:
    pairs = _relationships(call, body, to_people=False)
    for ref, attributes in pairs:
        _relate(call, person_pk, _upsert_object(call, ref, {})[0], attributes)
    return len(pairs)


def _object_identify(call: _Call, body: dict) -> str:
    attributes = _dict(body, "attributes")
    if "relationship" in attributes:
        raise _Refusal("reserved_attribute", "'relationship' is reserved (it names relationship attributes in "
                                             "Liquid) and cannot be an object attribute", "attributes.relationship")
    if body.get("created_at") is not None:
        attributes.setdefault("created_at", body["created_at"])
    return _relate_people(call, body, attributes)


def _relate_people(call: _Call, body: dict, attributes: dict) -> str:
    """Create or update the object and relate the people in ``cio_relationships``.

    A relationship to an anonymous id no identify has named yet makes the whole call wait,
    with nothing created, until that identify arrives (the seed's group-call rule).
    """
    ref = _object_ref(body.get("identifiers"), "identifiers")
    pairs = _relationships(call, body, to_people=True)
    people = []
    for (kind, value), relationship in pairs:
        if kind == "anonymous_id":
            person_pk = _linked(call, value)
            if person_pk is None:
                call.db.execute("INSERT INTO waiting (anonymous_id, body, received_at) VALUES (?, ?, ?)",
                                (value, _dumps(body, "body"), call.now))
                return f"waiting: nothing is created until an identify names anonymous id '{value}'"
            people.append((person_pk, relationship))
    for (kind, value), relationship in pairs:
        if kind != "anonymous_id":
            people.append((_person_for(call, (kind, value), create=True)["pk"], relationship))
    object_pk, created = _upsert_object(call, ref, attributes)
    for person_pk, relationship in people:
        _relate(call, person_pk, object_pk, relationship)
    return (f"{'created' if created else 'updated'} object {ref[0]}/{ref[1]}"
            + (f"; related {len(people)} person(s)" if people else ""))


def _object_add_relationships(call: _Call, body: dict) -> str:
    return _relate_people(call, body, {})


def _object_delete_relationships(call: _Call, body: dict) -> str:
    ref = _object_ref(body.get("identifiers"), "identifiers")
    pairs = _relationships(call, body, to_people=True)
    row = _object_row(call, ref)
    removed = 0
    for (kind, value), _ in pairs:
        if kind == "anonymous_id":
            person_pk = _linked(call, value)
        else:
            person = _person_for(call, (kind, value), create=False)
            person_pk = None if person is None else person["pk"]
        if row is not None and person_pk is not None:
            removed += call.db.execute("DELETE FROM relationships WHERE person_pk = ? AND object_pk = ?",
                                       (person_pk, row["pk"])).rowcount
    return f"removed {removed} relationship(s) with object {ref[0]}/{ref[1]}"


def _person_add_relationships(call: _Call, body: dict) -> str:
    person = _person_for(call, _person_ref(call, body.get("identifiers")), create=True)
    return f"related {_name(person)} to {_relate_to_objects(call, person['pk'], body)} object(s)"


def _person_delete_relationships(call: _Call, body: dict) -> str:
    person = _person_for(call, _person_ref(call, body.get("identifiers")), create=False)
    removed = 0
    for ref, _ in _relationships(call, body, to_people=False):
        row = _object_row(call, ref)
        if person is not None and row is not None:
            removed += call.db.execute("DELETE FROM relationships WHERE person_pk = ? AND object_pk = ?",
                                       (person["pk"], row["pk"])).rowcount
    return f"removed {removed} relationship(s)"


def _delete_object(call: _Call, body: dict) -> str:
    ref = _object_ref(body.get("identifiers"), "identifiers")
    deleted = call.db.execute("DELETE FROM objects WHERE object_type_id = ? AND object_id = ?", ref).rowcount
    return f"deleted object {ref[0]}/{ref[1]}" if deleted else f"no object {ref[0]}/{ref[1]}; nothing to delete"


# -- delivery metrics ----------------------------------------------------------------------------

def _optional_text(value, where: str) -> str | None:
    return None if value in (None, "") else _text(value, where)


def _store_metric(call: _Call, delivery_id: str, metric: str, timestamp, details: dict, metadata: dict) -> str:
    call.db.execute("INSERT INTO metrics (delivery_id, metric, timestamp, recipient, reason, href, metadata, "
                    "received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (delivery_id, metric, _timestamp(call, timestamp, "timestamp"),
                     *(_optional_text(details.get(key), key) for key in ("recipient", "reason", "href")),
                     _dumps(metadata, "metadata"), call.now))
    return f"stored metric '{metric}' for delivery '{delivery_id}'"


def _metrics(call: _Call, body) -> str:
    """``POST /api/v1/metrics``: ``{delivery_id, metric, timestamp, recipient?, reason?, href?, metadata?}``."""
    if not isinstance(body, dict):
        raise _Refusal("invalid_body", "a metrics body is a JSON object")
    for key in ("delivery_id", "metric"):
        if body.get(key) in (None, ""):
            raise _Refusal("missing_field", f"the metrics body has no {key}", key)
    if body["metric"] not in METRICS:
        raise _Refusal("invalid_value", f"metric {json.dumps(body['metric'], default=repr)} is not one of "
                                        f"{', '.join(METRICS)}", "metric")
    return _store_metric(call, _text(body["delivery_id"], "delivery_id"), body["metric"], body.get("timestamp"),
                         body, _dict(body, "metadata"))


def _delivery(call: _Call, body: dict) -> str:
    """A ``type: delivery`` entity: the metric is the action, the delivery id is ``identifiers.id``."""
    identifiers = body.get("identifiers")
    if not isinstance(identifiers, dict) or identifiers.get("id") in (None, ""):
        raise _Refusal("invalid_identifiers", 'a delivery is identified by {"id": <delivery id>}', "identifiers")
    attributes = _dict(body, "attributes")
    details = {key: attributes.pop(key, None) for key in ("recipient", "reason", "href")}
    return _store_metric(call, _text(identifiers["id"], "identifiers.id", "invalid_identifiers"), body["action"],
                         body.get("timestamp"), details, attributes)


# -- the table of calls --------------------------------------------------------------------------

#: Every ``(type, action)`` the workspace applies, and what applies it.
ENTITY_ACTIONS: dict[tuple[str, str], Callable] = {
    ("person", "identify"): _identify,
    ("person", "event"): _event("event"),
    ("person", "page"): _event("page"),
    ("person", "screen"): _event("screen"),
    ("person", "viewed_content"): _event("viewed_content"),
    ("person", "clicked_content"): _event("clicked_content"),
    ("person", "add_device"): _add_device,
    ("person", "delete_device"): _delete_device,
    ("person", "delete"): _delete_person,
    ("person", "suppress"): _suppress,
    ("person", "unsuppress"): _unsuppress,
    ("person", "merge"): _merge,
    ("person", "add_relationships"): _person_add_relationships,
    ("person", "delete_relationships"): _person_delete_relationships,
    ("object", "identify"): _object_identify,
    ("object", "identify_anonymous"): _object_identify,
    ("object", "add_relationships"): _object_add_relationships,
    ("object", "delete_relationships"): _object_delete_relationships,
    ("object", "delete"): _delete_object,
    **{("delivery", metric): _delivery for metric in METRICS},
}


def _entity(call: _Call, body) -> str:
    if not isinstance(body, dict):
        raise _Refusal("invalid_body", "an entity body is a JSON object")
    for key in ("type", "action"):
        if body.get(key) in (None, ""):
            raise _Refusal("missing_field", f"the body has no {key}", key)
        if not isinstance(body[key], str):
            raise _Refusal("invalid_body", f"{key} must be text", key)
    handler = ENTITY_ACTIONS.get((body["type"], body["action"]))
    if handler is None:
        actions = sorted(action for kind, action in ENTITY_ACTIONS if kind == body["type"])
        known = (f"the actions for {body['type']} are {', '.join(actions)}" if actions
                 else "the types are person, object and delivery")
        raise _Refusal("unknown_action", f"no action '{body['action']}' for type '{body['type']}'; {known}", "action")
    return handler(call, body)
