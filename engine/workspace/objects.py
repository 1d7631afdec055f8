"""Objects (group calls) and their relationships to people, from either side.

An object is ``(object_type_id, object_id)``; a relationship ties a person to an object with
its own attributes. A group call from an anonymous id no identify has named yet waits, whole,
in ``waiting`` until that identify arrives (:func:`engine.workspace.people.link_anonymous`).
"""
from __future__ import annotations

from typing import Any

from .call import Call
from .identifiers import linked, name, person_for, person_ref
from .values import Refusal, dumps, loaded, merged, object_of, text


def object_ref(identifiers: Any, where: str) -> tuple[str, str]:
    """``(object_type_id, object_id)``; the type defaults to 1, as in Customer.io."""
    if not isinstance(identifiers, dict):
        raise Refusal("invalid_identifiers", f"{where} must be an object with object_id and object_type_id", where)
    if identifiers.get("object_id") in (None, ""):
        raise Refusal("invalid_identifiers", f"{where}.object_id is missing", f"{where}.object_id")
    object_id = text(identifiers["object_id"], f"{where}.object_id", "invalid_identifiers")
    type_id = identifiers.get("object_type_id")
    type_id = "1" if type_id in (None, "") else text(type_id, f"{where}.object_type_id", "invalid_identifiers")
    # ASCII digits only: str.isdigit takes "²" (which int() refuses) and int() reads "١" as 1.
    number = type_id.lstrip("0")
    if not (type_id.isascii() and type_id.isdigit()) or not number:
        raise Refusal("invalid_identifiers", f"{where}.object_type_id must be a whole number from 1 in the digits "
                                             f"0-9, not '{type_id}'", f"{where}.object_type_id")
    return number, object_id  # "007" is type 7, as 7 and "7" are


def _relationships(call: Call, body: dict, *, to_people: bool) -> list[tuple[tuple[str, str], dict]]:
    """``cio_relationships`` as ``(identifier, relationship attributes)`` pairs, validated before anything changes."""
    items = body.get("cio_relationships")
    if items is None:
        return []
    if not isinstance(items, list):
        raise Refusal("invalid_body", "cio_relationships must be a list", "cio_relationships")
    pairs = []
    for index, item in enumerate(items):
        where = f"cio_relationships[{index}]"
        if not isinstance(item, dict):
            raise Refusal("invalid_body", f"{where} must be an object", where)
        attributes = object_of(item, "relationship_attributes", f"{where}.relationship_attributes")
        identifiers = item.get("identifiers")
        ref = (person_ref(call, identifiers, f"{where}.identifiers", anonymous=True) if to_people
               else object_ref(identifiers, f"{where}.identifiers"))
        pairs.append((ref, attributes))
    return pairs


def _object_row(call: Call, ref: tuple[str, str]) -> Any:
    return call.db.execute("SELECT pk, attributes FROM objects WHERE object_type_id = ? AND object_id = ?",
                           ref).fetchone()


def _upsert_object(call: Call, ref: tuple[str, str], attributes: dict) -> tuple[int, bool]:
    row = _object_row(call, ref)
    stored = dumps(merged(loaded(row["attributes"]) if row else {}, attributes, empty_removes=True),
                   "attributes")
    if row is not None:
        call.db.execute("UPDATE objects SET attributes = ?, updated_at = ? WHERE pk = ?", (stored, call.now, row["pk"]))
        return row["pk"], False
    pk = call.db.execute("INSERT INTO objects (object_type_id, object_id, attributes, created_at, updated_at) "
                         "VALUES (?, ?, ?, ?, ?)", (*ref, stored, call.now, call.now)).lastrowid
    assert pk is not None
    return pk, True


def _relate(call: Call, person_pk: int, object_pk: int, attributes: dict) -> None:
    row = call.db.execute("SELECT attributes FROM relationships WHERE person_pk = ? AND object_pk = ?",
                          (person_pk, object_pk)).fetchone()
    stored = merged(loaded(row["attributes"]) if row else {}, attributes, empty_removes=True)
    call.db.execute("INSERT INTO relationships (person_pk, object_pk, attributes) VALUES (?, ?, ?) "
                    "ON CONFLICT (person_pk, object_pk) DO UPDATE SET attributes = excluded.attributes",
                    (person_pk, object_pk, dumps(stored, "relationship_attributes")))


def relate_to_objects(call: Call, person_pk: int, body: dict) -> int:
    """Relate a person to the objects in ``body``'s ``cio_relationships``; how many."""
    pairs = _relationships(call, body, to_people=False)
    for ref, attributes in pairs:
        _relate(call, person_pk, _upsert_object(call, ref, {})[0], attributes)
    return len(pairs)


def identify_object(call: Call, body: dict) -> str:
    attributes = object_of(body, "attributes")
    if "relationship" in attributes:
        raise Refusal("reserved_attribute", "'relationship' is reserved (it names relationship attributes in "
                                            "Liquid) and cannot be an object attribute", "attributes.relationship")
    if body.get("created_at") is not None:
        attributes.setdefault("created_at", body["created_at"])
    return _relate_people(call, body, attributes)


def _relate_people(call: Call, body: dict, attributes: dict) -> str:
    """Create or update the object and relate the people in ``cio_relationships``.

    A relationship to an anonymous id no identify has named yet makes the whole call wait,
    with nothing created, until that identify arrives (the seed's group-call rule).
    """
    ref = object_ref(body.get("identifiers"), "identifiers")
    pairs = _relationships(call, body, to_people=True)
    people = []
    for (kind, value), relationship in pairs:
        if kind == "anonymous_id":
            person_pk = linked(call, value)
            if person_pk is None:
                call.db.execute("INSERT INTO waiting (anonymous_id, body, received_at) VALUES (?, ?, ?)",
                                (value, dumps(body, "body"), call.now))
                return f"waiting: nothing is created until an identify names anonymous id '{value}'"
            people.append((person_pk, relationship))
    for (kind, value), relationship in pairs:
        if kind != "anonymous_id":
            person = person_for(call, (kind, value), create=True)
            assert person is not None
            people.append((person["pk"], relationship))
    object_pk, created = _upsert_object(call, ref, attributes)
    for person_pk, relationship in people:
        _relate(call, person_pk, object_pk, relationship)
    return (f"{'created' if created else 'updated'} object {ref[0]}/{ref[1]}"
            + (f"; related {len(people)} person(s)" if people else ""))


def add_object_relationships(call: Call, body: dict) -> str:
    return _relate_people(call, body, {})


def delete_object_relationships(call: Call, body: dict) -> str:
    ref = object_ref(body.get("identifiers"), "identifiers")
    pairs = _relationships(call, body, to_people=True)
    row = _object_row(call, ref)
    removed = 0
    for (kind, value), _ in pairs:
        if kind == "anonymous_id":
            person_pk = linked(call, value)
        else:
            person = person_for(call, (kind, value), create=False)
            person_pk = None if person is None else person["pk"]
        if row is not None and person_pk is not None:
            removed += call.db.execute("DELETE FROM relationships WHERE person_pk = ? AND object_pk = ?",
                                       (person_pk, row["pk"])).rowcount
    return f"removed {removed} relationship(s) with object {ref[0]}/{ref[1]}"


def add_person_relationships(call: Call, body: dict) -> str:
    person = person_for(call, person_ref(call, body.get("identifiers")), create=True)
    assert person is not None
    return f"related {name(person)} to {relate_to_objects(call, person['pk'], body)} object(s)"


def delete_person_relationships(call: Call, body: dict) -> str:
    person = person_for(call, person_ref(call, body.get("identifiers")), create=False)
    removed = 0
    for ref, _ in _relationships(call, body, to_people=False):
        row = _object_row(call, ref)
        if person is not None and row is not None:
            removed += call.db.execute("DELETE FROM relationships WHERE person_pk = ? AND object_pk = ?",
                                       (person["pk"], row["pk"])).rowcount
    return f"removed {removed} relationship(s)"


def delete_object(call: Call, body: dict) -> str:
    ref = object_ref(body.get("identifiers"), "identifiers")
    deleted = call.db.execute("DELETE FROM objects WHERE object_type_id = ? AND object_id = ?", ref).rowcount
    return f"deleted object {ref[0]}/{ref[1]}" if deleted else f"no object {ref[0]}/{ref[1]}; nothing to delete"
