"""The ``switchyard`` command: lint, test, explain and run rule files.

Exit codes: 0 success, 1 problems found (rule errors, failed tests, failed run),
2 usage errors (bad arguments, missing files).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import __version__
from .diagnostics import ERROR, WARNING, format_github, format_text
from .loader import compile_paths
from .spark.cli import add_spark_command, run_spark
from .workspace.cli import add_workspace_commands, run_workspace

EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="switchyard", description="Route Segment-spec events with rules as code.")
    parser.add_argument("--version", action="version", version=f"switchyard {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    lint = commands.add_parser("lint", help="check rule files and report every problem")
    lint.add_argument("paths", nargs="+", metavar="PATH")
    lint.add_argument("--format", choices=("text", "json", "github"), default="text")

    test = commands.add_parser("test", help="run the tests: examples written in rule files")
    test.add_argument("paths", nargs="+", metavar="PATH")

    explain = commands.add_parser("explain", help="show why each filter and mapping does or does not fire")
    explain.add_argument("paths", nargs="+", metavar="PATH")
    explain.add_argument("--event", required=True, metavar="FILE", help="a JSON event, or - for stdin")
    explain.add_argument("--format", choices=("text", "json"), default="text")

    run = commands.add_parser("run", help="evaluate events and deliver the calls")
    run.add_argument("rules", metavar="PATH", help="a rule file or a directory of them")
    run.add_argument("events", nargs="*", metavar="EVENTS", help="NDJSON or JSON-array files (default: stdin)")
    run.add_argument("--dry-run", action="store_true", help="print the calls as NDJSON instead of delivering")
    run.add_argument("--dead-letter", metavar="FILE", default="deadletter.ndjson",
                     help="where unreadable lines, invalid events and payloads and failed deliveries go "
                          "(default: %(default)s)")
    run.add_argument("--summary-json", metavar="FILE", help="also write the run summary as JSON")
    run.add_argument("--workers", metavar="N", type=_worker_count, default=1,
                     help="evaluate events in N processes (default: %(default)s)")
    run.add_argument("--ordered", action="store_true",
                     help="with --workers, keep output and deliveries in input order")
    run.add_argument("--workspace", metavar="PATH",
                     help="the SQLite workspace for destinations with transport: workspace (default: their "
                          "`workspace` setting, else switchyard.db)")
    run.add_argument("--restart", action="store_true",
                     help="start from the beginning: ignore the progress journal an interrupted run of the same "
                          "command left beside the dead-letter file")

    add_workspace_commands(commands)
    add_spark_command(commands)

    replay = commands.add_parser("replay", help="send the failed deliveries of a dead-letter file again")
    replay.add_argument("dead_letter_file", metavar="DEADLETTER", help="a dead-letter file written by `run`")
    replay.add_argument("--rules", required=True, metavar="PATH", help="the rule file or directory of the calls")
    replay.add_argument("--dead-letter", metavar="FILE",
                        help="where calls that fail again go (default: DEADLETTER itself; the journal "
                             "DEADLETTER.replayed keeps any call from being sent twice)")
    replay.add_argument("--summary-json", metavar="FILE", help="also write the replay summary as JSON")
    replay.add_argument("--workspace", metavar="PATH",
                        help="the embedded store for destinations with an embedded transport, as for `run`")
    replay.add_argument("--include-refused", action="store_true",
                        help="also send the calls the destination refused (by default they stay in the file)")
    return parser


def _worker_count(text: str) -> int:
    try:
        count = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of processes, got {text!r}") from None
    if count < 1:
        raise argparse.ArgumentTypeError(f"needs at least 1 process, got {count}")
    return count


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    handler = {"lint": _lint, "test": _test, "explain": _explain, "run": _run, "replay": _replay,
               "workspace": run_workspace, "spark": run_spark}[args.command]
    try:
        return handler(args)
    except BrokenPipeError:
        return EXIT_OK
    except KeyboardInterrupt:
        return 130


def _missing_paths(paths) -> int | None:
    missing = [p for p in paths if not Path(p).exists()]
    if missing:
        print(f"switchyard: no such file or directory: {', '.join(missing)}", file=sys.stderr)
        return EXIT_USAGE
    return None


def _print_problems(problems, stream=sys.stderr) -> None:
    for problem in sorted(problems, key=lambda p: (p.file, p.line, p.column)):
        print(format_text(problem), file=stream)


def _lint(args) -> int:
    if (code := _missing_paths(args.paths)) is not None:
        return code
    _, problems = compile_paths(args.paths)
    problems = sorted(problems, key=lambda p: (p.file, p.line, p.column, p.code))
    errors = sum(p.severity == ERROR for p in problems)
    warnings = sum(p.severity == WARNING for p in problems)
    if args.format == "json":
        print(json.dumps({"problems": [p.to_dict() for p in problems], "errors": errors, "warnings": warnings},
                         indent=2))
    elif args.format == "github":
        for problem in problems:
            print(format_github(problem))
    else:
        for problem in problems:
            print(format_text(problem))
        print(f"{errors} error(s), {warnings} warning(s)")
    return EXIT_PROBLEMS if errors else EXIT_OK


def _load_or_report(paths):
    rules, problems = compile_paths(paths)
    errors = [p for p in problems if p.severity == ERROR]
    if errors:
        _print_problems(errors)
        print(f"switchyard: {len(errors)} error(s) in rule files; run `switchyard lint` for details",
              file=sys.stderr)
        return None, problems
    return rules, problems


def _test(args) -> int:
    if (code := _missing_paths(args.paths)) is not None:
        return code
    from .testing import run_tests

    rules, _ = _load_or_report(args.paths)
    if rules is None:
        return EXIT_PROBLEMS
    outcomes = run_tests(rules)
    for outcome in outcomes:
        if outcome.passed:
            continue
        print(f"FAIL {outcome.file}:{outcome.line}: {outcome.destination} / {outcome.name}")
        for failure in outcome.failures:
            print(f"    {failure}")
        print("    actual:")
        for call in outcome.actual or ["(no calls)"]:
            print(f"      {json.dumps(call, ensure_ascii=False) if isinstance(call, dict) else call}")
    passed = sum(o.passed for o in outcomes)
    print(f"{passed} passed, {len(outcomes) - passed} failed")
    return EXIT_OK if passed == len(outcomes) else EXIT_PROBLEMS


def _read_events_arg(name: str):
    text = sys.stdin.read() if name == "-" else Path(name).read_text(encoding="utf-8")
    try:
        value = json.loads(text)
        return value if isinstance(value, list) else [value]
    except json.JSONDecodeError:
        return [json.loads(line) for line in text.splitlines() if line.strip()]


def _explain(args) -> int:
    if (code := _missing_paths(args.paths + ([] if args.event == "-" else [args.event]))) is not None:
        return code
    from .explain import explain, render

    rules, _ = _load_or_report(args.paths)
    if rules is None:
        return EXIT_PROBLEMS
    try:
        events = _read_events_arg(args.event)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        print(f"switchyard: {args.event}: not valid JSON: {error}", file=sys.stderr)
        return EXIT_USAGE
    reports = [explain(rules, event) for event in events]
    if args.format == "json":
        print(json.dumps(reports[0] if len(reports) == 1 else reports, indent=2, ensure_ascii=False, default=str))
    else:
        print("\n\n".join(render(report) for report in reports))
    return EXIT_OK


def _run(args) -> int:
    if (code := _missing_paths([args.rules] + args.events)) is not None:
        return code
    from .adapters import SetupError
    from .events import read_parts
    from .parallel import WorkerError
    from .deadletter import DeadLetterError
    from .run import DeadLetter, Progress, run
    from .stopping import Stop

    rules, problems = _load_or_report([args.rules])
    if rules is None:
        return EXIT_PROBLEMS
    if not args.dry_run:
        unset = [p for p in problems if p.code == "SY501"]
        if unset:
            _print_problems(unset)
            print("switchyard: cannot deliver with unset settings; set the variables or use --dry-run",
                  file=sys.stderr)
            return EXIT_PROBLEMS

    def inputs():
        if not args.events:
            yield from read_parts(sys.stdin.buffer, "<stdin>")
        for name in args.events:
            with open(name, "rb") as stream:
                yield from read_parts(stream, name)

    dead_letter = DeadLetter(args.dead_letter)
    try:
        dead_letter.check()
    except DeadLetterError as error:
        print(f"switchyard: {error}", file=sys.stderr)
        return EXIT_USAGE
    journal = None
    if args.events and not args.dry_run:  # stdin cannot be read again: nothing to resume
        from .resume import ProgressJournal
        journal = ProgressJournal.open(args.dead_letter, args.rules, args.events, restart=args.restart)
    stop = Stop().install()
    try:
        summary = run(rules, inputs(), dry_run=args.dry_run, out=sys.stdout, dead_letter=dead_letter,
                      progress=Progress(), workspace=args.workspace, workers=args.workers, ordered=args.ordered,
                      stop=stop, journal=journal)
    except SetupError as error:
        print(f"switchyard: {error}", file=sys.stderr)
        return EXIT_PROBLEMS
    except WorkerError as error:
        print(f"switchyard: {error}; the run stopped before the end, with no summary", file=sys.stderr)
        return EXIT_PROBLEMS
    except KeyboardInterrupt:
        print("\nswitchyard: interrupted; the run stopped before the end, with no summary", file=sys.stderr)
        return 130
    finally:
        stop.uninstall()
        dead_letter.close()
    print(summary.render(args.dry_run, args.dead_letter), file=sys.stderr)
    if args.summary_json:
        Path(args.summary_json).write_text(json.dumps(summary.to_dict(), indent=2) + "\n", encoding="utf-8")
    if stop.exit_code is not None:
        return stop.exit_code
    return EXIT_OK if not (summary.undelivered or summary.lost) else EXIT_PROBLEMS


def _replay(args) -> int:
    if (code := _missing_paths([args.rules, args.dead_letter_file])) is not None:
        return code
    from .adapters import SetupError
    from .replay import ReplayError, replay

    rules, problems = _load_or_report([args.rules])
    if rules is None:
        return EXIT_PROBLEMS
    unset = [p for p in problems if p.code == "SY501"]
    if unset:
        _print_problems(unset)
        print("switchyard: cannot deliver with unset settings; set the variables", file=sys.stderr)
        return EXIT_PROBLEMS
    try:
        summary = replay(rules, args.dead_letter_file, out_dead_letter=args.dead_letter or args.dead_letter_file,
                         workspace=args.workspace, include_refused=args.include_refused)
    except (ReplayError, SetupError) as error:
        print(f"switchyard: {error}", file=sys.stderr)
        return EXIT_PROBLEMS
    print(summary.render(), file=sys.stderr)
    if args.summary_json:
        Path(args.summary_json).write_text(json.dumps(summary.to_dict(), indent=2) + "\n", encoding="utf-8")
    return EXIT_OK if summary.ok else EXIT_PROBLEMS
