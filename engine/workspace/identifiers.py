"""Who a call is about: reading person identifiers, finding and creating people, suppressed identifiers.

The reading of an identifier is Customer.io's (reference section 4): an ``id`` of
``cio_<value>`` addresses that cio_id, and an ``id`` shaped like an email addresses the email
unless the workspace is id-only. Every handler that names a person goes through here, so
bodies from any client land where Segment's would.
"""
from __future__ import annotations

import json
import re
import string
from collections.abc import Mapping
from typing import Any

from .call import Call
from .values import Refusal, text

PERSON_KINDS = ("id", "email", "cio_id")
# ajv-formats' "full" email pattern, as Segment uses it to read a person id as an email
# (reference section 4, rule 3).
_EMAIL = re.compile(r"[a-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
                    r"@(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+[a-z0-9](?:[a-z0-9-]*[a-z0-9])?",
                    re.IGNORECASE | re.ASCII)
# One statement per kind, the column never from the body; constant text, so sqlite3 reuses each.
_FIND = {kind: f"SELECT * FROM people WHERE {kind} = ?" for kind in PERSON_KINDS}
_SUPPRESSION = {kind: "SELECT suppression_pk FROM suppressed_identifiers WHERE kind = ? AND value = ? COLLATE "
                      + ("NOCASE" if kind == "email" else "BINARY")  # emails are case-insensitive identifiers
                for kind in PERSON_KINDS}
# SQLite's NOCASE, which people.email and the suppression lookups use, folds the ASCII letters only:
# JÖRG@example.de and jörg@example.de are two addresses to it, so they are two to Python too.
_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)

Person = Mapping[str, Any]  # a row of `people` (or the same keys for one just created)


def person_ref(call: Call, identifiers: Any, where: str = "identifiers", *,
               anonymous: bool = False) -> tuple[str, str]:
    """``(kind, value)`` for exactly one of id, email, cio_id (or anonymous_id when allowed)."""
    if type(identifiers) is dict and len(identifiers) == 1:  # the usual shape, read without copying
        ((kind, value),) = identifiers.items()
        if type(value) is str and value and (kind in PERSON_KINDS or (anonymous and kind == "anonymous_id")):
            return _read(call, kind, value, where)
    if identifiers is None:
        raise Refusal("invalid_identifiers", f"{where} is missing", where)
    if not isinstance(identifiers, dict):
        raise Refusal("invalid_body", f"{where} must be an object", where)
    allowed = PERSON_KINDS + (("anonymous_id",) if anonymous else ())
    given = {key: value for key, value in identifiers.items() if value is not None and value != ""}
    if len(given) != 1 or next(iter(given)) not in allowed:
        raise Refusal("invalid_identifiers", f"{where} must hold exactly one of {', '.join(allowed)}; got "
                                             f"{json.dumps(identifiers, default=repr)}", where)
    ((kind, value),) = given.items()
    return _read(call, kind, text(value, f"{where}.{kind}", "invalid_identifiers"), where)


def _read(call: Call, kind: str, value: str, where: str) -> tuple[str, str]:
    """How Customer.io reads an identifier: ``cio_`` ids, email-shaped ids, emails in id-only workspaces."""
    if kind == "id" and value.startswith("cio_"):
        kind, value = "cio_id", value[4:]
        if not value:
            raise Refusal("invalid_identifiers", f"{where}.id 'cio_' names no cio_id", where)
    elif kind == "id" and "@" in value and not call.settings.id_only and _EMAIL.fullmatch(value):
        kind = "email"
    if kind == "email" and call.settings.id_only:
        raise Refusal("email_not_identifier", "this workspace identifies people by id only; email is an "
                                              "attribute, not an identifier", where)
    return kind, value


def same_email(a: str, b: str) -> bool:
    """Whether two emails are one address: equal but for the case of ASCII letters, as SQLite compares them."""
    return a.translate(_ASCII_LOWER) == b.translate(_ASCII_LOWER)


def find(call: Call, kind: str, value: str) -> Person | None:
    return call.db.execute(_FIND[kind], (value,)).fetchone()


def check_suppressed(call: Call, kind: str, value: str) -> None:
    row = suppression(call, kind, value)
    if row is not None:
        raise Refusal("suppressed", f"{kind} '{value}' is suppressed; the call was not applied",
                      suppression=row["suppression_pk"])


def suppression(call: Call, kind: str, value: str) -> Any:
    """The row suppressing ``kind`` ``value``, or None (without a lookup while nothing is suppressed)."""
    if not call.suppressions:
        return None
    return call.db.execute(_SUPPRESSION[kind], (kind, value)).fetchone()


def next_person(call: Call) -> int:
    """The number the next person created in this call gets; numbers are never reused (``AUTOINCREMENT``)."""
    if call.next_person is None:
        call.next_person = call.db.execute(
            "SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = ?), 0), "
            "coalesce((SELECT max(pk) FROM people), 0)) + 1", (call.db.table("people"),)).fetchone()[0]
    return call.next_person


def create_person(call: Call, id: str | None = None, email: str | None = None, *, attributes: str = "{}",
                  unsubscribed: int = 0, page_views: int = 0, last_seen: float | None = None) -> Person:
    """A new person (numbered by :func:`next_person`) with a ``cio_id`` that never changes.

    The cio_id is the hex of the number, so example output is stable; both go into the one insert.
    """
    pk = next_person(call)
    cio_id = f"{pk:08x}"
    call.db.execute("INSERT INTO people (pk, cio_id, id, email, attributes, unsubscribed, page_views, last_seen, "
                    "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (pk, cio_id, id, email, attributes, unsubscribed, page_views, last_seen, call.now, call.now))
    call.next_person = pk + 1
    return {"pk": pk, "cio_id": cio_id, "id": id, "email": email, "attributes": attributes,
            "unsubscribed": unsubscribed, "page_views": page_views, "last_seen": last_seen}


def person_for(call: Call, ref: tuple[str, str], *, create: bool) -> Person | None:
    """The person a call addresses; created when new if ``create`` (not for an unknown cio_id)."""
    kind, value = ref
    check_suppressed(call, kind, value)
    person = find(call, kind, value)
    if person is None and create:
        if kind == "cio_id":
            raise Refusal("not_found", f"no person has cio_id '{value}'", "identifiers.cio_id")
        person = create_person(call, value if kind == "id" else None, value if kind == "email" else None)
    return person


def name(person: Person) -> str:
    """How summaries name a person: ``person 00000001 (u1)``."""
    return label(person["cio_id"], person["id"], person["email"])


def label(cio_id: str, id: str | None, email: str | None) -> str:
    shown = id if id is not None else email
    return f"person {cio_id}" + (f" ({shown})" if shown is not None else "")


def linked(call: Call, anonymous_id: str) -> int | None:
    """The person an anonymous id is tied to by an identify, if any."""
    row = call.db.execute("SELECT person_pk FROM anonymous_ids WHERE anonymous_id = ?", (anonymous_id,)).fetchone()
    return None if row is None else row["person_pk"]
