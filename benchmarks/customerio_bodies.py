"""Microseconds per ``customerio`` call to build its Track API body, and to encode it, by action.

    python benchmarks/customerio_bodies.py [EVENTS] [ROUNDS]

The calls are those rules/customerio.yaml makes from :func:`benchmarks.generate.events` (the
same seeded stream as the other benchmarks), evaluated once up front: only
:func:`engine.customerio.to_request`, and the encoding of the bodies it built, are timed. Each
action's figure is the best of ``ROUNDS`` passes over its calls, in CPU time, so other load on
the machine inflates it as little as possible.
"""
from __future__ import annotations

import json
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import engine
from benchmarks.generate import events
from engine.customerio import requests


def calls_by_action(count: int) -> dict[str, list]:
    """The pack's calls for the first ``count`` generated events, grouped by action."""
    rules = engine.load(ROOT / "rules" / "customerio.yaml")
    grouped: dict[str, list] = defaultdict(list)
    for event in events(count):
        for call in rules.evaluate(event).calls:
            grouped[call.action].append(call)
    return dict(grouped)


def best_microseconds(work, calls: list, rounds: int) -> float:
    """The fastest of ``rounds`` passes of ``work`` over ``calls``, in CPU µs per call."""
    best = float("inf")
    for _ in range(rounds):
        start = time.process_time()
        for call in calls:
            work(call)
        best = min(best, time.process_time() - start)
    return best / len(calls) * 1e6


def main(argv: list[str]) -> None:
    count = int(argv[0]) if argv else 20_000
    rounds = int(argv[1]) if len(argv) > 1 else 5
    grouped = calls_by_action(count)
    to_request, encode = requests.to_request, getattr(requests, "encode", None)
    bodies = {action: [to_request(call).body for call in calls] for action, calls in grouped.items()}
    columns = {"to_request": lambda action: best_microseconds(to_request, grouped[action], rounds),
               # What the http adapter did before encode(): json.dumps once for the batch's size
               # accounting and once more inside the batch.
               "json.dumps x2": lambda action: best_microseconds(_dumps_twice, bodies[action], rounds)}
    if encode is not None:
        columns["encode"] = lambda action: best_microseconds(encode, bodies[action], rounds)
    print(f"{'µs per call':<22}{'calls':>8}" + "".join(f"{name:>15}" for name in columns))
    totals = dict.fromkeys(columns, 0.0)
    for action in sorted(grouped, key=lambda action: -len(grouped[action])):
        line = f"{action:<22}{len(grouped[action]):>8}"
        for name, measure in columns.items():
            figure = measure(action)
            totals[name] += figure * len(grouped[action])
            line += f"{figure:>15.2f}"
        print(line)
    calls = sum(map(len, grouped.values()))
    print(f"{'all calls':<22}{calls:>8}" + "".join(f"{total / calls:>15.2f}" for total in totals.values()))


def _dumps_twice(body: dict) -> None:
    json.dumps(body, ensure_ascii=False).encode()
    json.dumps(body, ensure_ascii=False).encode()


if __name__ == "__main__":
    main(sys.argv[1:])
