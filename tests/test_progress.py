"""The progress line: on stderr during long runs, only when stderr is a terminal, whatever the machine's speed."""
from __future__ import annotations

import io
import json
import os
import pty
import re
import subprocess
import sys
import time

from conftest import ROOT
from engine.loader import compile_paths
from engine.run import DeadLetter, Progress, run

PROGRESS = re.compile(r"\r  ([\d,]+) events  \(([\d,]+)/s\)")


class Terminal(io.StringIO):
    """A stream that says it is a terminal, and keeps what was written to it."""

    def isatty(self) -> bool:
        return True


def shown(stream) -> list[int]:
    """The event counts the progress line showed, in order."""
    return [int(count.replace(",", "")) for count, _ in PROGRESS.findall(stream.getvalue())]


def test_the_line_shows_the_count_once_the_interval_has_passed():
    terminal = Terminal()
    progress = Progress(terminal, every=0)
    progress.tick(255)
    assert terminal.getvalue() == ""
    for count in range(256, 1025):
        progress.tick(count)
    assert shown(terminal) == [256, 512, 768, 1024]  # the clock is read every 256 events, not each one


def test_the_line_follows_counts_that_jump_by_a_chunk():
    """With --workers the count grows a chunk of events at a time."""
    terminal = Terminal()
    progress = Progress(terminal, every=0)
    for count in (1049, 2098, 2500):
        progress.tick(count)
    assert shown(terminal) == [1049, 2098, 2500]


def test_the_line_waits_for_the_interval():
    terminal = Terminal()
    progress = Progress(terminal, every=3600)
    for count in range(1, 100_000, 100):
        progress.tick(count)
    assert terminal.getvalue() == ""


def test_done_wipes_the_line_only_when_one_was_shown():
    terminal = Terminal()
    progress = Progress(terminal, every=0)
    progress.done()
    assert terminal.getvalue() == ""
    progress.tick(256)
    progress.done()
    assert terminal.getvalue().endswith("\r" + " " * 60 + "\r")


def test_no_line_when_the_stream_is_not_a_terminal():
    stream = io.StringIO()
    progress = Progress(stream, every=0)
    for count in range(1, 2000):
        progress.tick(count)
    progress.done()
    assert stream.getvalue() == ""


def _slow_run(tmp_path, stderr) -> subprocess.Popen:
    """A run that is still going more than half a second after it started, however fast the machine.

    The first line is unreadable: once the dead-letter file exists the run has begun, and the events
    are sent only 0.6 s later.
    """
    dead = tmp_path / "dead.ndjson"
    command = [sys.executable, "-m", "engine", "run", "rules/", "--dry-run", "--dead-letter", str(dead)]
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=stderr, cwd=ROOT)
    process.stdin.write(b"not an event\n")
    process.stdin.flush()
    deadline = time.monotonic() + 60
    while not dead.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.6)
    process.stdin.write(b"".join(json.dumps({"type": "track", "event": "Order Completed", "messageId": f"m{i}",
                                             "properties": {"order_id": i}}).encode() + b"\n" for i in range(1000)))
    process.stdin.close()
    return process


def test_a_long_run_on_a_terminal_shows_the_line(tmp_path):
    leader, follower = pty.openpty()
    process = _slow_run(tmp_path, follower)
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the run ended and closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    process.wait(timeout=60)
    os.close(leader)
    out = b"".join(chunks).decode()
    assert PROGRESS.search(out), out
    assert "events read            1000" in out and "every event accounted for" in out


def test_a_long_run_into_a_file_shows_no_line(tmp_path):
    process = _slow_run(tmp_path, subprocess.PIPE)
    err = process.stderr.read().decode()
    process.wait(timeout=60)
    assert " events  (" not in err
    assert "events read            1000" in err and "unreadable lines       1" in err


def test_a_run_with_workers_shows_the_line_as_chunks_are_done(tmp_path):
    rules, _ = compile_paths([str(ROOT / "rules")])

    def events():
        for i in range(3000):
            if i == 1500:
                time.sleep(0.6)  # the run is still going after the interval, however fast the machine
            yield f"events:{i + 1}", {"type": "track", "event": "Order Completed", "properties": {"order_id": i}}

    terminal = Terminal()
    summary = run(rules, events(), dry_run=True, out=io.StringIO(), dead_letter=DeadLetter(None),
                  progress=Progress(terminal, every=0.3), workers=2)
    assert summary.events == 3000
    counts = shown(terminal)
    assert counts and counts == sorted(set(counts)) and counts[-1] <= 3000
