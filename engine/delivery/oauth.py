"""OAuth 2.0 client credentials (RFC 6749 section 4.4) for destinations that take a bearer token.

A token is fetched from the token URL with the client id and secret, cached until shortly
before it expires, and refreshed once when the destination answers 401, after which the
request is sent again: what Segment does for its OAuth destinations ("When Segment receives
401 error responses from the destination after a token has expired, it will automatically make
another request to the destination for a new token and will then retry the event").
A second 401 is the destination's answer; it is never followed by another refresh.

This module does not retry: a failed token request raises :class:`TokenError` carrying the
token endpoint's answer, and the retry policy decides on that answer like on any other.
Nothing here prints or returns the secret or the token.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import quote_plus, urlencode

from ..env import basic_credentials
from .http import Response, Sender, SendError
from .retry import SYSTEM_CLOCK, Clock


class TokenError(SendError):
    """The token endpoint did not hand out a token."""


@dataclass(frozen=True)
class _Token:
    value: str
    renew_at: float | None  # clock time after which it is fetched again; None: until a 401


class ClientCredentials:
    """One token URL and client: hands out a cached token and refreshes it on demand.

    ``client_auth`` is ``"basic"`` (HTTP Basic, the method every server must support, RFC 6749
    section 2.3.1) or ``"body"`` (``client_id`` and ``client_secret`` as form fields).
    """

    def __init__(self, sender: Sender, token_url: str, client_id: str, client_secret: str, scope: str | None = None,
                 *, client_auth: str = "basic", clock: Clock = SYSTEM_CLOCK):
        if client_auth not in ("basic", "body"):
            raise ValueError(f"client_auth must be 'basic' or 'body', not {client_auth!r}")
        self.sender, self.token_url = sender, token_url
        self.client_id, self._secret, self.scope = client_id, client_secret, scope
        self.client_auth, self.clock = client_auth, clock
        self._token: _Token | None = None
        self.fetches = 0  # token requests made, for the curious and for tests

    def __repr__(self) -> str:
        return f"ClientCredentials({self.token_url!r}, client_id={self.client_id!r})"

    def token(self) -> str:
        """A token believed valid: the cached one, or a new one when there is none or it is expiring."""
        token = self._token
        if token is None or (token.renew_at is not None and self.clock.time() >= token.renew_at):
            return self._fetch()
        return token.value

    def refresh(self, rejected: str) -> str:
        """A new token because ``rejected`` got a 401 (unless it was already replaced since)."""
        if self._token is not None and self._token.value != rejected:
            return self._token.value
        self._token = None
        return self._fetch()

    def send(self, method: str, url: str, body: bytes | None, headers: dict,
             *, may_refresh: bool = True) -> tuple[Response, bool]:
        """Send with ``Authorization: Bearer``; on a 401, refresh once and send again.

        Returns the answer and whether a refresh happened (callers allow one per call).
        """
        token = self.token()
        response = self.sender.send(method, url, body, {**headers, "Authorization": f"Bearer {token}"})
        if response.status != 401 or not may_refresh:
            return response, False
        token = self.refresh(token)
        return self.sender.send(method, url, body, {**headers, "Authorization": f"Bearer {token}"}), True

    def _fetch(self) -> str:
        form = {"grant_type": "client_credentials"}
        if self.scope:
            form["scope"] = self.scope
        headers = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"}
        if self.client_auth == "basic":
            # RFC 6749 section 2.3.1: the id and secret are form-encoded before Basic encoding.
            pair = quote_plus(self.client_id, safe=""), quote_plus(self._secret, safe="")
            headers["Authorization"] = "Basic " + basic_credentials(*pair)
        else:
            form.update(client_id=self.client_id, client_secret=self._secret)
        self.fetches += 1
        try:
            response = self.sender.send("POST", self.token_url, urlencode(form).encode("ascii"), headers)
        except SendError as error:
            raise TokenError(f"OAuth2 token request failed: {error}", retryable=error.retryable) from None
        if not response.ok:
            raise TokenError(f"OAuth2 token request to {self.token_url} failed: HTTP {response.status}",
                             response=response)
        try:
            answer = json.loads(response.body)
            value = answer["access_token"]
            if not isinstance(value, str) or not value:
                raise TypeError
        except (ValueError, KeyError, TypeError):
            raise TokenError(f"OAuth2 token request to {self.token_url} answered without an access_token",
                             retryable=False) from None
        lifetime = answer.get("expires_in")
        try:
            lifetime = float(lifetime) if lifetime is not None else None
        except (TypeError, ValueError):
            lifetime = None
        # Renew a little early (10% of the lifetime, at most 30 s) so a token does not expire in flight.
        renew_at = None if lifetime is None else self.clock.time() + lifetime - min(30.0, lifetime * 0.1)
        self._token = _Token(value, renew_at)
        return value
