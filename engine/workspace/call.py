"""One call inside a write transaction: its outcome types, and how a refused call leaves nothing behind.

A handler (``handler(call, body) -> summary``) applies one body through the :class:`Call` it
is given, or raises :class:`~engine.workspace.values.Refusal`. :meth:`Call.run` guards it with a
savepoint, so a refusal rolls back only that call. :meth:`Call.run_unguarded` skips the
savepoint (two statements a call) for the usual case of a refusal found before anything was
written; when a refusal comes after a write it reports that instead, and the caller rolls the
whole transaction's work back and applies it again guarded (:meth:`Workspace._apply`).
Nothing here commits: the transaction belongs to the caller (:func:`~engine.workspace.store.transaction`).
"""
from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from ..delivery.encoding import UNSTORABLE, finite, holds_non_finite, unstorable
from ..events import any_json, stored_json
from ..store import Connection
from .store import Settings
from .values import NonFinite, Refusal


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
    "too_large": "a batch item over the Track API's limit of 32 KB",
    "attribute_ignored": "a value that cannot convert to its declared type; the rest of the call was applied",
}

Outcome = Applied | Rejected
Handler = Callable[["Call", Any], str]

#: What `run_unguarded` returns for a call refused after it wrote: the transaction must be applied again, guarded.
DIRTY: Any = object()


def record(db: Connection, now: float, source: str, index: int | None, outcome: Rejected, body: Any) -> None:
    """Store a refused call (or an ignored value) with its reason and body."""
    db.execute("INSERT INTO rejected (received_at, source, batch_index, code, field, reason, body) "
               "VALUES (?, ?, ?, ?, ?, ?, ?)",
               (now, source, index, outcome.code, outcome.field, outcome.reason,
                stored_json(body)))


class Call:
    """What the handlers of one transaction share: the connection, the settings, the time.

    ``suppressions`` is whether any identifier may be suppressed: false, read at the start of
    the transaction (which holds the write lock, so no one else adds one), spares every call its
    suppression lookups; a suppress sets it. ``entity`` applies an entity body (for group calls
    that waited for an identify).
    """

    def __init__(self, db: Connection, settings: Settings, now: float, *, suppressions: bool,
                 entity: Handler):
        self.db, self.settings, self.now = db, settings, now
        self.suppressions = suppressions
        self.entity = entity
        self.ignored: list[tuple[str, str]] = []  # (field, reason) of typed values not stored
        self.next_person: int | None = None  # the number of the next person created; None: read it

    def run(self, body: Any, source: str, index: int | None, handler: Handler) -> Outcome:
        """Apply ``body`` with ``handler`` inside a savepoint: all of it, or none of it and a record why."""
        outer, self.ignored = self.ignored, []
        self.db.execute("SAVEPOINT call")
        try:
            try:
                summary = _unless_unstorable(handler, self, body)
            except (NonFinite, Refusal) as stopped:
                if not _for_non_finite(stopped, body):
                    raise
                self.db.execute("ROLLBACK TO call")
                summary = self._as_sent(handler, body)
        except Refusal as refusal:
            self.db.execute("ROLLBACK TO call")
            self.db.execute("RELEASE call")
            self.next_person = None  # a person created by the call is gone again
            return self._refused(refusal, source, index, body)
        finally:
            ignored, self.ignored = self.ignored, outer
        self.db.execute("RELEASE call")
        return self._applied(summary, ignored, source, index, body)

    def run_unguarded(self, body: Any, source: str, index: int | None, handler: Handler) -> Any:
        """As :meth:`run` without a savepoint; :data:`DIRTY` (nothing recorded) when refused after a write.

        SQLite's count of changed rows tells whether the handler wrote before it refused.
        """
        outer, self.ignored = self.ignored, []
        changes = self.db.total_changes
        try:
            try:
                summary = _unless_unstorable(handler, self, body)
            except (NonFinite, Refusal) as stopped:
                if not _for_non_finite(stopped, body):
                    raise
                if self.db.total_changes != changes:
                    return DIRTY
                summary = self._as_sent(handler, body)
        except Refusal as refusal:
            if self.db.total_changes != changes:
                return DIRTY
            return self._refused(refusal, source, index, body)
        finally:
            ignored, self.ignored = self.ignored, outer
        return self._applied(summary, ignored, source, index, body)

    def _as_sent(self, handler: Handler, body: Any) -> str:
        """Apply ``body`` again, nothing of it written yet, with NaN and Infinity as null: as an HTTP transport
        sends them (JSON.stringify's way), so an attribute set to NaN is removed there and here alike, and a
        timestamp or email of NaN is no value rather than a refusal. (Only a call that stopped is looked at
        for them: the usual one pays nothing.)"""
        self.ignored, self.next_person = [], None
        try:
            with any_json():  # a body as deep as a line may be read
                sent = finite(body)
        except RecursionError:
            raise Refusal("invalid_body", "the body nests too deeply to be stored") from None
        try:
            return _unless_unstorable(handler, self, sent)
        except NonFinite as again:  # not from NaN after all: a value json cannot write
            raise Refusal("invalid_body", f"{again} cannot be written as JSON", str(again)) from None

    def _refused(self, refusal: Refusal, source: str, index: int | None, body: Any) -> Rejected:
        if refusal.suppression is not None:
            self.db.execute("UPDATE suppressions SET refused = refused + 1 WHERE pk = ?", (refusal.suppression,))
        outcome = Rejected(refusal.code, refusal.reason, refusal.field)
        record(self.db, self.now, source, index, outcome, body)
        return outcome

    def _applied(self, summary: str, ignored: list[tuple[str, str]], source: str, index: int | None,
                 body: Any) -> Applied:
        for field, reason in ignored:
            record(self.db, self.now, source, index, Rejected("attribute_ignored", reason, field), body)
        if ignored:
            summary += f"; not stored: {', '.join(field for field, _ in ignored)}"
        return Applied(summary)


def _for_non_finite(stopped: Exception, body: Any) -> bool:
    """Whether a call that stopped is to be applied again with NaN and Infinity as null: a value to store held
    one, or the call was refused and its body holds one (looked for only then: the usual call pays nothing)."""
    return isinstance(stopped, NonFinite) or holds_non_finite(body)


def _unless_unstorable(handler: Handler, call: Call, body: Any) -> str:
    """``handler(call, body)``; a value SQLite cannot take (a lone surrogate, an integer beyond 64 bits)
    refuses this call, as the Track API would, rather than failing every call of the transaction."""
    try:
        return handler(call, body)
    except (*UNSTORABLE, sqlite3.InterfaceError) as error:
        raise Refusal("invalid_body", unstorable(error, body)) from None
