"""The progress journal of ``run``: how far into the input each destination's calls all have their outcome.

After a crash (``kill -9``, a power cut of the process) the same command continues where it
stopped instead of sending everything again. The journal is a small JSON file beside the
dead-letter file (``deadletter.ndjson.progress``)::

    {"key": "<sha256 of the rule files and the input paths>", "inputs": ["a.jsonl", "b.jsonl"],
     "done": {"audit": [0, 3975], "crm": [0, 3913]}}

``records`` (in ``done`` under the name ``""``) is the same for the records of the events themselves
(unreadable lines, invalid events and payloads): they are not written twice either.
``done[destination] = [input, line]`` means: every call for that destination from an event
before line ``line`` of input number ``input`` (a JSON array: before item ``line``) has its
outcome booked (delivered, or written to the dead-letter file). Lanes book outcomes in input
order, so one position per destination says it all.

The journal belongs to one command: the same rule files (by content) and the same input paths
in the same order. Another command, or ``--restart``, starts from the beginning and writes its
own journal. A run that reads its input to the end removes it; one stopped by a signal or by a
crash leaves it. stdin cannot be read again, so a run from stdin keeps no journal.

Each update replaces the file whole (write, then rename), so a kill leaves either the old
journal or the new one; it is not synced to disk on every update (the dead-letter file is): a
power loss can cost the last updates, which sends those calls again, but loses none.

Thread safety: :meth:`ProgressJournal.advance` may be called from every lane's thread.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from collections.abc import Sequence
from pathlib import Path

Position = tuple[int, int]  # (index of the input, line number or array index)

SUFFIX = ".progress"
EVENTS = ""  # the journal's name for the events' own dead-letter records
_SOURCE = re.compile(rb'"source":("(?:[^"\\]|\\.)*"|null)')


def journal_path(dead_letter_path: str) -> str:
    """Where the journal of a run with this dead-letter file lives."""
    return dead_letter_path + SUFFIX


def command_key(rules_path: str, inputs: Sequence[str]) -> str:
    """What makes two runs "the same command": the rule files' content and the input paths, in order."""
    digest = hashlib.sha256()
    root = Path(rules_path)
    files = sorted(path for path in root.rglob("*") if path.is_file()) if root.is_dir() else [root]
    for path in files:
        digest.update(str(path.relative_to(root) if root.is_dir() else path.name).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    for name in inputs:
        digest.update(b"input\0" + str(Path(name).resolve()).encode() + b"\0")
    return digest.hexdigest()


class ProgressJournal:
    def __init__(self, path: str, key: str, inputs: Sequence[str], done: dict[str, Position] | None = None):
        """``done``: what an earlier run of the same command finished, by destination (empty: a fresh start)."""
        self.path, self.key, self.inputs = path, key, list(inputs)
        self.resumed: dict[str, Position] = dict(done or {})  # what this run skips
        self._done: dict[str, Position] = dict(self.resumed)  # what is booked now, earlier runs included
        self._index = {name: index for index, name in enumerate(self.inputs)}
        self._lock = threading.Lock()
        self.problem: str | None = None  # why the journal stopped being written (the run goes on)

    @classmethod
    def open(cls, dead_letter_path: str, rules_path: str, inputs: Sequence[str], *,
             restart: bool = False) -> ProgressJournal:
        """The journal for this command: an earlier run's if it was the same command (and not ``restart``)."""
        path = journal_path(dead_letter_path)
        key = command_key(rules_path, inputs)
        done: dict[str, Position] = {}
        if not restart:
            try:
                saved = json.loads(Path(path).read_text(encoding="utf-8"))
                if saved.get("key") == key:
                    done = {name: (int(where[0]), int(where[1])) for name, where in saved["done"].items()}
            except (OSError, ValueError, KeyError, TypeError, AttributeError, IndexError):
                done = {}  # none, or unreadable: start from the beginning, as --restart would
        return cls(path, key, inputs, done)

    def position(self, source: str | None) -> Position | None:
        """Where an event is in the input, from its source (``file:line`` or ``file[index]``)."""
        if not source:
            return None
        if source.endswith("]"):
            name, _, number = source[:-1].rpartition("[")
        else:
            name, _, number = source.rpartition(":")
        index = self._index.get(name)
        if index is None or not (number.isascii() and number.isdigit()):
            return None
        return index, int(number)

    def skips(self, destination: str, source: str | None) -> bool:
        """Whether an earlier run already booked every call for ``destination`` from the event at ``source``."""
        done = self.resumed.get(destination)
        if done is None:
            return False
        position = self.position(source)
        return position is not None and position < done

    def kept(self, source: str | None) -> bool:
        """Whether an earlier run already wrote the dead-letter records of the event at ``source``."""
        return self.skips(EVENTS, source)

    def not_kept(self, records: bytes) -> tuple[bytes, int]:
        """Those of ``records`` (NDJSON dead-letter lines) that an earlier run did not write, and their count."""
        lines = [line for line in records.splitlines(keepends=True)
                 if not ((found := _SOURCE.search(line)) and self.kept(json.loads(found.group(1))))]
        return b"".join(lines), len(lines)

    def passed(self, position: Position) -> bool:
        """Whether input at ``position`` and after is past everything an earlier run did."""
        return not self.resumed or position >= max(self.resumed.values())

    def records_written(self, source: str | None) -> None:
        """Note that the dead-letter records of every event up to the one at ``source`` are written."""
        position = self.position(source)
        if position is not None:
            self.advance(EVENTS, (position[0], position[1] + 1))

    def advance(self, destination: str, below: Position) -> None:
        """Note that every call for ``destination`` from events before ``below`` has its outcome booked."""
        with self._lock:
            if self.problem is not None or self._done.get(destination, (-1, -1)) >= below:
                return
            self._done[destination] = below
            self._write()

    def finish(self) -> None:
        """The input was read to the end and every call booked: nothing to resume; remove the journal."""
        with self._lock:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
            except OSError as error:
                self.problem = f"cannot remove the progress journal {self.path}: {error.strerror or error}"

    def _write(self) -> None:
        data = json.dumps({"key": self.key, "inputs": self.inputs,
                           "done": {name: list(where) for name, where in sorted(self._done.items())}})
        temporary = self.path + ".tmp"
        try:
            with open(temporary, "w", encoding="utf-8") as stream:
                stream.write(data)
            os.replace(temporary, self.path)
        except OSError as error:
            # Without a journal a crash costs a full rerun, as before; the run itself goes on.
            self.problem = f"cannot write the progress journal {self.path}: {error.strerror or error}"
