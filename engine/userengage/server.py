"""The User.com stand-in over HTTP, answering like User.com's public REST API, so the HTTP transport runs against it.

Routes below ``/api/public/`` (trailing slash required, as User.com's): ``POST
users/update_or_create/``, ``GET users/<id>/``, ``GET users-by-id/<custom_id>/``, ``POST events/``,
``POST site-views/``, ``GET companies-by-id/<custom_id>/``, ``POST companies/``, ``PUT
companies/<id>/``, ``POST companies/<id>/add_member/``. Every request is authorised as User.com's:
``Authorization: Token <key>`` (or HTTP basic auth with the key as the user name).

Answers: **200** the JSON of :mod:`engine.userengage.app`; **400** ``{"detail": reason}`` a request
refused (not JSON, a field missing); **404** unknown user, company or path; **401** no
credentials; **403** a wrong key (User.com's answer for a revoked key or an untrusted domain);
**503** the file cannot be written. Each request opens its own connection; nothing here prints:
``log`` receives one line per request.
"""
from __future__ import annotations

import base64
import hmac
import json
import re
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

from .app import App, Rejected
from .requests import PUBLIC_API
from .store import AppError

#: (method, path pattern below /api/public/) -> the App's request name; groups are its arguments.
ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    ("POST", re.compile(r"users/update_or_create/"), "update_or_create_user"),
    ("GET", re.compile(r"users/([0-9]+)/"), "user"),
    ("GET", re.compile(r"users-by-id/([^/]+)/"), "user_by_custom_id"),
    ("POST", re.compile(r"events/"), "create_event"),
    ("POST", re.compile(r"site-views/"), "create_site_view"),
    ("GET", re.compile(r"companies-by-id/([^/]+)/"), "company_by_custom_id"),
    ("POST", re.compile(r"companies/"), "create_company"),
    ("PUT", re.compile(r"companies/([0-9]+)/"), "update_company"),
    ("POST", re.compile(r"companies/([0-9]+)/add_member/"), "add_member"),
]


class RunningServer:
    """A server answering on a background thread (for tests and embedding); ``stop()`` ends it."""

    def __init__(self, server: ThreadingHTTPServer):
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="userengage-server", daemon=True)
        self._thread.start()
        host, port = server.server_address[:2]
        self.url = f"http://{host.decode() if isinstance(host, bytes) else host}:{port}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.stop()


def make_server(db_path, api_key: str, *, destination: str | None = None, host: str = "127.0.0.1", port: int = 0,
                create: bool = True, log: Callable[[str], None] | None = None) -> ThreadingHTTPServer:
    """A server for ``destination``'s stand-in, not yet serving; the stand-in is opened (or created) now,
    so a bad file fails before listening. Raises AppError, or OSError if the address is taken."""
    App.open(db_path, destination=destination, create=create).close()
    return _Server((host, port), str(db_path), destination, api_key, log)


def start_server(db_path, api_key: str, *, destination: str | None = None, host: str = "127.0.0.1", port: int = 0,
                 log: Callable[[str], None] | None = None) -> RunningServer:
    """Serve in a background thread; port 0 picks a free one (see ``.url``)."""
    return RunningServer(make_server(db_path, api_key, destination=destination, host=host, port=port, log=log))


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address, db_path: str, destination: str | None, api_key: str, log):
        super().__init__(address, _Handler)
        self.db_path, self.destination, self.log = db_path, destination, log
        self.accepted = [f"Token {api_key}".encode(),
                         b"Basic " + base64.b64encode(f"{api_key}:".encode()),
                         b"Basic " + base64.b64encode(api_key.encode())]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the http transport reuses connections
    server_version = "switchyard-userengage"
    # Headers and body leave in separate writes; without this a kept-alive client waits out a
    # delayed ACK (about 40 ms) on every request.
    disable_nagle_algorithm = True
    server: _Server

    def _handle(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        given = (self.headers.get("Authorization") or "").encode()
        if not given:
            return self._answer(401, {"detail": "Authentication credentials were not provided."})
        if not any(hmac.compare_digest(given, accepted) for accepted in self.server.accepted):
            return self._answer(403, {"detail": "Invalid token: the API key was revoked, or this domain is not "
                                                "trusted"})
        path = self.path.split("?", 1)[0]
        if not path.startswith(PUBLIC_API):
            return self._answer(404, {"detail": "Not found."})
        below = path[len(PUBLIC_API):]
        matched = [(name, match) for method, pattern, name in ROUTES
                   if (match := pattern.fullmatch(below)) and method == self.command]
        if not matched:
            known = any(pattern.fullmatch(below) for _, pattern, _ in ROUTES)
            return self._answer(405 if known else 404, {"detail": "Method not allowed." if known else "Not found."})
        name, match = matched[0]
        arguments: list = [int(group) if group.isdigit() and name != "company_by_custom_id"
                           and name != "user_by_custom_id" else unquote(group) for group in match.groups()]
        if self.command != "GET":
            try:
                arguments.append(json.loads(raw))
            except (ValueError, RecursionError) as error:
                return self._answer(400, {"detail": f"the body is not JSON: {error}"})
        try:
            with App.open(self.server.db_path, destination=self.server.destination, create=False) as app:
                result = app.answer(name, *arguments)
        except AppError as error:
            return self._answer(503, {"detail": str(error)})
        if isinstance(result, Rejected):
            return self._answer(result.status, {"detail": result.reason})
        return self._answer(200, result.answer)

    do_GET = do_POST = do_PUT = _handle

    def _answer(self, status: int, answer: dict) -> None:
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format, *args):
        if self.server.log is not None:
            self.server.log(f"{self.address_string()} {format % args}")
