"""Events on people: track, page, screen and content calls, from known people or anonymous ids.

An event is stored once per ``id`` (Customer.io deduplicates by it), against its person
(created when new) or, for an anonymous id, against the person an identify tied it to or kept
as an anonymous event until one does (:func:`engine.workspace.people.link_anonymous`).
"""
from __future__ import annotations

from collections.abc import Callable

from .call import Call
from .identifiers import check_suppressed, create_person, find, linked, name, person_ref
from .people import count_pages
from .values import Refusal, dumps, text, timestamp

_INSERT = ("INSERT INTO events (person_pk, anonymous_id, kind, name, data, timestamp, event_id, received_at) "
           "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (event_id) WHERE event_id IS NOT NULL DO NOTHING")


def event(kind: str) -> Callable[[Call, dict], str]:
    """The handler for one kind of event: ``event``, ``page``, ``screen``, ``viewed_content``, ..."""
    def store(call: Call, body: dict) -> str:
        title = body.get("name")
        if not isinstance(title, str) or not title:
            what = "a page call needs its URL as the name" if kind == "page" else f"a {kind} call needs a name"
            raise Refusal("missing_field", what, "name")
        attributes = body.get("attributes")
        if attributes is not None and not isinstance(attributes, dict):
            raise Refusal("invalid_body", "attributes must be an object", "attributes")
        data = "{}" if not attributes else dumps(attributes, "attributes")
        seconds = timestamp(call.now, body.get("timestamp"), "timestamp")
        event_id = None if body.get("id") in (None, "") else text(body["id"], "id")
        who, value = person_ref(call, body.get("identifiers"), anonymous=True)
        repeat = f"{kind} '{title}' with id '{event_id}' is already stored; the repeat was not stored again"
        if who == "anonymous_id":
            person_pk = linked(call, value) if call.settings.anonymous_merge else None
            anonymous_id, owner = value, f"anonymous id '{value}'"
        else:
            check_suppressed(call, who, value)
            person = find(call, who, value)
            if person is None:
                # A repeat creates no one: look before creating (the insert below skips repeats itself).
                if event_id is not None and call.db.execute("SELECT 1 FROM events WHERE event_id = ?",
                                                            (event_id,)).fetchone():
                    return repeat
                if who == "cio_id":
                    raise Refusal("not_found", f"no person has cio_id '{value}'", "identifiers.cio_id")
                person = create_person(call, value if who == "id" else None, value if who == "email" else None)
            person_pk, anonymous_id, owner = person["pk"], None, name(person)
        # Customer.io deduplicates events by their id: a retried call is not stored twice.
        if not call.db.execute(_INSERT, (person_pk, anonymous_id, kind, title, data, seconds, event_id,
                                         call.now)).rowcount:
            return repeat
        if person_pk is not None and kind == "page":
            count_pages(call, person_pk, 1, seconds)
        return f"stored {kind} '{title}' for {owner}"
    return store

