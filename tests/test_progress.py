"""The progress line appears on long runs only when stderr is a terminal."""
from __future__ import annotations

import json
import os
import pty
import subprocess
import sys

from conftest import ROOT

EVENTS = "\n".join(json.dumps({"type": "track", "event": "Order Completed", "properties": {"order_id": i}})
                   for i in range(60000)) + "\n"


def _run(stderr_is_tty: bool, tmp_path) -> str:
    command = [sys.executable, "-m", "engine", "run", "rules/", "--dry-run", "--dead-letter", str(tmp_path / "d")]
    if not stderr_is_tty:
        return subprocess.run(command, input=EVENTS, capture_output=True, text=True, cwd=ROOT).stderr
    leader, follower = pty.openpty()
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=follower, cwd=ROOT)
    os.close(follower)
    process.stdin.write(EVENTS.encode())
    process.stdin.close()
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    process.wait(timeout=120)
    os.close(leader)
    return b"".join(chunks).decode()


def test_progress_on_a_terminal(tmp_path):
    out = _run(True, tmp_path)
    assert " events  (" in out and "/s)" in out
    assert "every event accounted for" in out


def test_no_progress_when_stderr_is_a_file(tmp_path):
    out = _run(False, tmp_path)
    assert " events  (" not in out
    assert "events read            60000" in out
