"""The CLI end to end, run as a subprocess the way users and CI run it."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from conftest import ROOT, switchyard

BROKEN = """\
version: 1
destination:
  name: crm
  catalog: webhook
mappings:
  - name: Orders
    trigger: properties.plan contians "pro"
    action: send
    fields:
      url: "'https://x.example'"
      data: {total: sum(properties.total}
  - name: Orders
    trigger: type = "track"
    action: sned
"""


def test_lint_reports_every_problem_with_position_code_and_caret(write_rules):
    path = write_rules(BROKEN)
    result = switchyard("lint", path)
    assert result.returncode == 1
    out = result.stdout
    assert f"{path}:7:30: error SY102 unknown operator 'contians'; did you mean 'contains'?" in out
    assert "    trigger: properties.plan contians \"pro\"\n" in out
    assert "\n                                 ^\n" in out  # caret under column 30 (4 spaces of indent)
    assert f"{path}:11:" in out and "SY201" in out
    assert f"{path}:12:11: error SY401" in out
    assert f"{path}:14:13: error SY302" in out and "did you mean 'send'?" in out
    assert "Traceback" not in out + result.stderr
    assert out.strip().endswith("4 error(s), 0 warning(s)")


def test_lint_json_and_github_formats(write_rules):
    path = write_rules(BROKEN)
    data = json.loads(switchyard("lint", path, "--format", "json").stdout)
    assert data["errors"] == 4
    assert {p["code"] for p in data["problems"]} == {"SY102", "SY201", "SY401", "SY302"}
    github = switchyard("lint", path, "--format", "github").stdout.splitlines()
    assert github[0].startswith(f"::error file={path},line=7,col=30,title=SY102::")


def test_github_annotations_escape_the_separators_in_a_file_name(write_rules):
    path = write_rules(BROKEN, name="a,b:c%.yaml")
    github = switchyard("lint", path, "--format", "github").stdout.splitlines()
    escaped = str(path.parent).replace("%", "%25").replace(":", "%3A").replace(",", "%2C") + "/a%2Cb%3Ac%25.yaml"
    assert github[0].startswith(f"::error file={escaped},line=7,col=30,title=SY102::")


def test_lint_clean_rules_exit_zero():
    result = switchyard("lint", "rules/")
    assert result.returncode == 0, result.stdout
    assert result.stdout.strip().endswith("0 error(s), 0 warning(s)")


def test_usage_errors_exit_two():
    assert switchyard("lint", "no/such/dir").returncode == 2
    assert switchyard("frobnicate").returncode == 2


def test_python_dash_m_and_console_script_agree():
    assert switchyard("--version").stdout.startswith("switchyard ")


def test_bundled_tests_pass():
    result = switchyard("test", "rules/")
    assert result.returncode == 0, result.stdout
    assert result.stdout.strip().splitlines()[-1].endswith(" passed, 0 failed")


def test_failing_test_shows_expected_and_actual(write_rules):
    path = write_rules("""\
version: 1
destination: {name: crm, catalog: webhook, settings: {url: "https://x.example"}}
mappings:
  - name: Orders
    trigger: event = "Order Completed"
    action: send
    fields: {data: {id: properties.order_id}}
tests:
  - name: wrong id
    event: {type: track, event: Order Completed, properties: {order_id: o1}}
    expect: [{mapping: Orders, payload: {data: {id: o2}}}]
  - name: right id
    event: {type: track, event: Order Completed, properties: {order_id: o1}}
    expect: [{mapping: Orders, payload: {data: {id: o1}}}]
""")
    result = switchyard("test", path)
    assert result.returncode == 1
    assert f"FAIL {path}:9: crm / wrong id" in result.stdout
    assert "payload.data.id: expected 'o2', got 'o1'" in result.stdout
    assert '"payload": {"url": "https://x.example", "method": "POST", "data": {"id": "o1"}}' in result.stdout
    assert result.stdout.strip().splitlines()[-1] == "1 passed, 1 failed"


def test_explain_shows_conditions_values_and_nearest_miss():
    event = {"type": "track", "event": "Signed Up", "properties": {"plan": "free"}}
    result = switchyard("explain", "rules/webhook.yaml", "--event", "-", stdin=json.dumps(event))
    assert result.returncode == 0
    out = result.stdout
    assert "No mapping matched this event." in out
    assert "Nearest miss: crm / 'Paid sign-ups'" in out
    assert '(saw "free")' in out
    data = json.loads(switchyard("explain", "rules/webhook.yaml", "--event", "-", "--format", "json",
                                 stdin=json.dumps(event)).stdout)
    assert data["matched"] is False
    assert data["nearest_miss"]["mapping"] == "Paid sign-ups"


NEAREST = """version: 1
destination: {name: crm, catalog: webhook, settings: {url: "http://127.0.0.1:9/hook"}}
mappings:
  - {name: Orders without a test SKU, trigger: 'type = "track" and properties.products[*].sku != "TEST"',
     action: send}
  - {name: Everything but orders, trigger: 'type = "track" and not (event = "Order Completed")', action: send}
  - {name: Screens of the shop, trigger: 'type = "screen" and name = "Shop"', action: send}
"""


@pytest.mark.parametrize("event, nearest", [
    # only conditions over no products, or a missing event under `not`, held: nothing brought it nearer
    ({"type": "identify", "userId": "u1"}, None),
    # under `not`, the condition that held is what stopped the match: 1 of 2 toward it, not 2 of 2
    ({"type": "track", "event": "Order Completed", "properties": {"products": [{"sku": "TEST"}]}},
     ("Orders without a test SKU", 1, 2)),
    ({"type": "screen", "name": "Home"}, ("Screens of the shop", 1, 2)),
], ids=["over no elements", "under not", "plain"])
def test_the_nearest_miss_counts_only_conditions_that_bring_the_event_nearer(tmp_path, event, nearest):
    rules = tmp_path / "near.yaml"
    rules.write_text(NEAREST)
    data = json.loads(switchyard("explain", rules, "--event", "-", "--format", "json",
                                 stdin=json.dumps(event)).stdout)
    found = data.get("nearest_miss")
    assert (found["mapping"], found["satisfied"], found["conditions"]) == nearest if nearest else found is None, found


def test_explain_shows_payload_and_disabled_mapping():
    event = {"type": "track", "event": "Order Refunded", "properties": {"total": 900}}
    data = json.loads(switchyard("explain", "rules/webhook.yaml", "--event", "-", "--format", "json",
                                 stdin=json.dumps(event)).stdout)
    refunds = next(m for m in data["destinations"][0]["mappings"] if m["name"] == "Large refunds")
    assert refunds["matched"] is True and refunds["enabled"] is False
    assert refunds["payload"]["url"] == "https://crm.example/refunds"


def test_run_dry_run_prints_calls_and_accounts_for_every_event(tmp_path):
    dead = tmp_path / "dead.ndjson"
    result = switchyard("run", "rules/webhook.yaml", "examples/events.jsonl", "--dry-run", "--dead-letter", dead,
                        "--summary-json", tmp_path / "summary.json")
    assert result.returncode == 0, result.stderr
    calls = [json.loads(line) for line in result.stdout.splitlines()]
    assert calls and all(set(c) == {"destination", "mapping", "action", "messageId", "payload"} for c in calls)
    summary = json.loads((tmp_path / "summary.json").read_text())
    lines = [line for line in (ROOT / "examples/events.jsonl").read_text().splitlines() if line.strip()]
    assert summary["events"] + summary["unreadable_lines"] == len(lines)
    assert summary["events"] == (summary["with_calls"] + summary["filtered"] + summary["no_matching_mapping"]
                                 + summary["invalid_events"] + summary["invalid_payload_only"])
    assert sum(summary["calls"].values()) == len(calls)
    assert summary["filtered"] == 1 and summary["unreadable_lines"] == 1 and summary["invalid_events"] == 2
    kept = [json.loads(line) for line in dead.read_text().splitlines()]
    assert sorted(k["kind"] for k in kept) == ["invalid_event", "invalid_event", "unreadable"]
    assert all(k["source"].startswith("examples/events.jsonl:") for k in kept)
    assert "every event accounted for" in result.stderr


def test_run_reads_stdin_and_json_arrays(tmp_path):
    events = [{"type": "track", "event": "Order Completed", "properties": {"order_id": "a"}},
              {"type": "page"}]
    result = switchyard("run", "rules/webhook.yaml", "--dry-run", "--dead-letter", tmp_path / "d",
                        stdin=json.dumps(events))
    assert [json.loads(line)["payload"]["data"]["order_id"] for line in result.stdout.splitlines()] == ["a"]
    assert "events read            2" in result.stderr


def test_stdin_that_is_a_file_is_read_from_where_it_stands(tmp_path):
    """`(skip the header; switchyard run ...) < file`: a file handed over part-read is read from there on."""
    import subprocess
    import sys

    lines = [json.dumps({"type": "track", "event": "Order Completed", "properties": {"order_id": order}})
             for order in ("a", "b", "c")]
    path = tmp_path / "events.jsonl"
    path.write_text("".join(line + "\n" for line in lines))
    with open(path, "rb", buffering=0) as stream:
        stream.seek(len(lines[0]) + 1)
        result = subprocess.run([sys.executable, "-m", "engine", "run", "rules/webhook.yaml", "--dry-run"],
                                stdin=stream, capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert [json.loads(line)["payload"]["data"]["order_id"] for line in result.stdout.splitlines()] == ["b", "c"]
    assert "events read            2" in result.stderr


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux)")
@pytest.mark.parametrize("events, workers", [(3, "1"), (348, "1"), (348, "2")],
                         ids=["buffered until the end", "one process", "two workers"])
def test_a_dry_run_whose_output_is_full_says_so_without_a_traceback(tmp_path, events, workers):
    import subprocess
    import sys

    path = tmp_path / "events.jsonl"
    path.write_text("".join((ROOT / "examples" / "events.jsonl").read_text().splitlines(keepends=True)[:events]))
    with open("/dev/full", "wb") as full:
        result = subprocess.run([sys.executable, "-m", "engine", "run", "rules/", str(path), "--dry-run",
                                 "--workers", workers], stdout=full, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                                timeout=60)
    assert result.returncode == 1
    assert result.stderr == ("switchyard: cannot write the calls to the output: No space left on device; "
                             "the run stopped before the end, with no summary\n")


def test_run_rejects_rules_with_errors(write_rules):
    result = switchyard("run", write_rules(BROKEN), "--dry-run", stdin="")
    assert result.returncode == 1
    assert "SY102" in result.stderr and "Traceback" not in result.stderr


def test_the_bundled_rule_set_accounts_for_every_line(tmp_path):
    result = switchyard("run", "rules/", "examples/events.jsonl", "--dry-run", "--dead-letter", tmp_path / "d",
                        "--summary-json", tmp_path / "summary.json")
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    lines = [line for line in (ROOT / "examples/events.jsonl").read_text().splitlines() if line.strip()]
    assert summary["events"] + summary["unreadable_lines"] == len(lines)
    assert summary["events"] == (summary["with_calls"] + summary["filtered"] + summary["no_matching_mapping"]
                                 + summary["invalid_events"] + summary["invalid_payload_only"])
    assert {key.split(" / ")[0] for key in summary["calls"]} == {"crm", "customerio", "userengage"}


def test_lint_never_prints_a_secret_written_in_the_file(write_rules):
    path = write_rules("""\
version: 1
destination:
  name: cio
  catalog: customerio
  settings: {site_id: site-abc123, api_key: key-very-secret-42, region: mars}
mappings: []
""")
    result = switchyard("lint", path)
    assert result.returncode == 1 and "SY306" in result.stdout  # the bad region, on the same line
    assert "key-very-secret-42" not in result.stdout and "site-abc123" not in result.stdout
    assert "api_key: ********" in result.stdout


ORDER = {"type": "track", "event": "Order Completed", "properties": {"order_id": "o1"}}


@pytest.mark.parametrize("argv", [
    ["run", "rules/webhook.yaml", "--dry-run", "EVENTS"],
    ["run", "rules/webhook.yaml", "--workspace", "WORKSPACE", "--dry-run", "EVENTS"],
    ["run", "--dry-run", "rules/webhook.yaml", "EVENTS", "--dead-letter", "DEAD"],
], ids=["flag-between", "option-with-value-between", "options-first-and-last"])
def test_options_go_anywhere(tmp_path, argv):
    events = tmp_path / "events.jsonl"
    events.write_text(json.dumps(ORDER) + "\n")
    names = {"EVENTS": events, "WORKSPACE": tmp_path / "w.db", "DEAD": tmp_path / "dead"}
    result = switchyard(*[names.get(arg, arg) for arg in argv])
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["payload"]["data"]["order_id"] == "o1"


def test_lint_takes_options_between_paths(write_rules):
    path = write_rules(BROKEN)
    result = switchyard("lint", "rules/customerio.yaml", "--format", "github", path)
    assert result.returncode == 1
    assert f"::error file={path},line=7,col=30,title=SY102::" in result.stdout.splitlines()[0]


def test_a_usage_error_prints_the_commands_usage_and_a_mistyped_command_gets_a_suggestion():
    result = switchyard("run", "rules/", "--no-such-flag", "examples/events.jsonl")
    assert result.returncode == 2
    assert result.stderr.startswith("usage: switchyard run ")
    assert "unrecognized arguments: --no-such-flag" in result.stderr
    mistyped = switchyard("lnit", "rules/")
    assert mistyped.returncode == 2 and "did you mean 'lint'?" in mistyped.stderr


@pytest.mark.parametrize("command", ["lint", "test", "explain"])
def test_help_describes_path_and_every_option(command):
    result = switchyard(command, "--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    assert "PATH a rule file, a folder of them (*.yaml, *.yml), or - for one rule file on stdin" in text
    described = {  # each option, with the start of its description
        "lint": ["--format {text,json,github} text (default): one problem a line"],
        "test": [],
        "explain": ["--event FILE the event: a JSON object, a JSON array or NDJSON file, or - for stdin",
                    "--format {text,json} text (default) for a terminal"],
    }[command]
    for option in described:
        assert option in text
    assert "Exit 0" in text  # and what its exit codes mean


def test_dash_is_stdin_for_events_and_rules(tmp_path):
    result = switchyard("run", "rules/webhook.yaml", "-", "--dry-run", stdin=json.dumps(ORDER) + "\n")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["mapping"] == "Orders to CRM"
    rules = (ROOT / "rules/webhook.yaml").read_text()
    linted = switchyard("lint", "-", stdin=rules)
    assert linted.returncode == 0 and linted.stdout.strip().endswith("0 error(s), 0 warning(s)")
    broken = switchyard("lint", "-", stdin=BROKEN)
    assert broken.returncode == 1 and "<stdin>:7:30: error SY102" in broken.stdout


def test_run_reads_a_pretty_printed_object_and_array(tmp_path):
    single = tmp_path / "one.json"
    single.write_text(json.dumps(ORDER, indent=2))
    many = tmp_path / "many.json"
    many.write_text(json.dumps([ORDER, {**ORDER, "properties": {"order_id": "o2"}}], indent=2))
    result = switchyard("run", "rules/webhook.yaml", single, many, "--dry-run")
    assert result.returncode == 0, result.stderr
    ids = [json.loads(line)["payload"]["data"]["order_id"] for line in result.stdout.splitlines()]
    assert ids == ["o1", "o1", "o2"]
    assert "unreadable lines       0" in result.stderr


FIRST_LINES = [  # (what the first line holds, its text, the unreadable lines, the orders); an order "o1" follows
    ("an integer of 5,000 digits", '{"type":"track","event":"Order Completed","properties":{"order_id":"o0",'
                                   '"n":' + "9" * 5000 + "}}", 0, ["o0", "o1"]),
    ("nesting 1,500 deep", '{"type":"track","a":' + "[" * 1500 + "]" * 1500 + "}", 0, ["o1"]),
    ("nesting 5,000 deep", '{"type":"track","a":' + "[" * 5000 + "]" * 5000 + "}", 1, ["o1"]),
    ("an object cut short", '{"type":"track","event":"Order Completed"', 1, ["o1"]),
]


@pytest.mark.parametrize("name, first, unreadable, orders", FIRST_LINES, ids=[case[0] for case in FIRST_LINES])
def test_the_first_line_of_an_input_is_read_as_any_other(tmp_path, name, first, unreadable, orders):
    """It was read with json first, to see whether the input is one event over several lines: a long
    integer or deep nesting there was a traceback that lost every event, and a line cut short read all
    of the input (a stream to its end) before any event."""
    events = tmp_path / "events.jsonl"
    events.write_text(first + "\n" + json.dumps({**ORDER, "properties": {"order_id": "o1"}}) + "\n")
    result = switchyard("run", "rules/webhook.yaml", events, "--dry-run", "--dead-letter", tmp_path / "dead")
    assert "Traceback" not in result.stderr and f"unreadable lines       {unreadable}" in result.stderr, result.stderr
    assert [json.loads(line)["payload"]["data"]["order_id"] for line in result.stdout.splitlines()] == orders


def test_a_stream_whose_first_line_is_cut_short_is_still_read_line_by_line(tmp_path):
    import select
    import subprocess
    import sys

    process = subprocess.Popen([sys.executable, "-m", "engine", "run", "rules/webhook.yaml", "--dry-run",
                                "--dead-letter", str(tmp_path / "dead")], cwd=ROOT, stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write(b'{"type":"track"\n' + json.dumps(ORDER).encode() + b"\n")
        process.stdin.flush()
        ready, _, _ = select.select([process.stdout], [], [], 30)
        assert ready, "no call came out before the input ended"
        line = process.stdout.readline()
        assert json.loads(line)["payload"]["data"]["order_id"] == "o1"
    finally:
        process.kill()
        process.communicate()


def test_an_event_over_several_lines_with_an_empty_object_on_a_line_of_its_own_is_one_event(tmp_path):
    events = tmp_path / "one.json"
    events.write_text(json.dumps({**ORDER, "properties": {"order_id": "o1", "products": [{}, {"sku": "A"}, {}]}},
                                 indent=2))
    assert "\n      {},\n" in events.read_text()
    result = switchyard("run", "rules/webhook.yaml", events, "--dry-run")
    assert [json.loads(line)["payload"]["data"]["order_id"] for line in result.stdout.splitlines()] == ["o1"]


def test_an_event_over_several_lines_that_writes_a_key_twice_is_one_unreadable_item(tmp_path):
    events = tmp_path / "one.json"
    events.write_text('\n{\n  "type": "track",\n  "event": "Order Completed",\n  "event": "Other"\n}\n\n')
    result = switchyard("run", "rules/webhook.yaml", events, "--dry-run", "--dead-letter", tmp_path / "dead")
    assert result.stdout == "" and "unreadable lines       1" in result.stderr
    (record,) = [json.loads(line) for line in (tmp_path / "dead").read_text().splitlines()]
    assert record["source"] == f"{events}:2" and '"event" is written twice' in record["reason"]


def test_an_integer_of_5000_digits_in_a_rule_file_is_read_as_in_an_event(tmp_path):
    """Past Python's 4,300 digits it was a traceback in lint, test and run, not a reading of the file."""
    big = "9" * 5000
    rules = tmp_path / "big.yaml"
    rules.write_text(f"""version: 1
destination: {{name: d, catalog: webhook, settings: {{url: "http://127.0.0.1:9/hook"}}}}
mappings:
  - name: big
    trigger: properties.n > {big} or properties.n in [1, {big}]
    action: send
    fields: {{data: {{n: properties.n, limit: {big}}}}}
tests:
  - name: the largest number there is
    event: {{type: track, properties: {{n: 1{big}}}}}
    expect:
      - mapping: big
        payload: {{url: "http://127.0.0.1:9/hook", method: POST, data: {{n: 1{big}, limit: {big}}}}}
""")
    for argv in (["lint", rules], ["test", rules]):
        result = switchyard(*argv)
        assert result.returncode == 0 and "Traceback" not in result.stderr, (argv, result.stdout, result.stderr)
    events = tmp_path / "events.jsonl"
    events.write_text('{"type":"track","properties":{"n":' + big + "}}\n")
    result = switchyard("run", rules, events, "--dry-run")
    assert result.stdout.endswith(',"payload":{"url":"http://127.0.0.1:9/hook","method":"POST","data":'
                                  '{"n":' + big + ',"limit":' + big + "}}}\n"), result.stderr


def test_an_integer_longer_than_any_event_may_hold_is_a_lint_error_with_its_place(tmp_path):
    big = "9" * 100_001
    rules = tmp_path / "huge.yaml"
    rules.write_text(f"""version: 1
destination: {{name: d, catalog: webhook, settings: {{url: "http://x"}}}}
mappings:
  - {{name: m, trigger: 'properties.n > {big}', action: send, fields: {{data: {{a: {big}}}}}}}
""")
    result = switchyard("lint", rules)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"{rules}:4:" in result.stdout and "error SY001" in result.stdout
    assert "a number of 100,001 characters is longer than any value can be" in result.stdout
    rules.write_text(rules.read_text().replace(f", fields: {{data: {{a: {big}}}}}", ""))
    result = switchyard("lint", rules)  # in the trigger alone: said so, not read as a null
    assert result.returncode == 1 and f"{rules}:4:40: error SY101 a number of 100,001 characters" in result.stdout


def n_to_hook(tmp_path, tests: str = ""):
    """A rule file that sends each track event's ``properties.n`` to a hook, with ``tests`` (YAML) after it."""
    rules = tmp_path / "n.yaml"
    rules.write_text("""version: 1
destination: {name: d, catalog: webhook, settings: {url: "http://127.0.0.1:9/hook"}}
mappings:
  - {name: m, trigger: 'type = "track"', action: send, fields: {data: {n: properties.n}}}
""" + tests)
    return rules


def test_a_failed_case_whose_call_holds_a_lone_surrogate_is_reported(tmp_path):
    """The report printed the call as it was: a UnicodeEncodeError traceback on a UTF-8 stdout."""
    rules = n_to_hook(tmp_path, """tests:
  - name: a surrogate
    event: {type: track, properties: {n: "x\\ud800"}}
    expect:
      - mapping: m
        payload: {url: "http://127.0.0.1:9/hook", method: POST, data: {n: "y"}}
""")
    result = switchyard("test", rules, process=True)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert '"n": "x\\ud800"' in result.stdout and "0 passed, 1 failed" in result.stdout


def test_explain_as_json_writes_nan_as_null(tmp_path):
    rules = n_to_hook(tmp_path)
    event = tmp_path / "e.json"
    event.write_text('{"type":"track","properties":{"n":NaN}}\n')
    result = switchyard("explain", rules, "--event", event, "--format", "json")

    def refuse(word):
        raise ValueError(f"{word} is not JSON")
    report = json.loads(result.stdout, parse_constant=refuse)
    assert '"n": null' in result.stdout and report


def test_a_test_case_expecting_nan_passes_when_the_payload_holds_nan(tmp_path):
    rules = n_to_hook(tmp_path, """tests:
  - name: NaN is NaN
    event: {type: track, properties: {n: .nan}}
    expect:
      - mapping: m
        payload: {url: "http://127.0.0.1:9/hook", method: POST, data: {n: .nan}}
  - name: NaN is not a number
    event: {type: track, properties: {n: .nan}}
    expect:
      - mapping: m
        payload: {url: "http://127.0.0.1:9/hook", method: POST, data: {n: 1.0}}
""")
    result = switchyard("test", rules)
    assert result.returncode == 1 and "1 passed, 1 failed" in result.stdout, result.stdout
    assert "expected 1.0, got nan" in result.stdout


def test_a_folder_without_rule_files_is_a_usage_error(tmp_path):
    (tmp_path / "notes.txt").write_text("not rules")
    for argv in (["lint", tmp_path], ["test", tmp_path], ["run", tmp_path, "--dry-run"]):
        result = switchyard(*argv, stdin="")
        assert result.returncode == 2, argv
        assert "no rule files (*.yaml, *.yml) in" in result.stderr


def test_yml_files_in_a_folder_are_rule_files(tmp_path):
    (tmp_path / "crm.yml").write_text((ROOT / "rules/webhook.yaml").read_text())
    result = switchyard("test", tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.fullmatch(r"[1-9]\d* passed, 0 failed", result.stdout.strip().splitlines()[-1])


def test_a_dry_run_writes_no_dead_letter_file_unless_asked(tmp_path):
    here = {"cwd": tmp_path, "env": {**os.environ, "PYTHONPATH": str(ROOT)}}  # this checkout's engine
    result = switchyard("run", ROOT / "rules/webhook.yaml", ROOT / "examples/events.jsonl", "--dry-run", **here)
    assert result.returncode == 0, result.stderr
    assert list(tmp_path.iterdir()) == []
    assert "not kept" in result.stderr
    asked = switchyard("run", ROOT / "rules/webhook.yaml", ROOT / "examples/events.jsonl", "--dry-run",
                       "--dead-letter", "dead.ndjson", **here)
    assert asked.returncode == 0 and (tmp_path / "dead.ndjson").read_text().count("\n") == 3


def test_the_overview_does_not_call_undelivered_events_sent(tmp_path):
    result = switchyard("run", "rules/webhook.yaml", "examples/events.jsonl", "--dry-run")
    assert "  with calls  " in result.stderr and "sent" not in result.stderr


def test_a_bad_workspace_setting_is_a_usage_error(tmp_path):
    result = switchyard("workspace", "settings", "--db", tmp_path / "w.db", "--attribute-type", "seats=integer")
    assert result.returncode == 2
    assert "'integer'" in result.stderr


def test_gitignore_covers_what_the_readme_commands_create():
    ignored = (ROOT / ".gitignore").read_text().split()
    for name in ("deadletter.ndjson*", "switchyard.db*", "out/"):
        assert name in ignored


def test_a_condition_that_holds_only_on_a_missing_field_is_no_nearer_miss(write_rules):
    from engine.explain import explain, render
    from engine.loader import load

    rules = load(write_rules("""\
version: 1
destination: {name: crm, catalog: webhook, settings: {url: "https://x.example"}}
mappings:
  - {name: Tracks, action: send, trigger: 'type = "track" and event != "a" and event != "b"'}
  - {name: Other screen, action: send, trigger: 'type = "screen" and name = "Other"'}
"""), environ={})
    report = explain(rules, {"type": "screen", "name": "Home"})
    # Tracks' two `event != ...` hold on a screen only because it has no `event`.
    assert report["nearest_miss"] == {"destination": "crm", "mapping": "Other screen", "satisfied": 1,
                                      "conditions": 2, "held_on_missing_fields": 0}
    assert "Nearest miss: crm / 'Other screen' (1 of 2 conditions held)" in render(report)
    page = explain(rules, {"type": "page"})  # nothing holds but on missing fields: no mapping was near
    assert page["matched"] is False and "nearest_miss" not in page


SECRET_URL = "http://secret-host.example/hook?token=abc123"


def _with_env(**values):
    return {**os.environ, **values}


def test_a_setting_read_from_the_environment_is_never_printed(tmp_path):
    env = _with_env(CRM_URL=SECRET_URL)
    order = json.dumps({"type": "track", "event": "Order Completed", "properties": {"order_id": "o1"}})
    shown = [
        switchyard("explain", "rules/webhook.yaml", "--event", "-", stdin=order, env=env),
        switchyard("explain", "rules/webhook.yaml", "--event", "-", "--format", "json", stdin=order, env=env),
        switchyard("run", "rules/webhook.yaml", "-", "--dry-run", stdin=order, env=env),
    ]
    for result in shown:
        assert result.returncode == 0, result.stderr
        assert "abc123" not in result.stdout + result.stderr and "secret-host" not in result.stdout
        assert "********" in result.stdout


def test_bundled_tests_pass_whatever_the_environment_holds():
    result = switchyard("test", "rules/", env=_with_env(CRM_URL=SECRET_URL))
    assert result.returncode == 0, result.stdout
    assert result.stdout.strip().splitlines()[-1].endswith(" passed, 0 failed")


def test_a_failing_test_does_not_print_a_secret_setting(write_rules):
    path = write_rules("""\
version: 1
destination:
  name: crm
  catalog: webhook
  settings: {url: "https://x.example", headers: {Authorization: Bearer tok-very-secret}}
mappings:
  - {name: Orders, trigger: 'event = "Order Completed"', action: send,
     fields: {headers: {X-Key: "'Bearer tok-very-secret'"}}}
tests:
  - name: fails
    event: {type: track, event: Order Completed}
    expect: [{mapping: Orders, payload: {method: PUT}}]
""")
    result = switchyard("test", path)
    assert result.returncode == 1 and "FAIL" in result.stdout
    assert "tok-very-secret" not in result.stdout and "********" in result.stdout


def test_a_delivery_failure_reason_masks_url_credentials(write_rules, tmp_path):
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    path = write_rules("""\
version: 1
destination: {name: crm, catalog: webhook, settings: {url: "${HOOK}", max_attempts: 1}}
mappings:
  - {name: Orders, trigger: 'event = "Order Completed"', action: send, fields: {data: {id: properties.order_id}}}
""")
    dead = tmp_path / "dead.ndjson"
    result = switchyard("run", path, "-", "--dead-letter", dead,
                        stdin=json.dumps({"type": "track", "event": "Order Completed"}),
                        env=_with_env(HOOK=f"http://user:pw@127.0.0.1:{port}/hook?token=abc123"))
    assert result.returncode == 1
    (record,) = [json.loads(line) for line in dead.read_text().splitlines()]
    assert "abc123" not in record["reason"] and "pw@" not in record["reason"]
    assert "abc123" not in result.stderr
    assert record["call"]["payload"]["url"].endswith("token=abc123")  # kept whole, so replay can send it


@pytest.mark.parametrize(("text", "masked"), [
    ("POST http://u:pw@h.example/a?token=abc&x=1 failed", "POST http://********@h.example/a?token=********&x=********"
                                                          " failed"),
    ("see https://crm.example/contacts/u42.", "see https://crm.example/contacts/u42."),
    ("no url here: token=abc", "no url here: token=abc"),
])
def test_url_credentials_are_masked(text, masked):
    from engine.env import mask_url_credentials

    assert mask_url_credentials(text) == masked


def test_a_pattern_python_warns_about_prints_nothing_but_the_report(write_rules):
    """Python's parser, asked what RE2 refused or nested, warns of a "possible nested set" in [[:alpha:]]."""
    path = write_rules('version: 1\ndestination: {name: d, catalog: webhook, settings: {url: "http://x/"}}\n'
                       "mappings:\n  - {name: m, trigger: 'event matches \"[[:alpha:]]+\"', action: send}\n")
    result = switchyard("lint", path, process=True)
    assert result.returncode == 0 and result.stderr == "", result.stderr


def test_a_test_case_failing_on_an_integer_of_5000_digits_says_so(write_rules):
    huge = "9" * 5000
    rules = write_rules('version: 1\ndestination: {name: d, catalog: webhook, settings: {url: "http://x/"}}\n'
                        "mappings:\n  - {name: m, trigger: 'type = \"track\"', action: send, fields: {data: properties}}\n"
                        f"tests:\n  - {{name: t, event: {{type: track, properties: {{n: {huge}}}}},\n"
                        f"     expect: [{{mapping: m, payload: {{data: {{n: {huge}8}}}}}}]}}\n")
    result = switchyard("test", rules)
    assert result.returncode == 1 and "0 passed, 1 failed" in result.stdout, result.stdout + result.stderr
    assert "payload.data.n: expected 999" in result.stdout and "Traceback" not in result.stderr


def test_a_variable_holding_a_port_or_a_word_is_not_masked_wherever_its_value_appears(write_rules):
    """Masking every ${VAR}'s value turned 9000 and true in the calls --dry-run prints into ********: not JSON."""
    import os

    rules = write_rules('version: 1\ndestination: {name: d, catalog: webhook, settings: '
                        '{url: "http://127.0.0.1:${PORT}/hook?sandbox=${SANDBOX}", '
                        'headers: {Authorization: "Bearer ${TOKEN}"}}}\n'
                        "mappings:\n  - {name: m, trigger: 'type = \"track\"', action: send, fields: {data: properties}}\n")
    event = '{"type":"track","properties":{"total":9000,"flag":true,"note":"sekrit-token-42"}}\n'
    result = switchyard("run", rules, "-", "--dry-run", stdin=event,
                        env={**os.environ, "PORT": "9000", "SANDBOX": "true", "TOKEN": "sekrit-token-42"})
    (line,) = result.stdout.splitlines()
    assert json.loads(line)["payload"]["data"] == {"total": 9000, "flag": True, "note": "********"}


def test_a_rule_file_on_stdin_that_is_not_utf8_is_sy003_not_a_traceback():
    result = subprocess.run([sys.executable, "-m", "engine", "lint", "-"], input=b"version: 1\n# \xff\n",
                            capture_output=True, cwd=ROOT, timeout=60)
    assert result.returncode == 1 and b"Traceback" not in result.stderr, result.stderr
    assert b"<stdin>:2:3: error SY003 cannot read rule file: it is not UTF-8 (byte 0xFF" in result.stdout


def test_a_key_read_into_a_url_is_masked_alone_and_a_host_name_is_not(write_rules):
    """A token in a URL's query was masked only as part of the URL: a server quoting it alone showed it."""
    import os

    rules = write_rules('version: 1\ndestination: {name: d, catalog: webhook, settings: '
                        '{url: "http://${HOST}/hook?token=${T}"}}\n'
                        "mappings:\n  - {name: m, trigger: 'type = \"track\"', action: send, fields: {data: properties}}\n")
    event = '{"type":"track","properties":{"token":"abc123~xyz789","host":"crm.internal.example"}}\n'
    result = switchyard("run", rules, "-", "--dry-run", stdin=event,
                        env={**os.environ, "HOST": "crm.internal.example", "T": "abc123~xyz789"})
    (line,) = result.stdout.splitlines()
    assert json.loads(line)["payload"]["data"] == {"token": "********", "host": "crm.internal.example"}


def test_an_oauth_block_s_ordinary_words_are_not_masked_in_the_calls_a_dry_run_prints(write_rules):
    """Its client_id, scope and client_auth, masked wherever they appeared, broke the JSON --dry-run prints."""
    rules = write_rules('version: 1\ndestination: {name: d, catalog: webhook, settings: {url: "http://x/orders", '
                        'oauth: {token_url: "https://auth.example/token", client_id: "1001", client_auth: body, '
                        'scope: orders, client_secret: "${CS}"}}}\n'
                        "mappings:\n  - {name: m, trigger: 'type = \"track\"', action: send, fields: {data: properties}}\n")
    event = '{"type":"track","properties":{"order_id":1001,"plan":"orders","body":"hi"}}\n'
    result = switchyard("run", rules, "-", "--dry-run", stdin=event)
    (line,) = result.stdout.splitlines()
    assert json.loads(line)["payload"]["data"] == {"order_id": 1001, "plan": "orders", "body": "hi"}


def test_the_summary_s_numbers_stand_under_their_column_names_however_short_the_names(tmp_path):
    rules = tmp_path / "f.yaml"
    rules.write_text("version: 1\ndestination: {name: f, catalog: webhook, transport: file, "
                     f"settings: {{path: \"{tmp_path / 'out.ndjson'}\"}}}}\n"
                     "mappings:\n  - {name: M, trigger: type = \"track\", action: send, "
                     "fields: {url: \"'http://x.invalid/'\"}}\n")
    result = switchyard("run", rules, "--dead-letter", tmp_path / "dead.ndjson",
                        stdin=json.dumps({"type": "track", "event": "E"}) + "\n")
    assert result.returncode == 0, result.stderr
    header, row = [line for line in result.stderr.splitlines() if "per mapping" in line or "f / M" in line]
    for column in ("calls", "delivered", "failed"):
        end = header.index(" " + column) + 1 + len(column)
        assert row[end - 1].isdigit() and row[end:end + 1] in ("", " "), f"\n{header}\n{row}"
