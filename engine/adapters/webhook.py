"""The ``webhook`` catalog over HTTP: one JSON request per ``send`` call, retried per the policy.

Requests go through :mod:`engine.delivery` (kept-alive connections, the retry policy, OAuth2
client credentials when the destination's settings have ``oauth``). Retries wait here, in the
destination's lane (:mod:`engine.pipeline`), so a slow webhook holds back only its own calls.
Every call ends as one outcome: delivered, retried, refused (a final 4xx) or failed.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any, Mapping, Sequence

from ..delivery.breaker import circuit_breaker
from ..delivery.encoding import UnencodableBody, encode
from ..delivery.http import Response, Sender
from ..delivery.oauth import ClientCredentials, TokenError
from ..delivery.outcome import DELIVERED, REFUSED, RETRIED, Outcome, from_http
from ..delivery.ratelimit import rate_limit
from ..delivery.retry import Retrier, RetryPolicy
from ..model import ActionCall
from .contract import AdapterContext, SetupError


class WebhookAdapter:
    sends_each_call = True   # one request a call: serve keeps a person's failed call from being overtaken

    def __init__(self, context: AdapterContext, *, retrier: Retrier | None = None):
        settings: Mapping[str, Any] = context.settings
        self.sender = Sender(float(settings.get("timeout", 10)))
        self.headers = dict(settings.get("headers") or {})
        self.retrier = retrier or Retrier(RetryPolicy(max_attempts=int(settings.get("max_attempts", 5))))
        self.rate = rate_limit(settings, context.options)  # max_requests_per_second, every attempt counts
        self.breaker = circuit_breaker(context.destination, settings)
        oauth = settings.get("oauth")
        self.oauth = None
        if oauth:
            try:
                self.oauth = ClientCredentials(
                    self.sender, oauth["token_url"], oauth["client_id"], oauth["client_secret"], oauth.get("scope"),
                    client_auth=oauth.get("client_auth", "basic"), clock=self.retrier.clock)
            except (KeyError, TypeError, ValueError) as error:
                raise SetupError(f"webhook setting 'oauth' is incomplete or invalid ({type(error).__name__}: "
                                 f"{error})") from None

    def deliver(self, calls: Sequence[ActionCall]) -> list[Outcome]:
        return [self._send(call) for call in calls]

    def poll(self) -> list[Outcome]:
        return []

    def close(self) -> list[Outcome]:
        self.sender.close()
        return []

    def _send(self, call: ActionCall) -> Outcome:
        payload = call.payload
        method, url = payload.get("method", "POST"), payload["url"]
        headers = {"Content-Type": "application/json", **self.headers, **(payload.get("headers") or {})}
        try:
            body = None if "data" not in payload else encode(payload["data"])
        except UnencodableBody as error:
            return Outcome(REFUSED, 0, message=f"cannot send this call: {error}", call=call)
        refreshed = token_refused = False

        def attempt() -> Response:
            nonlocal refreshed, token_refused
            if self.rate is not None:
                self.rate.wait()
            if self.oauth is None:
                return self.sender.send(method, url, body, headers)
            # One token refresh per call, whatever the number of attempts: a second 401 is final.
            token_refused = False
            try:
                response, did_refresh = self.oauth.send(method, url, body, headers, may_refresh=not refreshed)
            except TokenError:
                token_refused = True  # the token endpoint's 4xx says nothing of this call: failed, not refused
                raise
            refreshed |= did_refresh
            return response

        breaker = self.breaker
        outcome = self.retrier.run(attempt, call) if breaker is None else breaker.run(self.retrier, attempt, call)
        if refreshed:  # the resend after a token refresh is one more request, and a retry to the user
            outcome = replace(outcome, attempts=outcome.attempts + 1,
                              state=RETRIED if outcome.state == DELIVERED else outcome.state)
        return outcome if token_refused else from_http(outcome)
