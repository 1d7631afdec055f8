"""SIGTERM and SIGINT stop a run cleanly: what was read is delivered and counted, the summary is printed."""
from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from conftest import ROOT, audit_rules


def order(n: int) -> str:
    return json.dumps({"type": "track", "event": "Order Completed", "messageId": f"m{n}",
                       "properties": {"order_id": f"o{n}"}}) + "\n"


def wait_for(check, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def lines(path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


@pytest.mark.parametrize("lanes", ["thread", "process"])
@pytest.mark.parametrize(("sent", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_while_waiting_for_input_delivers_what_was_read_and_prints_the_summary(tmp_path, sent, code, lanes):
    out, dead = tmp_path / "audit.ndjson", tmp_path / "dead.ndjson"
    rules = tmp_path / "rules.yaml"
    rules.write_text(audit_rules(out))
    process = subprocess.Popen([sys.executable, "-m", "engine", "run", str(rules), "--dead-letter", str(dead),
                                "--lanes", lanes],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    assert process.stdin is not None
    for n in range(100):
        process.stdin.write(order(n).encode())
    process.stdin.write(b'{"type": "bogus"}\nnot json\n')
    process.stdin.flush()
    # While the run waits for more input, what it has is delivered and dead-lettered: on disk, not in a buffer.
    wait_for(lambda: len(lines(out)) == 100 and len(lines(dead)) == 2)
    process.send_signal(sent)
    stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == code, stderr
    assert f"stopped by {signal.Signals(sent).name}" in stderr.decode()
    assert "every event accounted for" in stderr.decode()
    assert "Traceback" not in stderr.decode()
    assert [json.loads(line)["payload"]["data"]["id"] for line in lines(out)] == [f"o{n}" for n in range(100)]


def test_sigterm_with_workers_stops_the_workers_and_prints_the_summary(tmp_path):
    out, dead = tmp_path / "audit.ndjson", tmp_path / "dead.ndjson"
    rules = tmp_path / "rules.yaml"
    rules.write_text(audit_rules(out))
    process = subprocess.Popen([sys.executable, "-m", "engine", "run", str(rules), "--workers", "2",
                                "--dead-letter", str(dead)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, cwd=ROOT, start_new_session=True)
    assert process.stdin is not None
    # More than a chunk (about 1 MB) for the workers, and the pipe stays open: the run is waiting for more.
    def feed() -> None:
        with contextlib.suppress(BrokenPipeError):  # the run stops reading: that is the point
            process.stdin.write("".join(order(n) for n in range(100_000)).encode())
            process.stdin.flush()

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    wait_for(lambda: len(lines(out)) > 0, timeout=30)
    os.killpg(process.pid, signal.SIGTERM)  # what systemd does: every process of the group
    stdout, stderr = process.communicate(timeout=30)
    text = stderr.decode()
    assert process.returncode == 143, text
    assert "stopped by SIGTERM" in text and "every event accounted for" in text
    events_read = int(next(line.split()[-1] for line in text.splitlines() if line.startswith("events read")))
    assert 0 < events_read < 100_000
    assert len(lines(out)) == events_read  # every event read was delivered, and nothing more
