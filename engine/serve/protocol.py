"""The HTTP/1.1 connection of ``switchyard serve``: uvicorn's (h11), with what a front door needs.

- **Deadlines for slow clients.** uvicorn gives a connection all the time it wants: a client sending a
  byte every few seconds, nothing at all, or never reading its answers holds a file descriptor (and a
  task) for as long as it likes, and enough of them use up the server's. Here
  - the head (request line and headers) must be whole within ``head_timeout`` seconds of the
    connection, or of the first byte of a later request on a kept-alive one; past it the connection
    gets 408 (or, if it sent nothing, is simply closed);
  - the body must be whole within ``body_timeout`` seconds of its head; past it the connection is
    closed without an answer, and /metrics counts it as 408. Every client library sends a batch again
    when its connection drops; what each makes of a 408 differs (analytics-python retries it;
    analytics-node names only 429 and 5xx as worth another try);
  - a connection whose answers have filled the server's buffer for it (past asyncio's high-water mark)
    and not drained from it (under the low-water mark) within ``send_timeout`` seconds is cut off.

  0 turns a deadline off. These do what nginx's ``client_header_timeout``, ``client_body_timeout`` and
  ``send_timeout`` do, counted differently: the body's deadline runs from its head, not between two reads
  (a body sent a byte at a time cannot stretch it), and the send deadline from the buffer filling, not
  between two writes.
- **Malformed requests answered as every refusal is.** uvicorn answers a request it cannot parse with
  plain text that the app never sees, so /metrics did not count it. Here it is ``400`` with the JSON
  ``{"code": "invalid_http", "message": ...}`` of the other refusals, counted once by status like them.

A connection closed, here or by uvicorn (its keep-alive timer, an answer with ``Connection: close``), that
does not take its last answer within :data:`CLOSING_GRACE` seconds (a client that stopped reading) is cut
off, rather than kept until the client reads.
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
from .limits import BODY_TIMEOUT, HEAD_TIMEOUT, SEND_TIMEOUT

#: Seconds a closed connection (closed here or by uvicorn) may take to read its last answer before it is cut off.
CLOSING_GRACE = 5.0


def protocol_counting(count: Callable[[int], None], head_timeout: float = HEAD_TIMEOUT,
                      body_timeout: float = BODY_TIMEOUT, send_timeout: float = SEND_TIMEOUT) -> type[H11Protocol]:
    """The protocol class for uvicorn's ``http`` setting; ``count(status)`` is told of each answer it gives
    itself (the app counts its own, and one given here while the app has the request)."""

    class ServeProtocol(H11Protocol):
        _head_timer: asyncio.TimerHandle | None = None
        _body_timer: asyncio.TimerHandle | None = None
        _body_of: Any = None          # the request (its cycle) whose body the body timer is for
        _send_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: Any) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm_head()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm_head()
            self._body_timer = _cancelled(self._body_timer)
            self._disarm_send()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:  # a head begun, not whole
                self._arm_head()
            else:
                self._disarm_head()
            self._watch_body()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            # The next request's first bytes may have come with the last one: its head is under the deadline too.
            if not self.transport.is_closing() and self.conn.their_state is h11.IDLE and self.conn.trailing_data[0]:
                self._arm_head()
            self._watch_body()
            if self.transport.is_closing():  # uvicorn closed it after this answer (Connection: close)
                self._abort_later()

        def timeout_keep_alive_handler(self) -> None:
            super().timeout_keep_alive_handler()
            self._abort_later()

        def shutdown(self) -> None:
            super().shutdown()
            if self.transport.is_closing():
                self._abort_later()

        def pause_writing(self) -> None:
            super().pause_writing()
            if self._send_timer is None and send_timeout > 0:
                self._send_timer = self.loop.call_later(send_timeout, self._not_reading)

        def resume_writing(self) -> None:
            super().resume_writing()
            self._disarm_send()

        def _arm_head(self) -> None:
            if self._head_timer is None and head_timeout > 0:
                self._head_timer = self.loop.call_later(head_timeout, self._head_too_slow)

        def _disarm_head(self) -> None:
            self._head_timer = _cancelled(self._head_timer)

        def _head_too_slow(self) -> None:
            self._head_timer = None
            if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
                return
            if self.conn.trailing_data[0] and self.conn.our_state is h11.IDLE:
                self._answer(Refused(408, "request_timeout",
                                     f"the request head did not come whole within {head_timeout:g} s"))
            else:
                self._close()

        def _watch_body(self) -> None:
            """The body's deadline runs from its head until it is whole (or the connection closes)."""
            receiving = self.conn.their_state is h11.SEND_BODY and not self.transport.is_closing()
            if not receiving or self._body_of is not self.cycle:  # its body came, or it was set for another request
                self._body_timer = _cancelled(self._body_timer)
            if receiving and self._body_timer is None and body_timeout > 0:
                self._body_of = self.cycle
                self._body_timer = self.loop.call_later(body_timeout, self._body_too_slow)

        def _body_too_slow(self) -> None:
            self._body_timer = None
            if self.transport.is_closing() or self.conn.their_state is not h11.SEND_BODY:
                return
            if self.cycle is not None and not self.cycle.response_complete:
                self.scope["state"][ANSWERED_HERE] = 408  # the app, told its client is gone, counts it so
            self._close()

        def _disarm_send(self) -> None:
            self._send_timer = _cancelled(self._send_timer)

        def _not_reading(self) -> None:
            self._send_timer = None
            self.transport.abort()

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
            self._abort_later()

        def _abort_later(self) -> None:
            self.loop.call_later(CLOSING_GRACE, self.transport.abort)  # nothing, once it has closed

    return ServeProtocol


def _cancelled(timer: asyncio.TimerHandle | None) -> asyncio.TimerHandle | None:
    """Cancel ``timer`` if one is set; None, for the attribute that held it."""
    if timer is not None:
        timer.cancel()
    return None
