"""Shared fixtures: a real HTTP server on 127.0.0.1 and helpers to write rule files."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Switchyard's cache (engine/cache.py) lives in a directory of this test session, not the user's;
# the processes tests start inherit it.
_CACHE = tempfile.mkdtemp(prefix="switchyard-test-cache-")
os.environ["SWITCHYARD_CACHE_DIR"] = _CACHE


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_CACHE, ignore_errors=True)


class Recorder:
    """What a test HTTP server received, and what it should answer next."""

    def __init__(self):
        self.requests = []
        self.status = 200
        self.body = b'{"ok": true}'


@pytest.fixture
def http_server():
    """A real HTTP server on an ephemeral port; yields (base_url, recorder)."""
    recorder = Recorder()

    class Handler(BaseHTTPRequestHandler):
        def _handle(self):
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            recorder.requests.append({
                "method": self.command, "path": self.path, "headers": dict(self.headers),
                "body": json.loads(raw) if raw else None,
            })
            self.send_response(recorder.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(recorder.body)))
            self.end_headers()
            self.wfile.write(recorder.body)

        do_POST = do_PUT = do_PATCH = do_DELETE = _handle

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", recorder
    finally:
        server.shutdown()
        server.server_close()


def switchyard(*args, stdin: str | None = None, cwd=None, env=None) -> subprocess.CompletedProcess:
    """Run the real CLI as a user would (``python -m engine``)."""
    return subprocess.run([sys.executable, "-m", "engine", *map(str, args)], input=stdin, capture_output=True,
                          text=True, cwd=cwd or ROOT, env=env, timeout=60)


@pytest.fixture
def write_rules(tmp_path):
    """Write a rule file into a fresh directory; returns its path."""
    def write(text: str, name: str = "rules.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path
    return write


@pytest.fixture
def scripted():
    """A ScriptedServer (tests/scripted_server.py) that answers from a queue of scripted replies."""
    from scripted_server import ScriptedServer

    server = ScriptedServer()
    try:
        yield server
    finally:
        server.stop()
