"""``switchyard run --workers N``: the same accounting as one process, in order with --ordered, and it stops cleanly."""
from __future__ import annotations

import itertools
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from contextlib import closing

import pytest

from conftest import ROOT, switchyard
from engine.parallel import AHEAD, imap

EXAMPLES = ROOT / "examples" / "events.jsonl"


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """About 3 MB of events, several chunks' worth, with unreadable lines, invalid events and invalid payloads."""
    path = tmp_path_factory.mktemp("events") / "mixed.ndjson"
    extra = [b"not json at all", b'{"type": "track", "event": "Order Completed", oops', b'{"type": "bogus"}', b"[1, 2]",
             b'{"type": "page", "userId": "u1", "properties": {}}',  # Track Page View wants properties.url
             b'{"type": "track", "event": "Order Completed", "properties": {"order_id": "caf\xe9", "total": 1e400}}']
    lines = EXAMPLES.read_bytes().splitlines()
    with path.open("wb") as stream:
        for copy in range(20):
            stream.write(b"\n".join(lines + extra[copy % len(extra):]) + b"\n\n")
    return path


def run(*args, stdin: bytes | None = None, env=None) -> subprocess.CompletedProcess:
    """``switchyard run`` with its output as bytes."""
    return subprocess.run([sys.executable, "-m", "engine", "run", *map(str, args)], input=stdin, capture_output=True,
                          cwd=ROOT, env=env, timeout=120)


def dry_run(tmp_path, name: str, events, *options, stdin: bytes | None = None):
    """A --dry-run: (stdout bytes, summary, dead-letter lines)."""
    dead, summary = tmp_path / f"{name}.dead.ndjson", tmp_path / f"{name}.summary.json"
    result = run("rules/", *([events] if events else []), "--dry-run", "--dead-letter", dead, "--summary-json",
                 summary, *options, stdin=stdin)
    assert result.returncode == 0, result.stderr.decode()
    assert b"Traceback" not in result.stderr
    return result.stdout, json.loads(summary.read_text()), dead.read_bytes().splitlines() if dead.exists() else []


@pytest.fixture(scope="module")
def one_process(tmp_path_factory, mixed):
    """The --dry-run of one process over each input: what the workers must match."""
    tmp_path = tmp_path_factory.mktemp("one")
    return {"examples": dry_run(tmp_path, "examples", EXAMPLES), "mixed": dry_run(tmp_path, "mixed", mixed)}


@pytest.mark.parametrize("events", ["examples", "mixed"])
@pytest.mark.parametrize("workers", ["2", "3"])
def test_workers_account_for_every_event_as_one_process_does(tmp_path, mixed, one_process, events, workers):
    one_out, one_summary, one_dead = one_process[events]
    out, summary, dead = dry_run(tmp_path, "many", EXAMPLES if events == "examples" else mixed, "--workers", workers)
    assert summary == one_summary
    assert sorted(dead) == sorted(one_dead)
    assert sorted(out.splitlines()) == sorted(one_out.splitlines())
    if events == "mixed":
        kinds = {json.loads(line)["kind"] for line in dead}
        assert kinds == {"unreadable", "invalid_event", "invalid_payload"}
        assert summary["events"] > 5000


def test_ordered_output_is_byte_identical_to_one_process(tmp_path, mixed, one_process):
    one_out, _, one_dead = one_process["mixed"]
    out, _, dead = dry_run(tmp_path, "ordered", mixed, "--workers", "2", "--ordered")
    assert out == one_out
    assert dead == one_dead


SLOW_FIRST_RULES = """\
version: 1
destination:
  name: hooks
  catalog: webhook
  settings: {url: "https://hooks.example/in"}
mappings:
  - name: Backtracking
    trigger: properties.s matches "^(a+)+$"
    action: send
    fields:
      data: {n: properties.n}
  - name: Every track
    trigger: type = "track"
    action: send
    fields:
      data: {n: properties.n}
"""


def test_ordered_output_waits_for_a_slow_first_chunk(tmp_path, write_rules):
    """The first chunk takes far longer than the others (a regular expression that backtracks), yet comes first."""
    rules = write_rules(SLOW_FIRST_RULES)
    events = tmp_path / "events.ndjson"
    with events.open("w") as stream:
        stream.write(json.dumps({"type": "track", "properties": {"n": -1, "s": "a" * 23 + "!"}}) + "\n")
        for n in range(3500):
            stream.write(json.dumps({"type": "track", "properties": {"n": n, "padding": "x" * 900}}) + "\n")
    outputs = []
    for options in ([], ["--workers", "2", "--ordered"]):
        result = run(rules, events, "--dry-run", "--dead-letter", tmp_path / "dead.ndjson", *options)
        assert result.returncode == 0, result.stderr.decode()
        outputs.append(result.stdout)
    assert outputs[1] == outputs[0]
    assert [json.loads(line)["payload"]["data"]["n"] for line in outputs[1].splitlines()] == list(range(-1, 3500))


def test_workers_read_stdin_and_json_arrays(tmp_path):
    lines = EXAMPLES.read_bytes()
    array = json.dumps([json.loads(line) for line in lines.splitlines()[:40] if line.startswith(b"{")]).encode()
    for name, stdin in (("ndjson", lines), ("array", array)):
        one = dry_run(tmp_path, f"{name}-one", None, stdin=stdin)
        many = dry_run(tmp_path, f"{name}-many", None, "--workers", "2", "--ordered", stdin=stdin)
        assert many == one
        assert one[1]["events"] > 0


def test_ordered_deliveries_match_one_process(tmp_path):
    """The embedded workspace and the CRM outbox get the same calls in the same order, refusals included."""
    events = tmp_path / "events.ndjson"
    events.write_bytes(EXAMPLES.read_bytes() * 10)
    outcomes = {}
    for name, options in (("one", []), ("ordered", ["--workers", "2", "--ordered"])):
        env = {**os.environ, "CRM_OUTBOX": str(tmp_path / f"{name}.crm.ndjson")}
        result = run("rules/", events, "--workspace", tmp_path / f"{name}.db", "--dead-letter",
                     tmp_path / f"{name}.dead.ndjson", "--summary-json", tmp_path / f"{name}.json", *options, env=env)
        assert result.returncode == 1, result.stderr.decode()  # the story's refused call, ten times
        people = json.loads(switchyard("workspace", "people", "--db", tmp_path / f"{name}.db", "--json").stdout)
        outcomes[name] = (json.loads((tmp_path / f"{name}.json").read_text()),
                          (tmp_path / f"{name}.crm.ndjson").read_bytes(),
                          sorted((tmp_path / f"{name}.dead.ndjson").read_bytes().splitlines()),
                          [{key: value for key, value in person.items() if key != "created_at"} for person in people])
    assert outcomes["ordered"] == outcomes["one"]
    summary = outcomes["one"][0]
    assert sum(summary["refused"].values()) > 0 and sum(summary["delivered"].values()) > 1000


@pytest.mark.parametrize("value, message", [("0", "needs at least 1 process, got 0"),
                                            ("-2", "needs at least 1 process, got -2"),
                                            ("two", "expected a number of processes, got 'two'")])
def test_workers_must_be_a_positive_number(tmp_path, value, message):
    result = run("rules/", EXAMPLES, "--dry-run", "--dead-letter", tmp_path / "d", "--workers", value)
    assert result.returncode == 2
    assert f"argument --workers: {message}" in result.stderr.decode()
    assert result.stdout == b"" and not (tmp_path / "d").exists()


def test_more_workers_than_processors(tmp_path, one_process):
    many = dry_run(tmp_path, "many", EXAMPLES, "--workers", str((os.cpu_count() or 1) + 3), "--ordered")
    assert many == one_process["examples"]


def _workers_of(pid: int, count: int) -> list[int]:
    """The pids of the ``count`` worker processes of ``pid``, once they are all there."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        children = []
        for entry in os.listdir("/proc"):
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
            except (OSError, ValueError):
                continue
            if int(fields[1]) == pid and fields[0] != "Z":
                children.append(int(entry))
        if len(children) >= count:
            return children
        time.sleep(0.02)
    raise AssertionError(f"no {count} workers appeared")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _streaming_run(tmp_path) -> subprocess.Popen:
    """A two-worker run reading stdin, started on a few chunks of events and waiting for more."""
    process = subprocess.Popen([sys.executable, "-m", "engine", "run", "rules/", "--dry-run", "--workers", "2",
                                "--dead-letter", str(tmp_path / "dead.ndjson")], stdin=subprocess.PIPE,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT, start_new_session=True)
    process.stdin.write(EXAMPLES.read_bytes() * 10)
    process.stdin.flush()
    return process


def test_a_worker_that_dies_stops_the_run_with_an_error(tmp_path):
    process = _streaming_run(tmp_path)
    try:
        victim = _workers_of(process.pid, 2)[0]
        os.kill(victim, signal.SIGKILL)
        try:
            process.stdin.write(EXAMPLES.read_bytes() * 10)
            process.stdin.close()
        except BrokenPipeError:  # it already stopped
            pass
        err = process.stderr.read().decode()
        assert process.wait(timeout=60) == 1
    finally:
        process.kill()
    assert "switchyard: a worker process died unexpectedly; the run stopped before the end" in err
    assert "Traceback" not in err


def test_ctrl_c_stops_the_workers_and_says_so(tmp_path):
    process = _streaming_run(tmp_path)
    try:
        workers = _workers_of(process.pid, 2)
        os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: every process of the group
        err = process.communicate(timeout=60)[1].decode()
        assert process.returncode == 130
    finally:
        process.kill()
    assert "stopped by SIGINT" in err and "every event accounted for" in err and "Traceback" not in err
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not any(_alive(pid) for pid in workers)



def test_the_workers_end_with_a_run_killed_with_sigkill(tmp_path):
    """A killed run cannot stop its workers; they end on their own rather than wait for ever."""
    process = subprocess.Popen([sys.executable, "-m", "engine", "run", "rules/", "--workers", "2",
                                "--workspace", str(tmp_path / "w.db"), "--dead-letter", str(tmp_path / "dead.ndjson")],
                               stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    try:
        process.stdin.write(EXAMPLES.read_bytes() * 10)  # and more may come: the run waits for it
        process.stdin.flush()
        workers = _workers_of(process.pid, 2)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    finally:
        process.kill()
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not any(_alive(pid) for pid in workers)


def test_work_is_taken_from_the_input_only_as_results_come_back():
    """An endless input can be worked through: no more than AHEAD x workers chunks are ever taken ahead."""
    taken = []

    def endless():
        for number in itertools.count():
            taken.append(number)
            yield number

    with closing(imap(lambda number: number * number, endless(), 2, ordered=True)) as results:
        for number, result in zip(range(50), results):
            assert result == number * number
            assert len(taken) <= number + 1 + AHEAD * 2


def test_results_come_as_they_are_done_unless_ordered():
    released = multiprocessing.get_context("fork").Event()

    def first_waits(number):
        if number == 0:
            released.wait(timeout=60)
        return number

    with closing(imap(first_waits, iter(range(6)), 3, ordered=False)) as results:
        first = next(results)  # while the first chunk is still being worked on
        released.set()
        unordered = [first, *results]
    released.clear()
    threading.Timer(0.2, released.set).start()
    with closing(imap(first_waits, iter(range(6)), 3, ordered=True)) as results:
        ordered = list(results)
    assert first != 0 and sorted(unordered) == list(range(6))
    assert ordered == list(range(6))


@pytest.mark.parametrize("change", ["truncated", "renamed away", "replaced"])
def test_a_file_changed_under_the_workers_gives_what_was_read(tmp_path, mixed, one_process, change):
    """Workers read a file's lines where they lie; when the file no longer holds them there, the main
    process evaluates what it read. Here it read the whole file before any worker began."""
    import io

    import engine
    from engine.deadletter import DeadLetter
    from engine.events import read_parts
    from engine.run import Progress
    from engine.run import run as run_events

    path = tmp_path / "events.ndjson"
    path.write_bytes(mixed.read_bytes())
    with open(path, "rb") as stream:
        parts = list(read_parts(stream, str(mixed)))  # named as the file the one process read
    if change == "truncated":
        os.truncate(path, 0)
    elif change == "renamed away":  # the reader closed it: nothing open leads to it but its new name
        os.replace(path, tmp_path / "events.ndjson.1")
    else:
        (tmp_path / "new.ndjson").write_bytes(b'{"type": "identify", "userId": "someone else"}\n' * 50_000)
        os.replace(tmp_path / "new.ndjson", path)
    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    summary = run_events(engine.load("rules/"), iter(parts), dry_run=True, out=out, progress=Progress(),
                         dead_letter=DeadLetter(str(tmp_path / "dead.ndjson")), workers=2, ordered=True)
    out.flush()
    expected_output, expected_summary, _ = one_process["mixed"]
    assert out.buffer.getvalue() == expected_output  # type: ignore[attr-defined]
    assert summary.events == expected_summary["events"] and summary.accounted
