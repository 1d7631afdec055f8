"""The HTTP/1.1 connection of ``switchyard serve``: uvicorn's (h11), with two things a front door needs.

- **A deadline for the request head.** uvicorn gives a connection all the time it wants to finish its
  request line and headers: a client sending a byte every few seconds, or nothing at all after it
  connects, holds a file descriptor for as long as it likes, and enough of them use up the server's.
  Here the head must be whole within :data:`HEAD_TIMEOUT` seconds of the connection, or of the first byte
  of a later request on a kept-alive one; past it the connection gets 408 (or, if it sent nothing,
  is simply closed). 0 turns the deadline off. The body is read by the app, under its own limits; a
  slow body, and a client that does not read its answers, are for a proxy in front to bound.
- **Malformed requests answered as every refusal is.** uvicorn answers a request it cannot parse with
  plain text that the app never sees, so /metrics did not count it. Here it is ``400`` with the JSON
  ``{"code": "invalid_http", "message": ...}`` of the other refusals, counted once by status like them.

A connection closed here that does not take its last answer within :data:`CLOSING_GRACE` seconds (a client
that stopped reading) is cut off, rather than kept until the kernel gives up on it.
"""
from __future__ import annotations

import asyncio
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from .app import ANSWERED_HERE
from .ingest import Refused
from .limits import HEAD_TIMEOUT

#: Seconds a connection closed here may take to read its last answer before it is cut off.
CLOSING_GRACE = 5.0


def protocol_counting(count: Callable[[int], None], head_timeout: float = HEAD_TIMEOUT) -> type[H11Protocol]:
    """The protocol class for uvicorn's ``http`` setting; ``count(status)`` is told of each answer it gives
    itself (the app counts its own, and one given here while the app has the request)."""

    class ServeProtocol(H11Protocol):
        _head_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: Any) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm_head()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm_head()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:  # a head begun, not whole
                self._arm_head()
            else:
                self._disarm_head()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            # The next request's first bytes may have come with the last one: its head is under the deadline too.
            if not self.transport.is_closing() and self.conn.their_state is h11.IDLE and self.conn.trailing_data[0]:
                self._arm_head()

        def _arm_head(self) -> None:
            if self._head_timer is None and head_timeout > 0:
                self._head_timer = self.loop.call_later(head_timeout, self._head_too_slow)

        def _disarm_head(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _head_too_slow(self) -> None:
            self._head_timer = None
            if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
                return
            if self.conn.trailing_data[0] and self.conn.our_state is h11.IDLE:
                self._answer(Refused(408, "request_timeout",
                                     f"the request head did not come whole within {head_timeout:g} s"))
            else:
                self._close()

        def send_400_response(self, msg: str) -> None:
            self._answer(Refused(400, "invalid_http", "the request is not valid HTTP/1.1"))

        def _answer(self, refused: Refused) -> None:
            """Answer as the app refuses a request, and close the connection."""
            status, body = refused.status, refused.body()
            headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                       (b"connection", b"close")]
            app_has_it = self.cycle is not None and not self.cycle.response_complete
            try:
                self.transport.write(self.conn.send(h11.Response(status_code=status, headers=headers,
                                                                  reason=HTTPStatus(status).phrase)) or b"")
                self.transport.write(self.conn.send(h11.Data(data=body)) or b"")
                self.transport.write(self.conn.send(h11.EndOfMessage()) or b"")
            except h11.LocalProtocolError:  # the app has answered already: close without a word, count nothing
                pass
            else:
                if app_has_it:  # the app, still reading the body, counts the request: as this answer
                    self.scope["state"][ANSWERED_HERE] = status
                else:
                    count(status)
            self._close()

        def _close(self) -> None:
            self.transport.close()
            self.loop.call_later(CLOSING_GRACE, self.transport.abort)  # nothing, once it has closed

    return ServeProtocol
