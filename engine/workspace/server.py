"""The workspace over HTTP, answering like Customer.io's Track API, so any client can be tested against it.

Routes, all ``POST`` with HTTP basic auth (site id as the user, API key as the password):
``/api/v2/entity``, ``/api/v2/batch``, ``/api/v1/metrics``. Answers:

- **200** ``{}``: applied (also a call that needed no change, or a group call that waits);
- **400** ``{"meta": {"error": "<reason>"}}``: an entity or metrics call refused, a body that
  is not JSON, a batch body without a ``batch`` list;
- **207** ``{"errors": [{"batch_index", "reason", "field", "message"}]}``: a batch in which some
  items were refused and the rest applied; ``reason`` is the Track API's ``invalid``,
  ``required`` or ``parse_error`` and ``message`` the workspace's reason;
- **401** bad credentials, **404** unknown path, **405** a method other than POST,
  **503** the workspace cannot be written (locked too long, disk full), **500** a bug.

Every request opens its own connection (a thread per request, and sqlite3 connections
belong to one thread); the workspace's locking serialises the writes. Nothing here prints:
``log`` receives one line per request.
"""
from __future__ import annotations

import base64
import hmac
import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from .apply import Rejected, Workspace
from .store import WorkspaceError

ROUTES = {"/api/v2/entity": "entity", "/api/v2/batch": "batch", "/api/v1/metrics": "metrics"}
# The Track API's error reasons; every other refusal is "invalid".
_TRACK_REASONS = {"unreadable": "parse_error", "missing_field": "required"}


def serve(db_path, host: str, port: int, site_id: str, api_key: str, *, destination: str | None = None,
          create: bool = True, log: Callable[[str], None] | None = None,
          on_ready: Callable[[str], None] | None = None) -> None:
    """Serve ``destination``'s workspace in the file at ``db_path`` until interrupted.

    ``destination`` None: the file's only workspace; ``create`` as for :meth:`Workspace.open`.
    ``on_ready`` gets the base URL once listening. Raises WorkspaceError (DestinationError)
    before listening if the workspace cannot be opened, OSError if the address is taken.
    """
    server = _make_server(db_path, host, port, site_id, api_key, log, destination, create)
    with server:
        if on_ready is not None:
            on_ready(_url(server))
        server.serve_forever()


class RunningServer:
    """A server answering on a background thread (for tests and embedding); ``stop()`` ends it."""

    def __init__(self, server: ThreadingHTTPServer):
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
                 port: int = 0, log: Callable[[str], None] | None = None) -> RunningServer:
    """Serve in a background thread; port 0 picks a free one (see ``.url``)."""
    return RunningServer(_make_server(db_path, host, port, site_id, api_key, log, destination))


def _make_server(db_path, host, port, site_id, api_key, log, destination, create=True) -> _Server:
    # Create or migrate now, so a bad file (or an ambiguous destination) fails before we listen.
    Workspace.open(db_path, destination=destination, create=create).close()
    return _Server((host, port), str(db_path), destination, f"{site_id}:{api_key}", log)


def _url(server: ThreadingHTTPServer) -> str:
    host, port = server.server_address[:2]
    return f"http://{host.decode() if isinstance(host, bytes) else host}:{port}"


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address, db_path: str, destination: str | None, credentials: str, log):
        super().__init__(address, _Handler)
        self.db_path, self.destination = db_path, destination
        self.authorization = "Basic " + base64.b64encode(credentials.encode()).decode()
        self.log = log


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the http transport reuses connections
    server_version = "switchyard-workspace"
    server: _Server

    def do_POST(self):
        raw = self._body()
        given = self.headers.get("Authorization") or ""
        if not hmac.compare_digest(given.encode(), self.server.authorization.encode()):
            return self._answer(401, {"meta": {"error": "Unauthorized request"}},
                                {"WWW-Authenticate": 'Basic realm="switchyard workspace"'})
        endpoint = ROUTES.get(self.path.split("?", 1)[0])
        if endpoint is None:
            return self._answer(404, {"meta": {"error": f"no such endpoint: {self.path}"}})
        try:
            with Workspace.open(self.server.db_path, destination=self.server.destination) as workspace:
                status, answer = _respond(workspace, endpoint, raw)
        except WorkspaceError as error:
            status, answer = 503, {"meta": {"error": str(error)}}
        except Exception as error:  # noqa: BLE001 -- a bug, not the caller's input: answer, and keep serving
            self.log_error("internal error: %r", error)
            status, answer = 500, {"meta": {"error": f"internal error: {error!r}"}}
        self._answer(status, answer)

    def _not_allowed(self):
        self._body()
        self._answer(405, {"meta": {"error": f"{self.command} is not supported; use POST"}}, {"Allow": "POST"})

    do_GET = do_PUT = do_PATCH = do_DELETE = _not_allowed

    def _body(self) -> bytes:
        """The request body, always read in full: on a kept-alive connection the next request follows it."""
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _answer(self, status: int, answer: dict, headers: dict | None = None) -> None:
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format, *args):
        if self.server.log is not None:
            self.server.log(f"{self.address_string()} {format % args}")


def _respond(workspace: Workspace, endpoint: str, raw: bytes) -> tuple[int, dict]:
    try:
        body = json.loads(raw, parse_constant=_not_json)
    except (ValueError, RecursionError) as error:  # UnicodeDecodeError is a ValueError
        text = raw.decode("utf-8", "replace")
        outcome = workspace.record_unreadable(endpoint, text, f"the body is not JSON: {error}")
        return 400, {"meta": {"error": outcome.reason}}
    if endpoint == "batch":
        outcomes = workspace.apply_batch(body)
        if isinstance(outcomes, Rejected):
            return 400, {"meta": {"error": outcomes.reason}}
        errors = [{"batch_index": index, "reason": _TRACK_REASONS.get(outcome.code, "invalid"), "field": outcome.field,
                   "message": outcome.reason} for index, outcome in enumerate(outcomes) if isinstance(outcome, Rejected)]
        return (207, {"errors": errors}) if errors else (200, {})
    result = workspace.apply(body) if endpoint == "entity" else workspace.apply_metrics(body)
    return (400, {"meta": {"error": result.reason}}) if isinstance(result, Rejected) else (200, {})


def _not_json(constant: str):
    raise ValueError(f"{constant} is not JSON")
