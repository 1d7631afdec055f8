"""The ``userengage`` catalog over HTTP: User.com's public REST API, one call at a time.

Bodies come from :mod:`engine.userengage.requests` and the order of requests from
:func:`engine.userengage.steps.perform`, shared with the embedded transport; this adapter only
sends them (``Authorization: Token <api_key>``, ``Accept: */*; version=2``) and remembers, for
the run, the ids User.com answered (a user's id and user_key, a company's id), so each is looked
up once. Each request is retried by the pipeline's policy; the first one that fails settles
the call: refused for a final 4xx, failed (replayable) otherwise. A call with a body or a path
segment that cannot be written is refused before its first request, and an answer that cannot be
read settles only its own call: nothing one call holds raises out of ``deliver``.

A 403 means the key was revoked or the sending domain is not trusted: the call fails, never
retried, with a message that says where to look, and ``replay`` sends it once that is fixed (a
401 or 403 is failed, not refused, in every HTTP transport: it says nothing of the call).
"""
from __future__ import annotations

import json
from typing import Any, Sequence

from ..delivery.breaker import circuit_breaker
from ..delivery.encoding import encode
from ..delivery.http import Response, Sender
from ..delivery.outcome import DELIVERED, FAILED, REFUSED, RETRIED, Outcome, from_http
from ..delivery.ratelimit import rate_limit
from ..delivery.retry import Retrier, RetryPolicy
from ..mapping.functions import url_segment
from ..model import ActionCall
from ..userengage.requests import ACCEPT, PATHS, UserRequest, base_url, to_request
from ..userengage.steps import Lookups, perform
from .contract import UNBUILDABLE, AdapterContext, SetupError, unbuildable

FORBIDDEN = ("User.com answered 403 Forbidden: the API key was revoked, or the domain the requests come from "
             "is not trusted. Check that the key is not revoked (App settings > Advanced > Segment API keys, or "
             "wherever the app's REST API key was made), then the trusted domains (App settings > Advanced > Domains)")


class _Stop(Exception):
    """A request was not accepted: ``outcome`` settles the call."""

    def __init__(self, outcome: Outcome):
        self.outcome = outcome


class UserengageHttpAdapter:
    sends_each_call = True   # one request a call: serve keeps a person's failed call from being overtaken

    def __init__(self, context: AdapterContext, *, retrier: Retrier | None = None, timeout: float = 10.0):
        settings = context.settings
        api_key = settings.get("api_key")
        if not api_key:
            raise SetupError("userengage over http needs the 'api_key' setting")
        if not settings.get("base_url") and not settings.get("app"):
            raise SetupError("userengage over http needs the 'app' setting (your app's subdomain) or 'base_url'")
        self.headers = {"Content-Type": "application/json", "Accept": ACCEPT, "Authorization": f"Token {api_key}"}
        self.base = base_url(settings)
        self.sender = Sender(float(settings.get("timeout", timeout)))
        self.retrier = retrier or Retrier(RetryPolicy(max_attempts=int(settings.get("max_attempts", 5))))
        self.rate = rate_limit(settings, context.options)
        self.breaker = circuit_breaker(context.destination, settings)  # counts requests: the first failed ends a call
        self.lookups = Lookups()

    def deliver(self, calls: Sequence[ActionCall]) -> list[Outcome]:
        outcomes = []
        for call in calls:
            try:
                request = sendable(to_request(call))
            except UNBUILDABLE as error:
                outcomes.append(Outcome(REFUSED, 0, message=unbuildable(error), call=call))
                continue
            api = _RestApi(self, call)
            try:
                perform(request, api, self.lookups)
            except _Stop as stop:
                outcomes.append(stop.outcome)
                continue
            outcomes.append(Outcome(RETRIED if api.attempts > api.requests else DELIVERED, api.attempts,
                                    api.last.status if api.last else None, waited=api.waited, call=call))
        return outcomes

    def poll(self) -> list[Outcome]:
        return []

    def close(self) -> list[Outcome]:
        self.sender.close()
        return []


def sendable(request: UserRequest) -> UserRequest:
    """``request``, once every body it sends and the company id it puts in a path can be written.

    Raises what :data:`~engine.adapters.contract.UNBUILDABLE` names otherwise (a lone surrogate, say), before
    the call's first request: the stand-in refuses such a call whole, and User.com must not keep the
    user its upsert made. The ids a look-up adds later (numbers) cannot make a body unwritable.
    """
    encode(request.user)
    if request.body is not None:
        encode(request.body)
        if request.kind == "company":
            url_segment(str(request.body["custom_id"]))
    return request


class _RestApi:
    """:class:`~engine.userengage.steps.Api` over HTTP for one call: counts its attempts, stops at a failure."""

    def __init__(self, adapter: UserengageHttpAdapter, call: ActionCall):
        self.adapter, self.call = adapter, call
        self.attempts = self.requests = 0
        self.waited = 0.0
        self.last: Outcome | None = None

    def update_or_create_user(self, body: dict) -> dict:
        return self._with_id(self._send("POST", PATHS["user"], body), "users/update_or_create/")

    def user(self, user_id: int) -> dict:
        answer = self._send("GET", PATHS["user_by_id"].format(id=user_id))
        if isinstance(answer, dict) and isinstance(answer.get("user_key"), str) and answer["user_key"]:
            return answer
        # A page view needs the key: without it, it would be sent for a user named "None".
        raise self._unusable("User.com answered users/<id>/ without a user_key")

    def create_event(self, body: dict) -> dict:
        return self._send("POST", PATHS["event"], body)

    def create_site_view(self, body: dict) -> dict:
        return self._send("POST", PATHS["page"], body)

    def company_by_custom_id(self, custom_id: str) -> dict | None:
        found = self._send("GET", PATHS["company_by_custom_id"].format(custom_id=url_segment(custom_id)),
                           missing_ok=True)
        return None if found is None else self._with_id(found, "companies-by-id/")

    def create_company(self, body: dict) -> dict:
        try:
            return self._with_id(self._send("POST", PATHS["company_create"], body), "companies/")
        except _Stop as stop:
            # A create answered 5xx (or not at all) may have been made: its retry is then refused as a company
            # that exists. Looked up again, it is found, and the user still joins it.
            last = self.last
            if stop.outcome.state != REFUSED or last is None or last.attempts < 2:
                raise
            found = self.company_by_custom_id(str(body["custom_id"]))
            if found is None:
                raise
            self.update_company(found["id"], body)  # made by the first try or by someone else: this call's fields
            return found

    def update_company(self, company_id: int, body: dict) -> dict:
        return self._send("PUT", PATHS["company_update"].format(id=company_id), body)

    def add_member(self, company_id: int, body: dict) -> dict:
        return self._send("POST", PATHS["add_member"].format(id=company_id), body)

    def _send(self, method: str, path: str, body: dict | None = None, *, missing_ok: bool = False) -> Any:
        adapter = self.adapter
        url = adapter.base + path
        try:
            data = encode(body) if body is not None else None
        except UNBUILDABLE as error:  # sendable() found none before the call's first request: a safeguard
            raise _Stop(Outcome(REFUSED, self.attempts, message=unbuildable(error), call=self.call)) from None
        rate = adapter.rate

        def attempt() -> Response:
            if rate is not None:
                rate.wait()
            return adapter.sender.send(method, url, data, adapter.headers)
        breaker = adapter.breaker  # the wait limit is the call's, whatever the number of its requests
        outcome = (adapter.retrier.run(attempt, self.call, waited=self.waited) if breaker is None
                   else breaker.run(adapter.retrier, attempt, self.call, waited=self.waited))
        self.requests += 1
        self.attempts += outcome.attempts
        self.waited = outcome.waited
        self.last = outcome
        if missing_ok and outcome.status == 404:
            return None
        if not outcome.ok:
            settled = from_http(outcome)  # a 403 stays failed, as every 401 and 403 does: replay once the key is fixed
            message = FORBIDDEN if outcome.status == 403 else settled.message
            raise _Stop(Outcome(settled.state, self.attempts, settled.status, settled.body,
                                f"{message} ({method} {path})", self.waited, self.call, settled.response))
        try:
            answer = json.loads(outcome.response.body) if outcome.response is not None and outcome.response.body else {}
        except (ValueError, RecursionError):  # nested too deep to read is as unreadable as not JSON
            answer = {}
        if not isinstance(answer, dict):
            answer = {}
        return answer

    def _with_id(self, answer: dict, what: str) -> dict:
        """``answer`` if it names an id; else the call fails (replayable): the next request needs that id."""
        if isinstance(answer, dict) and isinstance(answer.get("id"), int):
            return answer
        raise self._unusable(f"User.com answered {what} without an id")

    def _unusable(self, message: str) -> _Stop:
        """The call fails (replayable) on an answer it cannot go on with, keeping that answer's status and body."""
        last = self.last
        return _Stop(Outcome(FAILED, self.attempts, last.status if last else None, last.body if last else None,
                             message, self.waited, self.call))
