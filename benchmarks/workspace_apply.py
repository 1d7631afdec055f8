"""How many Track API calls per second the embedded workspace applies, and how many SQL statements each costs.

    python benchmarks/workspace_apply.py                  # 20,000 events, batches of 500, 3 repeats
    python benchmarks/workspace_apply.py --events 50000 --batch 500 --repeats 5
    python benchmarks/workspace_apply.py --mode each      # one ``apply`` per call, as adapters did before apply_many

The calls are what ``switchyard run rules/customerio.yaml`` delivers for benchmarks/generate.py's
events (the identify / track / page / device / group mix), built once and not timed:
``engine.load`` evaluates each event and :func:`engine.customerio.requests.to_request` makes its
body. Each repeat applies them all to a new workspace file in a temporary directory; the figure
is the median of the repeats, in CPU time of this process (user + system, as benchmarks/run.py
measures), so other work on a shared machine disturbs it little.
The statement count is a separate, untimed pass with ``sqlite3``'s trace callback.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import generate

import engine
from engine.customerio.requests import to_request
from engine.workspace import Workspace


def requests(count: int, seed: int = 42) -> list[tuple[str, dict]]:
    """``(endpoint, body)`` for every call rules/customerio.yaml makes of ``count`` generated events."""
    rules = engine.load(str(ROOT / "rules/customerio.yaml"))
    calls = [call for event in generate.events(count, seed) for call in rules.evaluate(event).calls]
    return [(request.endpoint, request.body) for request in map(to_request, calls)]


def new_workspace(directory: str) -> Workspace:
    """A new workspace file, its workspace named as a run names it (so its statements are rewritten)."""
    return Workspace.open(Path(directory) / "w.db", destination="customerio")


def apply(workspace: Workspace, items: list[tuple[str, dict]], mode: str, batch: int) -> None:
    if mode == "each":
        for endpoint, body in items:
            workspace.apply_metrics(body) if endpoint == "metrics" else workspace.apply(body)
        return
    for start in range(0, len(items), batch):
        outcomes = workspace.apply_many(items[start:start + batch])
        assert len(outcomes) == len(items[start:start + batch])


def timed(items: list[tuple[str, dict]], mode: str, batch: int) -> float:
    """CPU seconds to apply ``items`` to a new workspace."""
    with tempfile.TemporaryDirectory() as directory, new_workspace(directory) as workspace:
        started = time.process_time()
        apply(workspace, items, mode, batch)
        return time.process_time() - started


def statements(items: list[tuple[str, dict]], mode: str, batch: int) -> float:
    """SQL statements run per call (transaction control included)."""
    count = 0

    def trace(_sql: str) -> None:
        nonlocal count
        count += 1

    with tempfile.TemporaryDirectory() as directory, new_workspace(directory) as workspace:
        workspace.db.set_trace_callback(trace)
        apply(workspace, items, mode, batch)
        workspace.db.set_trace_callback(None)
    return count / len(items)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20_000, help="generated events (default: %(default)s)")
    parser.add_argument("--batch", type=int, default=500, help="calls per apply_many (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=3, help="(default: %(default)s)")
    parser.add_argument("--mode", choices=("many", "each"), default="many",
                        help="apply_many in batches, or one apply per call (default: %(default)s)")
    args = parser.parse_args(argv)
    items = requests(args.events)
    kinds: dict[str, int] = {}
    for _, body in items:
        kinds[body.get("action", "metrics")] = kinds.get(body.get("action", "metrics"), 0) + 1
    mix = ", ".join(f"{action} {count}" for action, count in sorted(kinds.items(), key=lambda item: -item[1]))
    print(f"{len(items)} calls from {args.events} events: {mix}")
    seconds = statistics.median(timed(items, args.mode, args.batch) for _ in range(args.repeats))
    per_call = statements(items, args.mode, args.batch)
    how = f"apply_many in batches of {args.batch}" if args.mode == "many" else "one apply per call"
    print(f"{how}: {len(items) / seconds:,.0f} calls/s (median of {args.repeats}), "
          f"{per_call:.2f} SQL statements per call")


if __name__ == "__main__":
    main()
