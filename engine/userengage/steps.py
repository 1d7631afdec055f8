"""The REST requests one :class:`~engine.userengage.requests.UserRequest` takes, in order, written once.

Both transports walk these steps: the HTTP adapter over User.com's REST API (or the stand-in's
server), the embedded transport straight against the stand-in, so they make the same requests
with the same bodies. An :class:`Api` answers each request with the JSON User.com answers, or
raises to stop the call; what a transport remembers between calls (a user's id, a company's
id) lives in a :class:`Lookups`.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

from .requests import UserRequest, new_company


class Api(Protocol):
    def update_or_create_user(self, body: dict) -> dict: ...          # POST users/update_or_create/

    def user(self, user_id: int) -> dict: ...                         # GET users/<id>/

    def create_event(self, body: dict) -> dict: ...                   # POST events/

    def create_site_view(self, body: dict) -> dict: ...               # POST site-views/

    def company_by_custom_id(self, custom_id: str) -> dict | None: ...  # GET companies-by-id/<custom_id>/, None on 404

    def create_company(self, body: dict) -> dict: ...                 # POST companies/

    def update_company(self, company_id: int, body: dict) -> dict: ...  # PUT companies/<id>/

    def add_member(self, company_id: int, body: dict) -> dict: ...   # POST companies/<id>/add_member/


#: Ids a :class:`Lookups` keeps of each kind; past it the oldest are forgotten (and looked up again when
#: needed), so that a server running for months with millions of users holds a bounded memory.
REMEMBERED = 100_000


class KnownUser(NamedTuple):
    """What a run learnt of a user: User.com's id and user_key, and the anonymous id its profile holds."""

    id: int
    user_key: str | None
    anonymous_id: str | None


@dataclass
class Lookups:
    """Ids learnt during one run, so a user or company is looked up once (not used by the stand-in itself)."""

    # OrderedDict: dropping the oldest of a plain dict rescans the freed slots at its front, slower each time.
    # users: custom_id -> KnownUser; companies: custom_id -> id.
    users: OrderedDict[str, KnownUser] = field(default_factory=OrderedDict)
    companies: OrderedDict[str, int] = field(default_factory=OrderedDict)

    def remember_user(self, custom_id: str, known: KnownUser) -> None:
        _remember(self.users, custom_id, known)

    def remember_company(self, custom_id: str, company_id: int) -> None:
        _remember(self.companies, custom_id, company_id)


def _remember(ids: OrderedDict, key: Any, value: Any) -> None:
    ids[key] = value
    ids.move_to_end(key)  # a key learnt again is the newest
    if len(ids) > REMEMBERED:
        ids.popitem(last=False)


def perform(request: UserRequest, api: Api, lookups: Lookups | None = None) -> None:
    """Make ``request``'s requests through ``api``.

    The user is upserted first, so no call fails for a user User.com does not know yet; a
    track, page or group call whose user was upserted before in this run skips that, unless it
    brings another anonymous id than the user's profile holds (the stand-in, which upserts on
    every call, keeps the latest one too).
    """
    custom_id, anonymous_id = request.custom_id, request.user.get("anonymous_id")
    known = lookups.users.get(custom_id) if lookups is not None else None
    if request.kind == "identify" or known is None or anonymous_id not in (None, known.anonymous_id):
        answer = api.update_or_create_user(request.user)
        # An upsert without an anonymous id leaves the one the profile holds.
        kept = anonymous_id if anonymous_id is not None else known.anonymous_id if known is not None else None
        known = KnownUser(int(answer["id"]), answer.get("user_key"), kept)
        if lookups is not None:
            lookups.remember_user(custom_id, known)
    user_id, user_key = known.id, known.user_key
    body = request.body or {}
    if request.kind == "event":
        api.create_event({"user_id": user_id, **body})
    elif request.kind == "page":
        if not user_key:
            user_key = str(api.user(user_id)["user_key"])
            if lookups is not None:
                lookups.remember_user(custom_id, known._replace(user_key=user_key))
        api.create_site_view({"client_user": user_key, **body})
    elif request.kind == "company":
        custom_id = str(body["custom_id"])
        company_id = lookups.companies.get(custom_id) if lookups is not None else None
        if company_id is None:
            found = api.company_by_custom_id(custom_id)
            company_id = int(api.create_company(new_company(body))["id"] if found is None else found["id"])
            if found is not None:
                api.update_company(company_id, body)
        else:
            api.update_company(company_id, body)
        if lookups is not None:
            lookups.remember_company(custom_id, company_id)
        api.add_member(company_id, {"user_id": user_id, "user_custom_id": request.custom_id})
