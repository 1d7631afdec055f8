"""The executor side of ``switchyard spark``, without Spark: keys, a partition's rows, the summary and
dead letters read back from them, rules shipped with their variables, and the rate limit.

These are the functions Spark calls on each partition (engine/spark/job.py), called here on plain
iterators; tests/test_spark.py runs them inside Spark.
"""
from __future__ import annotations

import io
import json
import time
from collections import Counter
from pathlib import Path

import pytest

from conftest import ROOT, need_pyspark, switchyard
from engine.adapters import AdapterContext, SetupError
from engine.adapters.webhook import WebhookAdapter
from engine.delivery.ratelimit import SHARES, RateLimit
from engine.loader import compile_paths
from engine.model import ActionCall
from engine.run import DeadLetter, Progress, run
from engine.spark.job import (
    FIELDS,
    INTEGERS,
    Job,
    alias_links,
    dead_letter_record,
    instant_of,
    joined_by_alias,
    keyed,
    partition_of,
    person_of,
    refuse_local_transports,
    route_partition,
    summarize,
)
from engine.spark.shipment import RulesRefused, ship

EXAMPLES = ROOT / "examples" / "events.jsonl"


def partition_rows(rules_path, lines: list[str], *, dry_run: bool, source: str = "events.jsonl") -> list[dict]:
    """Key ``lines`` as read_events does, sort them as the shuffle does, and route them as one partition;
    every row holds exactly the types of the outcome schema (Spark takes the rows without checking them)."""
    shipment, _, _ = ship([rules_path], dry_run=dry_run)
    items = sorted(keyed((line, source, 0, row) for row, line in enumerate(lines)), key=lambda item: item[0])
    rows = list(route_partition(Job(shipment, dry_run=dry_run), 0, items))
    for row in rows:
        assert len(row) == len(FIELDS)
        for name, value in zip(FIELDS, row):
            if name in INTEGERS:
                assert value is None or (type(value) is int and -2 ** (INTEGERS[name] - 1) <= value
                                         < 2 ** (INTEGERS[name] - 1)), (name, value)
            else:
                assert value is None or type(value) is str, (name, value)
                if value is not None:
                    value.encode("utf-8")  # what Spark's strings can carry: a lone surrogate became "?"
    return [dict(zip(FIELDS, row)) for row in rows]


def counted(rows: list[dict]) -> list[tuple]:
    keys = Counter((r["kind"], r["event_bucket"], r["destination"], r["mapping"], r["outcome"]) for r in rows)
    return [(*key, count) for key, count in keys.items()]


def run_dry(rules_path, path) -> tuple[list[dict], dict]:
    rules, _ = compile_paths([rules_path])
    out = io.StringIO()
    with open(path, "rb") as stream:
        from engine.events import read_parts
        summary = run(rules, list(read_parts(stream, str(path))), dry_run=True, out=out, dead_letter=DeadLetter(None),
                      progress=Progress(io.StringIO()))
    return [json.loads(line) for line in out.getvalue().splitlines()], summary.to_dict()


@pytest.mark.parametrize("value, person", [
    ({"userId": "u1", "anonymousId": "a1"}, "u1"),
    ({"userId": None, "anonymousId": "a1"}, "a1"),
    ({"userId": "", "anonymousId": "a1"}, "a1"),
    ({"userId": 42}, "42"),
    ({"userId": 7 * (10 ** 5000 - 1) // 9}, "7" * 5000),  # past Python's 4,300 digits: whole, not an error
    ({"type": "track"}, ""),
    ([1, 2], ""),
])
def test_an_event_belongs_to_its_user_else_its_anonymous_id(value, person):
    assert person_of(value) == person


def test_an_alias_between_ids_of_any_length_joins_them():
    line = '{"type":"alias","previousId":"anon-1","userId":' + "7" * 5000 + "}"
    assert list(alias_links([(line,)])) == [("anon-1", "7" * 5000)]


def test_timestamps_are_ordered_as_instants_whatever_their_zone():
    assert instant_of({"timestamp": "2026-01-01T10:00:00+02:00"}) < instant_of({"timestamp": "2026-01-01T09:00:00Z"})
    # a microsecond apart is apart in any year (float seconds merged them past 2242)
    for year in ("0001", "2025", "9999"):
        assert instant_of({"timestamp": f"{year}-01-01T00:00:00.000001Z"}) < \
            instant_of({"timestamp": f"{year}-01-01T00:00:00.000002Z"})
    assert instant_of({"timestamp": "2026-01-01T09:00:00"}) == instant_of({"timestamp": "2026-01-01T09:00:00Z"})
    assert instant_of({"timestamp": "yesterday"}) == instant_of({}) < instant_of({"timestamp": "1970-01-01T00:00:00Z"})


def test_a_persons_events_share_a_partition_and_same_time_events_keep_input_order():
    lines = [json.dumps({"type": "track", "userId": "u1", "timestamp": stamp, "messageId": name})
             for name, stamp in (("late", "2026-01-02T00:00:00Z"), ("first", "2026-01-01T00:00:00Z"),
                                 ("second", "2026-01-01T00:00:00Z"))]
    items = sorted(keyed((line, "f", 0, row) for row, line in enumerate(lines + ["", "   "])), key=lambda i: i[0])
    assert [json.loads(line)["messageId"] for _, (_, line) in items] == ["first", "second", "late"]
    assert len({partition_of(key) for key, _ in items}) == 1


def test_ids_an_alias_joins_are_one_person_so_the_merge_follows_both_histories():
    lines = [json.dumps({"type": "alias", "previousId": "guest-1", "userId": "carol"}),
             json.dumps({"type": "alias", "previousId": "carol", "userId": "carol@new"}),
             json.dumps({"type": "track", "userId": "dan", "event": "alias"})]
    aliases = joined_by_alias(alias_links([(line,) for line in lines]))
    assert aliases == {"guest-1": "carol", "carol@new": "carol"}
    guest, carol = (json.dumps({"type": "track", "anonymousId": who}) for who in ("guest-1", "carol@new"))
    keys = [key for key, _ in keyed([(guest, "f", 0, 0), (carol, "f", 0, 1)], aliases)]
    assert {key[0] for key in keys} == {"carol"} and len({partition_of(key) for key in keys}) == 1


def test_a_partition_counts_and_calls_as_run_does_on_the_example_events():
    rules = ROOT / "rules" / "customerio.yaml"
    rows = partition_rows(rules, EXAMPLES.read_text(encoding="utf-8").splitlines(), dry_run=True)
    calls, expected = run_dry(rules, EXAMPLES)
    assert summarize(counted(rows), dry_run=True).to_dict() == expected
    ours = [{"destination": r["destination"], "mapping": r["mapping"], "action": r["action"],
             "messageId": r["messageId"], "payload": json.loads(r["payload"])} for r in rows if r["kind"] == "call"]
    assert sorted(map(json.dumps, ours)) == sorted(map(json.dumps, calls))
    assert sum(r["event_bucket"] is not None for r in rows) == expected["events"] + expected["unreadable_lines"]
    reasons = {r["kind"]: r["reason"] for r in rows if r["kind"] != "call"}
    assert reasons["no_matching_mapping"] == "no matching mapping"
    assert reasons["unreadable"].startswith("not valid JSON")


def test_a_filtered_event_says_which_filter(write_rules):
    path = write_rules("""\
version: 1
destination: {name: crm, catalog: webhook, settings: {url: "http://127.0.0.1:9/hook"}}
filters:
  - {name: Drop internal traffic, if: 'context.ip starts with "10."', then: drop}
mappings:
  - {name: All, trigger: 'type = "track"', action: send, fields: {data: {id: messageId}}}
""")
    rows = partition_rows(path, [json.dumps({"type": "track", "messageId": "m", "context": {"ip": "10.0.0.1"}})],
                          dry_run=True)
    assert [(r["kind"], r["event_bucket"], r["reason"]) for r in rows] == [
        ("filtered", "filtered", "filtered by Drop internal traffic")]


HOOK_RULES = """\
version: 1
destination:
  name: hooks
  catalog: webhook
  transport: http
  settings: {{url: "{url}/orders", max_attempts: 1, timeout: 2}}
mappings:
  - name: Orders
    trigger: event = "Order Completed"
    action: send
    fields:
      data: {{id: properties.order_id}}
"""


def test_refused_rows_become_dead_letters_that_replay_sends(http_server, write_rules, tmp_path):
    url, recorder = http_server
    path = write_rules(HOOK_RULES.format(url=url))
    lines = [json.dumps({"type": "track", "event": "Order Completed", "userId": "u1", "messageId": f"m{n}",
                         "properties": {"order_id": f"o{n}"}}) for n in range(3)] + ["{not json"]
    recorder.status = 400
    rows = partition_rows(path, lines, dry_run=False)
    assert sorted((r["kind"], r["outcome"], r["status"]) for r in rows if r["kind"] == "call") == [
        ("call", "refused", 400)] * 3
    assert summarize(counted(rows), dry_run=False).undelivered == 3
    dead = tmp_path / "dead.ndjson"
    records = [record for record in map(dead_letter_record, rows) if record is not None]
    dead.write_text("".join(json.dumps(record) + "\n" for record in records))
    assert Counter(record["kind"] for record in records) == {"delivery_failed": 3, "unreadable": 1}

    recorder.status = 200
    recorder.requests.clear()
    replayed = switchyard("replay", dead, "--rules", path, "--include-refused")
    assert replayed.returncode == 0, replayed.stderr
    assert sorted(request["body"]["id"] for request in recorder.requests) == ["o0", "o1", "o2"]


def test_rules_travel_with_the_variables_they_name(write_rules, monkeypatch):
    path = write_rules(HOOK_RULES.format(url="${HOOK_BASE}"))
    monkeypatch.setenv("HOOK_BASE", "http://hooks.example")
    shipment, _, _ = ship([path])
    monkeypatch.delenv("HOOK_BASE")  # an executor without the variable
    destination = shipment.rules().destination("hooks")
    assert destination.settings["url"] == "http://hooks.example/orders"
    assert dict(shipment.environ) == {"HOOK_BASE": "http://hooks.example"}


def test_rules_with_errors_are_refused_with_every_problem(write_rules):
    path = write_rules(HOOK_RULES.format(url="http://x").replace('event = "Order Completed"', 'event =').replace(
        "action: send", "action: sendd"))
    with pytest.raises(RulesRefused) as refused:
        ship([path])
    assert len(refused.value.problems) >= 2


def test_local_disk_transports_are_refused_on_a_cluster_only():
    rules, _ = compile_paths([ROOT / "rules"])
    refuse_local_transports(rules.destinations, local=True)
    with pytest.raises(SetupError, match="refused on a cluster"):
        refuse_local_transports(rules.destinations, local=False)


def test_a_rate_limit_spaces_requests_evenly():
    now = [100.0]
    slept = []

    def sleep(seconds):
        slept.append(seconds)
        now[0] += seconds

    limit = RateLimit(4, clock=lambda: now[0], sleep=sleep)
    for _ in range(5):
        limit.wait()
    assert slept == [0.25] * 4
    now[0] += 10  # idle: no burst is saved up beyond the next request
    assert limit.wait() == 0 and limit.wait() == 0.25


def test_a_webhook_keeps_to_its_share_of_max_requests_per_second(http_server):
    url, recorder = http_server
    settings = {"url": url, "max_requests_per_second": 20}
    adapter = WebhookAdapter(AdapterContext("hooks", "webhook", "http", settings, options={SHARES: 2}))
    calls = [ActionCall("hooks", "m", "send", {"url": url, "data": {"n": n}}) for n in range(6)]
    started = time.monotonic()
    outcomes = adapter.deliver(calls)
    elapsed = time.monotonic() - started
    adapter.close()
    assert [outcome.state for outcome in outcomes] == ["delivered"] * 6
    assert elapsed >= 0.5  # 10 a second: the 6th request no sooner than 0.5 s after the 1st
    assert len(recorder.requests) == 6


def test_max_requests_per_second_is_a_setting_lint_accepts(write_rules):
    path = write_rules(HOOK_RULES.format(url="http://x").replace("timeout: 2}", "timeout: 2, max_requests_per_second: 50}"))
    _, problems = compile_paths([path])
    assert not problems
    bad = write_rules(HOOK_RULES.format(url="http://x").replace("timeout: 2}", "timeout: 2, max_requests_per_second: 0}"),
                      "bad.yaml")
    _, problems = compile_paths([bad])
    assert [p.code for p in problems] == ["SY306"]


@pytest.mark.spark  # needs pyspark installed (no JVM is started): it runs with the Spark tests
def test_the_spark_command_refuses_rules_with_errors_before_starting_spark(write_rules, tmp_path):
    need_pyspark()
    from engine.spark.cli import main

    path = write_rules(HOOK_RULES.format(url="http://x").replace("action: send", "action: sendd"))
    started = time.monotonic()
    assert main([str(path), str(EXAMPLES), "--output", str(tmp_path / "out")]) == 1
    assert time.monotonic() - started < 5  # no JVM was started
    assert not Path(tmp_path / "out").exists()


def test_an_id_nested_deeper_than_python_writes_is_nobodys_rather_than_an_error():
    nested: list = []
    inner = nested
    for _ in range(5000):
        inner.append([])
        inner = inner[0]
    assert person_of({"userId": nested, "anonymousId": "a"}) == ""


def test_hostile_events_are_one_row_each_and_never_fail_their_partition():
    lines = ['{"type":"bogus","userId":"u\\udfff"}',                       # an invalid event holding a lone surrogate
             '{"type":"track","event":"x\\udfff","userId":"u"}',            # a call holding one
             '{"type":"identify","userId":"u","traits":{"n":123456789012345678901234567890}}',
             '{"type":"track","event":"ok","userId":"v"}']
    rows = partition_rows(ROOT / "rules" / "customerio.yaml", lines, dry_run=True)
    assert sorted(r["event_bucket"] for r in rows if r["event_bucket"]) == ["invalid_event", "sent", "sent", "sent"]
    payloads = [json.loads(r["payload"]) for r in rows if r["kind"] == "call"]
    assert {"x\udfff", "ok"} <= {p.get("name") for p in payloads}
    assert {"n": 123456789012345678901234567890} in [p.get("custom_attributes") for p in payloads]
    (invalid,) = [r for r in rows if r["kind"] == "invalid_event"]
    assert dead_letter_record(invalid)["event"] == {"type": "bogus", "userId": "u\udfff"}


def test_ids_holding_a_lone_surrogate_are_columns_as_json_and_come_back_whole_in_dead_letters():
    lines = ['{"type":"track","event":"e","userId":"u\\udfff","messageId":"m\\udfff"}',
             '{"type":"track","event":"e","userId":"\\"v\\"","messageId":"\\"quoted\\""}',
             # text that spells the first id's column: it must come back as itself, not as that id
             '{"type":"track","event":"e","userId":"w","messageId":"\\"m\\\\udfff\\""}']
    rows = [r for r in partition_rows(ROOT / "rules" / "customerio.yaml", lines, dry_run=True) if r["kind"] == "call"]
    assert sorted((r["messageId"], r["person"]) for r in rows) == [
        ('"\\"m\\\\udfff\\""', "w"), ('"\\"quoted\\""', '"\\"v\\""'), ('"m\\udfff"', '"u\\udfff"')]
    records = [dead_letter_record(dict(row, outcome="refused")) for row in rows]
    assert sorted(record["call"]["messageId"] for record in records) == ['"m\\udfff"', '"quoted"', "m\udfff"]
