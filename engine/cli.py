"""The ``switchyard`` command: lint, test, explain, run and replay rule files.

Exit codes: 0 success, 1 problems found (rule errors, failed tests, failed run),
2 usage errors (bad arguments, missing files, a folder with no rule files).

Each command is added by an ``add_*`` function of its own, so a new command is one line in
:func:`_parser`. Options may come anywhere, between positionals too (:class:`_Parser`), and ``-``
names stdin wherever a file is read.
"""
from __future__ import annotations

import argparse
import difflib
import io
import json
import re
import sys
from pathlib import Path
from typing import IO, Any, Iterator

from . import __version__
from .diagnostics import ERROR, WARNING, format_github, format_text
from .env import Secrets, mask_url_credentials
from .loader import RULE_SUFFIXES, compile_paths
from .serve import add_serve_command, run_serve
from .spark.cli import add_spark_command, run_spark
from .workspace.cli import add_workspace_commands, run_workspace

EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE = 0, 1, 2
STDIN = "-"
_RULES_HELP = ("a rule file, a folder of them (*.yaml, *.yml), or - for one rule file on stdin; "
               "give as many as you like")


class _Parser(argparse.ArgumentParser):
    """argparse with options anywhere (``run rules/ --dry-run events.jsonl``), and every usage error
    reported by the command it belongs to, with that command's usage line."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._intermixing = False

    def _check_value(self, action, value):
        # An unknown command gets a "did you mean" rather than the list of every choice.
        if isinstance(action, argparse._SubParsersAction) and value not in action.choices:
            close = difflib.get_close_matches(value, list(action.choices), n=1, cutoff=0.5)
            hint = f"; did you mean '{close[0]}'?" if close else f" (choose {', '.join(action.choices)})"
            raise argparse.ArgumentError(action, f"unknown command '{value}'{hint}")
        super()._check_value(action, value)

    def parse_known_args(self, args=None, namespace=None):  # type: ignore[override]
        if self._subparsers is not None or self._intermixing:
            return super().parse_known_args(args, namespace)
        # A command's own parser: its positionals may have options between them. What it does not
        # know is its error, not the top-level parser's (which would print the top-level usage).
        self._intermixing = True
        try:
            parsed, extras = self.parse_known_intermixed_args(args, namespace)
        finally:
            self._intermixing = False
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed, extras


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="switchyard", description="Route Segment-spec events with rules as code.")
    parser.add_argument("--version", action="version", version=f"switchyard {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_lint_command(commands)
    add_test_command(commands)
    add_explain_command(commands)
    add_run_command(commands)
    add_workspace_commands(commands)
    add_spark_command(commands)
    add_serve_command(commands)
    add_replay_command(commands)
    return parser


def add_lint_command(commands) -> None:
    lint = commands.add_parser(
        "lint", help="check rule files and report every problem",
        description="Check rule files and report every problem in one run. Exit 0 with no errors "
                    "(warnings allowed), 1 with errors, 2 for bad arguments or a folder with no rule files.")
    lint.add_argument("paths", nargs="+", metavar="PATH", help=_RULES_HELP)
    lint.add_argument("--format", choices=("text", "json", "github"), default="text",
                      help="text (default): one problem a line with the source line and a caret; json: "
                           "{problems, errors, warnings}; github: GitHub Actions annotations")
    lint.set_defaults(handler=_lint)


def add_test_command(commands) -> None:
    test = commands.add_parser(
        "test", help="run the tests: examples written in rule files",
        description="Run every `tests:` case written in the rule files. Exit 0 when all pass, 1 on any "
                    "failure or rule error, 2 for bad arguments or a folder with no rule files.")
    test.add_argument("paths", nargs="+", metavar="PATH", help=_RULES_HELP)
    test.set_defaults(handler=_test)


def add_explain_command(commands) -> None:
    explain = commands.add_parser(
        "explain", help="show why each filter and mapping does or does not fire",
        description="For one event (or each event of a file), show every filter and mapping, each condition "
                    "with the value it saw, and the payload. Exit 0, 1 on rule errors, 2 for bad arguments.")
    explain.add_argument("paths", nargs="+", metavar="PATH", help=_RULES_HELP)
    explain.add_argument("--event", required=True, metavar="FILE",
                         help="the event: a JSON object, a JSON array or NDJSON file, or - for stdin")
    explain.add_argument("--format", choices=("text", "json"), default="text",
                         help="text (default) for a terminal, or json for the same report as data")
    explain.set_defaults(handler=_explain)


def add_run_command(commands) -> None:
    run = commands.add_parser(
        "run", help="evaluate events and deliver the calls",
        description="Evaluate events and deliver the calls. Exit 0 when every call was delivered, 1 when "
                    "any was refused or failed, 2 for bad arguments.")
    run.add_argument("rules", metavar="PATH", help="a rule file or a folder of them (*.yaml, *.yml)")
    run.add_argument("events", nargs="*", metavar="EVENTS",
                     help="NDJSON, JSON-array or JSON-object files, - for stdin (default: stdin)")
    run.add_argument("--dry-run", action="store_true", help="print the calls as NDJSON instead of delivering")
    run.add_argument("--dead-letter", metavar="FILE", default=None,
                     help="where unreadable lines, invalid events and payloads and failed deliveries go "
                          "(default: deadletter.ndjson; a dry run writes none unless this is given)")
    run.add_argument("--summary-json", metavar="FILE", help="also write the run summary as JSON")
    run.add_argument("--workers", metavar="N", type=_worker_count, default=1,
                     help="evaluate events in N processes (default: %(default)s)")
    run.add_argument("--ordered", action="store_true",
                     help="with --workers, keep output and deliveries in input order")
    run.add_argument("--lanes", choices=("auto", "thread", "process"), default="auto",
                     help="where each destination's deliveries run: a thread of this process, or a process of its "
                          "own beside the evaluation; auto: a process for an input of 16 MB or more when a core is "
                          "free for it (default: %(default)s)")
    run.add_argument("--workspace", metavar="PATH",
                     help="the SQLite workspace for destinations with transport: workspace (default: their "
                          "`workspace` setting, else switchyard.db)")
    run.add_argument("--restart", action="store_true",
                     help="start from the beginning: ignore the progress journal an interrupted run of the same "
                          "command left beside the dead-letter file")
    run.set_defaults(handler=_run)


def add_replay_command(commands) -> None:
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
    replay.set_defaults(handler=_replay)


def _worker_count(text: str) -> int:
    try:
        count = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of processes, got {text!r}") from None
    if count < 1:
        raise argparse.ArgumentTypeError(f"needs at least 1 process, got {count}")
    return count


def main(argv=None) -> int:
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exit_:  # argparse's --help (0) and usage errors (2)
        return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE
    handler = getattr(args, "handler", None) or {
        "workspace": run_workspace, "spark": run_spark, "serve": run_serve}[args.command]
    try:
        return handler(args)
    except BrokenPipeError:
        return EXIT_OK
    except KeyboardInterrupt:
        return 130


def _usage_error(message: str) -> int:
    print(f"switchyard: {message}", file=sys.stderr)
    return EXIT_USAGE


def _check_rule_paths(paths) -> int | None:
    """A usage error for a path that does not exist or a folder that holds no rule file, else None."""
    missing = [p for p in paths if p != STDIN and not Path(p).exists()]
    if missing:
        return _usage_error(f"no such file or directory: {', '.join(missing)}")
    empty = [p for p in paths if p != STDIN and Path(p).is_dir()
             and not any(f.suffix in RULE_SUFFIXES and f.is_file() for f in Path(p).iterdir())]
    if empty:
        return _usage_error(f"no rule files ({', '.join('*' + s for s in RULE_SUFFIXES)}) in {', '.join(empty)}")
    if paths.count(STDIN) > 1:
        return _usage_error("stdin (-) can be read once")
    return None


def _check_files(paths) -> int | None:
    missing = [p for p in paths if p != STDIN and not Path(p).is_file()]
    if missing:
        return _usage_error(f"no such file: {', '.join(missing)}")
    return None


def _compile(paths, environ=None):
    """compile_paths, with ``-`` read from stdin as the rule file ``<stdin>``."""
    if STDIN not in paths:
        return compile_paths(paths, environ)
    name = "<stdin>"
    return compile_paths([name if p == STDIN else p for p in paths], environ, texts={name: sys.stdin.buffer.read()})


class _MaskedOutput:
    """stdout with the secret settings masked: what ``run --dry-run`` prints is output too."""

    def __init__(self, stream: IO[str], secrets: Secrets):
        self._stream, self._secrets = stream, secrets

    def write(self, text: str) -> int:
        return self._stream.write(self._secrets.mask(text))

    def flush(self) -> None:
        self._stream.flush()


def _say(message: str, secrets: Secrets | None = None) -> None:
    """A message on stderr: a log, so URL credentials (and secret settings, when known) are masked."""
    print(f"switchyard: {secrets.mask_reason(message) if secrets else mask_url_credentials(message)}",
          file=sys.stderr)


def _print_problems(problems, stream=None) -> None:
    stream = stream or sys.stderr  # read at call time: output may be redirected
    for problem in sorted(problems, key=lambda p: (p.file, p.line, p.column)):
        print(format_text(problem), file=stream)


def _lint(args) -> int:
    if (code := _check_rule_paths(args.paths)) is not None:
        return code
    _, problems = _compile(args.paths)
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


def _load_or_report(paths, environ=None):
    rules, problems = _compile(paths, environ)
    errors = [p for p in problems if p.severity == ERROR]
    if errors:
        _print_problems(errors)
        print(f"switchyard: {len(errors)} error(s) in rule files; run `switchyard lint` for details",
              file=sys.stderr)
        return None, problems
    return rules, problems


def _test(args) -> int:
    if (code := _check_rule_paths(args.paths)) is not None:
        return code
    from .events import json_text, with_escapes
    from .testing import run_tests

    # Tests are examples: they read `${VAR:-default}` as its default, whatever the environment
    # holds, so they pass the same on a laptop, in CI and in production.
    rules, _ = _load_or_report(args.paths, environ={})
    if rules is None:
        return EXIT_PROBLEMS
    secrets = Secrets.of(rules.destinations)
    outcomes = run_tests(rules)
    for outcome in outcomes:
        if outcome.passed:
            continue
        lines = [f"FAIL {outcome.file}:{outcome.line}: {outcome.destination} / {outcome.name}"]
        lines += [f"    {failure}" for failure in outcome.failures]
        lines.append("    actual:")
        lines += [f"      {json_text(call) if isinstance(call, dict) else call}"
                  for call in outcome.actual or ["(no calls)"]]
        # A date or bytes from YAML is shown as its text; a lone surrogate as its escape, not a traceback.
        print(with_escapes(secrets.mask("\n".join(lines))))
    passed = sum(o.passed for o in outcomes)
    print(f"{passed} passed, {len(outcomes) - passed} failed")
    return EXIT_OK if passed == len(outcomes) else EXIT_PROBLEMS


def _read_events_arg(name: str):
    from .events import read_document

    data = sys.stdin.buffer.read() if name == STDIN else Path(name).read_bytes()
    return read_document(data, "stdin" if name == STDIN else name)


def _explain(args) -> int:
    if (code := _check_rule_paths(args.paths) or _check_files([args.event])) is not None:
        return code
    if args.event == STDIN and STDIN in args.paths:
        return _usage_error("stdin (-) can be read once: give the rules or the event as a file")
    from .events import Unreadable, any_json, json_text
    from .explain import explain, render

    rules, _ = _load_or_report(args.paths)
    if rules is None:
        return EXIT_PROBLEMS
    items = _read_events_arg(args.event)
    unreadable = [event for _, event in items if isinstance(event, Unreadable)]
    for line in unreadable:
        print(f"switchyard: {line.source}: {line.reason}", file=sys.stderr)
    if not items:
        print(f"switchyard: {args.event}: no events in the input", file=sys.stderr)
    reports = [explain(rules, event) for _, event in items if not isinstance(event, Unreadable)]
    with any_json():  # an event may hold a 5,000-digit integer, or nest 900 levels
        if reports and args.format == "json":
            text = json_text(reports[0] if len(reports) == 1 else reports, indent=2)  # NaN as null: JSON
        else:
            text = "\n\n".join(render(report) for report in reports)
    if reports:  # a lone surrogate ("\udfff" in the event) is written as that escape
        text = Secrets.of(rules.destinations).mask(text)
        sys.stdout.flush()
        sys.stdout.buffer.write(text.encode("utf-8", "backslashreplace") + b"\n")
    return EXIT_USAGE if unreadable or not items else EXIT_OK


class _Prefixed(io.RawIOBase):
    """A binary stream that gives ``head`` first, then the rest of ``stream``."""

    def __init__(self, head: bytes, stream: IO[bytes]):
        self._head, self._stream = head, stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self._head:
            size = min(len(buffer), len(self._head))
            buffer[:size], self._head = self._head[:size], self._head[size:]
            return size
        data = getattr(self._stream, "read1", self._stream.read)(len(buffer))
        buffer[:len(data)] = data
        return len(data)


#: How much of an input is read ahead to see whether its first line starts one event written over several.
OVER_LINES_LIMIT = 1 << 20


def _event_parts(stream: IO[bytes], name: str) -> Iterator:
    """read_parts, and also one JSON object written over several lines (a pretty-printed event).

    Whether the input is one such event is seen from the first lines alone, read by the rules of
    :mod:`engine.events` (exact numbers, a key written twice refused): an object left open on its first
    line, closed on a later one, with nothing after it. Reading ahead stops at a line that is an object by
    itself at the start of the line (NDJSON after a bad first line; a pretty-printed event's inner lines, an
    empty ``{}`` in a list too, are indented) or after OVER_LINES_LIMIT bytes, so a live stream is not held.
    """
    from .events import read_parts

    start = stream.tell() if stream.seekable() else None
    head = b""
    while line := stream.readline():
        head += line
        if line.strip():
            break
    if head.lstrip().startswith(b"{") and _depth(head) > 0:
        more, item = _over_lines(head, stream, name)
        if item is not None:
            yield item
            return
        head += more
    if start is not None:  # a file: read it again from where it started, rather than copy it through _Prefixed
        stream.seek(start)
        yield from read_parts(stream, name)
        return
    yield from read_parts(io.BufferedReader(_Prefixed(head, stream), 1 << 20), name)


def _over_lines(head: bytes, stream: IO[bytes], name: str) -> tuple[bytes, tuple[str, object] | None]:
    """The lines read after ``head``, and the one event (or unreadable document) they close with ``head``,
    or None when the input is not one event written over several lines."""
    from .events import parse

    depth, read = _depth(head), [head]
    size = len(head)
    while depth > 0 and size < OVER_LINES_LIMIT and (line := stream.readline()):
        read.append(line)
        size += len(line)
        if line.startswith(b"{") and _depth(line) == 0:  # a pretty-printed event's inner lines are indented
            return b"".join(read[1:]), None  # a whole object on a line: NDJSON, its first line bad
        depth += _depth(line)
    if depth != 0:
        return b"".join(read[1:]), None
    while line := stream.readline():  # only blank lines may follow the event
        read.append(line)
        if line.strip():
            return b"".join(read[1:]), None
    first = 1 + head.count(b"\n", 0, len(head.rstrip()))
    item = parse(b"".join(read).strip(), f"{name}:{first}")
    return b"", ((name, item) if isinstance(item, dict) else (item.source, item))  # type: ignore[attr-defined]


_STRING = re.compile(rb'"(?:[^"\\\n]|\\.)*"')


def _depth(line: bytes) -> int:
    """How many objects and arrays ``line`` opens and leaves open (negative: closes), outside its strings:
    a JSON string never spans lines, so lines can be counted one at a time."""
    bare = _STRING.sub(b"", line)
    return bare.count(b"{") + bare.count(b"[") - bare.count(b"}") - bare.count(b"]")


def _input_bytes(names: list[str]) -> int:
    """How many bytes of input ``run`` has ahead of it, as far as is known before reading: files (stdin
    too, when it is one) count what is left of them, a pipe nothing."""
    import os
    import stat

    total = 0
    for name in names or [STDIN]:
        try:
            if name == STDIN:
                status = os.fstat(sys.stdin.fileno())
                if stat.S_ISREG(status.st_mode):
                    total += max(0, status.st_size - os.lseek(sys.stdin.fileno(), 0, os.SEEK_CUR))
            else:
                total += os.stat(name).st_size
        except (OSError, ValueError, AttributeError):  # no stdin, or one that is not a real file
            continue
    return total


def _run(args) -> int:
    if (code := _check_rule_paths([args.rules]) or _check_files(args.events)) is not None:
        return code
    if args.events.count(STDIN) + (args.rules == STDIN) + (not args.events) > 1:
        return _usage_error("stdin (-) can be read once: with rules on stdin, name the event files")
    from .adapters import SetupError
    from .deadletter import DeadLetterError
    from .parallel import WorkerError
    from .run import DeadLetter, OutputError, Progress, lanes_for, output_errors, run
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
        for name in args.events or [STDIN]:
            if name == STDIN:
                yield from _event_parts(sys.stdin.buffer, "<stdin>")
                continue
            with open(name, "rb") as stream:
                yield from _event_parts(stream, name)

    # A dry run tries rules out: it keeps no dead-letter file unless asked for one.
    dead_letter_path = args.dead_letter or (None if args.dry_run else "deadletter.ndjson")
    secrets = Secrets.of(rules.destinations)
    dead_letter = DeadLetter(dead_letter_path, mask=secrets.mask_reason)
    try:
        dead_letter.check()
    except DeadLetterError as error:
        return _usage_error(str(error))
    out: IO[Any] = _MaskedOutput(sys.stdout, secrets) if secrets.values else sys.stdout  # type: ignore[assignment]
    journal = None
    # stdin cannot be read again: nothing to resume.
    if args.events and STDIN not in args.events and dead_letter_path is not None and not args.dry_run:
        from .resume import ProgressJournal
        journal = ProgressJournal.open(dead_letter_path, args.rules, args.events, restart=args.restart)
    stop = Stop().install()
    try:
        summary = run(rules, inputs(), dry_run=args.dry_run, out=out, dead_letter=dead_letter,
                      progress=Progress(), workspace=args.workspace, workers=args.workers, ordered=args.ordered,
                      stop=stop, lanes=lanes_for(args.lanes, dry_run=args.dry_run, workers=args.workers,
                                                 input_bytes=_input_bytes(args.events)),
                      journal=journal)
        with output_errors():
            out.flush()  # what is still buffered: a full disk is reported here, not at exit
    except SetupError as error:
        _say(str(error), secrets)
        return EXIT_PROBLEMS
    except (WorkerError, OutputError) as error:
        _say(f"{error}; the run stopped before the end, with no summary", secrets)
        return EXIT_PROBLEMS
    except KeyboardInterrupt:
        print("\nswitchyard: interrupted; the run stopped before the end, with no summary", file=sys.stderr)
        return 130
    finally:
        stop.uninstall()
        dead_letter.close()
    print(secrets.mask_reason(summary.render(args.dry_run, dead_letter_path)), file=sys.stderr)
    if args.summary_json:
        Path(args.summary_json).write_text(json.dumps(summary.to_dict(), indent=2) + "\n", encoding="utf-8")
    if stop.exit_code is not None:
        return stop.exit_code
    return EXIT_OK if not (summary.undelivered or summary.lost) else EXIT_PROBLEMS


def _replay(args) -> int:
    if (code := _check_rule_paths([args.rules]) or _check_files([args.dead_letter_file])) is not None:
        return code
    if args.dead_letter_file == STDIN:
        return _usage_error("replay reads a dead-letter file, not stdin: it marks what it sent beside the file")
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
        _say(str(error), Secrets.of(rules.destinations))
        return EXIT_PROBLEMS
    print(summary.render(), file=sys.stderr)
    if args.summary_json:
        Path(args.summary_json).write_text(json.dumps(summary.to_dict(), indent=2) + "\n", encoding="utf-8")
    return EXIT_OK if summary.ok else EXIT_PROBLEMS
