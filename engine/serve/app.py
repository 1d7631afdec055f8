"""The HTTP side of ``switchyard serve``: a plain ASGI app speaking Segment's Tracking API.

Answers, as Segment's clients expect them (/work/shared/reference/segment-http-api.md):
``200 {"success": true}`` only after the events are committed to the spool; ``400`` with
``{"code", "message"}`` for a body past a limit or not JSON; ``401`` for a wrong write key where
keys are set; ``429`` with ``Retry-After`` when the spool is full (every client above retries
it); ``503`` once the server is stopping. CORS is open to any origin, so analytics.js can post
from a browser (its ``text/plain`` posts need no preflight; a preflight is answered anyway).
``/health``, ``/ready`` and ``/metrics`` are for the operator.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson

from ..events import to_line
from .ingest import REQUEST_BYTES, Refused, decode, parse, route, too_large
from .metrics import CONTENT_TYPE
from .service import Service
from .spool import SpoolFull

log = logging.getLogger("switchyard.serve")

SUCCESS = b'{"success":true}'
CORS = [(b"access-control-allow-origin", b"*"),
        (b"access-control-allow-methods", b"POST, OPTIONS"),
        (b"access-control-allow-headers", b"Authorization, Content-Type, Content-Encoding, X-Retry-Count"),
        (b"access-control-max-age", b"86400")]
JSON = (b"content-type", b"application/json")
#: The status counted for a request whose client went away before its body came (nginx's number): no one is
#: answered, and nothing of it is kept.
CLIENT_GONE = 499
#: Where the HTTP layer (engine/serve/protocol.py) notes, in a request's ``scope["state"]``, the status it answered
#: itself while the app was still reading the body (a malformed chunk): the status the app counts.
ANSWERED_HERE = "switchyard.answered"


class App:
    """The ASGI application; ``service`` holds everything that outlives a request."""

    def __init__(self, service: Service):
        self.service = service
        self.in_flight = 0   # HTTP requests being answered (the event loop's thread only)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        self.in_flight += 1
        status = 500
        try:
            status = await self._answer(scope, receive, send)
        finally:
            self.in_flight -= 1
            status = scope.get("state", {}).get(ANSWERED_HERE, status)
            self.service.metrics.requests.labels(str(status)).inc()

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _answer(self, scope: dict, receive: Any, send: Any) -> int:
        path, method, service = scope["path"], scope["method"], self.service
        if path == "/health":
            return await _send(send, 200, b'{"status":"ok"}', [JSON])
        if path == "/ready":
            problems = service.ready()
            return await _send(send, 503 if problems else 200,
                               orjson.dumps({"ready": not problems, "problems": problems}), [JSON])
        if path == "/metrics":
            return await _send(send, 200, service.metrics.text(), [(b"content-type", CONTENT_TYPE.encode())])
        known, kind = route(path)
        if not known:
            return await _refuse(send, Refused(404, "not_found", f"no such path: {path}"))
        if method == "OPTIONS":
            return await _send(send, 204, b"", CORS)
        if method != "POST":
            return await _refuse(send, Refused(405, "method_not_allowed", "the Tracking API takes POST"))
        if service.draining:
            return await _refuse(send, Refused(503, "stopping", "the server is stopping; send again shortly"))
        full = service.full()
        if full:
            return await _refuse(send, Refused(429, "spool_full", full),
                                 [(b"retry-after", str(service.options.limits.retry_after).encode())])
        headers = dict(scope["headers"])
        if b"content-length" in headers and b"transfer-encoding" in headers:
            # RFC 9112 section 6.1: such a request may be read one way here and another by a proxy in front
            # (request smuggling); it is refused and its connection closed.
            return await _refuse(send, Refused(400, "invalid_request", "a request may not have both "
                                               "Content-Length and Transfer-Encoding"), [(b"connection", b"close")])
        try:
            body = await _read(receive)
            body = decode(body, _text(headers.get(b"content-encoding")))
            request = parse(kind, body, _text(headers.get(b"authorization")))
            if not service.key_accepted(request.write_key):
                raise Refused(401, "invalid_write_key", "the write key is missing or not one this server takes")
        except Refused as refused:
            return await _refuse(send, refused)
        except ClientGone:
            return CLIENT_GONE
        except Exception:  # noqa: BLE001 - a bug must still answer as the API does, and be seen
            log.exception("cannot read a request to %s", path)
            return await _refuse(send, Refused(500, "internal_error", "the request could not be read; "
                                                                       "this is a bug in the server"))
        try:
            # The dead letters first: if they cannot be written, nothing is kept and the client sends it all again.
            # Events kept before would be spooled twice then, those the server gave an id not being known again.
            # (A spool that turns out full at the commit, a rare race past the check above, repeats the records.)
            if request.invalid:
                await self._dead_letter(request.invalid)
            if request.events:
                accepted, duplicates = await asyncio.wrap_future(service.spool.append(request.events))
                service.metrics.accepted.inc(accepted)
                service.metrics.deduplicated.inc(duplicates)
        except SpoolFull as full:
            return await _refuse(send, Refused(429, "spool_full", str(full)),
                                 [(b"retry-after", str(service.options.limits.retry_after).encode())])
        except Exception as error:  # noqa: BLE001 - the spool or dead-letter file failed: nothing was acknowledged
            log.error("cannot keep a request's events: %s", error)
            return await _refuse(send, Refused(503, "spool_unavailable", "the events could not be stored; "
                                                                           "send again shortly"),
                                 [(b"retry-after", b"5")])
        return await _send(send, 200, SUCCESS, [JSON])

    async def _dead_letter(self, events: list[tuple[dict, str]]) -> None:
        lines = b"".join(to_line({"kind": "invalid_event", "source": "serve", "reason": reason, "event": event})
                         for event, reason in events)
        await asyncio.get_running_loop().run_in_executor(None, self.service.dead_letter.write_lines, lines,
                                                         len(events))
        self.service.metrics.invalid.inc(len(events))


class ClientGone(Exception):
    """The client went away before its whole body came: nothing of it is taken, and no one is answered."""


async def _read(receive: Any) -> bytes:
    """The whole body, chunked or not; past REQUEST_BYTES (before unpacking) it is a 400."""
    parts, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            # A body cut short (its Content-Length not reached, no last chunk) is not the client's request:
            # taking it would keep events the client was never told of, and will send again.
            raise ClientGone()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > REQUEST_BYTES:
            raise too_large()
        parts.append(chunk)
        if not message.get("more_body"):
            break
    return b"".join(parts)


def _text(value: bytes | None) -> str | None:
    return value.decode("latin-1") if value is not None else None


async def _refuse(send: Any, refused: Refused, headers: list[tuple[bytes, bytes]] | None = None) -> int:
    return await _send(send, refused.status, refused.body(), [JSON, *(headers or [])])


async def _send(send: Any, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> int:
    headers = headers + [(b"content-length", str(len(body)).encode()), (b"access-control-allow-origin", b"*")] \
        if (b"access-control-allow-origin", b"*") not in headers else \
        headers + [(b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
    return status
