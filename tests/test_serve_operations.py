"""Running ``switchyard serve``: a hung destination, back-pressure, stopping and reloading."""
from __future__ import annotations

import json
import signal
import time

import pytest
from hooks import Hook

from conftest import ROOT
from serving import Served, hook_rules, no_server_left_running, track, wait, workspace_event_ids  # noqa: F401  (an autouse fixture)

PACK = (ROOT / "rules" / "customerio.yaml").read_text()


@pytest.fixture
def hook():
    hook = Hook(held=True)
    yield hook
    hook.close()








def test_a_hung_destination_holds_back_only_itself_and_its_backlog_waits_in_the_spool(tmp_path, hook):
    server = Served(hook_rules(tmp_path, hook.url, timeout=30), tmp_path, "--stop-deadline", "1").start()
    assert server.post("/v1/batch", {"batch": [track(n) for n in range(40)]})[0] == 200
    wait(lambda: len(workspace_event_ids(server.workspace)) == 40)  # the workspace goes on
    assert server.metric('switchyard_calls_total{destination="hook"') == 0
    assert server.metric("switchyard_spool_depth") == 40
    assert server.stop() == 0  # stops within the deadline although a delivery hangs
    assert hook.received == []

    hook.release()  # the destination is back: a restart delivers the backlog from the spool
    server.start()
    wait(lambda: len(hook.received) == 40)
    received = [body["n"] for body in hook.received]
    assert sorted(received) == list(range(40))
    for person in range(3):  # each person's calls in the order they were sent (the guarantee is per person)
        assert [n for n in received if n % 3 == person] == list(range(person, 40, 3))
    wait(lambda: server.metric("switchyard_spool_depth") == 0)
    assert server.stop() == 0
    assert len(workspace_event_ids(server.workspace)) == 40  # nothing applied twice


def test_a_full_spool_answers_429_with_retry_after_then_takes_events_again(tmp_path, hook):
    server = Served(hook_rules(tmp_path, hook.url, timeout=30), tmp_path, "--max-spool-events", "30",
                    "--retry-after", "2").start()
    assert server.post("/v1/batch", {"batch": [track(n) for n in range(20)]})[0] == 200
    assert server.post("/v1/batch", {"batch": [track(n) for n in range(20, 40)]})[0] == 200
    time.sleep(0.1)  # the spool's fill is looked at every 50 ms
    status, headers, answer = server.post("/v1/batch", {"batch": [track(n) for n in range(40, 60)]})
    assert (status, answer["code"], headers["retry-after"]) == (429, "spool_full", "2")
    assert "30" in answer["message"]
    hook.release()
    wait(lambda: server.metric("switchyard_spool_depth") == 0)
    time.sleep(0.1)
    assert server.post("/v1/batch", {"batch": [track(n) for n in range(40, 60)]})[0] == 200
    wait(lambda: len(hook.received) == 60)
    assert server.stop() == 0


def padded(number: int, pad: int) -> dict:
    return {**track(number), "properties": {"n": number, "pad": "x" * pad}}


def test_a_spool_past_its_byte_limit_takes_events_again_once_they_are_delivered(tmp_path, hook):
    """The limit counts the data the spool holds: its files keep their largest size (free pages, the WAL), and
    counting those refused every request after the first time the limit was reached, until a restart."""
    server = Served(hook_rules(tmp_path, hook.url, timeout=30), tmp_path, "--max-spool-bytes", "2000000",
                    "--retry-after", "1").start()
    number, status = 0, 200
    while status == 200:
        status, _, answer = server.post("/v1/batch", {"batch": [padded(number + n, 4000) for n in range(100)]})
        number += 100
        assert number < 2000, "the limit was never reached"
        time.sleep(0.06)  # the limits are looked at every 50 ms
    assert (status, answer["code"]) == (429, "spool_full") and "--max-spool-bytes" in answer["message"]
    hook.release()
    wait(lambda: server.metric("switchyard_spool_depth") == 0)
    wait(lambda: server.post("/v1/batch", {"batch": [padded(number, 10)]})[0] == 200, timeout=10)
    assert server.stop() == 0


def test_requests_arriving_together_go_past_the_event_limit_by_one_batch_at_most(tmp_path, hook):
    from concurrent.futures import ThreadPoolExecutor

    server = Served(hook_rules(tmp_path, hook.url, timeout=30), tmp_path, "--max-spool-events", "300").start()

    def client(first: int) -> int:
        taken = 0
        for start in range(first, first + 2000, 100):
            if server.post("/v1/batch", {"batch": [track(n) for n in range(start, start + 100)]})[0] != 200:
                break
            taken += 100
        return taken

    with ThreadPoolExecutor(8) as pool:
        taken = sum(pool.map(client, range(0, 16_000, 2000)))
    assert 300 <= taken < 400 and server.metric("switchyard_spool_depth") == taken
    hook.release()
    assert server.stop() == 0


def test_sighup_reloads_the_rules_and_a_broken_change_keeps_the_old_ones(tmp_path):
    rules = tmp_path / "customerio.yaml"
    rules.write_text(PACK)
    server = Served(rules, tmp_path, "--log-format", "json").start()

    rules.write_text(PACK.replace('trigger: type = "identify"', 'trigger: type = "identify" and'))
    server.process.send_signal(signal.SIGHUP)
    wait(lambda: "the rules were not changed" in server.log.read_text())
    lines = [json.loads(line) for line in server.log.read_text().splitlines()]
    problems = [line["message"] for line in lines if line["level"] == "error"]
    assert any(f"{rules}:" in message and " error " in message for message in problems), problems
    assert server.post("/v1/batch", {"batch": [track(1)]})[0] == 200
    wait(lambda: workspace_event_ids(server.workspace) == ["m-1"])  # the old rules still deliver

    rules.write_text(PACK.replace('    trigger: |\n      type = "track"\n', '    trigger: |\n      type = "track" '
                                  'and properties.n > 1\n', 1))
    server.process.send_signal(signal.SIGHUP)
    wait(lambda: "reload: rules loaded" in server.log.read_text())
    assert server.post("/v1/batch", {"batch": [track(0), track(2)]})[0] == 200
    wait(lambda: server.metric("switchyard_spool_depth") == 0)
    time.sleep(0.2)
    assert workspace_event_ids(server.workspace) == ["m-1", "m-2"]  # n = 0 no longer matches
    assert server.stop() == 0


def test_reloads_leave_no_descriptor_behind(tmp_path):
    """Each reload starts the embedded store's delivery process again; the old one's pipes are closed."""
    import os

    rules = tmp_path / "customerio.yaml"
    rules.write_text(PACK)
    server = Served(rules, tmp_path).start()
    descriptors = f"/proc/{server.process.pid}/fd"

    def reload(times: int) -> int:
        for _ in range(times):
            done = server.log.read_text().count("reload: rules loaded")
            server.process.send_signal(signal.SIGHUP)
            wait(lambda done=done: server.log.read_text().count("reload: rules loaded") > done)
        time.sleep(0.3)
        return len(os.listdir(descriptors))

    first = reload(1)
    assert reload(4) == first
    assert server.post("/v1/batch", {"batch": [track(1)]})[0] == 200
    wait(lambda: workspace_event_ids(server.workspace) == ["m-1"])
    assert server.stop() == 0


def test_sigint_stops_with_exit_code_zero_and_the_spool_keeps_what_was_not_delivered(tmp_path, hook):
    server = Served(hook_rules(tmp_path, hook.url, timeout=30), tmp_path, "--stop-deadline", "0.5").start()
    assert server.post("/v1/batch", {"batch": [track(n) for n in range(5)]})[0] == 200
    assert server.stop(signal.SIGINT) == 0
    assert "deliveries not settled by the deadline stay in the spool" in server.log.read_text()


def test_reload_watches_the_rule_files(tmp_path):
    rules = tmp_path / "customerio.yaml"
    rules.write_text(PACK)
    server = Served(rules, tmp_path, "--reload").start()
    time.sleep(1.1)  # the watcher compares modification times once a second
    rules.write_text(PACK.replace("action: trackEvent", "action: trackEvent\n    enabled: false", 1))
    wait(lambda: "reload: rules loaded" in server.log.read_text())
    assert server.post("/v1/batch", {"batch": [track(1)]})[0] == 200
    wait(lambda: server.metric("switchyard_spool_depth") == 0)
    time.sleep(0.2)
    assert workspace_event_ids(server.workspace) == []  # the mapping was switched off
    assert server.stop() == 0


def test_a_port_already_taken_ends_the_server_with_its_store_process(tmp_path):
    import socket
    import subprocess
    import sys

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    try:
        # The workspace's calls are applied in a process of its own, which ignores SIGTERM; the server must
        # still close it and exit when uvicorn cannot listen, not wait on it for ever.
        process = subprocess.run([sys.executable, "-m", "engine.serve", str(ROOT / "rules" / "customerio.yaml"),
                                  "--port", str(port), "--lanes", "process", "--spool", str(tmp_path / "spool"),
                                  "--workspace", str(tmp_path / "w.db"), "--dead-letter", str(tmp_path / "dead")],
                                 cwd=ROOT, capture_output=True, text=True, timeout=60)
    finally:
        taken.close()
    assert process.returncode != 0
    assert "address already in use" in process.stderr.lower()
    assert "stopped" in process.stderr  # deliveries were stopped in order on the way out


def test_a_secret_a_refusing_destination_echoes_is_masked_in_serve_s_dead_letter_file(tmp_path, scripted):
    """serve wrote its dead letters with no secrets to mask: a key the answer quoted was kept in clear."""
    import os

    from scripted_server import Reply

    scripted.default = Reply(400, {"detail": "bad key Bearer SECRETKEY123456 (SECRETKEY123456)"})
    rules = tmp_path / "hook.yaml"
    rules.write_text(f"""
version: 1
destination:
  name: hook
  catalog: webhook
  settings: {{url: "{scripted.url}/hook", max_attempts: 1, headers: {{Authorization: "Bearer ${{HOOK_TOKEN}}"}}}}
mappings:
  - {{name: Send, trigger: type = "track", action: send, fields: {{data: {{e: event}}}}}}
""")
    server = Served(rules, tmp_path, env={**os.environ, "HOOK_TOKEN": "SECRETKEY123456"}).start()
    assert server.post("/v1/batch", {"batch": [track(0)]})[0] == 200
    dead = tmp_path / "deadletter.ndjson"
    wait(lambda: dead.exists() and dead.read_text().count("\n") == 1)
    (record,) = [json.loads(line) for line in dead.read_text().splitlines()]
    assert record["outcome"] == "refused" and "bad key ********" in record["body"]
    assert "SECRETKEY123456" not in dead.read_text()
    assert server.stop() == 0
