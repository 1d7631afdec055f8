"""Benchmarks of the event path; prints a table of medians over repeated runs.

    python benchmarks/run.py            # figures go in docs/performance.md

1. ``RuleSet.evaluate`` over the bundled rules (both destinations), events already in memory;
2. the floor it is compared with: ``json.loads`` + ``json.dumps`` of each event;
3. end to end: ``switchyard run --dry-run`` of the bundled rules over an NDJSON file to /dev/null.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import engine  # noqa: E402
from generate import events as generate  # noqa: E402

REPEATS = 5


def median_rate(count: int, work) -> float:
    rates = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        work()
        rates.append(count / (time.perf_counter() - started))
    return statistics.median(rates)


def main() -> None:
    count = 20000
    sample = generate(count)
    lines = [json.dumps(e) for e in sample]
    rules = engine.load(ROOT / "rules")
    rows = []
    mappings = sum(len(d.mappings) for d in rules.destinations)
    filters = sum(len(d.filters) for d in rules.destinations)
    label = f"evaluate, bundled rules ({mappings} mappings, {filters} filters)"
    rows.append((label, median_rate(count, lambda: [rules.evaluate(e) for e in sample])))
    rows.append(("floor: json.loads + json.dumps per event", median_rate(count, lambda: [json.dumps(json.loads(s)) for s in lines])))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "events.jsonl"
        path.write_text("\n".join(lines) + "\n")

        def end_to_end():
            subprocess.run([sys.executable, "-m", "engine", "run", str(ROOT / "rules"), str(path), "--dry-run",
                            "--dead-letter", str(Path(folder) / "dead")], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, check=True, cwd=folder,
                           env={**os.environ, "PYTHONPATH": str(ROOT)})
        rows.append(("end to end: switchyard run --dry-run (incl. start-up)", median_rate(count, end_to_end)))
    width = max(len(name) for name, _ in rows)
    print(f"{'benchmark':<{width}}  events/s (median of {REPEATS})")
    for name, rate in rows:
        print(f"{name:<{width}}  {rate:>12,.0f}")


if __name__ == "__main__":
    main()
