"""A scripted HTTP server on 127.0.0.1 and small helpers for the delivery tests.

``ScriptedServer`` answers from a queue of scripted replies: a status, headers, a body, a delay,
or closing the connection without answering. The ``scripted`` fixture lives in conftest.py.
"""
from __future__ import annotations

import json
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from engine.adapters.contract import AdapterContext
from engine.delivery import ManualClock, Retrier, RetryPolicy
from engine.model import ActionCall


@dataclass
class Reply:
    status: int = 200
    body: bytes | str | dict = b'{"ok": true}'
    headers: dict = field(default_factory=dict)
    delay: float = 0.0      # seconds to wait before answering
    hang_up: bool = False   # close the connection without answering
    close_after: bool = False  # answer, then close the connection without saying "Connection: close"


class ScriptedServer:
    """A real HTTP/1.1 (keep-alive) server; answers each request with the next reply for its path."""

    def __init__(self):
        self.requests: list[dict] = []
        self.scripts: dict[str | None, deque] = {}
        self.default = Reply()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out at once, no delayed-ACK stall

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                path = self.path.split("?")[0]
                server.requests.append({"method": self.command, "path": self.path, "headers": dict(self.headers),
                                        "raw": raw, "body": _json(raw), "port": self.client_address[1],
                                        "at": time.monotonic()})
                reply = server._next(path)
                if reply.delay:
                    time.sleep(reply.delay)
                if reply.hang_up:
                    self.close_connection = True
                    return
                body = reply.body
                if isinstance(body, dict):
                    body = json.dumps(body).encode()
                elif isinstance(body, str):
                    body = body.encode()
                self.send_response(reply.status)
                headers = {"Content-Type": "application/json", **reply.headers}
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                if reply.close_after:
                    self.close_connection = True

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

            def log_message(self, *args):
                pass

        self._server = _QuietServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02},
                                        daemon=True)
        self._thread.start()

    def script(self, *replies: Reply, path: str | None = None) -> "ScriptedServer":
        """Queue replies for ``path`` (or for any path); when a queue is empty, ``default`` answers."""
        self.scripts.setdefault(path, deque()).extend(replies)
        return self

    def _next(self, path: str) -> Reply:
        for key in (path, None):
            if self.scripts.get(key):
                return self.scripts[key].popleft()
        return self.default

    def to(self, path: str) -> list[dict]:
        return [r for r in self.requests if r["path"].split("?")[0] == path]

    def stop(self):
        self._server.shutdown()
        self._server.server_close()


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def handle_error(self, request, client_address):
        pass  # a client that gave up (timeout tests) makes the handler's write fail: expected


def _json(raw: bytes):
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None


def refused_url() -> str:
    """A URL on 127.0.0.1 where nothing listens (the connection is refused at once)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"


def fast_retrier(max_attempts: int = 5, **policy) -> Retrier:
    """The real retry loop with a clock that does not sleep (its waits are in ``.clock.sleeps``)."""
    return Retrier(RetryPolicy(max_attempts=max_attempts, **policy), clock=ManualClock())


def send_call(url: str, data=None, **payload) -> ActionCall:
    body = {"url": url, "method": "POST", **payload}
    if data is not None:
        body["data"] = data
    return ActionCall("hooks", "Orders", "send", body, "m-1")


# -- Sender -----------------------------------------------------------------------------------


def webhook_context(settings: dict, name: str = "hooks") -> AdapterContext:
    """What the pipeline opens a webhook adapter with, for tests that drive one directly."""
    return AdapterContext(name, "webhook", "http", settings)


def customerio_context(settings: dict, name: str = "customerio") -> AdapterContext:
    return AdapterContext(name, "customerio", "http", settings)
