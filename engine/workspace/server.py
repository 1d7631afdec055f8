"""The workspace over HTTP, answering like Customer.io's Track API, so any client can be tested against it.

Routes, all ``POST`` with HTTP basic auth (site id as the user, API key as the password):
``/api/v2/entity``, ``/api/v2/batch``, ``/api/v1/metrics``. Answers:

- **200** ``{}``: applied (also a call that needed no change, or a group call that waits);
- **400** ``{"meta": {"error": "<reason>"}}``: an entity or metrics call refused, a body that
  is not JSON, a batch body without a ``batch`` list;
- **207** ``{"errors": [{"batch_index", "reason", "field", "message"}]}``: a batch in which some
  items were refused and the rest applied; ``reason`` is the Track API's ``invalid``,
  ``required`` or ``parse_error`` and ``message`` the workspace's reason;
- **401** bad credentials (checked before the body is read), **404** unknown path, **405** a
  method other than POST, **400** a ``Content-Length`` that is not a number, **411** a body
  without one (chunked), **413** a body over the Track API's limits (500 KB a batch, 32 KB an
  entity or metrics call; a batch item over 32 KB as compact JSON is refused on its own, stored
  as ``too_large``), **503** the workspace cannot be written (locked too long, disk full) or
  every connection slot is busy, **500** a bug.

Whatever is refused before its body is read (401, 404, 405, 400, 411, 413) closes the
connection, so a client cannot make the server read, or hold, what it will not use.

Connections: at most ``max_connections`` at once, each on its own thread with its own workspace
connection (sqlite3 connections belong to one thread; the workspace's locking serialises the
writes), opened at its first request and closed with it; one more is answered 503
with ``Retry-After: 1`` and closed. A connection idle, or stalled mid-request, for ``timeout``
seconds is closed. Answers go out in one write with ``TCP_NODELAY``: a keep-alive client never
waits for a delayed ACK between headers and body. Nothing here prints: ``log`` receives one line
per request, and one per connection that broke.
"""
from __future__ import annotations

import base64
import binascii
import hmac
import json
import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

from ..delivery.encoding import UnencodableBody, encode
from ..integers import any_size
from .apply import Rejected, Workspace
from .store import WorkspaceError

ROUTES = {"/api/v2/entity": "entity", "/api/v2/batch": "batch", "/api/v1/metrics": "metrics"}
# The Track API's error reasons; every other refusal is "invalid".
_TRACK_REASONS = {"unreadable": "parse_error", "missing_field": "required"}
# The Track API's request limits (https://customer.io/docs/api/track/#section/Limits).
BATCH_LIMIT = 500 * 1024
ENTITY_LIMIT = 32 * 1024
LIMITS = {"batch": BATCH_LIMIT, "entity": ENTITY_LIMIT, "metrics": ENTITY_LIMIT}
DEFAULT_TIMEOUT = 10.0
DEFAULT_MAX_CONNECTIONS = 64


def serve(db_path, host: str, port: int, site_id: str, api_key: str, *, destination: str | None = None,
          create: bool = True, log: Callable[[str], None] | None = None,
          on_ready: Callable[[str], None] | None = None, timeout: float = DEFAULT_TIMEOUT,
          max_connections: int = DEFAULT_MAX_CONNECTIONS) -> None:
    """Serve ``destination``'s workspace in the file at ``db_path`` until interrupted.

    ``destination`` None: the file's only workspace; ``create`` as for :meth:`Workspace.open`.
    ``on_ready`` gets the base URL once listening. Raises ValueError for an empty site id or API
    key, WorkspaceError (DestinationError) before listening if the workspace cannot be opened,
    OSError if the address is taken.
    """
    server = _make_server(db_path, host, port, site_id, api_key, log, destination, create,
                          timeout=timeout, max_connections=max_connections)
    with server:
        if on_ready is not None:
            on_ready(_url(server))
        server.serve_forever()


class RunningServer:
    """A server answering on a background thread (for tests and embedding); ``stop()`` ends it."""

    def __init__(self, server: HTTPServer):
        self._server = server
        # A short poll interval: stop() waits for the loop to notice, and tests stop many servers.
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="workspace-server", daemon=True)
        self._thread.start()
        self.url = _url(server)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.stop()


def start_server(db_path, site_id: str, api_key: str, *, destination: str | None = None, host: str = "127.0.0.1",
                 port: int = 0, log: Callable[[str], None] | None = None, timeout: float = DEFAULT_TIMEOUT,
                 max_connections: int = DEFAULT_MAX_CONNECTIONS) -> RunningServer:
    """Serve in a background thread; port 0 picks a free one (see ``.url``)."""
    return RunningServer(_make_server(db_path, host, port, site_id, api_key, log, destination,
                                      timeout=timeout, max_connections=max_connections))


def _make_server(db_path, host, port, site_id, api_key, log, destination, create=True, *,
                 timeout: float = DEFAULT_TIMEOUT, max_connections: int = DEFAULT_MAX_CONNECTIONS) -> _Server:
    if not site_id or not api_key:
        raise ValueError("the site id and the API key must not be empty: anyone could write to the workspace")
    if not timeout > 0 or max_connections < 1:
        raise ValueError("the timeout must be above 0 and max connections at least 1")
    # Create or migrate now, so a bad file (or an ambiguous destination) fails before we listen.
    Workspace.open(db_path, destination=destination, create=create).close()
    return _Server((host, port), str(db_path), destination, f"{site_id}:{api_key}", log, timeout, max_connections)


def _url(server: HTTPServer) -> str:
    host, port = server.server_address[:2]
    return f"http://{host.decode() if isinstance(host, bytes) else host}:{port}"


class _Server(HTTPServer):
    """An HTTP server with a thread per connection, at most ``max_connections`` of them at once."""

    request_queue_size = 128  # the listen backlog: a burst of connections is accepted, not left to SYN retries

    def __init__(self, address, db_path: str, destination: str | None, credentials: str, log, timeout: float,
                 max_connections: int):
        super().__init__(address, _Handler)
        self.db_path, self.destination = db_path, destination
        self.credentials = credentials.encode()
        self.log = log
        self.connection_timeout = timeout
        self._slots = threading.BoundedSemaphore(max_connections)

    def process_request(self, request, client_address):
        if not self._slots.acquire(blocking=False):
            _busy(request)
            self.shutdown_request(request)
            return
        threading.Thread(target=self._connection, args=(request, client_address), daemon=True,
                         name=f"workspace-connection {self.server_address[1]}").start()

    def _connection(self, request, client_address) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:  # noqa: BLE001 - one connection's failure (a reset, a timeout) ends that connection only
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)
            self._slots.release()

    def handle_error(self, request, client_address) -> None:
        """A connection that broke (reset, timed out, gone): one log line, no traceback on stderr."""
        import sys

        error = sys.exc_info()[1]
        if self.log is not None:
            self.log(f"{client_address[0]} connection ended: {type(error).__name__}: {error}")


def _busy(request: socket.socket) -> None:
    body = b'{"meta": {"error": "the server is busy: too many connections"}}'
    try:
        request.settimeout(1.0)
        request.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                        b"Retry-After: 1\r\nConnection: close\r\nContent-Length: " + str(len(body)).encode()
                        + b"\r\n\r\n" + body)
    except OSError:
        pass


class _Refused(Exception):
    """A request refused before its body is read: the status and the reason to answer with."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status, self.reason = status, reason


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the http transport reuses connections
    server_version = "switchyard-workspace"
    disable_nagle_algorithm = True  # with one write per answer: no 40 ms delayed-ACK stalls on keep-alive
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(self.server.connection_timeout)  # every read and write of the connection
        # The connection's own workspace, opened at its first request: opening and closing one per
        # request cost a checkpoint of the file each time (66 requests/s on one connection, not 300).
        self.workspace: Workspace | None = None

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            if self.workspace is not None:
                self.workspace.close()

    def do_POST(self):
        if not self._authorized():
            return self._answer(401, {"meta": {"error": "Unauthorized request"}},
                                {"WWW-Authenticate": 'Basic realm="switchyard workspace"'}, close=True)
        endpoint = ROUTES.get(self.path.split("?", 1)[0])
        if endpoint is None:
            return self._answer(404, {"meta": {"error": f"no such endpoint: {self.path}"}}, close=True)
        try:
            raw = self._body(LIMITS[endpoint])
        except _Refused as refused:
            return self._answer(refused.status, {"meta": {"error": refused.reason}}, close=True)
        try:
            if self.workspace is None:
                self.workspace = Workspace.open(self.server.db_path, destination=self.server.destination)
            status, answer = _respond(self.workspace, endpoint, raw)
        except WorkspaceError as error:
            status, answer = 503, {"meta": {"error": str(error)}}
            if self.workspace is not None:
                self.workspace.close()  # opened again by the next request, which may find it writable
                self.workspace = None
        except Exception as error:  # noqa: BLE001 -- a bug, not the caller's input: answer, and keep serving
            self.log_error("internal error: %r", error)
            status, answer = 500, {"meta": {"error": f"internal error: {error!r}"}}
        self._answer(status, answer)

    def _not_allowed(self):
        self._answer(405, {"meta": {"error": f"{self.command} is not supported; use POST"}}, {"Allow": "POST"},
                     close=True)

    do_GET = do_PUT = do_PATCH = do_DELETE = _not_allowed

    def _authorized(self) -> bool:
        """HTTP basic auth; the scheme in any case (RFC 7235 section 2.1)."""
        scheme, _, token = (self.headers.get("Authorization") or "").strip().partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            given = base64.b64decode(token.strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        return hmac.compare_digest(given, self.server.credentials)

    def _body(self, limit: int) -> bytes:
        """The request body, read in full (on a kept-alive connection the next request follows it) once
        its length is known to be a number within ``limit``; raises _Refused otherwise."""
        if self.headers.get("Transfer-Encoding"):
            raise _Refused(411, "send the body with a Content-Length, not Transfer-Encoding")
        values = self.headers.get_all("Content-Length") or ["0"]
        text = values[0].strip()
        if len(set(value.strip() for value in values)) > 1 or not (text.isascii() and text.isdigit()):
            raise _Refused(400, f"Content-Length must be a number of bytes, got {', '.join(values)!r}")
        if len(text) > 12 or int(text) > limit:
            raise _Refused(413, f"the body is over the limit of {limit // 1024} KB for this endpoint")
        return self.rfile.read(int(text))

    def _answer(self, status: int, answer: dict, headers: dict | None = None, *, close: bool = False) -> None:
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if close:
            self.send_header("Connection", "close")  # also ends the connection after this answer
        # The status line, headers and body in one write (BaseHTTPRequestHandler buffers the headers).
        self._headers_buffer.append(b"\r\n" + data)  # type: ignore[attr-defined]
        self.flush_headers()

    def log_message(self, format, *args):
        if self.server.log is not None:
            self.server.log(f"{self.address_string()} {format % args}")


def _respond(workspace: Workspace, endpoint: str, raw: bytes) -> tuple[int, dict]:
    try:
        with any_size():  # an integer of up to 100,000 digits, as an event may hold (the workspace stores it)
            body = json.loads(raw, parse_constant=_not_json)
    except (ValueError, RecursionError) as error:  # UnicodeDecodeError is a ValueError
        text = raw.decode("utf-8", "replace")
        outcome = workspace.record_unreadable(endpoint, text, f"the body is not JSON: {error}")
        return 400, {"meta": {"error": outcome.reason}}
    if endpoint == "batch":
        outcomes = workspace.apply_batch(body, _refused_items(body))
        if isinstance(outcomes, Rejected):
            return 400, {"meta": {"error": outcomes.reason}}
        errors = [{"batch_index": index, "reason": _TRACK_REASONS.get(outcome.code, "invalid"), "field": outcome.field,
                   "message": outcome.reason}
                  for index, outcome in enumerate(outcomes) if isinstance(outcome, Rejected)]
        return (207, {"errors": errors}) if errors else (200, {})
    refused = _refusal(body, sized=False)  # its size was the request's, within the limit before it was read
    if refused is not None:
        return 400, {"meta": {"error": workspace.refuse(endpoint, body, refused).reason}}
    result = workspace.apply(body) if endpoint == "entity" else workspace.apply_metrics(body)
    return (400, {"meta": {"error": result.reason}}) if isinstance(result, Rejected) else (200, {})


def _refused_items(body: Any) -> dict[int, Rejected]:
    """The batch items the workspace must not apply (a lone surrogate, over 32 KB), by index, with why:
    each is refused on its own, so its neighbours are applied."""
    items = body.get("batch") if isinstance(body, dict) else None
    refused = {}
    for index, item in enumerate(items if isinstance(items, list) else []):
        if (outcome := _refusal(item, sized=True)) is not None:
            refused[index] = outcome
    return refused


def _refusal(item: Any, *, sized: bool) -> Rejected | None:
    """Why one call cannot be applied as it is: text that is not Unicode (a lone surrogate), or, if ``sized``,
    over the limit of 32 KB.

    A batch item is measured as the bytes a client sends for it: compact JSON in UTF-8, as
    :func:`~engine.delivery.encoding.encode` writes it (spaces a client added around ``,`` and ``:``
    do not count against it).
    """
    try:
        size = len(encode(item))
    except UnencodableBody as error:
        return Rejected("invalid_body", str(error))
    if sized and size > ENTITY_LIMIT:
        return Rejected("too_large", f"the call is {size:,} bytes as compact JSON, over the limit of "
                                     f"{ENTITY_LIMIT // 1024} KB")
    return None


def _not_json(constant: str):
    raise ValueError(f"{constant} is not JSON")
