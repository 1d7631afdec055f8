"""Typed ``customerio`` calls to Customer.io Track API requests: the one place bodies are built.

Every transport (HTTP, the local workspace server, files) sends what :func:`to_request`
returns, so they cannot drift apart. This module builds bodies, their bytes (:func:`encode`,
:func:`batch_bytes`) and hosts; it never sends anything, retries, or reads settings files.
The rules follow Segment's Customer.io Actions
destination step by step (segmentio/action-destinations, ``destinations/customerio``: each
action's ``mapPayload``, then ``utils.ts`` ``buildPayload`` and ``resolveIdentifiers``):

1. each action reshapes its payload (``person_id``, ``attributes``, ``cio_relationships``, ...);
2. :func:`build_entity` turns that into the v2 entity: Convert Timestamps over everything but the
   identifier fields, the event ``timestamp`` always converted, ``anonymous_id`` added to the
   attributes unless it is the identifier, ``identifiers`` resolved (not for ``merge``);
3. ``reportDeliveryEvent`` alone is a v1 metrics body.
"""
from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from engine.mapping.functions import text_of

from .timestamps import (
    convert_attribute_timestamps,
    convert_valid_timestamp,
)

US_HOST = "https://track.customer.io"
EU_HOST = "https://track-eu.customer.io"
EU_REGIONS = frozenset({"eu", "EU 🇪🇺"})

#: Where each kind of request goes, below the host.
PATHS = {"entity": "/api/v2/entity", "batch": "/api/v2/batch", "metrics": "/api/v1/metrics"}


@dataclass(frozen=True, slots=True)
class TrackRequest:
    """One Track API request: ``POST {host}{PATHS[endpoint]}`` with ``body`` as JSON.

    ``batchable`` calls may instead travel as items of a ``POST /api/v2/batch``
    (:func:`batch_body`); the item is the same ``body``.
    """

    endpoint: str  # "entity" | "metrics"
    body: dict
    batchable: bool


def host_for(settings: Mapping) -> str:
    """The Track API host for destination settings: ``base_url`` if set, else the region's host."""
    base_url = settings.get("base_url")
    if base_url:
        return str(base_url).rstrip("/")
    return EU_HOST if settings.get("region") in EU_REGIONS else US_HOST


def batch_body(bodies: Iterable[dict]) -> dict:
    """The body of ``POST /api/v2/batch`` for entity bodies from :func:`to_request`."""
    return {"batch": list(bodies)}


# -- the bytes sent ------------------------------------------------------------------------

def batch_bytes(items: list[bytes]) -> bytes:
    """The body of ``POST /api/v2/batch`` from items :func:`encode` wrote, without writing them again."""
    return b'{"batch":[' + b",".join(items) + b"]}"


#: ``len(batch_bytes(items))`` is ``BATCH_ENVELOPE + sum(map(len, items)) + BATCH_SEPARATOR * (len(items) - 1)``.
BATCH_ENVELOPE, BATCH_SEPARATOR = len(b'{"batch":[]}'), len(b",")


def to_request(call, *, now: Callable[[], float] = time.time) -> TrackRequest:
    """The Track API request for a ``customerio`` :class:`~engine.model.ActionCall`.

    ``now`` is only read by ``reportDeliveryEvent`` when the call has no usable timestamp.
    Raises ValueError for an action the catalog does not have.
    """
    shape = _ACTIONS.get(call.action)
    if shape is None:
        if call.action == "reportDeliveryEvent":
            return TrackRequest("metrics", _metrics(_as_text(call.payload), now), False)
        raise ValueError(f"the customerio catalog has no action '{call.action}'")
    payload = _as_text(call.payload)
    kind, action, shaped = shape(payload)
    return TrackRequest("entity", build_entity(kind, action, shaped), payload.get("enable_batching") is True)


# -- JavaScript truthiness and Segment's type coercion ---------------------------------------

def _truthy(value: Any) -> bool:
    """JavaScript truthiness: ``{}`` and ``[]`` are true, ``""``, ``0`` and null are false."""
    if isinstance(value, str):
        return value != ""
    if value is None or value is False:
        return False
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value != 0 and value == value  # NaN is the one number not equal to itself; no float() of a huge int
    return True


# Fields the catalog lets a number into because Segment turns it into text before the action
# runs (an object_type_id of 1 in group traits, a numeric userId).
_TEXT_FIELDS = frozenset({
    "id", "person_id", "user_id", "anonymous_id", "group_id", "object_id", "object_type_id",
    "event_id", "device_id", "app_version", "primary", "secondary", "delivery_id",
})


def _as_text(payload: dict) -> dict:
    """``payload`` with numbers in text fields as text; ``payload`` itself when it has none (it is never changed)."""
    for key in _TEXT_FIELDS.intersection(payload):
        if _is_number(payload[key]):
            return {key: text_of(value) if key in _TEXT_FIELDS and _is_number(value) else value
                    for key, value in payload.items()}
    return payload


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _without_undefined(values: dict) -> dict:
    """JSON.stringify drops keys whose value is undefined; here, None."""
    return {key: value for key, value in values.items() if value is not None}


# -- identifiers -----------------------------------------------------------------------------

# ajv-formats' "full" email pattern, case-insensitive (JavaScript's /i folds ASCII only here).
_EMAIL = re.compile(
    r"[a-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+[a-z0-9](?:[a-z0-9-]*[a-z0-9])?",
    re.IGNORECASE | re.ASCII,
)
_UNSET = object()


def is_email(value: Any) -> bool:
    return isinstance(value, str) and "@" in value and _EMAIL.fullmatch(value) is not None


def resolve_identifiers(*, anonymous_id=None, email=None, object_id=None, object_type_id=_UNSET,
                        person_id=None) -> dict | None:
    """The ``identifiers`` object: the first rule that applies wins, None when none does.

    An object (its type defaults to "1" when not given); a person id starting ``cio_``; a
    person id shaped like an email; the person id; the email; the anonymous id.
    """
    if object_type_id is _UNSET:
        object_type_id = "1"
    return _identifiers(anonymous_id, email, object_id, object_type_id, person_id)


def _identifiers(anonymous_id, email, object_id, object_type_id, person_id) -> dict | None:
    if object_id is not None and _truthy(object_id) and _truthy(object_type_id):
        return {"object_id": object_id, "object_type_id": object_type_id}
    if isinstance(person_id, str):
        if person_id.startswith("cio_"):
            return {"cio_id": person_id[4:]}
        if is_email(person_id):
            return {"email": person_id}
        if person_id:
            return {"id": person_id}
    elif _truthy(person_id):
        return {"id": person_id}
    if _truthy(email):
        return {"email": email}
    if _truthy(anonymous_id):
        return {"anonymous_id": anonymous_id}
    return None


# -- the entity body -------------------------------------------------------------------------

# Read by build_entity itself, never sent as they are.
_NOT_SENT = frozenset({"convert_timestamp", "person_id", "anonymous_id", "email", "object_id", "object_type_id",
                       "timestamp", "enable_batching", "batch_size"})
_BATCH_KEYS = ("enable_batching", "batch_size")


def build_entity(kind: str, action: str, shaped: dict) -> dict:
    """The v2 entity body for an action's reshaped payload (Segment's ``buildPayload``)."""
    # Conversion applies only when the mapping carries the setting at all, as in Segment.
    convert = "convert_timestamp" in shaped and shaped["convert_timestamp"] is not False
    rest = {key: value for key, value in shaped.items() if value is not None and key not in _NOT_SENT}
    body: dict[str, Any] = {"type": kind, "action": action}
    body.update(convert_attribute_timestamps(rest) if convert else rest)
    timestamp = shaped.get("timestamp")
    if _truthy(timestamp):
        body["timestamp"] = convert_valid_timestamp(timestamp)
    object_type_id = shaped.get("object_type_id")
    identifiers = None if action == "merge" else _identifiers(
        shaped.get("anonymous_id"), shaped.get("email"), shaped.get("object_id"),
        "1" if object_type_id is None else object_type_id, shaped.get("person_id"))
    anonymous_id = shaped.get("anonymous_id")
    if _truthy(anonymous_id):
        # Sent as an attribute too, unless it is the identifier itself.
        attributes = body.get("attributes") or {}
        if identifiers is not None and "anonymous_id" in identifiers:
            body["attributes"] = {key: value for key, value in attributes.items() if key != "anonymous_id"}
        elif convert and attributes:
            attributes["anonymous_id"] = anonymous_id   # a converted copy already: this body's own
            body["attributes"] = attributes
        else:
            body["attributes"] = {**attributes, "anonymous_id": anonymous_id}
    if identifiers is not None:
        body["identifiers"] = identifiers
    return body


def _carry(payload: dict, *keys: str) -> dict:
    """The payload keys an action passes through unchanged (Segment's ``...rest``)."""
    return {key: payload[key] for key in keys if key in payload}


_EVENT_KEYS = ("anonymous_id", "timestamp", "convert_timestamp", *_BATCH_KEYS)


def _create_update_person(p: dict):
    attributes = {key: value for key, value in (p.get("custom_attributes") or {}).items()
                  if key not in ("createdAt", "created_at", "object_type_id", "relationshipAttributes", "objectTypeId")}
    if _truthy(p.get("created_at")):
        attributes["created_at"] = p["created_at"]
    if _truthy(p.get("email")):
        attributes["email"] = p["email"]
    shaped = {**_carry(p, "email", *_EVENT_KEYS), "person_id": p.get("id"), "attributes": attributes}
    if _truthy(p.get("group_id")):
        relationship = {"identifiers": {"object_type_id": p.get("object_type_id", "1"), "object_id": p["group_id"]}}
        if _truthy(p.get("relationship_attributes")):
            relationship["relationship_attributes"] = p["relationship_attributes"]
        shaped["cio_relationships"] = [relationship]
    return "person", "identify", shaped


def _track_event(p: dict):
    shaped = {**_carry(p, "name", *_EVENT_KEYS), "person_id": p.get("id"), "id": p.get("event_id"),
              "attributes": p.get("data")}
    return "person", "event", shaped


def _track_page_view(p: dict):
    shaped = {**_carry(p, *_EVENT_KEYS), "person_id": p.get("id"), "name": p.get("url"), "attributes": p.get("data")}
    if _truthy(p.get("event_id")):
        shaped["id"] = p["event_id"]
    return "person", "page", shaped


def _track_screen_view(p: dict):
    shaped = {**_carry(p, "name", *_EVENT_KEYS), "person_id": p.get("id"), "attributes": p.get("data")}
    if _truthy(p.get("event_id")):
        shaped["id"] = p["event_id"]
    return "person", "screen", shaped


def _create_update_device(p: dict):
    attributes = dict(p.get("attributes") or {})
    if _truthy(p.get("app_version")):
        attributes["app_version"] = p["app_version"]
    device = _without_undefined({"token": p.get("device_id"), "platform": p.get("platform"),
                                 "last_used": p.get("last_used"), "attributes": attributes})
    return "person", "add_device", {**_carry(p, "person_id", "convert_timestamp", *_BATCH_KEYS), "device": device}


def _delete_device(p: dict):
    return "person", "delete_device", {**_carry(p, "person_id", *_BATCH_KEYS), "device": {"token": p.get("device_id")}}


def _create_update_object(p: dict):
    user_id, anonymous_id = p.get("user_id"), p.get("anonymous_id")
    attributes = p.get("custom_attributes")
    if attributes is not None:
        # The group call's traits are the object's attributes (the Customer.io docs), less the keys
        # that say where they go.
        attributes = {key: value for key, value in attributes.items()
                      if key not in ("object_type_id", "objectTypeId", "relationshipAttributes", "objectAttributes")}
    body = _without_undefined({
        **_carry(p, "created_at", *_BATCH_KEYS), "anonymous_id": anonymous_id, "person_id": user_id,
        "attributes": attributes, "object_type_id": p.get("object_type_id", "1"), "object_id": p.get("id"),
    })
    relationship_attributes = p.get("relationship_attributes")
    # The action converts here itself (the body and the relationship attributes), so build_entity
    # gets no convert_timestamp and does not convert again.
    if "convert_timestamp" in p and p["convert_timestamp"] is not False:
        body = convert_attribute_timestamps(body)
        if isinstance(relationship_attributes, dict):
            relationship_attributes = convert_attribute_timestamps(relationship_attributes)
    if "created_at" in body and not _truthy(body["created_at"]):
        del body["created_at"]
    if _truthy(user_id):
        action, relationship = "identify", {"identifiers": resolve_identifiers(person_id=user_id)}
    elif _truthy(anonymous_id):
        action, relationship = "identify_anonymous", {"identifiers": {"anonymous_id": anonymous_id}}
    else:
        action, relationship = "identify", None
    if relationship is not None:
        if _truthy(p.get("relationship_attributes")):
            relationship["relationship_attributes"] = relationship_attributes
        body["cio_relationships"] = [relationship]
    return "object", action, body


def _delete_object(p: dict):
    return "object", "delete", dict(p)


def _delete_relationship(p: dict):
    person = resolve_identifiers(**_carry(p, "anonymous_id", "person_id"))
    return "object", "delete_relationships", {**p, "cio_relationships": [_without_undefined({"identifiers": person})]}


def _person(action: str):
    def shape(p: dict):
        return "person", action, dict(p)
    return shape


def _merge_people(p: dict):
    shaped = {**_carry(p, *_BATCH_KEYS),
              "primary": resolve_identifiers(person_id=p.get("primary")),
              "secondary": resolve_identifiers(person_id=p.get("secondary"))}
    return "person", "merge", shaped


def _report_content_event(p: dict):
    data = p.get("data")
    if isinstance(data, dict) and _truthy(data.get("actionType")):
        data = {key: value for key, value in data.items() if key != "actionType"}
    shaped = {**_carry(p, *_EVENT_KEYS), "name": p.get("actionType"), "attributes": data}
    return "person", p.get("actionType"), shaped


_ACTIONS: dict[str, Callable] = {
    "createUpdatePerson": _create_update_person,
    "trackEvent": _track_event,
    "trackPageView": _track_page_view,
    "trackScreenView": _track_screen_view,
    "createUpdateDevice": _create_update_device,
    "deleteDevice": _delete_device,
    "createUpdateObject": _create_update_object,
    "deleteObject": _delete_object,
    "deleteRelationship": _delete_relationship,
    "deletePerson": _person("delete"),
    "mergePeople": _merge_people,
    "suppressPerson": _person("suppress"),
    "unsuppressPerson": _person("unsuppress"),
    # reportDeliveryEvent is not an entity: see _metrics
    "reportContentEvent": _report_content_event,
}


# -- reportDeliveryEvent: POST /api/v1/metrics -------------------------------------------------

_JS_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def _js_number(value: Any) -> float:
    """JavaScript's ``Number(value)`` for what a timestamp field can hold; NaN when it is not a number."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, str):
        text = value.strip()
        if text == "":
            return 0
        if _JS_NUMBER.fullmatch(text):
            number = float(text)
            return int(number) if number.is_integer() and abs(number) < 2 ** 53 else number
    return math.nan


def _metrics(p: dict, now: Callable[[], float]) -> dict:
    timestamp = _js_number(convert_valid_timestamp(p.get("timestamp")))
    if isinstance(timestamp, float) and (math.isnan(timestamp) or math.isinf(timestamp)):
        timestamp = math.floor(now())
    body = {"delivery_id": p.get("delivery_id"), "metric": p.get("metric"), "timestamp": timestamp}
    for key in ("recipient", "reason", "href"):
        if _truthy(p.get(key)):
            body[key] = p[key]
    metadata = {key: p[key] for key in ("action_name", "action_value") if _truthy(p.get(key))}
    if metadata:
        body["metadata"] = metadata
    return body
