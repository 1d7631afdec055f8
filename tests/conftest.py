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
import yaml

ROOT = Path(__file__).resolve().parent.parent

# The suite starts the CLI in many processes: let them (and pytest's rewritten test modules) keep their
# bytecode, as Python does by default, even where the environment says not to write it.
sys.dont_write_bytecode = False
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)

def audit_rules(out: Path) -> str:
    """A rule file that writes each "Order Completed" event's order id to the file ``out`` (transport: file)."""
    return _AUDIT_RULES.format(out=out)


_AUDIT_RULES = """\
version: 1
destination:
  name: audit
  catalog: webhook
  transport: file
  settings: {{path: "{out}"}}
mappings:
  - name: Orders
    trigger: event = "Order Completed"
    action: send
    fields:
      url: "'http://example.invalid/orders'"
      data: {{id: properties.order_id}}
"""

_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml(path: Path):
    """A case file, as ``yaml.safe_load`` reads it, with libyaml's faster loader where it can: libyaml
    refuses the escape of a lone surrogate (``"\\udfff"``), which some cases hold."""
    text = path.read_text(encoding="utf-8")
    try:
        return yaml.load(text, Loader=_SAFE_LOADER)
    except yaml.YAMLError:
        return yaml.safe_load(text)

# Switchyard's cache (engine/cache.py) lives in a directory of this test session, not the user's;
# the processes tests start inherit it.
_CACHE = tempfile.mkdtemp(prefix="switchyard-test-cache-")
os.environ["SWITCHYARD_CACHE_DIR"] = _CACHE


def pytest_xdist_auto_num_workers(config):
    """``-n auto``: two workers a core, since many tests spend their time waiting on servers and processes."""
    return 2 * (os.cpu_count() or 1)


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


def switchyard(*args, stdin: str | None = None, cwd=None, env=None, process: bool = False
               ) -> subprocess.CompletedProcess:
    """Run the CLI as a user would: ``python -m engine`` in a process of its own when the test gives an
    environment or a folder (or asks for a process), else ``engine.cli.main`` in this one, with its own
    stdin, stdout and stderr, which is the same code without a second of start-up per call."""
    if process or env is not None or cwd is not None:
        return subprocess.run([sys.executable, "-m", "engine", *map(str, args)], input=stdin, capture_output=True,
                              text=True, cwd=cwd or ROOT, env=env, timeout=60)
    return _in_process([str(arg) for arg in args], stdin)


def _in_process(argv: list[str], stdin: str | None) -> subprocess.CompletedProcess:
    import contextlib
    import io
    import traceback

    from engine.cli import main

    out, err = io.BytesIO(), io.BytesIO()
    stdout = io.TextIOWrapper(out, encoding="utf-8", write_through=True)
    stderr = io.TextIOWrapper(err, encoding="utf-8", write_through=True)
    given = io.TextIOWrapper(io.BytesIO((stdin or "").encode("utf-8")), encoding="utf-8")
    previous = os.getcwd()
    saved = sys.stdin, sys.stdout, sys.stderr
    os.chdir(ROOT)
    sys.stdin, sys.stdout, sys.stderr = given, stdout, stderr
    try:
        code = main(argv)
    except SystemExit as exit:  # argparse's usage errors and --help
        code = exit.code if isinstance(exit.code, int) else (0 if exit.code is None else 1)
    except Exception:  # noqa: BLE001 - what a user would see: a traceback and exit 1
        traceback.print_exc(file=stderr)
        code = 1
    finally:
        with contextlib.suppress(ValueError):
            stdout.flush()
            stderr.flush()
        sys.stdin, sys.stdout, sys.stderr = saved
        os.chdir(previous)
    return subprocess.CompletedProcess(["switchyard", *argv], code, out.getvalue().decode("utf-8", "replace"),
                                       err.getvalue().decode("utf-8", "replace"))


def need_pyspark() -> None:
    """Skip the calling test without pyspark (the `spark` extra); fail instead where CI requires it."""
    if os.environ.get("SWITCHYARD_REQUIRE_SPARK"):
        import pyspark  # noqa: F401  - CI: a missing pyspark is a failure, not a skip
    else:
        pytest.importorskip("pyspark")


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
