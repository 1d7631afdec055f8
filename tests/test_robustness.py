"""One bad event, as a user meets it: `run` (one process or two) and `explain` go on past it and say why."""
from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from conftest import switchyard
from engine.events import any_json

BIG = 7 * (10 ** 5000 - 1) // 9  # 5,000 sevens: beyond Python's default limit for int <-> text


def _event(number: int, **fields) -> dict:
    return {"type": "track", "event": "Order Completed", "userId": "u1", "messageId": f"m{number}",
            "properties": {"order_id": "o1", "total": 5}, **fields}


def _hostile_file(tmp_path):
    lines = [
        json.dumps(_event(1)).encode(),
        json.dumps(_event(2, properties={"order_id": "\udfff"})).encode(),                # a lone surrogate
        b'{"type":"track","event":"Order Completed","messageId":"m3","properties":{"total":'
        + b"7" * 5000 + b"}}",                                                             # 5,000 digits
        b'{"type":"track","x":' + b"[" * 100_000 + b"]" * 100_000 + b"}",                  # 100,000 levels
        b'{"type":"track","type":"identify","userId":"u1","messageId":"m5"}',             # a key twice
        b'{"type":"track","event":"Order Completed","userId":"u\xff","messageId":"m6"}',  # not UTF-8
        b"",                                                                               # blank: skipped
        json.dumps(_event(8)).encode(),
    ]
    path = tmp_path / "events.ndjson"
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


UNREADABLE = {
    4: "arrays and objects nest too deeply to read (an event may nest 1,000 levels)",
    5: 'the key "type" is written twice in one object; JSON leaves its meaning open',
    6: "not valid UTF-8: byte 0xFF at column 54",
}


@pytest.mark.parametrize("workers", [[], ["--workers", "2"]], ids=["one process", "two workers"])
def test_one_bad_event_never_stops_a_run(tmp_path, workers):
    events, dead = _hostile_file(tmp_path), tmp_path / "dead.ndjson"
    result = switchyard("run", "rules/webhook.yaml", events, "--dry-run", "--dead-letter", dead, *workers)
    assert result.returncode == 0, result.stderr
    assert "events read            4" in result.stderr and "unreadable lines       3" in result.stderr
    assert "every event accounted for" in result.stderr
    orders = {}
    for line in result.stdout.splitlines():
        with any_json():
            call = json.loads(line)
        if call["mapping"] == "Orders to CRM":
            orders[call["messageId"]] = call["payload"]["data"]
    assert orders["m2"]["order_id"] == "\udfff"  # written as the escape "\udfff", as JSON allows
    with any_json():
        assert orders["m3"]["total"] == BIG      # every digit kept
    assert set(orders) == {"m1", "m2", "m3", "m8"}
    kept = [json.loads(line) for line in dead.read_text(encoding="utf-8").splitlines()]
    assert {int(record["source"].rsplit(":", 1)[1]): record["reason"] for record in kept} == UNREADABLE


def test_explain_goes_on_past_a_bad_line_and_names_it(tmp_path):
    events = _hostile_file(tmp_path)
    result = switchyard("explain", "rules/webhook.yaml", "--event", events, "--format", "json")
    assert result.returncode == 2
    expected = [f"switchyard: {events}:{line}: {reason}" for line, reason in UNREADABLE.items()]
    assert result.stderr.splitlines() == expected
    with any_json():
        reports = json.loads(result.stdout)
    assert [report["event"]["messageId"] for report in reports] == ["m1", "m2", "m3", "m8"]
    assert all(report["matched"] for report in reports)


def test_explain_points_at_the_bad_line_of_ndjson():
    stdin = '{"type":"track","event":"a"}\n\n{"type":"track",bad}\n{"type":"identify","userId":"u"}\n'
    result = switchyard("explain", "rules/webhook.yaml", "--event", "-", stdin=stdin)
    assert result.returncode == 2
    assert result.stderr.strip() == "switchyard: stdin:3: not valid JSON: Expecting property name enclosed in " \
                                    "double quotes (column 17)"
    assert result.stdout.count("destination crm") == 2  # the other two events are explained


def test_explain_reads_one_event_written_over_several_lines():
    stdin = json.dumps({"type": "identify", "userId": "u", "traits": {"email": "a@b.io"}}, indent=2)
    result = switchyard("explain", "rules/webhook.yaml", "--event", "-", stdin=stdin)
    assert result.returncode == 0, result.stderr
    assert "mapping 'Contacts' -> send: MATCHED" in result.stdout


@pytest.mark.parametrize("stdin", ["", "\n  \n"], ids=["empty", "blank lines"])
def test_explain_of_no_event_is_an_error(stdin):
    result = switchyard("explain", "rules/webhook.yaml", "--event", "-", stdin=stdin)
    assert (result.returncode, result.stderr.strip()) == (2, "switchyard: -: no events in the input")


def test_a_pattern_that_backtracks_elsewhere_answers_at_once(tmp_path):
    rules = tmp_path / "rules.yaml"
    rules.write_text("""version: 1
destination: {name: d, catalog: webhook, settings: {url: "https://x.example"}}
mappings:
  - name: m
    trigger: userId matches "(a+)+$"
    action: send
""", encoding="utf-8")
    events = tmp_path / "events.ndjson"
    events.write_text(json.dumps({"type": "track", "userId": "a" * 50 + "b"}) + "\n"
                      + json.dumps({"type": "track", "userId": "aaa"}) + "\n", encoding="utf-8")
    started = time.monotonic()
    run = switchyard("run", rules, events, "--dry-run", "--dead-letter", tmp_path / "dead.ndjson")
    explained = switchyard("explain", rules, "--event", events)
    assert time.monotonic() - started < 30  # with a backtracking engine neither ever finished
    assert run.returncode == 0 and len(run.stdout.splitlines()) == 1
    assert explained.stdout.count("MATCHED") == 1
    lint = switchyard("lint", rules)
    assert "warning SY109" in lint.stdout + lint.stderr


def test_event_data_stays_inside_its_url_segment(tmp_path):
    events = tmp_path / "events.ndjson"
    events.write_text("\n".join(json.dumps({"type": "identify", "userId": user, "traits": {"email": "a@b.io"}})
                                for user in ["../../admin?x=1#", "Zoë/ü"]) + "\n", encoding="utf-8")
    result = switchyard("run", "rules/webhook.yaml", events, "--dry-run", "--dead-letter", tmp_path / "d.ndjson")
    assert [json.loads(line)["payload"]["url"] for line in result.stdout.splitlines()] == [
        "https://crm.example/contacts/..%2F..%2Fadmin%3Fx%3D1%23",
        "https://crm.example/contacts/Zo%C3%AB%2F%C3%BC"]


_HUGE = int("9" * 400)  # beyond a float: JavaScript reads it as Infinity, Python's float() refuses it


@pytest.mark.parametrize("transport", ["workspace", "http"])
@pytest.mark.parametrize("lanes", ["thread", "process"])
def test_a_huge_number_in_one_event_costs_no_other_call_of_its_batch(tmp_path, http_server, transport, lanes):
    url, server = http_server
    rules = tmp_path / "rules.yaml"
    text = Path("rules/customerio.yaml").read_text(encoding="utf-8")
    text = text.replace("${CUSTOMERIO_SITE_ID:-}", "s").replace("${CUSTOMERIO_API_KEY:-}", "k")
    if transport == "http":
        text = text.replace("  catalog: customerio\n", "  catalog: customerio\n  transport: http\n", 1)
        text = text.replace("${CUSTOMERIO_BASE_URL:-}", url)
    rules.write_text(text, encoding="utf-8")
    events = tmp_path / "events.ndjson"
    events.write_text("\n".join(json.dumps(event) for event in [
        {"type": "identify", "userId": "u1", "messageId": "m1",
         "traits": {"email": "ada@example.com", "created_at": _HUGE}},
        {"type": "identify", "userId": "u2", "messageId": "m2", "traits": {"email": "bob@example.com"}},
        {"type": "track", "userId": "u2", "messageId": "m3", "event": "Order Completed",
         "properties": {"total": _HUGE}, "timestamp": "2026-01-02T03:04:05Z"},
    ]) + "\n", encoding="utf-8")
    dead = tmp_path / "dead.ndjson"
    result = switchyard("run", rules, events, "--workspace", tmp_path / "w.db", "--dead-letter", dead, "--lanes", lanes)
    assert result.returncode == 0, result.stderr
    assert "every event accounted for" in result.stderr and not dead.exists()
    assert re.search(r"Create or Update Person +2 +2 +0 +0 +0 +0", result.stderr), result.stderr
    assert re.search(r"Track Event +1 +1 +0 +0 +0 +0", result.stderr), result.stderr
    if transport == "http":
        sent = [item for request in server.requests for item in (request["body"] or {}).get("batch", [])]
        assert {item.get("identifiers", {}).get("id") for item in sent} == {"u1", "u2"}
        assert _HUGE in [item.get("attributes", {}).get("created_at") for item in sent]


@pytest.mark.parametrize("lanes", ["thread", "process"])
@pytest.mark.parametrize("transport", ["embedded", "http"])
def test_a_call_user_com_cannot_take_costs_no_other_call(tmp_path, lanes, transport):
    from engine.userengage.server import start_server

    events = tmp_path / "events.ndjson"
    events.write_text("\n".join(json.dumps(event) for event in [
        {"type": "group", "userId": "u1", "messageId": "m1", "groupId": "", "traits": {"name": "No id"}},
        {"type": "track", "userId": "u1", "messageId": "m2", "event": "Signed Up", "timestamp": -_HUGE},
        {"type": "group", "userId": "u2", "messageId": "m3", "groupId": "c2", "traits": {"name": "Acme"}},
        {"type": "track", "userId": "u2", "messageId": "m4", "event": "Signed Up"},
    ]) + "\n", encoding="utf-8")
    dead = tmp_path / "dead.ndjson"
    with start_server(tmp_path / "served.db", "key-1") as server:
        rules = tmp_path / "userengage.yaml"
        text = Path("rules/userengage.yaml").read_text(encoding="utf-8")
        if transport == "http":
            text = text.replace("  catalog: userengage\n", "  catalog: userengage\n  transport: http\n", 1) \
                .replace("${USERENGAGE_API_KEY:-}", "key-1").replace("${USERENGAGE_BASE_URL:-}", server.url)
        rules.write_text(text, encoding="utf-8")
        result = switchyard("run", rules, events, "--workspace", tmp_path / "w.db", "--dead-letter", dead,
                            "--lanes", lanes)
    assert "every event accounted for" in result.stderr
    assert re.search(r"Create or Update Company +2 +1 +0 +1 +0 +0", result.stderr), result.stderr
    assert re.search(r"Track Event +2 +1 +0 +1 +0 +0", result.stderr), result.stderr
    reasons = {record["call"]["messageId"]: record["reason"]
               for record in map(json.loads, dead.read_text(encoding="utf-8").splitlines())}
    assert reasons == {
        "m1": "cannot build the request: the company id is empty",
        "m2": "cannot build the request: the timestamp of 400 digits is further from 1970 than any date can be"}
