"""``switchyard replay DEADLETTER``: send the dead-letter file's failed deliveries again.

Only ``delivery_failed`` records are sent (through the destination's adapter, with its retry
policy); the other kinds (unreadable lines, invalid events and payloads) need fixed rules and
``switchyard run``, and stay where they are. Existing lines of the file are never changed: calls
that fail again are appended to ``out_dead_letter``, which may be the file itself.

Nothing lost, nothing sent twice: a journal beside the file (``DEADLETTER.replayed``) records,
per record key, what became of it: ``delivered``, or ``requeued`` into the dead-letter file that
now owns it. A record in the journal is never sent again by a later replay of the same file, and
a record that fails again is written to the new file before the journal says so. The one window
left is a crash between the destination's 2xx and the journal line (at-least-once, like every
retry).

A record's key is the SHA-256 of its call (canonical JSON) and its occurrence number among
identical calls in the file, so two identical failed calls are two records, a requeued copy
appended to the same file is a new record, and the same record read by two replays is one.

This module returns a :class:`ReplaySummary`; printing and exit codes are the CLI's.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from .adapters import DeliveryError, open_adapter
from .delivery.outcome import DELIVERED, FAILED, RETRIED, Outcome
from .run import per_mapping
from .model import ActionCall

JOURNAL_SUFFIX = ".replayed"


class ReplayError(Exception):
    """The replay cannot start (the file is missing, or another replay of it is running)."""


@dataclass
class ReplaySummary:
    dead_letter: str
    out_dead_letter: str
    journal: str
    records: int = 0             # JSON records read
    unreadable: int = 0          # lines that are not a record: left in place
    other_kinds: int = 0         # unreadable / invalid_event / invalid_payload records: left in place
    already_replayed: int = 0    # skipped: the journal says an earlier replay delivered or requeued them
    unroutable: int = 0          # their destination or action is not in these rules: left in place
    delivered: Counter = field(default_factory=Counter)   # (destination, mapping) -> calls, retried included
    retried: Counter = field(default_factory=Counter)     # delivered after more than one attempt
    failed: Counter = field(default_factory=Counter)      # failed again: written to out_dead_letter

    @property
    def ok(self) -> bool:
        """Whether every delivery failure in the file is now delivered."""
        return not (sum(self.failed.values()) or self.unroutable or self.unreadable)

    def to_dict(self) -> dict:
        return {
            "dead_letter": self.dead_letter, "out_dead_letter": self.out_dead_letter, "journal": self.journal,
            "records": self.records, "unreadable_lines": self.unreadable, "other_kinds": self.other_kinds,
            "already_replayed": self.already_replayed, "unroutable": self.unroutable,
            "delivered": per_mapping(self.delivered),
            "retried": per_mapping(self.retried),
            "failed": per_mapping(self.failed),
        }

    def render(self) -> str:
        failed = sum(self.failed.values())
        rows = [
            ("records read", self.records, f"({self.dead_letter})"),
            ("  delivered", sum(self.delivered.values()), f"({sum(self.retried.values())} after retries)"),
            ("  failed again", failed, f"-> {self.out_dead_letter}" if failed else ""),
            ("  already replayed", self.already_replayed, ""),
            ("  unroutable", self.unroutable,
             "(left in place: destination or action not in these rules)" if self.unroutable else ""),
            ("  other kinds", self.other_kinds,
             "(left in place: not delivery failures; fix the rules and `run` again)" if self.other_kinds else ""),
            ("unreadable lines", self.unreadable, "(left in place)" if self.unreadable else ""),
        ]
        lines = [f"{label:<23}{value}  {note}".rstrip() for label, value, note in rows]
        pairs = sorted(set(self.delivered) | set(self.failed))
        if pairs:
            width = max(len(f"{d} / {m}") for d, m in pairs) + 2
            lines.append(f"{'per mapping':<{width}}" + "".join(f"{c:>11}" for c in ("delivered", "retried",
                                                                                   "failed")))
            for pair in pairs:
                lines.append(f"  {pair[0] + ' / ' + pair[1]:<{width - 2}}" + "".join(
                    f"{v:>11}" for v in (self.delivered[pair], self.retried[pair], self.failed[pair])))
        lines.append(f"journal                {self.journal}")
        return "\n".join(lines)


def journal_path(dead_letter_path) -> Path:
    path = Path(dead_letter_path)
    return path.with_name(path.name + JOURNAL_SUFFIX)


def record_key(call: dict, occurrence: int) -> str:
    """The stable key of the ``occurrence``-th (0-based) record with this call in its file."""
    canonical = json.dumps(call, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return f"{hashlib.sha256(canonical.encode()).hexdigest()[:32]}#{occurrence}"


def replay(rules, dead_letter_path, *, out_dead_letter) -> ReplaySummary:
    """Re-send the ``delivery_failed`` records of ``dead_letter_path``; failures go to ``out_dead_letter``.

    ``out_dead_letter`` may be the same file: its new records get new keys and a later replay
    sends them again.
    """
    source = Path(dead_letter_path)
    if not source.is_file():
        raise ReplayError(f"no such dead-letter file: {source}")
    summary = ReplaySummary(str(source), str(out_dead_letter), str(journal_path(source)))
    with open(summary.journal, "a+", encoding="utf-8") as journal:
        _lock(journal, summary.journal)
        done = _journaled(journal)
        records = _read(source, summary)  # all of it first: out_dead_letter may be this very file
        _Replay(rules, summary, journal, Path(out_dead_letter)).run(records, done)
    return summary


def _lock(stream, name: str) -> None:
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks here; one replay at a time is then the user's to keep
        return
    try:
        fcntl.flock(stream.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise ReplayError(f"another replay is using {name}; wait for it to finish") from None


def _journaled(stream) -> set[str]:
    stream.seek(0)
    keys = set()
    for line in stream:
        try:
            keys.add(json.loads(line)["key"])
        except (ValueError, KeyError, TypeError):
            continue  # a line cut short by a crash: that record was not settled
    stream.seek(0, os.SEEK_END)
    return keys


def _read(path: Path, summary: ReplaySummary) -> list[tuple[str, dict] | None]:
    """``(key, record)`` per delivery_failed record, None for other records; counts what it skips."""
    out, seen = [], Counter()
    with open(path, encoding="utf-8", errors="replace") as stream:
        for line in stream:
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                summary.unreadable += 1
                continue
            if not isinstance(record, dict):
                summary.unreadable += 1
                continue
            summary.records += 1
            if record.get("kind") != "delivery_failed":
                summary.other_kinds += 1
                continue
            call = record.get("call")
            if not _valid_call(call):
                summary.unreadable += 1
                continue
            identity = record_key(call, 0)
            out.append((record_key(call, seen[identity]), record))
            seen[identity] += 1
    return out


def _valid_call(call) -> bool:
    return (isinstance(call, dict) and isinstance(call.get("payload"), dict)
            and all(isinstance(call.get(k), str) for k in ("destination", "mapping", "action")))


class _Replay:
    def __init__(self, rules, summary: ReplaySummary, journal, out_path: Path):
        self.rules, self.summary, self.journal, self.out_path = rules, summary, journal, out_path
        self.adapters: dict[str, object] = {}
        self.pending: dict[int, tuple[str, dict, ActionCall]] = {}  # id(call) -> what to settle
        self.out = None

    def run(self, records, done: set[str]) -> None:
        try:
            for key, record in records:
                if key in done:
                    self.summary.already_replayed += 1
                    continue
                self._send(key, record)
        finally:
            try:
                for adapter in self.adapters.values():
                    for outcome in adapter.close() or ():
                        self._settle(outcome)
            finally:
                if self.out is not None:
                    self.out.flush()
                    os.fsync(self.out.fileno())
                    self.out.close()
                self.journal.flush()
                os.fsync(self.journal.fileno())

    def _send(self, key: str, record: dict) -> None:
        data = record["call"]
        try:
            destination = self.rules.destination(data["destination"])
        except KeyError:
            destination = None
        if destination is None or data["action"] not in destination.catalog.actions:
            self.summary.unroutable += 1
            return
        call = ActionCall(data["destination"], data["mapping"], data["action"], data["payload"], data.get("messageId"))
        adapter = self.adapters.get(destination.name)
        if adapter is None:
            adapter = self.adapters[destination.name] = open_adapter(destination)
        self.pending[id(call)] = (key, record, call)
        try:
            settled = adapter.deliver(call)
        except DeliveryError as error:
            outcome = getattr(error, "outcome", None) or Outcome(FAILED, 1, error.status, error.body, str(error))
            settled = [outcome.for_call(call)]
        if settled is None:  # an adapter from before outcomes: returning means delivered
            settled = [Outcome(DELIVERED, 1, call=call)]
        for outcome in settled:
            self._settle(outcome)

    def _settle(self, outcome: Outcome) -> None:
        key, record, call = self.pending.pop(id(outcome.call))
        pair = (call.destination, call.mapping)
        entry = {"key": key, "messageId": call.message_id, "destination": call.destination, "mapping": call.mapping,
                 "attempts": outcome.attempts, "status": outcome.status}
        if outcome.ok:
            self.summary.delivered[pair] += 1
            if outcome.state == RETRIED:
                self.summary.retried[pair] += 1
            entry["result"] = "delivered"
        else:
            self.summary.failed[pair] += 1
            # Written (and flushed) before the journal line: a crash in between repeats, never loses.
            self._requeue({**outcome.dead_letter_record(record.get("source")), "replay_of": key})
            entry.update(result="requeued", to=str(self.out_path))
        entry["at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        self.journal.write(json.dumps(entry, ensure_ascii=False) + "\n")
        self.journal.flush()

    def _requeue(self, record: dict) -> None:
        if self.out is None:
            self.out_path.parent.mkdir(parents=True, exist_ok=True)
            self.out = open(self.out_path, "a", encoding="utf-8")
        self.out.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
        self.out.flush()
