"""Typed ``userengage`` calls to User.com REST requests: the one place their bodies are built.

Every transport (HTTP, the embedded stand-in, files) uses what :func:`to_request` returns, so they
cannot drift apart. A call becomes a :class:`UserRequest`: the body of ``POST
users/update_or_create/`` that selects (and, if need be, creates) the user, and the body of the
one request the action is about (``events/``, ``site-views/``, ``companies/``), without the ids
only a look-up can give (the user's id and user_key, the company's id), which the transport
fills in. Nothing here sends, retries, or reads settings.

Segment's documentation of the destination (docs/userengage.md) says what goes where: the user
is selected by userId, falling back to anonymousId; identify maps the named traits and the
context to profile fields and every other trait to a custom attribute; group maps the semantic
traits to company fields.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

from engine.integers import any_size
from engine.mapping.functions import parse_timestamp, text_of

PUBLIC_API = "/api/public/"
#: Each request's path below ``PUBLIC_API`` (trailing slash required by User.com).
PATHS = {
    "user": "users/update_or_create/",
    "user_by_id": "users/{id}/",
    "event": "events/",
    "page": "site-views/",
    "company_by_custom_id": "companies-by-id/{custom_id}/",
    "company_create": "companies/",
    "company_update": "companies/{id}/",
    "add_member": "companies/{id}/add_member/",
}
#: The version header User.com's documentation sends with every request.
ACCEPT = "*/*; version=2"

#: Profile fields of ``users/update_or_create/`` that are not custom attributes.
USER_FIELDS = ("custom_id", "anonymous_id", "email", "first_name", "last_name", "phone_number", "gender", "country",
               "region", "city", "timezone", "user_agent", "os", "device_name", "device_type", "language",
               "resolution", "ip_address", "browser_family", "browser_version", "current_url")
#: Traits identify maps to profile fields, so they are not custom attributes too.
MAPPED_TRAITS = frozenset({"email", "first_name", "last_name", "phone", "gender", "address"})
#: Company fields of ``companies/``; every other key is a custom company attribute.
COMPANY_FIELDS = ("custom_id", "name", "description", "email", "address", "city", "region", "country",
                  "postal_code", "phone_numbers", "size")
SEMANTIC_GROUP_TRAITS = frozenset({"address", "description", "email", "employees", "name", "phone"})
#: User.com's gender codes: 1 unknown, 2 male, 3 female.
GENDERS = {"male": 2, "m": 2, "man": 2, "female": 3, "f": 3, "woman": 3}
_IDENTITY = frozenset({"custom_id", "anonymous_id"})
NAME_LIMIT = 40  # characters User.com keeps of first_name and last_name


@dataclass(frozen=True, slots=True)
class UserRequest:
    """One call's requests: ``user`` upserts the user, then ``kind`` says what ``body`` is.

    ``kind`` is ``identify`` (``body`` None: the upsert is the whole call), ``event`` (``POST
    events/`` once ``user_id`` is known), ``page`` (``POST site-views/`` once ``client_user``,
    the user's user_key, is known) or ``company`` (``body`` creates or updates the company whose
    ``custom_id`` it holds; the user then joins it with ``add_member``).
    """

    kind: str
    user: dict
    body: dict | None = None

    @property
    def custom_id(self) -> str:
        return str(self.user["custom_id"])


def base_url(settings: Mapping) -> str:
    """Where the REST API lives: ``base_url`` if set, else ``https://<app>.user.com``, with ``/api/public/``."""
    given = settings.get("base_url")
    host = str(given).rstrip("/") if given else f"https://{settings.get('app')}.user.com"
    return host + PUBLIC_API


def to_request(call) -> UserRequest:
    """The requests for a ``userengage`` :class:`~engine.model.ActionCall`.

    Raises ValueError for an action the catalog does not have, or a call that selects no user.
    """
    shape = _ACTIONS.get(call.action)
    if shape is None:
        raise ValueError(f"the userengage catalog has no action '{call.action}'")
    payload = call.payload
    return shape(payload, _selection(payload))


def _selection(payload: Mapping) -> dict:
    """The upsert body's identity: userId as the custom_id, else the anonymous id; the anonymous id kept too."""
    user_id, anonymous_id = _text(payload.get("user_id")), _text(payload.get("anonymous_id"))
    custom_id = user_id or anonymous_id
    if not custom_id:
        raise ValueError("the call has neither a userId nor an anonymousId to select the user by")
    return {"custom_id": custom_id, **({"anonymous_id": anonymous_id} if anonymous_id else {})}


def _text(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return value if isinstance(value, str) else text_of(value)


# -- identify --------------------------------------------------------------------------------------

def _identify(p: Mapping, user: dict) -> UserRequest:
    fields: dict[str, Any] = {
        "email": p.get("email"),
        "first_name": _cut(p.get("first_name")),
        "last_name": _cut(p.get("last_name")),
        "phone_number": _text(p.get("phone")),
        "gender": gender(p.get("gender")),
        **_place(p.get("address")),
        "user_agent": p.get("user_agent"),
        "os": _os(p.get("os")),
        "device_name": p.get("device_name"),
        "device_type": p.get("device_type"),
        "language": p.get("language"),
        "resolution": _resolution(p.get("resolution")),
        "ip_address": p.get("ip_address"),
        "timezone": p.get("timezone"),
        "current_url": p.get("current_url"),
    }
    if isinstance(p.get("user_agent"), str):
        fields.update(browser(p["user_agent"]))
    traits = p.get("traits") or {}
    # A trait named like a profile field (city, timezone) sets that field unless a mapped value does.
    custom = {name: value for name, value in traits.items() if name not in MAPPED_TRAITS and name not in _IDENTITY}
    return UserRequest("identify", {**custom, **{k: v for k, v in fields.items() if v is not None}, **user})


def _cut(value: Any) -> Any:
    return value[:NAME_LIMIT] if isinstance(value, str) else value


def gender(value: Any) -> int | None:
    """User.com's code for a gender trait: 2 male, 3 female, 1 anything else given; None when not given."""
    if value is None or value == "":
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value in (1, 2, 3):
        return value
    return GENDERS.get(str(value).strip().lower(), 1)


def _place(address: Any) -> dict:
    """country, region and city from Segment's address trait, where it has them."""
    if not isinstance(address, Mapping):
        return {}
    found = {"country": address.get("country"), "region": address.get("state") or address.get("region"),
             "city": address.get("city")}
    return {key: value for key, value in found.items() if isinstance(value, str) and value}


def _os(value: Any) -> str | None:
    if isinstance(value, Mapping):
        words = [str(value[key]) for key in ("name", "version") if value.get(key) not in (None, "")]
        return " ".join(words) or None
    return value if isinstance(value, str) and value else None


def _resolution(value: Any) -> str | None:
    if isinstance(value, Mapping):
        width, height = value.get("width"), value.get("height")
        if _is_number(width) and _is_number(height):
            return f"{text_of(width)}x{text_of(height)}"
        return None
    return value if isinstance(value, str) and value else None


@lru_cache(maxsize=1024)
def browser(user_agent: str) -> dict:
    """``browser_family`` and ``browser_version`` of a user agent, by ua-parser (uap-core's rules).

    A user agent it does not recognise gives neither, rather than "Other".
    """
    from ua_parser import parse_user_agent  # imported on first use: lint and dry runs never need it

    parsed = parse_user_agent(user_agent)
    if parsed is None or parsed.family == "Other":
        return {}
    version = ".".join(part for part in (parsed.major, parsed.minor, parsed.patch) if part)
    return {"browser_family": parsed.family, **({"browser_version": version} if version else {})}


# -- track and page --------------------------------------------------------------------------------

def _event(p: Mapping, user: dict) -> UserRequest:
    body = {"name": p["name"], "timestamp": unix_seconds(p.get("timestamp")), "data": dict(p.get("data") or {})}
    return UserRequest("event", {"custom_id": user["custom_id"], **_only_anonymous(user)},
                       {k: v for k, v in body.items() if v is not None})


def _page(p: Mapping, user: dict) -> UserRequest:
    url = p.get("url") if isinstance(p.get("url"), str) else ""
    parts = urlsplit(url)
    body = {"page_url": url or None, "page_domain": parts.netloc or None,
            "page_path": p.get("path") or parts.path or ("/" if parts.netloc else None),
            "page_title": p.get("title"), "timestamp": unix_seconds(p.get("timestamp"))}
    return UserRequest("page", {"custom_id": user["custom_id"], **_only_anonymous(user)},
                       {k: v for k, v in body.items() if v is not None})


def _only_anonymous(user: dict) -> dict:
    return {"anonymous_id": user["anonymous_id"]} if "anonymous_id" in user else {}


def unix_seconds(value: Any) -> int | float | None:
    """A Segment timestamp (ISO-8601, or a number of seconds) as Unix seconds; None when it is neither."""
    if _is_number(value) and (isinstance(value, int) or math.isfinite(value)):  # no float() of a huge int
        if abs(value) > LATEST_SECONDS:
            raise ValueError(f"the timestamp {_short(value)} is further from 1970 than any date can be")
        return value
    if isinstance(value, str) and value:
        try:
            when = parse_timestamp(value)
        except ValueError:
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = when.timestamp()
        return int(seconds) if seconds.is_integer() else round(seconds, 3)
    return None


#: The furthest a date can be from 1970, in seconds: JavaScript's 100,000,000 days either way.
LATEST_SECONDS = 8_640_000_000_000


def _short(number: int | float) -> str:
    """A number for a message; an integer of more than 20 digits by its length alone."""
    if not isinstance(number, int) or abs(number) < 10 ** 20:
        return str(number)
    with any_size():  # an event may hold one of up to 100,000 digits
        return f"of {len(str(abs(number)))} digits"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# -- group -----------------------------------------------------------------------------------------

def _company(p: Mapping, user: dict) -> UserRequest:
    address = p.get("address")
    custom_id = _text(p["company_id"])
    if custom_id is None:  # the schema requires the field; an empty one names no company either
        raise ValueError("the company id is empty")
    fields: dict[str, Any] = {
        "custom_id": custom_id,
        "name": _text(p.get("name")),
        "description": p.get("description"),
        "email": p.get("email"),
        "size": p.get("employees"),
        "phone_numbers": _text(p.get("phone")),
    }
    if isinstance(address, Mapping):
        fields.update(_place(address))
        fields["address"] = address.get("street") or None
        fields["postal_code"] = _text(address.get("postalCode") or address.get("postal_code"))
    elif isinstance(address, str):
        fields["address"] = address or None
    traits = p.get("traits") or {}
    custom = {name: value for name, value in traits.items()
              if name not in SEMANTIC_GROUP_TRAITS and name != "custom_id"}
    return UserRequest("company", user, {**custom, **{k: v for k, v in fields.items() if v is not None}})


_ACTIONS = {
    "identifyUser": _identify,
    "trackEvent": _event,
    "trackPageView": _page,
    "createUpdateCompany": _company,
}


def new_company(body: dict) -> dict:
    """The body of ``POST companies/``: User.com requires a name; a company created without one is named by its id."""
    return body if body.get("name") else {**body, "name": body["custom_id"]}


def to_json(request: UserRequest) -> dict:
    """The request as one JSON object: what the stand-in keeps of a request it refused."""
    return {"kind": request.kind, "user": request.user, **({"body": request.body} if request.body is not None else {})}


def date_text(seconds: float) -> str:
    """Unix seconds as the ISO-8601 UTC text the stand-in stores dates as."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
