"""Every benchmark of the event path in one command: a table of medians, each figure beside its comparison.

    python benchmarks/run.py                 # full size, a few minutes; the figures in docs/performance.md
    python benchmarks/run.py --quick         # smaller inputs and fewer repeats, for development
    python benchmarks/run.py --only scaling  # one section (repeatable)
    python benchmarks/run.py --markdown      # the table as Markdown, for docs/performance.md

Sections (docs/performance.md says what each measures and why):

- ``triggers``: the 50 triggers of benchmarks/triggers.py over events in memory: ours (compiled,
  with and without the mapping index) vs the tree-walking baseline (benchmarks/baseline.py) vs
  the ``rule-engine`` package;
- ``end-to-end``: ``switchyard run --dry-run`` of rules/customerio.yaml over an NDJSON file vs the
  floor of reading it, ``orjson.loads`` and ``orjson.dumps`` of each event (benchmarks/floor.py);
- ``scaling``: ``RuleSet.evaluate`` with 10, 100 and 1,000 mappings (benchmarks/rulesets.py);
- ``workers``: ``switchyard run rules/ --dry-run --workers 2`` (and ``--ordered``) vs one worker;
- ``load``: ``switchyard lint`` and ``compile_paths`` of a 1,000-mapping rule set, time and peak memory;
  ``switchyard lint`` of 10,000 mappings with an empty cache, time and peak memory;
- ``memory``: peak memory of ``switchyard run rules/ --dry-run`` streaming 100k vs 1M events from stdin;
- ``delivery``: ``switchyard run`` of the Customer.io pack delivering for real, to the embedded
  workspace (a fresh SQLite file each run) and over HTTP to a local sink (benchmarks/sink.py, its
  own process), alone and beside the webhook example over HTTP, vs the end-to-end floor.

Contenders are timed in turn within each repeat, so a slow moment of the machine hits them alike;
every figure is the median over the repeats. Times are CPU time (user + system) of the process
measured, so other work on a shared machine disturbs them little; the workers section, whose
point is to finish sooner on more cores, measures wall time (and needs an otherwise idle machine),
and so does the delivery section, since delivery overlaps waiting for I/O and other threads (the
floor beside it is timed by the wall clock too). A delivery run that does not finish within
``DELIVERY_TIMEOUT`` is stopped and fails its row.
Subprocesses run ``python -m engine`` with this checkout on PYTHONPATH; peak memory is the
resident-set peak (``ru_maxrss``) of the measured process alone, read by a small wrapper process
(see ``run_child``). The inputs are generated at the start of each section, not timed.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import gc
import hashlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import sink as sinks
from benchmarks.delivery import write_rules
from benchmarks.generate import events as generate_events
from benchmarks.sink import Sink

SECTIONS = ("triggers", "end-to-end", "scaling", "workers", "load", "memory", "delivery", "spark", "serve")


@dataclass(frozen=True)
class Sizes:
    repeats: int            # in-memory benchmarks
    process_repeats: int    # benchmarks that start processes
    trigger_events: int
    rule_engine_events: int
    end_to_end_events: int
    scaling_events: int
    worker_events: int
    stream_events: tuple[int, int]
    delivery_events: int


FULL = Sizes(repeats=5, process_repeats=5, trigger_events=20_000, rule_engine_events=1_000,
             end_to_end_events=200_000, scaling_events=20_000, worker_events=200_000,
             stream_events=(100_000, 1_000_000), delivery_events=200_000)
QUICK = Sizes(repeats=3, process_repeats=2, trigger_events=5_000, rule_engine_events=200,
              end_to_end_events=20_000, scaling_events=5_000, worker_events=20_000,
              stream_events=(10_000, 100_000), delivery_events=20_000)


@dataclass
class Row:
    """One line of the table. ``ratio`` is figure / comparison, or cost / cost where that is the target."""

    benchmark: str
    figure: str
    comparison: str = ""
    ratio: float | None = None
    target: str = ""
    passed: bool | None = None  # None: no target, shown for context


# --- measuring -------------------------------------------------------------------------------


Name = TypeVar("Name")


def race(repeats: int, contenders: dict[Name, Callable[[], float]]) -> dict[Name, float]:
    """The median of the seconds each contender measures; every repeat runs each contender once, in turn."""
    seconds: dict[Name, list[float]] = {name: [] for name in contenders}
    for _ in range(repeats):
        for name, measure in contenders.items():
            seconds[name].append(measure())
    return {name: statistics.median(values) for name, values in seconds.items()}


@contextlib.contextmanager
def frozen():
    """Keep the garbage collector off the inputs already in memory while they are measured.

    Tens of thousands of events in memory are millions of objects that a real, streaming run never
    holds; without this, the collector's passes over them would be charged to whatever is measured.
    """
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def cpu_timed(work: Callable[[], object]) -> Callable[[], float]:
    """``work``, measured in this process's CPU time (user + system)."""
    def measure() -> float:
        started = time.process_time()
        work()
        return time.process_time() - started
    return measure


@dataclass
class Child:
    wall: float          # seconds
    cpu: float           # seconds, user + system, of the process and the children it waited for
    max_rss: int | None  # bytes; None unless asked for
    stderr: str


def child_env(work: Path) -> dict:
    """The environment of a measured process: Switchyard as installed and used before.

    Python's bytecode and Switchyard's own cache (engine/cache.py) are kept in ``work``, and
    :func:`warm_up` fills them, so a start-up is measured as a user sees every run but the first.
    Without this, a PYTHONDONTWRITEBYTECODE in the environment (some containers set it) would
    compile every module of every process from source.
    """
    path = os.environ.get("PYTHONPATH")
    env = {name: value for name, value in os.environ.items() if name != "PYTHONDONTWRITEBYTECODE"}
    # The delivery section's sink is on 127.0.0.1: a proxy set in the environment must not come between.
    bypass = ",".join(filter(None, ("127.0.0.1", env.get("no_proxy") or env.get("NO_PROXY"))))
    return {**env, "PYTHONPATH": str(ROOT) + (os.pathsep + path if path else ""),
            "PYTHONPYCACHEPREFIX": str(work / "bytecode"), "SWITCHYARD_CACHE_DIR": str(work / "cache"),
            "no_proxy": bypass, "NO_PROXY": bypass}


def warm_up(work: Path) -> None:
    """Run Switchyard once, so that its bytecode and cache are in place (see :func:`child_env`)."""
    empty = work / "warm-up.jsonl"
    empty.write_text("")
    run_child(switchyard("run", str(ROOT / "rules" / "customerio.yaml"), str(empty), "--dry-run"), work)


# Linux keeps, as a process's peak memory, the peak of the memory it had before exec: a child forked
# from this process (which holds the generated events) starts with this process's peak. So the
# command runs under a small wrapper process, and the wrapper reports its own child's peak.
_PEAK = """
import resource, subprocess, sys
code = subprocess.call(sys.argv[2:])
with open(sys.argv[1], "w") as out:
    out.write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024))  # Linux: KiB
sys.exit(code)
"""


def run_child(argv: list[str], cwd: Path, *, stdout=subprocess.DEVNULL, feed: Callable[[object], None] | None = None,
              peak_memory: bool = False, timeout: float | None = None, exit_codes: tuple[int, ...] = (0,)) -> Child:
    """Run ``argv`` to completion: its wall and CPU time and, if asked (through a wrapper), its peak memory.

    A child still running after ``timeout`` seconds is killed, and that is a :class:`TimeoutError`;
    an exit status outside ``exit_codes`` is a :class:`RuntimeError`.
    """
    peak_file = cwd / "peak-memory.txt"
    if peak_memory:
        argv = [sys.executable, "-c", _PEAK, str(peak_file), *argv]
    with tempfile.TemporaryFile() as errors:
        started = time.perf_counter()
        process = subprocess.Popen(argv, cwd=cwd, env=child_env(cwd), stdout=stdout, stderr=errors,
                                   stdin=subprocess.PIPE if feed else subprocess.DEVNULL)
        killed = threading.Event()

        def kill() -> None:
            killed.set()
            process.kill()

        timer = threading.Timer(timeout, kill) if timeout is not None else None
        if timer is not None:
            timer.start()
        try:
            if feed:
                assert process.stdin is not None  # a pipe, asked for above
                try:
                    feed(process.stdin)
                    process.stdin.close()
                except BrokenPipeError:
                    pass  # the child died early; its exit status and stderr say why
            _, status, usage = os.wait4(process.pid, 0)
        finally:
            if timer is not None:
                timer.cancel()
        wall = time.perf_counter() - started
        process.returncode = returncode = os.waitstatus_to_exitcode(status)
        errors.seek(0)
        stderr = errors.read().decode("utf-8", "replace")
    if killed.is_set():
        raise TimeoutError(f"{' '.join(argv)} did not finish within {timeout:g} s, and was stopped")
    if returncode not in exit_codes:
        raise RuntimeError(f"{' '.join(argv)} exited with {returncode}:\n{stderr[-2000:]}")
    return Child(wall, usage.ru_utime + usage.ru_stime, int(peak_file.read_text()) if peak_memory else None, stderr)


def peak(child: Child) -> int:
    """The peak memory of a child run with ``peak_memory=True``."""
    assert child.max_rss is not None
    return child.max_rss


def switchyard(*args: str) -> list[str]:
    return [sys.executable, "-m", "engine", *args]


def events_file(work: Path, count: int) -> Path:
    """An NDJSON file of the first ``count`` generated events (written once per run)."""
    path = work / f"events-{count}.jsonl"
    if not path.exists():
        with open(path, "w", encoding="utf-8") as out:
            out.writelines(json.dumps(event) + "\n" for event in generate_events(count))
    return path


# --- formatting ------------------------------------------------------------------------------


def rate(events: int, seconds: float) -> str:
    return f"{events / seconds:,.0f} ev/s"


def megabytes(size: int) -> str:
    return f"{size / 2**20:,.0f} MB"


def times(ratio: float) -> str:
    return f"{ratio:.2f}x" if ratio < 10 else f"{ratio:,.0f}x"


# --- sections --------------------------------------------------------------------------------


def bench_triggers(sizes: Sizes, work: Path) -> list[Row]:
    try:
        import rule_engine  # type: ignore[import-untyped]
    except ImportError:
        raise RuntimeError("needs the rule-engine package: pip install -e '.[bench]'") from None
    from benchmarks.baseline import Interpreted
    from benchmarks.triggers import TRIGGERS
    from engine import compile_trigger
    from engine.index import TriggerIndex

    events = generate_events(sizes.trigger_events)
    few = events[:sizes.rule_engine_events]
    ours = [compile_trigger(text) for text, _ in TRIGGERS]
    index = TriggerIndex((trigger, position) for position, trigger in enumerate(ours))
    plain = [(trigger.matches, position) for position, trigger in enumerate(ours)]
    walked = [(Interpreted(text).matches, position) for position, (text, _) in enumerate(TRIGGERS)]
    context = rule_engine.Context(default_value=None)
    rules = [(rule_engine.Rule(twin, context=context).matches, position)
             for position, (_, twin) in enumerate(TRIGGERS)]

    def each(table, sample):
        def work() -> None:
            for event in sample:
                [position for matches, position in table if matches(event)]
        return work

    matching = index.matching

    def indexed() -> None:
        for event in events:
            matching(event)

    contenders = {
        "index": cpu_timed(indexed),
        "plain": cpu_timed(each(plain, events)),
        "baseline": cpu_timed(each(walked, events)),
        "rule-engine": cpu_timed(each(rules, few)),
    }
    for work_once in (indexed, each(plain, few), each(walked, few), each(rules, few[:50])):
        work_once()  # warm up (the index fills its cache)
    with frozen():
        seconds = race(sizes.repeats, contenders)
    per_second = {name: len(events) / value for name, value in seconds.items()}
    per_second["rule-engine"] = len(few) / seconds["rule-engine"]
    ours_rate = per_second["index"]
    return [
        Row("triggers: ours vs tree-walking baseline", f"{ours_rate:,.0f} ev/s",
            f"{per_second['baseline']:,.0f} ev/s", ours_rate / per_second["baseline"], ">= 3x",
            ours_rate / per_second["baseline"] >= 3),
        Row("triggers: ours vs rule-engine", f"{ours_rate:,.0f} ev/s",
            f"{per_second['rule-engine']:,.0f} ev/s", ours_rate / per_second["rule-engine"], ">= 100x",
            ours_rate / per_second["rule-engine"] >= 100),
        Row("triggers: ours, one core", f"{ours_rate:,.0f} ev/s", "", None, ">= 200,000 ev/s",
            ours_rate >= 200_000),
        Row("triggers: ours without the index vs baseline", f"{per_second['plain']:,.0f} ev/s",
            f"{per_second['baseline']:,.0f} ev/s", per_second["plain"] / per_second["baseline"]),
    ]


def bench_end_to_end(sizes: Sizes, work: Path) -> list[Row]:
    count = sizes.end_to_end_events
    events = events_file(work, count)
    empty = work / "empty.jsonl"
    empty.write_text("")
    rules = str(ROOT / "rules" / "customerio.yaml")

    def switchyard_run(path: Path) -> Callable[[], float]:
        return lambda: run_child(switchyard("run", rules, str(path), "--dry-run",
                                            "--dead-letter", str(work / "deadletter.ndjson")), work).cpu

    floor = [sys.executable, str(ROOT / "benchmarks" / "floor.py"), str(events)]
    seconds = race(sizes.process_repeats, {
        "switchyard": switchyard_run(events),
        "floor": lambda: run_child(floor, work).cpu,
        "start-up": switchyard_run(empty),
    })
    ratio = seconds["floor"] / seconds["switchyard"]
    return [
        Row("end to end: run --dry-run, Customer.io pack vs floor", rate(count, seconds["switchyard"]),
            rate(count, seconds["floor"]), ratio, ">= 0.4x", ratio >= 0.4),
        Row("end to end: start-up (the run on an empty file)", f"{seconds['start-up']:.2f} s"),
    ]


def bench_scaling(sizes: Sizes, work: Path) -> list[Row]:
    import engine
    from benchmarks.rulesets import mapping_count_rules

    events = generate_events(sizes.scaling_events)
    loaded = {}
    for count in (10, 100, 1000):
        path = work / f"scaling-{count}.yaml"
        path.write_text(mapping_count_rules(count), encoding="utf-8")
        loaded[count] = engine.load(path)
    calls = {count: sum(len(rules.evaluate(event).calls) for event in events) / len(events)
             for count, rules in loaded.items()}  # also the warm-up pass

    def evaluate_all(rules) -> Callable[[], None]:
        def work() -> None:
            for event in events:
                rules.evaluate(event)
        return work

    with frozen():
        seconds = race(sizes.repeats, {count: cpu_timed(evaluate_all(rules)) for count, rules in loaded.items()})
    cost = {count: value / len(events) * 1e6 for count, value in seconds.items()}
    rows = [Row(f"scaling: 10 mappings, {calls[10]:.2f} calls/event", f"{cost[10]:.2f} µs/event")]
    for count in (100, 1000):
        ratio = cost[count] / cost[10]
        target = count == 1000
        rows.append(Row(f"scaling: {count:,} mappings vs 10, {calls[count]:.2f} calls/event",
                        f"{cost[count]:.2f} µs/event", f"{cost[10]:.2f} µs/event", ratio,
                        "<= 2x" if target else "", ratio <= 2 if target else None))
    return rows


def read_lines(path: Path) -> list[bytes]:
    with open(path, "rb") as stream:
        return stream.readlines()


def workers_supported(work: Path) -> bool:
    usage = subprocess.run(switchyard("run", "--help"), capture_output=True, text=True, env=child_env(work), cwd=ROOT,
                           check=False)
    return "--workers" in usage.stdout and "--ordered" in usage.stdout


def bench_workers(sizes: Sizes, work: Path) -> list[Row]:
    count = sizes.worker_events
    if not workers_supported(work):
        missing = "n/a: switchyard run has no --workers/--ordered yet"
        return [Row("workers: --workers 2 vs 1", missing, target=">= 1.7x"),
                Row("workers: --ordered output identical to 1 worker's", missing, target="identical")]
    events = events_file(work, count)

    def run_workers(name: str, *flags: str) -> Callable[[], float]:
        def go() -> float:  # wall time: what more workers are for
            with open(work / f"{name}.out", "wb") as out:
                return run_child(switchyard("run", str(ROOT / "rules"), str(events), "--dry-run",
                                            "--dead-letter", str(work / f"{name}.deadletter"), *flags), work,
                                 stdout=out).wall
        return go

    seconds = race(sizes.process_repeats, {
        "one": run_workers("one", "--workers", "1"),
        "two": run_workers("two", "--workers", "2"),
        "ordered": run_workers("ordered", "--workers", "2", "--ordered"),
    })
    # The outputs of the last repeat: calls as NDJSON, one line each.
    digest = {name: hashlib.sha256((work / f"{name}.out").read_bytes()).hexdigest() for name in ("one", "ordered")}
    identical = digest["one"] == digest["ordered"]
    same_calls = sorted(read_lines(work / "one.out")) == sorted(read_lines(work / "two.out"))
    two, ordered = seconds["one"] / seconds["two"], seconds["one"] / seconds["ordered"]
    return [
        Row("workers: 2 vs 1", rate(count, seconds["two"]),
            rate(count, seconds["one"]), two, ">= 1.7x", two >= 1.7),
        Row("workers: 2 --ordered vs 1", rate(count, seconds["ordered"]), rate(count, seconds["one"]),
            ordered, ">= 1.7x", ordered >= 1.7),
        Row("workers: 2 --ordered output vs 1 worker's", "identical" if identical else "differs",
            "", None, "byte-identical", identical),
        Row("workers: 2 (any order) calls vs 1 worker's", "same" if same_calls else "differ",
            "", None, "same lines", same_calls),
    ]


_COMPILE = """
import json, resource, sys, time
from engine.loader import compile_paths
started = time.process_time()
rules, problems = compile_paths([sys.argv[1]])
seconds = time.process_time() - started
errors = [p for p in problems if p.severity == "error"]
print(json.dumps({"seconds": seconds, "errors": len(errors)}))
"""


def bench_load(sizes: Sizes, work: Path) -> list[Row]:
    from benchmarks.rulesets import mapping_count_rules

    paths = {}
    for count in (10, 1000):
        paths[count] = work / f"load-{count}.yaml"
        paths[count].write_text(mapping_count_rules(count), encoding="utf-8")
    lint: dict[int, list[float]] = {10: [], 1000: []}
    compiled: dict[int, list[float]] = {10: [], 1000: []}
    for _ in range(sizes.process_repeats):
        for count, path in paths.items():
            lint[count].append(run_child(switchyard("lint", str(path)), work).cpu)
            with open(work / "compile.json", "wb") as out:
                run_child([sys.executable, "-c", _COMPILE, str(path)], work, stdout=out)
            report = json.loads((work / "compile.json").read_text())
            if report["errors"]:
                raise RuntimeError(f"{path} has {report['errors']} error(s)")
            compiled[count].append(report["seconds"])
    lint_seconds = {count: statistics.median(values) for count, values in lint.items()}
    load_seconds = {count: statistics.median(values) for count, values in compiled.items()}
    lint_memory = {count: peak(run_child(switchyard("lint", str(path)), work, peak_memory=True))
                   for count, path in paths.items()}
    large = lint_large(sizes, work)
    return [
        Row("load: switchyard lint, 1,000 mappings vs 10", f"{lint_seconds[1000]:.2f} s",
            f"{lint_seconds[10]:.2f} s", lint_seconds[1000] / lint_seconds[10], "< 2 s", lint_seconds[1000] < 2),
        Row("load: compile_paths, 1,000 mappings vs 10", f"{load_seconds[1000]:.2f} s",
            f"{load_seconds[10]:.2f} s", load_seconds[1000] / load_seconds[10]),
        Row("load: lint peak memory, 1,000 mappings vs 10", megabytes(lint_memory[1000]),
            megabytes(lint_memory[10]), lint_memory[1000] / lint_memory[10]),
        *large,
    ]


def without_cache(argv: list[str], work: Path) -> list[str]:
    """``argv`` with Switchyard's cache (engine/cache.py) in a new, empty directory: nothing built before is reused."""
    empty = tempfile.mkdtemp(dir=work, prefix="empty-cache-")
    return ["env", f"SWITCHYARD_CACHE_DIR={empty}", *argv]


def lint_large(sizes: Sizes, work: Path) -> list[Row]:
    """``switchyard lint`` of 10,000 mappings against 1,000, each with an empty cache (the first lint of a checkout)."""
    from benchmarks.rulesets import mapping_count_rules

    paths = {}
    for count in (1000, 10_000):
        paths[count] = work / f"lint-{count}.yaml"
        paths[count].write_text(mapping_count_rules(count), encoding="utf-8")
    def lint(path: Path) -> Callable[[], float]:
        return lambda: run_child(without_cache(switchyard("lint", str(path)), work), work).cpu

    seconds = race(sizes.process_repeats, {count: lint(path) for count, path in paths.items()})
    memory = {count: peak(run_child(without_cache(switchyard("lint", str(path)), work), work, peak_memory=True))
              for count, path in paths.items()}
    return [
        Row("load: switchyard lint, 10,000 mappings vs 1,000, empty cache", f"{seconds[10_000]:.2f} s",
            f"{seconds[1000]:.2f} s", seconds[10_000] / seconds[1000], "<= 3 s", seconds[10_000] <= 3),
        Row("load: lint peak memory, 10,000 mappings vs 1,000, empty cache", megabytes(memory[10_000]),
            megabytes(memory[1000]), memory[10_000] / memory[1000], "<= 150 MB", memory[10_000] <= 150 * 2**20),
    ]


def bench_memory(sizes: Sizes, work: Path) -> list[Row]:
    # A few thousand distinct lines, cycled: enough variety for the run, and no 1 GB file.
    lines = [(json.dumps(event) + "\n").encode() for event in generate_events(5000, seed=7)]
    blocks = [b"".join(lines[start:start + 1000]) for start in range(0, len(lines), 1000)]

    def feed(count: int) -> Callable[[object], None]:
        def write(stream) -> None:
            full, rest = divmod(count, 1000)
            for number in range(full):
                stream.write(blocks[number % len(blocks)])
            stream.write(b"".join(lines[:rest]))
        return write

    small, large = sizes.stream_events
    summary = work / "summary.json"
    peaks = {}
    for count in (small, large):
        child = run_child(switchyard("run", str(ROOT / "rules"), "--dry-run", "--dead-letter", os.devnull,
                                     "--summary-json", str(summary)), work, feed=feed(count), peak_memory=True)
        read = json.loads(summary.read_text())["events"]
        if read != count:
            raise RuntimeError(f"the streaming run read {read} events, not {count}:\n{child.stderr[-2000:]}")
        peaks[count] = peak(child)
    ratio = peaks[large] / peaks[small]
    return [Row(f"memory: streaming run peak, {large:,} vs {small:,} events", megabytes(peaks[large]),
                megabytes(peaks[small]), ratio, "<= 1.1x", ratio <= 1.1)]


DELIVERY_TIMEOUT = 600.0  # seconds for one delivery run; a run still going then fails its row


@dataclass(frozen=True)
class Delivery:
    """One delivery row: which rules of benchmarks/delivery.py run, and the share of the floor to reach."""

    benchmark: str
    rules: str         # a key of benchmarks.delivery.write_rules
    target: float      # floor seconds / run seconds
    workspace: bool    # delivers to the embedded workspace: a fresh SQLite file each run
    over_http: bool    # delivers to the sink: it must get requests


DELIVERIES = (
    Delivery("delivery: Customer.io pack to the workspace vs floor", "workspace", 0.12,
             workspace=True, over_http=False),
    Delivery("delivery: Customer.io pack over http vs floor", "http", 0.25,
             workspace=False, over_http=True),
    Delivery("delivery: + webhook over http, pack to the workspace vs floor", "workspace+webhook", 0.12,
             workspace=True, over_http=True),
    Delivery("delivery: + webhook over http, pack over http vs floor", "http+webhook", 0.25,
             workspace=False, over_http=True),
    # The README's main job at scale: Customer.io and User.com to their stand-ins, the CRM webhook to the sink.
    Delivery("delivery: + User.com to its stand-in + webhook over http vs floor", "workspace+userengage+webhook",
             0.06, workspace=True, over_http=True),
)


class NotDelivered(Exception):
    """A delivery run finished but did not deliver what it should: the row is not a measurement."""


def delivery_run(delivery: Delivery, rules: Path, events: Path, count: int, work: Path, sink: Sink,
                 check: bool) -> tuple[float, dict | None]:
    """The wall seconds of one ``switchyard run`` of ``delivery``.

    With ``check``, also make sure that it delivered, and return what the sink received meanwhile
    (``{"requests": n, "bytes": n}``).
    """
    database = work / "delivery.db"
    for leftover in (database, work / "delivery.db-wal", work / "delivery.db-shm"):
        leftover.unlink(missing_ok=True)
    summary, dead_letter = work / "delivery-summary.json", work / "delivery-deadletter.ndjson"
    summary.unlink(missing_ok=True)
    dead_letter.unlink(missing_ok=True)
    argv = switchyard("run", str(rules), str(events), "--dead-letter", str(dead_letter), "--summary-json", str(summary))
    if delivery.workspace:
        argv += ["--workspace", str(database)]
    before = sink.stats() if check else {}
    # Exit status 1 says some calls were not delivered: the workspace refuses a few of the generated
    # identifies (an email that already belongs to another person), as Customer.io would.
    child = run_child(argv, work, timeout=DELIVERY_TIMEOUT, exit_codes=(0, 1))
    if not summary.exists():
        raise RuntimeError(f"{' '.join(argv)} wrote no summary:\n{child.stderr[-2000:]}")
    report = json.loads(summary.read_text())
    if report["events"] != count:
        raise NotDelivered(f"read {report['events']:,} events of {count:,}")
    if not check:
        return child.wall, None
    after = sink.stats()
    received = {key: after[key] - before[key] for key in ("requests", "bytes")}
    calls, delivered = sum(report["calls"].values()), sum(report["delivered"].values())
    print(f"\n    {delivery.rules}: {delivered:,} of {calls:,} calls delivered, {received['requests']:,} requests "
          "to the sink", end="", file=sys.stderr, flush=True)
    if not delivered:
        raise NotDelivered("nothing was delivered")
    if delivery.over_http and not received["requests"]:
        raise NotDelivered("the sink got no requests")
    return child.wall, received


def bench_delivery(sizes: Sizes, work: Path) -> list[Row]:
    count = sizes.delivery_events
    events = events_file(work, count)
    floor = [sys.executable, str(ROOT / "benchmarks" / "floor.py"), str(events)]
    floor_seconds: list[float] = []
    seconds: dict[str, list[float]] = {delivery.rules: [] for delivery in DELIVERIES}
    broken: dict[str, str] = {}  # rules -> why its row has no figure
    received: dict[str, dict] = {}  # rules -> what the sink got from its first run
    with sinks.running() as sink:
        paths = write_rules(work / "delivery", sink.url)
        for repeat in range(sizes.process_repeats):
            floor_seconds.append(run_child(floor, work, timeout=DELIVERY_TIMEOUT).wall)
            for delivery in DELIVERIES:
                if delivery.rules in broken:
                    continue
                try:
                    wall, sent = delivery_run(delivery, paths[delivery.rules], events, count, work, sink,
                                              check=repeat == 0)
                except (NotDelivered, TimeoutError, RuntimeError) as error:
                    broken[delivery.rules] = str(error).strip().splitlines()[-1]
                    print(f"\n    {delivery.rules} failed: {error}", end="", file=sys.stderr, flush=True)
                    continue
                seconds[delivery.rules].append(wall)
                if sent is not None:
                    received[delivery.rules] = sent
    floor_wall = statistics.median(floor_seconds)
    rows = []
    for delivery in DELIVERIES:
        target = f">= {delivery.target:.2f}x"
        if delivery.rules in broken:
            rows.append(Row(delivery.benchmark, f"failed: {broken[delivery.rules][:80]}", rate(count, floor_wall),
                            None, target, False))
            continue
        wall = statistics.median(seconds[delivery.rules])
        ratio = floor_wall / wall
        rows.append(Row(delivery.benchmark, rate(count, wall), rate(count, floor_wall), ratio, target,
                        ratio >= delivery.target))
    for delivery in DELIVERIES:
        sent = received.get(delivery.rules)
        if delivery.over_http and sent is not None:
            rows.append(Row(f"delivery: what the sink got from one run, {delivery.rules}",
                            f"{sent['requests']:,} requests, {megabytes(sent['bytes'])}"))
    return rows


def bench_spark(sizes: Sizes, work: Path) -> list[Row]:
    """``switchyard spark --dry-run`` in local[1] and local[2] vs ``run --workers 2``: benchmarks/spark.py."""
    try:
        import pyspark  # noqa: F401
    except ImportError:
        raise RuntimeError("needs pyspark: pip install -e '.[spark]'") from None
    from benchmarks.spark import measure

    count = 1_000_000 if sizes is FULL else 50_000
    seconds = measure(events_file(work, count), work, child_env(work), repeats=1)  # minutes per run at full size
    one, two, run_two = seconds["local[1]"], seconds["local[2]"], seconds["run --workers 2"]
    return [
        Row(f"spark: local[2] vs local[1], {count:,} events", rate(count, two), rate(count, one), one / two,
            ">= 1.6x", one / two >= 1.6),
        Row(f"spark: local[2] vs run --workers 2, {count:,} events", rate(count, two), rate(count, run_two),
            run_two / two),
    ]


def bench_serve(sizes: Sizes, work: Path) -> list[Row]:
    """``switchyard serve`` taking batches from 4 clients vs a bare uvicorn app, p99 latency: benchmarks/serve.py."""
    from benchmarks.serve import STEADY_RATE, measure

    seconds, latency_seconds = (60.0, 10.0) if sizes is FULL else (8.0, 3.0)
    got = measure(ROOT, work, child_env(work), seconds=seconds, latency_seconds=latency_seconds)
    accepted, floor, delivered, depths = got["accepted"], got["floor"], got["delivered"], got["depths"]
    steady = got["steady"]
    p99 = got["latency"]["p99_ms"]
    return [
        Row(f"serve: events accepted, 4 clients x batches of 100, {seconds:.0f} s vs floor",
            f"{accepted:,.0f} ev/s", f"{floor:,.0f} ev/s", accepted / floor, ">= 0.50x", accepted / floor >= 0.5),
        Row("serve: events accepted a second", f"{accepted:,.0f} ev/s", target=">= 20,000 ev/s",
            passed=accepted >= 20_000),
        Row("serve: delivered into the workspace during that run; spool depth at 1/6 ... 6/6",
            f"{delivered:,.0f} ev/s", _depths(depths), target="depth stable", passed=_stable(depths)),
        Row(f"serve: clients sending a steady {STEADY_RATE:,} ev/s: delivered a second; spool depth at 1/6 ... 6/6",
            f"{steady['delivered']:,.0f} ev/s", _depths(steady["depths"]), target="depth stable",
            passed=_stable(steady["depths"]) and steady["accepted"] >= 0.98 * STEADY_RATE),
        Row(f"serve: p99 latency of single events at 1,000 requests/s ({got['latency']['requests']:,} requests)",
            f"{p99:.1f} ms", f"p50 {got['latency']['p50_ms']:.1f} ms", target="<= 50 ms", passed=p99 <= 50),
    ]


def _depths(depths: list[float]) -> str:
    return " ".join(f"{depth:,.0f}" for depth in depths)


def _stable(depths: list[float]) -> bool:
    """No higher at the end than at half time (within 10%, or 1,000 events), and below the spool's limit: a
    depth held at the limit only says clients were told 429 to wait."""
    from engine.serve.limits import Limits

    return (bool(depths) and depths[-1] <= max(depths[len(depths) // 2] * 1.1, 1000)
            and depths[-1] < 0.9 * Limits.max_events)


BENCHMARKS = {
    "triggers": bench_triggers,
    "end-to-end": bench_end_to_end,
    "scaling": bench_scaling,
    "workers": bench_workers,
    "load": bench_load,
    "memory": bench_memory,
    "delivery": bench_delivery,
    "spark": bench_spark,
    "serve": bench_serve,
}


# --- the table -------------------------------------------------------------------------------

HEADINGS = ("benchmark", "figure", "comparison", "ratio", "target", "result")


def cells(row: Row) -> tuple[str, ...]:
    result = "" if row.passed is None else ("pass" if row.passed else "FAIL")
    return (row.benchmark, row.figure, row.comparison, "" if row.ratio is None else times(row.ratio),
            row.target, result)


def render_text(rows: list[Row]) -> str:
    table = [HEADINGS] + [cells(row) for row in rows]
    widths = [max(len(line[column]) for line in table) for column in range(len(HEADINGS))]
    right = {1, 2, 3}
    out = []
    for line in table:
        out.append("  ".join(cell.rjust(width) if column in right else cell.ljust(width)
                             for column, (cell, width) in enumerate(zip(line, widths))).rstrip())
    return "\n".join(out)


def render_markdown(rows: list[Row]) -> str:
    out = ["| " + " | ".join(HEADINGS) + " |", "|---|---:|---:|---:|---|---|"]
    out.extend("| " + " | ".join(cell.replace("|", "\\|") for cell in cells(row)) + " |" for row in rows)
    return "\n".join(out)


def machine() -> str:
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()}-core {model}, Python {platform.python_version()}, {platform.system()}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Run the benchmarks and print one table of medians.")
    parser.add_argument("--quick", action="store_true", help="smaller inputs and fewer repeats, for development")
    parser.add_argument("--only", action="append", choices=SECTIONS, metavar="SECTION",
                        help=f"run only this section (repeatable): {', '.join(SECTIONS)}")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    sections = [section for section in SECTIONS if not args.only or section in args.only]
    command = "python benchmarks/run.py" + (" " + " ".join(argv if argv is not None else sys.argv[1:])).rstrip()
    print(f"{command}\n{machine()}, {datetime.date.today().isoformat()}; medians of {sizes.repeats} "
          f"(in memory) or {sizes.process_repeats} (processes) runs; CPU time, workers and delivery wall time\n"
          f"events: triggers {sizes.trigger_events:,} (rule-engine {sizes.rule_engine_events:,}), end to end "
          f"{sizes.end_to_end_events:,}, scaling {sizes.scaling_events:,}, workers {sizes.worker_events:,}, "
          f"memory {sizes.stream_events[0]:,} and {sizes.stream_events[1]:,}, delivery {sizes.delivery_events:,}",
          file=sys.stderr)
    rows: list[Row] = []
    broken = []
    with tempfile.TemporaryDirectory(prefix="switchyard-bench-") as folder:
        warm_up(Path(folder))
        for section in sections:
            started = time.perf_counter()
            print(f"  {section} ...", end="", flush=True, file=sys.stderr)
            try:
                rows.extend(BENCHMARKS[section](sizes, Path(folder)))
            except Exception as error:  # noqa: BLE001 - one broken section should not lose the others' figures
                print(f" failed:\n{traceback.format_exc()}", file=sys.stderr)
                reason = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
                rows.append(Row(f"{section}: did not run", reason[:100], target="runs", passed=False))
                broken.append(section)
                continue
            print(f" {time.perf_counter() - started:.0f} s", file=sys.stderr)
    print(render_markdown(rows) if args.markdown else render_text(rows))
    return 1 if broken else 0  # a missed target is a finding, not an error


if __name__ == "__main__":
    sys.exit(main())
