"""Microseconds per ``customerio`` call to build its Track API body, and to encode it, by action.

    python benchmarks/customerio_bodies.py [EVENTS] [ROUNDS]

The calls are those rules/customerio.yaml makes from :func:`benchmarks.generate.events` (the
same seeded stream as the other benchmarks), evaluated once up front: only
:func:`engine.customerio.to_request` (and, where the engine has it, ``encode``) is timed. Each
action's figure is the best of ``ROUNDS`` passes over its calls, so other load on the machine
inflates it as little as possible.
"""
from __future__ import annotations

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
    """The fastest of ``rounds`` passes of ``work`` over ``calls``, in µs per call."""
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for call in calls:
            work(call)
        best = min(best, time.perf_counter() - start)
    return best / len(calls) * 1e6


def main(argv: list[str]) -> None:
    count = int(argv[0]) if argv else 20_000
    rounds = int(argv[1]) if len(argv) > 1 else 5
    grouped = calls_by_action(count)
    encode = getattr(requests, "encode", None)
    to_request = requests.to_request
    print(f"{'action':<22}{'calls':>8}{'to_request µs':>16}{'+ encode µs':>14}")
    total_calls, total_build, total_both = 0, 0.0, 0.0
    for action, calls in sorted(grouped.items(), key=lambda item: -len(item[1])):
        build = best_microseconds(to_request, calls, rounds)
        line = f"{action:<22}{len(calls):>8}{build:>16.2f}"
        total_calls, total_build = total_calls + len(calls), total_build + build * len(calls)
        if encode is not None:
            both = best_microseconds(lambda call: encode(to_request(call).body), calls, rounds)
            total_both += both * len(calls)
            line += f"{both:>14.2f}"
        print(line)
    line = f"{'all calls':<22}{total_calls:>8}{total_build / total_calls:>16.2f}"
    if encode is not None:
        line += f"{total_both / total_calls:>14.2f}"
    print(line)


if __name__ == "__main__":
    main(sys.argv[1:])
