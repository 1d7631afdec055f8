"""The floor end to end is compared with: read an NDJSON file, ``orjson.loads`` and ``orjson.dumps`` each line.

    python benchmarks/floor.py events.jsonl > /dev/null

No rule engine can deliver events faster than it can read, parse and serialise them; this is
that work alone, in its own process like ``switchyard run``, start-up included.
"""
from __future__ import annotations

import sys

import orjson


def main(path: str) -> None:
    write = sys.stdout.buffer.write
    loads, dumps = orjson.loads, orjson.dumps
    with open(path, "rb") as stream:
        for line in stream:
            if line.strip():
                write(dumps(loads(line)) + b"\n")


if __name__ == "__main__":
    main(sys.argv[1])
