"""``switchyard spark --dry-run`` in ``local[1]`` and ``local[2]``, and ``switchyard run --workers 2``, on one file.

    python benchmarks/run.py --only spark           # 1,000,000 events (docs/spark.md has the figures)
    python benchmarks/run.py --only spark --quick   # 50,000

Wall time of the whole command, start-up included (a JVM, Python workers, the shuffle), as a user
waits for it: Spark is for many machines, so what matters is how it scales with cores, and what
one machine pays for it compared with ``run``. Each figure is the median of ``repeats`` runs.
The outputs are checked, not only timed: both Spark runs must write as many calls as ``run``.
"""
from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def timed(argv: list[str], cwd: Path, env: dict) -> float:
    started = time.perf_counter()
    result = subprocess.run(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited with {result.returncode}:\n"
                           f"{result.stderr.decode('utf-8', 'replace')[-2000:]}")
    return seconds


def spark_command(events: Path, out: Path, master: str, summary: Path) -> list[str]:
    return [sys.executable, "-m", "engine.spark.submit", str(ROOT / "rules"), str(events), "--output", str(out),
            "--master", master, "--dry-run", "--summary-json", str(summary)]


def measure(events: Path, work: Path, env: dict, repeats: int) -> dict[str, float]:
    """Median wall seconds of ``local[1]``, ``local[2]`` and ``run --workers 2``; raises if their calls differ."""
    seconds: dict[str, list[float]] = {"local[1]": [], "local[2]": [], "run --workers 2": []}
    calls: dict[str, int] = {}
    for repeat in range(repeats):
        for master in ("local[1]", "local[2]"):
            name = master.replace("[", "-").rstrip("]")  # Hadoop reads [ ] in a path as a glob
            out, summary = work / f"spark-{name}-{repeat}", work / f"spark-{name}.json"
            seconds[master].append(timed(spark_command(events, out, master, summary), work, env))
            calls[master] = sum(json.loads(summary.read_text())["calls"].values())
            subprocess.run(["rm", "-rf", str(out)], check=True)
        summary = work / "run-workers.json"
        seconds["run --workers 2"].append(timed(
            [sys.executable, "-m", "engine", "run", str(ROOT / "rules"), str(events), "--dry-run", "--workers", "2",
             "--dead-letter", str(work / "run-workers.deadletter"), "--summary-json", str(summary)], work, env))
        calls["run"] = sum(json.loads(summary.read_text())["calls"].values())
    if len(set(calls.values())) != 1:
        raise RuntimeError(f"the runs made different numbers of calls: {calls}")
    return {name: statistics.median(values) for name, values in seconds.items()}
