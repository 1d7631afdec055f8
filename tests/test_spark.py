"""``switchyard spark`` in Spark's ``local[2]`` mode: the same answers as ``switchyard run``, in batch and as a stream.

Marked ``spark``: the default test run leaves them out (a JVM takes a while to start on a small
machine); ``.ci/run`` installs the ``spark`` extra and runs them with ``pytest -m spark``. One
SparkSession serves the module.
"""
from __future__ import annotations

import json
import os
import sys
from collections import defaultdict

import pytest

from conftest import ROOT

if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))  # benchmarks/ is not part of the installed package

from benchmarks.generate import events as generate_events  # noqa: E402
from conftest import need_pyspark, switchyard  # noqa: E402
from engine.spark import route, session, stream  # noqa: E402  - imports pyspark only when used
from engine.spark.job import alias_links, instant_of, joined_by_alias, person_of  # noqa: E402
from engine.workspace.server import start_server  # noqa: E402

# Left out of the default run by their mark; checked for pyspark only when selected, so that run skips nothing.
pytestmark = pytest.mark.spark

EXAMPLES = ROOT / "examples" / "events.jsonl"
PACK = (ROOT / "rules" / "customerio.yaml").read_text()


@pytest.fixture(scope="module")
def spark():
    need_pyspark()
    spark = session("local[2]", "switchyard-tests", {"spark.ui.enabled": "false", "spark.sql.shuffle.partitions": "2",
                                                     "spark.ui.showConsoleProgress": "false"})
    spark.sparkContext.setLogLevel("ERROR")
    yield spark
    spark.stop()


def calls_of(rows) -> list[dict]:
    return [{"destination": row.destination, "mapping": row.mapping, "action": row.action,
             "messageId": row.messageId, "payload": json.loads(row.payload)} for row in rows if row.kind == "call"]


def person_orders(calls, position) -> dict:
    """(person, destination) -> message ids in delivery order (calls of one event by mapping name)."""
    orders = defaultdict(list)
    for call in sorted(calls, key=lambda call: (position(call), call["mapping"])):
        orders[call["person"], call["destination"]].append(call["messageId"])
    return dict(orders)


def test_dry_run_calls_are_runs_calls_in_each_persons_order(spark, tmp_path):
    """The example events and 100,000 generated ones, shuffled out of time order."""
    lines = EXAMPLES.read_text(encoding="utf-8").splitlines()
    lines += [json.dumps(event) for event in generate_events(100_000, seed=3)]
    events_path = tmp_path / "events.jsonl"
    events_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    routed = route(spark, ROOT / "rules", [str(events_path)], output=str(tmp_path / "out"), dry_run=True)
    rows = routed.outcomes.collect()

    # run in time order: its order per person is what Spark's must be, whatever the file's order.
    parsed = []
    for number, line in enumerate(lines):
        try:
            parsed.append((json.loads(line), number))
        except ValueError:
            parsed.append((None, number))
    in_time = sorted(parsed, key=lambda pair: (instant_of(pair[0]), pair[1]))
    sorted_path = tmp_path / "in-time.jsonl"
    sorted_path.write_text("".join(lines[number] + "\n" for _, number in in_time), encoding="utf-8")
    result = switchyard("run", "rules", sorted_path, "--dry-run", "--dead-letter", tmp_path / "dead",
                        "--summary-json", tmp_path / "run.json")
    assert result.returncode == 0, result.stderr
    expected = [json.loads(line) for line in result.stdout.splitlines()]

    ours = calls_of(rows)
    assert len(ours) > 100_000
    assert sorted(map(json.dumps, ours)) == sorted(map(json.dumps, expected))
    assert routed.summary.to_dict() == json.loads((tmp_path / "run.json").read_text())

    # Orders by message id (unique here); the one example event without one is left out of this check.
    aliases = joined_by_alias(alias_links([(line,) for line in lines if '"alias"' in line]))
    person = {event["messageId"]: aliases.get(person_of(event), person_of(event)) for event, _ in parsed if isinstance(event, dict) and
              event.get("messageId")}
    order = {event["messageId"]: position for position, (event, _) in enumerate(in_time)
             if isinstance(event, dict) and event.get("messageId")}
    expected = [call for call in expected if call["messageId"] in person]
    for call in expected:
        call["person"] = person[call["messageId"]]
    sequence = {}
    for row, call in zip([row for row in rows if row.kind == "call"], ours):
        call["person"] = row.person
        sequence[id(call)] = (row.partition, row.sequence)
    ours = [call for call in ours if call["messageId"] in person]
    spark_orders = person_orders(ours, lambda call: sequence[id(call)])
    assert len(spark_orders) > 10_000
    assert spark_orders == person_orders(expected, lambda call: order[call["messageId"]])


def test_http_into_a_served_workspace_leaves_the_workspace_run_leaves(spark, tmp_path, monkeypatch):
    rules = tmp_path / "customerio.yaml"
    rules.write_text(PACK.replace("  catalog: customerio\n", "  catalog: customerio\n  transport: http\n", 1))
    env = {**os.environ, "CUSTOMERIO_SITE_ID": "site-1", "CUSTOMERIO_API_KEY": "key-1"}
    with start_server(tmp_path / "by-run.db", "site-1", "key-1") as server:
        env["CUSTOMERIO_BASE_URL"] = server.url
        result = switchyard("run", rules, EXAMPLES, "--dead-letter", tmp_path / "dead", "--summary-json",
                            tmp_path / "run.json", env=env)
    assert result.returncode == 1, result.stderr  # the example has one refused call, as the README shows
    with start_server(tmp_path / "by-spark.db", "site-1", "key-1") as server:
        monkeypatch.setenv("CUSTOMERIO_SITE_ID", "site-1")
        monkeypatch.setenv("CUSTOMERIO_API_KEY", "key-1")
        monkeypatch.setenv("CUSTOMERIO_BASE_URL", server.url)
        routed = route(spark, rules, [str(EXAMPLES)], output=str(tmp_path / "out"), format="json")
    by_run = json.loads((tmp_path / "run.json").read_text())
    assert routed.summary.to_dict()["delivered"] == by_run["delivered"]
    assert routed.summary.to_dict()["refused"] == by_run["refused"] == {"customerio / Track Event": 1}
    for command in ("people", "objects", "events"):
        # Partitions deliver at once, so people are created in another order: same people, other cio_ids.
        assert as_set(workspace_json(tmp_path / "by-spark.db", command)) == as_set(
            workspace_json(tmp_path / "by-run.db", command)), command


def test_a_stream_routes_files_as_they_land_and_a_restart_goes_on_where_it_stopped(spark, tmp_path, http_server):
    url, recorder = http_server
    rules = tmp_path / "hooks.yaml"
    rules.write_text(f"""\
version: 1
destination: {{name: hooks, catalog: webhook, transport: http, settings: {{url: "{url}/e", max_attempts: 1}}}}
mappings:
  - {{name: All, trigger: 'type = "track"', action: send, fields: {{data: {{id: messageId}}}}}}
""")
    inbox, output, checkpoint = tmp_path / "inbox", tmp_path / "out", tmp_path / "checkpoint"
    inbox.mkdir()

    def drop(name: str, count: int) -> set[str]:
        ids = [f"{name}-{n}" for n in range(count)]
        (tmp_path / name).write_text("".join(json.dumps({"type": "track", "event": "E", "userId": f"u{n % 7}",
                                                         "messageId": i}) + "\n" for n, i in enumerate(ids)))
        (tmp_path / name).rename(inbox / f"{name}.jsonl")  # whole files appear at once, as with a mover
        return set(ids)

    def start(on_batch=None):
        return stream(spark, rules, str(inbox), output=str(output), checkpoint=str(checkpoint), on_batch=on_batch)

    def crash(batch_id, summary):
        raise RuntimeError("the driver died after delivering, before the batch was committed")

    first = drop("first", 20)
    query = start(crash)
    with pytest.raises(Exception, match="the driver died"):
        query.processAllAvailable()
    query.stop()
    assert sorted(r["body"]["id"] for r in recorder.requests) == sorted(first)

    query = start()
    query.processAllAvailable()  # the batch cut short is routed again: at least once
    second = drop("second", 30)
    query.processAllAvailable()
    query.stop()
    third = drop("third", 10)  # lands while the stream is stopped
    query = start()
    query.processAllAvailable()
    query.stop()

    delivered = [r["body"]["id"] for r in recorder.requests]
    assert sorted(delivered) == sorted(list(first) * 2 + list(second) + list(third))
    rows = spark.read.parquet(str(output)).collect()
    assert sorted(row.messageId for row in rows) == sorted(first | second | third)  # a rerun batch replaced its rows
    assert {row.outcome for row in rows} == {"delivered"}


def workspace_json(db, command: str) -> list:
    result = switchyard("workspace", command, "--db", db, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def as_set(items: list) -> list:
    """Workspace rows without the times they were stored at and the ids given in arrival order, sorted."""
    return sorted(json.dumps(without_times(item), sort_keys=True) for item in items)


def without_times(value):
    volatile = {"created_at", "updated_at", "received_at", "cio_id"}
    if isinstance(value, dict):
        return {k: without_times(v) for k, v in value.items() if k not in volatile}
    if isinstance(value, list):
        return [without_times(v) for v in value]
    return value


def test_an_alias_whose_type_is_written_with_an_escape_joins_its_ids(spark, tmp_path):
    """The JVM picked alias lines by the text "alias": one spelled \\u0061lias was left out, and its two ids
    were two people in two partitions."""
    lines = [json.dumps({"type": "track", "event": "E", "anonymousId": "anon-1", "messageId": "t1",
                         "timestamp": "2024-01-01T00:00:00Z"}),
             '{"type":"\\u0061lias","previousId":"anon-1","userId":"user-1","messageId":"a1",'
             '"timestamp":"2024-01-01T00:00:01Z"}']
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join(lines) + "\n")
    routed = route(spark, ROOT / "rules" / "customerio.yaml", [str(events)], output=str(tmp_path / "out"),
                   dry_run=True)
    rows = [row for row in routed.outcomes.collect() if row.kind == "call"]
    assert {row.messageId for row in rows} == {"t1", "a1"}
    assert len({(row.person, row.partition) for row in rows}) == 1


def test_a_line_that_is_not_utf8_is_unreadable_as_in_run_and_a_written_replacement_character_is_text(spark, tmp_path):
    """Spark hands Python the text with U+FFFD for a bad byte: u\\xff became the id "u\ufffd", one person with
    u\\xfe and with a user whose id really is "u\ufffd"."""
    events = tmp_path / "events.jsonl"
    events.write_bytes(b'{"type":"track","event":"E","userId":"u\xff","messageId":"bad"}\n'
                       b'{"type":"track","event":"E","userId":"u\xef\xbf\xbd","messageId":"fffd"}\n')
    routed = route(spark, ROOT / "rules" / "customerio.yaml", [str(events)], output=str(tmp_path / "out"),
                   dry_run=True)
    rows = routed.outcomes.collect()
    assert [row.messageId for row in rows if row.kind == "call"] == ["fffd"]
    (unreadable,) = [row for row in rows if row.kind != "call"]
    assert "not valid UTF-8: byte 0xFF" in unreadable.reason
    ran = switchyard("run", ROOT / "rules" / "customerio.yaml", events, "--dry-run", process=True)
    assert "unreadable lines       1" in ran.stderr + ran.stdout  # the same one


def test_the_command_line_streams_into_json_and_says_what_it_did_even_when_nothing_came(tmp_path):
    """Reading a stream's JSON rows back without their schema failed on a column null on every row, and a
    stream that wrote nothing failed on its missing folder; both after routing, with a traceback."""
    need_pyspark()
    inbox, empty = tmp_path / "inbox", tmp_path / "empty"
    inbox.mkdir()
    empty.mkdir()
    (inbox / "a.jsonl").write_text(json.dumps({"type": "track", "event": "E", "userId": "u1"}) + "\n")
    for folder, events in ((inbox, 1), (empty, 0)):
        result = switchyard("spark", "rules/customerio.yaml", folder, "--output", tmp_path / f"out-{folder.name}",
                            "--stream", "--available-now", "--checkpoint", tmp_path / f"cp-{folder.name}",
                            "--format", "json", "--dry-run", "--master", "local[1]", process=True)
        assert result.returncode == 0, result.stderr[-2000:]
        assert f"events read            {events}" in result.stderr


def test_a_missing_input_or_an_output_that_exists_is_a_usage_error(tmp_path):
    need_pyspark()
    (tmp_path / "out").mkdir()
    for inputs, output in (([tmp_path / "missing.jsonl"], tmp_path / "new"), ([EXAMPLES], tmp_path / "out")):
        result = switchyard("spark", "rules/customerio.yaml", *inputs, "--output", output, "--dry-run",
                            process=True)
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
