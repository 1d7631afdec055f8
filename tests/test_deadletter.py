"""The dead-letter file: checked before the first event, and a write that fails stops the run, saying so."""
from __future__ import annotations

import json
import os

import pytest

from conftest import audit_rules, switchyard

EVENTS = "\n".join([json.dumps({"type": "track", "event": "Order Completed"}), '{"type": "bogus"}', "not json"])


@pytest.mark.parametrize("where", ["a folder", "a missing folder"])
def test_an_unusable_dead_letter_path_stops_before_the_first_event(tmp_path, where):
    rules = tmp_path / "rules.yaml"
    out = tmp_path / "out.ndjson"
    rules.write_text(audit_rules(out))
    path = tmp_path if where == "a folder" else tmp_path / "nowhere" / "dead.ndjson"
    result = switchyard("run", rules, "--dead-letter", path, stdin=EVENTS)
    assert result.returncode == 2
    assert "dead-letter" in result.stderr and "Traceback" not in result.stderr
    assert not out.exists() or out.read_text() == ""


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_a_full_disk_for_the_dead_letter_file_stops_the_run_with_a_summary(tmp_path):
    rules = tmp_path / "rules.yaml"
    rules.write_text(audit_rules(tmp_path / "out.ndjson"))
    result = switchyard("run", rules, "--dead-letter", "/dev/full", stdin=EVENTS)
    assert result.returncode == 1
    assert "STOPPED: cannot write the dead-letter file /dev/full" in result.stderr
    assert "record(s) were not written" in result.stderr and "Traceback" not in result.stderr
    assert "every event accounted for" not in result.stderr and "of their dead-letter records are not in the file" \
        in result.stderr


@pytest.mark.parametrize("event", [
    {"type": "track", "userId": "u1", "properties": {"n": 123456789012345678901234567890}},  # beyond 64 bits
    {"type": "track", "userId": "u\udfff", "properties": {"n": 1.5}},                         # a lone surrogate
])
def test_a_masked_reason_leaves_the_rest_of_its_record_exactly_as_it_was(tmp_path, event):
    from engine.deadletter import DeadLetter
    from engine.env import Secrets
    from engine.events import loads_exact, to_line

    path = tmp_path / "dead.ndjson"
    dead_letter = DeadLetter(str(path), mask=Secrets(["s3cret-token"]).mask_reason)
    shown = {"kind": "failed", "reason": "401 for https://api.example/x?token=s3cret-token", "event": event}
    plain = {"kind": "failed", "reason": "503 Service Unavailable", "event": event}
    dead_letter.write_lines(to_line(shown) + to_line(plain), 2)
    dead_letter.close()
    first, second = path.read_bytes().splitlines(keepends=True)
    masked, _ = loads_exact(first, ours=True)
    assert "s3cret-token" not in masked["reason"] and masked["event"] == event
    assert second == to_line(plain)  # nothing to mask: byte for byte


DESTINATIONS = {
    "userengage": ("USERENGAGE_API_KEY", """\
version: 1
destination:
  name: ue
  catalog: userengage
  transport: http
  settings: {{api_key: "${{USERENGAGE_API_KEY}}", base_url: "{url}", max_attempts: 1}}
mappings:
  - {{name: Track, trigger: type = "track", action: trackEvent}}
"""),
    "webhook": ("HOOK_TOKEN", """\
version: 1
destination:
  name: hooks
  catalog: webhook
  settings: {{url: "{url}/hook", max_attempts: 1, headers: {{Authorization: "Bearer ${{HOOK_TOKEN}}"}}}}
mappings:
  - {{name: Send, trigger: type = "track", action: send, fields: {{data: {{e: event}}}}}}
"""),
}


@pytest.mark.parametrize("catalog", sorted(DESTINATIONS))
def test_a_secret_the_destination_echoes_in_its_answer_is_masked_in_the_dead_letter_file(tmp_path, scripted, catalog):
    """Only the reason was masked: a server that quoted the credentials it refused left them in the record's body."""
    from scripted_server import Reply

    variable, rules_text = DESTINATIONS[catalog]
    sent = "Token SECRETKEY123456" if catalog == "userengage" else "Bearer SECRETKEY123456"
    # The header whole, and the token alone: "Bearer ${HOOK_TOKEN}" is one secret, the variable's value another.
    scripted.default = Reply(400, {"detail": f"invalid credentials: {sent}; no such token SECRETKEY123456"})
    rules, dead = tmp_path / "rules.yaml", tmp_path / "dead.ndjson"
    rules.write_text(rules_text.format(url=scripted.url))
    result = switchyard("run", rules, "--dead-letter", dead, env={**os.environ, variable: "SECRETKEY123456"},
                        stdin=json.dumps({"type": "track", "userId": "u1", "event": "E"}) + "\n")
    assert result.returncode == 1, result.stderr
    assert len(scripted.requests) == 1 and scripted.requests[0]["headers"]["Authorization"] == sent
    (record,) = [json.loads(line) for line in dead.read_text().splitlines()]
    assert record["status"] == 400 and "invalid credentials: " in record["body"] and "********" in record["body"]
    assert "SECRETKEY123456" not in dead.read_text()


BASIC_AUTH = {
    "customerio": ("""\
version: 1
destination:
  name: cio
  catalog: customerio
  transport: http
  settings: {{site_id: "${{CIO_SITE_ID}}", api_key: "${{CIO_API_KEY}}", base_url: "{url}", max_attempts: 1}}
mappings:
  - {{name: Track, trigger: type = "track", action: trackEvent, fields: {{id: userId, name: event}}}}
""", "site1234abcd:apikey5678efgh"),
    "webhook oauth": ("""\
version: 1
destination:
  name: hooks
  catalog: webhook
  settings:
    url: "{url}/hook"
    max_attempts: 1
    oauth: {{token_url: "{url}/token", client_id: switchyard, client_secret: "${{CLIENT_SECRET}}"}}
mappings:
  - {{name: Send, trigger: type = "track", action: send, fields: {{data: {{e: event}}}}}}
""", "switchyard:supersecretvalue1"),
}


@pytest.mark.parametrize("name", sorted(BASIC_AUTH))
def test_credentials_a_server_quotes_back_in_their_basic_auth_form_are_masked(tmp_path, scripted, name):
    """Customer.io's site id and key, and OAuth's client id and secret, go as one base64 token: a server that
    quoted the request's headers left them in the dead-letter file, readable by anyone who decodes it."""
    import base64

    from scripted_server import Reply

    rules_text, pair = BASIC_AUTH[name]
    token = base64.b64encode(pair.encode()).decode()
    scripted.default = Reply(400, {"error": "bad request", "headers": {"authorization": f"Basic {token}"}})
    rules, dead = tmp_path / "rules.yaml", tmp_path / "dead.ndjson"
    rules.write_text(rules_text.format(url=scripted.url))
    env = {**os.environ, "CIO_SITE_ID": "site1234abcd", "CIO_API_KEY": "apikey5678efgh",
           "CLIENT_SECRET": "supersecretvalue1"}
    result = switchyard("run", rules, "--dead-letter", dead, env=env,
                        stdin=json.dumps({"type": "track", "userId": "u1", "event": "E"}) + "\n")
    assert result.returncode == 1, result.stderr
    assert scripted.requests[0]["headers"]["Authorization"] == f"Basic {token}"
    text = dead.read_text()
    assert "bad request" in text and token not in text and "Basic ********" in text


def test_records_of_deep_or_huge_payloads_are_kept_and_masked_with_their_neighbours(tmp_path, scripted):
    """A record nested 1,500 deep made the masking raise, and the batch of dead letters was lost without a word;
    one holding a 5,000-digit integer was kept with the key the server echoed."""
    from scripted_server import Reply

    variable, rules_text = DESTINATIONS["webhook"]
    scripted.default = Reply(400, {"detail": "invalid credentials: Bearer SECRETKEY123456"})
    rules, dead = tmp_path / "rules.yaml", tmp_path / "dead.ndjson"
    rules.write_text(rules_text.format(url=scripted.url).replace("{e: event}", "{e: event, p: properties}"))
    events = ['{"type":"track","userId":"u1","event":"E","properties":{"deep":' + "[" * 1500 + "]" * 1500 + "}}",
              '{"type":"track","userId":"u2","event":"E","properties":{"n":' + "7" * 5000 + "}}",
              '{"type":"track","userId":"u3","event":"E"}']
    result = switchyard("run", rules, "--dead-letter", dead, env={**os.environ, variable: "SECRETKEY123456"},
                        stdin="\n".join(events) + "\n")
    assert result.returncode == 1 and "dead-lettered          3" in result.stderr, result.stderr
    text = dead.read_text()
    assert len(text.splitlines()) == 3 and "SECRETKEY123456" not in text
    assert "7" * 5000 in text and "[" * 1500 in text  # the calls, kept as made, for replay


@pytest.mark.parametrize("where, says", [
    ("/proc/dead.ndjson", "cannot write the dead-letter file /proc/dead.ndjson: "),
    ("{tmp}/no/such/folder/dead.ndjson", "does not exist"),
    ("{tmp}", "is a directory"),
])
def test_a_dead_letter_file_that_cannot_be_written_stops_the_run_before_any_event(tmp_path, where, says):
    """Checked with os.access, /proc passed (root may write anywhere, says access); the run then delivered
    everything and lost the records that were due, ending 'STOPPED'."""
    rules, out = tmp_path / "rules", tmp_path / "audit.ndjson"
    rules.mkdir()
    (rules / "audit.yaml").write_text(audit_rules(out))
    path = where.format(tmp=tmp_path)
    result = switchyard("run", rules, "--dead-letter", path,
                        stdin=json.dumps({"type": "track", "userId": "u1", "event": "Order Completed"}) + "\n")
    assert result.returncode == 2, result.stderr
    assert says in result.stderr and "Traceback" not in result.stderr
    assert not out.exists() or out.read_text() == ""


def test_checking_the_dead_letter_file_leaves_no_empty_file_behind(tmp_path):
    rules, out, dead = tmp_path / "rules", tmp_path / "audit.ndjson", tmp_path / "dead.ndjson"
    rules.mkdir()
    (rules / "audit.yaml").write_text(audit_rules(out))
    result = switchyard("run", rules, "--dead-letter", dead,
                        stdin=json.dumps({"type": "track", "userId": "u1", "event": "Order Completed"}) + "\n")
    assert result.returncode == 0, result.stderr
    assert not dead.exists() and len(out.read_text().splitlines()) == 1


def test_a_dead_letter_path_that_is_a_pipe_or_a_link_to_a_file_not_made_yet_is_written(tmp_path):
    """Opening the path to check it handed a pipe's reader its end before the run, and O_EXCL refused a
    link whose file did not exist yet."""
    import threading

    rules, out = tmp_path / "audit.yaml", tmp_path / "audit.ndjson"
    rules.write_text(audit_rules(out))
    events = json.dumps({"type": "track", "event": "Order Completed"}) + "\nnot json\n"
    pipe = tmp_path / "dead.fifo"
    os.mkfifo(pipe)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(pipe.read_bytes()), daemon=True)
    reader.start()
    result = switchyard("run", rules, "--dead-letter", pipe, stdin=events, process=True)  # 60 s at most
    reader.join(5)
    assert result.returncode == 0 and b"unreadable" in b"".join(received), result.stderr

    (tmp_path / "data").mkdir()
    link = tmp_path / "dead-link.ndjson"
    link.symlink_to(tmp_path / "data" / "dead.ndjson")
    result = switchyard("run", rules, "--dead-letter", link, stdin=events)
    assert result.returncode == 0, result.stderr
    assert "unreadable" in (tmp_path / "data" / "dead.ndjson").read_text()


def test_a_disk_that_takes_part_of_a_batch_leaves_whole_records_and_says_what_was_not_written(tmp_path):
    """A nearly full disk takes part of a write and says how much, without an error: the rest of the batch was
    counted as written, and the cut line spoiled the record after it. A file size limit (RLIMIT_FSIZE) is such
    a disk, for this process alone."""
    import resource
    import signal
    import subprocess
    import sys

    from conftest import ROOT

    dead = tmp_path / "dead.ndjson"
    dead.write_bytes(b'{"kind": "earlier"}\n' * 100)  # 2,000 bytes
    rules = tmp_path / "audit.yaml"
    rules.write_text(audit_rules(tmp_path / "audit.ndjson"))

    def limited() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # past the limit a write is short, then fails: EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (2600, 2600))

    bad = "".join(f"not json {n} " + "x" * 100 + "\n" for n in range(10))  # ten records of ~200 bytes, one batch
    # No bytecode or start-up cache written under the limit: only the dead-letter file meets it.
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "SWITCHYARD_CACHE_DIR": ""}
    result = subprocess.run([sys.executable, "-m", "engine", "run", str(rules), "--dry-run", "--dead-letter", str(dead)],
                            input=bad, capture_output=True, text=True, cwd=ROOT, env=env, preexec_fn=limited,
                            timeout=60)
    assert result.returncode == 1, result.stderr
    assert "STOPPED: cannot write the dead-letter file" in result.stderr and "were not written" in result.stderr
    lines = dead.read_bytes().splitlines(keepends=True)
    assert all(line.endswith(b"\n") and json.loads(line) for line in lines)  # whole records only
    unwritten = int(result.stderr.split(" record(s) were not written")[0].rsplit(" ", 1)[1])
    assert unwritten > 0 and len(lines) - 100 + unwritten == 10  # each record written whole, or said lost
