"""Instructions per event, counted by valgrind: a measure that does not drift with the machine.

    python benchmarks/instructions.py                  # both workloads, 3,000 events each
    python benchmarks/instructions.py --only triggers --events 5000

On a shared virtual machine, time per event moves by a quarter from one run to the next, more
than most single optimisations change it. The number of instructions executed does not (within
about 1%, with a fixed hash seed), so it tells whether a change made the event path do less work.
It is not time: it does not see cache misses, which are much of the cost of events held in memory,
and it counts a simple loop over bytes (``bytes.count``, ``translate``) as many instructions though
it runs fast. Use it to compare two versions of the code, and run/py for the figures.

Each workload runs twice under ``valgrind --tool=cachegrind``, with N events and with none, so
start-up and setup cancel out:

- ``triggers``: the 50-trigger set of run.py through ``engine.index.TriggerIndex``, over generated
  events in memory;
- ``end-to-end``: ``switchyard run rules/customerio.yaml --dry-run`` over N generated events in a
  file (the run on an empty file gives the start-up's count, shown too).
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

_TRIGGERS = """
import sys
from benchmarks.generate import events
from benchmarks.triggers import TRIGGERS
from engine import compile_trigger
from engine.index import TriggerIndex

count, generated = int(sys.argv[1]), int(sys.argv[2])
sample = events(generated)  # the same in both runs, so that generating them cancels out
index = TriggerIndex((compile_trigger(text), position) for position, (text, _) in enumerate(TRIGGERS))
matching = index.matching
for event in sample[:300]:
    matching(event)  # every group prepared before counting


def run(sample):
    for event in sample:
        matching(event)


run(sample[:count])
"""


def count_instructions(argv: list[str], work: Path) -> int:
    """Instructions the process ``argv`` executes, by cachegrind (without its cache simulation)."""
    env = {name: value for name, value in os.environ.items() if name != "PYTHONDONTWRITEBYTECODE"}
    env.update(PYTHONHASHSEED="0", PYTHONPATH=str(ROOT), PYTHONPYCACHEPREFIX=str(work / "bytecode"),
               SWITCHYARD_CACHE_DIR=str(work / "cache"))
    done = subprocess.run(["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null",
                           *argv], env=env, cwd=work, capture_output=True, text=True)
    found = re.search(r"I\s+refs:\s+([\d,]+)", done.stderr)
    if done.returncode != 0 or not found:
        raise RuntimeError(f"{' '.join(argv)} failed under valgrind:\n{done.stderr[-2000:]}")
    return int(found.group(1).replace(",", ""))


def triggers(count: int, work: Path) -> list[str]:
    script = work / "triggers.py"
    script.write_text(_TRIGGERS)
    argv = [sys.executable, str(script), "0", str(max(count, 300))]
    count_instructions(argv, work)  # fills the bytecode cache, as the runs below would find it
    none, some = (count_instructions([*argv[:2], str(n), argv[3]], work) for n in (0, count))
    return [f"triggers, 50 through the index: {(some - none) / count:,.0f} instructions per event"]


def end_to_end(count: int, work: Path) -> list[str]:
    from benchmarks.run import events_file

    events, empty = events_file(work, count), work / "empty.jsonl"
    empty.write_text("")
    rules = str(ROOT / "rules" / "customerio.yaml")

    def run(path: Path) -> int:
        return count_instructions([sys.executable, "-m", "engine", "run", rules, str(path), "--dry-run",
                                   "--dead-letter", os.devnull], work)

    run(empty)  # fills the bytecode and start-up caches, as run.py's warm-up does
    none, some = run(empty), run(events)
    return [f"end to end, run --dry-run of the Customer.io pack: {(some - none) / count:,.0f} instructions per event",
            f"end to end, start-up (the run on an empty file): {none / 1e6:,.0f} million instructions"]


WORKLOADS = {"triggers": triggers, "end-to-end": end_to_end}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Count instructions per event with valgrind.")
    parser.add_argument("--only", action="append", choices=list(WORKLOADS), metavar="WORKLOAD",
                        help=f"run only this workload (repeatable): {', '.join(WORKLOADS)}")
    parser.add_argument("--events", type=int, default=3000, help="events per workload (default: %(default)s)")
    args = parser.parse_args(argv)
    if shutil.which("valgrind") is None:
        print("benchmarks/instructions.py needs valgrind (apt install valgrind)", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="switchyard-instructions-") as folder:
        for name, workload in WORKLOADS.items():
            if not args.only or name in args.only:
                print("\n".join(workload(args.events, Path(folder))), flush=True)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
