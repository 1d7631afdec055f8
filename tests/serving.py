"""A ``switchyard serve`` process for tests: started on a free port, waited for, stopped with a signal."""
from __future__ import annotations

import base64
import gzip
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


_running: list[subprocess.Popen] = []


def stop_all() -> None:
    """Kill every server a test left running (a test that failed half-way); for an autouse fixture."""
    while _running:
        process = _running.pop()
        if process.poll() is None:
            process.kill()
            process.wait(10)


@pytest.fixture(autouse=True)
def no_server_left_running():
    """Kill every server a test left running; a test module imports it to use it for each of its tests."""
    yield
    stop_all()


class Served:
    """One server process; ``url`` is its base URL."""

    def __init__(self, rules, folder: Path, *args, env=None, port: int | None = None):
        self.rules, self.folder, self.args, self.env = rules, Path(folder), [str(a) for a in args], env
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workspace = self.folder / "workspace.db"
        self.log = self.folder / "serve.log"
        self.process: subprocess.Popen | None = None

    def start(self) -> Served:
        command = [sys.executable, "-m", "engine.serve", str(self.rules), "--port", str(self.port),
                   "--spool", str(self.folder / "spool"), "--workspace", str(self.workspace),
                   "--dead-letter", str(self.folder / "deadletter.ndjson"), *self.args]
        self.process = subprocess.Popen(command, cwd=ROOT, env=self.env, stdout=subprocess.DEVNULL,
                                        stderr=open(self.log, "ab"))
        _running.append(self.process)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"serve exited with {self.process.returncode}:\n{self.log.read_text()}")
            try:
                if self.get("/ready")[0] == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"serve did not get ready:\n{self.log.read_text()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout)

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()  # SIGKILL: no handler runs
        self.process.wait(10)

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=10) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def post(self, path: str, body, *, headers: dict | None = None, key: str | None = None,
             compress: bool = False, method: str = "POST") -> tuple[int, dict, dict]:
        """POST ``body`` (an object is sent as JSON); returns (status, headers, JSON answer)."""
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers = {"Content-Type": "application/json", **(headers or {})}
        if key is not None:
            headers["Authorization"] = "Basic " + base64.b64encode(f"{key}:".encode()).decode()
        if compress:
            data, headers["Content-Encoding"] = gzip.compress(data), "gzip"
        request = urllib.request.Request(self.url + path, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status, answer, raw = response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as error:
            status, answer, raw = error.code, dict(error.headers), error.read()
        return status, answer, json.loads(raw) if raw else {}

    def metric(self, name: str) -> float:
        """The sum of a metric's samples whose line starts with ``name``."""
        text = self.get("/metrics")[1].decode()
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))

    def wait_delivered(self, count: int, timeout: float = 120) -> None:
        """Wait until ``count`` calls are settled (any outcome) and the spool is empty."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.metric("switchyard_calls_total") >= count and self.metric("switchyard_spool_depth") == 0:
                return
            time.sleep(0.1)
        raise AssertionError(f"not delivered: {self.get('/metrics')[1].decode()}")


def workspace_event_ids(db: Path, destination: str = "customerio") -> list[str]:
    with sqlite3.connect(db) as connection:
        return [row[0] for row in connection.execute(f"SELECT event_id FROM {destination}__events ORDER BY pk")]


def env_without_proxy() -> dict:
    return {key: value for key, value in os.environ.items() if "proxy" not in key.lower()}


def hook_rules(tmp_path: Path, hook_url: str, *, timeout: float, breaker: bool = True) -> Path:
    """A rules folder: the Customer.io pack into the workspace, and a webhook ``hook`` at ``hook_url``
    tried once a call (``breaker``: with its circuit breaker; off, every call reaches the server)."""
    folder = tmp_path / "rules"
    folder.mkdir(exist_ok=True)
    (folder / "customerio.yaml").write_text((ROOT / "rules" / "customerio.yaml").read_text())
    no_breaker = "" if breaker else "\n    circuit_breaker: {failures: 0}"
    (folder / "hook.yaml").write_text(f"""
version: 1
destination:
  name: hook
  catalog: webhook
  transport: http
  settings:
    url: {hook_url}
    timeout: {timeout}
    max_attempts: 1{no_breaker}
mappings:
  - name: Every track
    trigger: type = "track"
    action: send
    fields:
      data:
        user: userId
        n: properties.n
""")
    return folder


def track(number: int, users: int = 3) -> dict:
    """A track event numbered ``number`` (``properties.n``), of one of ``users`` people."""
    return {"type": "track", "userId": f"u{number % users}", "event": "Clicked", "messageId": f"m-{number}",
            "properties": {"n": number}}


def wait(condition, timeout: float = 30) -> None:
    """Wait until ``condition()`` holds; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
