"""Events on people: track, page, screen and content calls, from known people or anonymous ids.

An event is stored once per ``id`` (Customer.io deduplicates by it), against its person
(created when new) or, for an anonymous id, against the person an identify tied it to or kept
as an anonymous event until one does (:func:`engine.workspace.people.link_anonymous`).
"""
from __future__ import annotations

from collections.abc import Callable

from .call import Call
from .identifiers import (
    check_suppressed,
    create_person,
    find,
    label,
    linked,
    name,
    next_person,
    person_ref,
)
from .people import count_pages
from .values import Refusal, dumps, text, timestamp

_INSERT = ("INSERT INTO events (person_pk, anonymous_id, kind, name, data, timestamp, event_id, received_at) "
           "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (event_id) WHERE event_id IS NOT NULL DO NOTHING")


def event(kind: str) -> Callable[[Call, dict], str]:
    """The handler for one kind of event: ``event``, ``page``, ``screen``, ``viewed_content``, ..."""
    def store(call: Call, body: dict) -> str:
        title = body.get("name")
        if not isinstance(title, str) or not title:
            article = "an" if kind[0] in "aeiou" else "a"
            what = "a page call needs its URL as the name" if kind == "page" else f"{article} {kind} call needs a name"
            raise Refusal("missing_field", what, "name")
        attributes = body.get("attributes")
        if attributes is not None and not isinstance(attributes, dict):
            raise Refusal("invalid_body", "attributes must be an object", "attributes")
        data = "{}" if not attributes else dumps(attributes, "attributes")
        seconds = timestamp(call.now, body.get("timestamp"), "timestamp")
        event_id = None if body.get("id") in (None, "") else text(body["id"], "id")
        who, value = person_ref(call, body.get("identifiers"), anonymous=True)
        if who == "anonymous_id":
            person_pk = linked(call, value) if call.settings.anonymous_merge else None
            if not _insert(call, (person_pk, value, kind, title, data, seconds, event_id, call.now)):
                return _repeat(kind, title, event_id)
            if person_pk is not None and kind == "page":
                count_pages(call, person_pk, 1, seconds)
            return f"stored {kind} '{title}' for anonymous id '{value}'"
        check_suppressed(call, who, value)
        person = find(call, who, value)
        if person is not None:
            if not _insert(call, (person["pk"], None, kind, title, data, seconds, event_id, call.now)):
                return _repeat(kind, title, event_id)
            if kind == "page":
                count_pages(call, person["pk"], 1, seconds)
            return f"stored {kind} '{title}' for {name(person)}"
        if who == "cio_id":
            if event_id is not None and call.db.execute("SELECT 1 FROM events WHERE event_id = ?",
                                                        (event_id,)).fetchone():
                return _repeat(kind, title, event_id)
            raise Refusal("not_found", f"no person has cio_id '{value}'", "identifiers.cio_id")
        # A new person: the event goes in first, under the number the person will get, so that a
        # repeat (which may belong to an anonymous id) creates no one and writes nothing.
        pk = next_person(call)
        if not _insert(call, (pk, None, kind, title, data, seconds, event_id, call.now)):
            return _repeat(kind, title, event_id)
        id, email = (value, None) if who == "id" else (None, value)
        page = kind == "page"
        create_person(call, id, email, page_views=int(page), last_seen=seconds if page else None)
        return f"stored {kind} '{title}' for {label(f'{pk:08x}', id, email)}"
    return store


def _insert(call: Call, row: tuple) -> bool:
    """Store an event unless one with its id is stored (Customer.io deduplicates by id); whether it was stored."""
    return bool(call.db.execute(_INSERT, row).rowcount)


def _repeat(kind: str, title: str, event_id: str | None) -> str:
    return f"{kind} '{title}' with id '{event_id}' is already stored; the repeat was not stored again"

