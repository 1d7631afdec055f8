"""The ``webhook`` catalog over HTTP: one JSON request per ``send`` call, retried per the policy.

Requests go through :mod:`engine.delivery` (kept-alive connections, the retry policy, OAuth2
client credentials when the destination's settings have ``oauth``). :meth:`WebhookAdapter.deliver`
returns the call's :class:`~engine.delivery.outcome.Outcome` when it was accepted and raises
:class:`DeliveryError` (with the outcome as ``error.outcome``) when it was not.
"""
from __future__ import annotations

import json
from dataclasses import replace

from ..delivery.http import Sender
from ..delivery.oauth import ClientCredentials
from ..delivery.outcome import DELIVERED, RETRIED
from ..delivery.retry import Retrier, RetryPolicy
from . import DeliveryError, SetupError


class WebhookAdapter:
    def __init__(self, settings, *, retrier: Retrier | None = None):
        self.sender = Sender(float(settings.get("timeout", 10)))
        self.headers = dict(settings.get("headers") or {})
        self.retrier = retrier or Retrier(RetryPolicy(max_attempts=int(settings.get("max_attempts", 5))))
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

    def deliver(self, call) -> list:
        """Send ``call``; return ``[outcome]`` when accepted, raise DeliveryError when not."""
        payload = call.payload
        method, url = payload.get("method", "POST"), payload["url"]
        headers = {"Content-Type": "application/json", **self.headers, **(payload.get("headers") or {})}
        body = None if "data" not in payload else json.dumps(payload["data"], ensure_ascii=False).encode()
        refreshed = False

        def attempt():
            nonlocal refreshed
            if self.oauth is None:
                return self.sender.send(method, url, body, headers)
            # One token refresh per call, whatever the number of attempts: a second 401 is final.
            response, did_refresh = self.oauth.send(method, url, body, headers, may_refresh=not refreshed)
            refreshed |= did_refresh
            return response

        outcome = self.retrier.run(attempt, call)
        if refreshed:  # the resend after a token refresh is one more request, and a retry to the user
            outcome = replace(outcome, attempts=outcome.attempts + 1,
                              state=RETRIED if outcome.state == DELIVERED else outcome.state)
        if not outcome.ok:
            error = DeliveryError(outcome.message, outcome.status, outcome.body)
            error.outcome = outcome
            raise error
        return [outcome]

    def close(self) -> list:
        self.sender.close()
        return []
