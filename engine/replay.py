"""``switchyard replay DEADLETTER``: send the dead-letter file's failed deliveries again.

Only ``delivery_failed`` records are sent, through the same pipeline as ``run`` (each
destination's adapter in its own lane, with its retry policy). Calls the destination refused
(``"outcome": "refused"``: it said no to their content) are left in place unless
``include_refused``: sending them again would do what it refused, such as re-creating a person
who was suppressed. The other kinds (unreadable lines, invalid events and payloads) need fixed rules and
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
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

from .adapters import Adapter, open_adapter
from .deadletter import DeadLetter
from .delivery.outcome import REFUSED, Outcome, refusal_status
from .env import Secrets
from .events import any_json
from .model import ActionCall
from .pipeline import Pipeline
from .ruleset import Destination, Mapping, RuleSet
from .summary import Pair, mapping_table, per_mapping

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
    refused_skipped: int = 0     # the destination refused them: left in place unless include_refused
    delivered: Counter[Pair] = field(default_factory=Counter)   # (destination, mapping) -> calls, retried included
    retried: Counter[Pair] = field(default_factory=Counter)     # delivered after more than one attempt
    refused: Counter[Pair] = field(default_factory=Counter)     # refused again: written to out_dead_letter
    failed: Counter[Pair] = field(default_factory=Counter)      # failed again: written to out_dead_letter

    @property
    def ok(self) -> bool:
        """Whether every call sent was delivered and every record could be read and routed."""
        return not (sum(self.failed.values()) or sum(self.refused.values()) or self.unroutable or self.unreadable)

    def to_dict(self) -> dict[str, Any]:
        return {
            "dead_letter": self.dead_letter, "out_dead_letter": self.out_dead_letter, "journal": self.journal,
            "records": self.records, "unreadable_lines": self.unreadable, "other_kinds": self.other_kinds,
            "already_replayed": self.already_replayed, "unroutable": self.unroutable,
            "refused_skipped": self.refused_skipped,
            "delivered": per_mapping(self.delivered),
            "retried": per_mapping(self.retried),
            "refused": per_mapping(self.refused),
            "failed": per_mapping(self.failed),
        }

    def render(self) -> str:
        failed, refused = sum(self.failed.values()), sum(self.refused.values())
        rows = [
            ("records read", self.records, f"({self.dead_letter})"),
            ("  delivered", sum(self.delivered.values()), f"({sum(self.retried.values())} after retries)"),
            ("  refused again", refused, f"-> {self.out_dead_letter}" if refused else ""),
            ("  failed again", failed, f"-> {self.out_dead_letter}" if failed else ""),
            ("  already replayed", self.already_replayed, ""),
            ("  refused, skipped", self.refused_skipped,
             "(left in place: the destination said no; --include-refused sends them)" if self.refused_skipped else ""),
            ("  unroutable", self.unroutable,
             "(left in place: destination or action not in these rules)" if self.unroutable else ""),
            ("  other kinds", self.other_kinds,
             "(left in place: not delivery failures; fix the rules and `run` again)" if self.other_kinds else ""),
            ("unreadable lines", self.unreadable, "(left in place)" if self.unreadable else ""),
        ]
        lines = [f"{label:<23}{value}  {note}".rstrip() for label, value, note in rows]
        pairs = set(self.delivered) | set(self.refused) | set(self.failed)
        if pairs:
            lines += mapping_table("per mapping", ("delivered", "retried", "refused", "failed"), {
                pair: (self.delivered[pair], self.retried[pair], self.refused[pair], self.failed[pair])
                for pair in pairs})
        lines.append(f"journal                {self.journal}")
        return "\n".join(lines)


def journal_path(dead_letter_path: str | Path) -> Path:
    path = Path(dead_letter_path)
    return path.with_name(path.name + JOURNAL_SUFFIX)


def record_key(call: dict[str, Any], occurrence: int) -> str:
    """The stable key of the ``occurrence``-th (0-based) record with this call in its file."""
    try:
        canonical = json.dumps(call, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    except (ValueError, RecursionError):  # an integer of 5,000 digits, deep nesting: as a record holds them
        with any_json():
            canonical = json.dumps(call, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    # surrogatepass: a lone surrogate has bytes of its own; any other text's bytes are its UTF-8, as before
    return f"{hashlib.sha256(canonical.encode('utf-8', 'surrogatepass')).hexdigest()[:32]}#{occurrence}"


def replay(rules: RuleSet, dead_letter_path: str | Path, *, out_dead_letter: str | Path,
           workspace: str | None = None, include_refused: bool = False) -> ReplaySummary:
    """Re-send the ``delivery_failed`` records of ``dead_letter_path``; failures go to ``out_dead_letter``.

    ``out_dead_letter`` may be the same file: its new records get new keys and a later replay
    sends them again. ``workspace`` is the embedded store, as ``run --workspace``.
    """
    source = Path(dead_letter_path)
    if not source.is_file():
        raise ReplayError(f"no such dead-letter file: {source}")
    summary = ReplaySummary(str(source), str(out_dead_letter), str(journal_path(source)))
    with open(summary.journal, "a+", encoding="utf-8") as journal:
        _lock(journal, summary.journal)
        done = _journaled(journal)
        records = _read(source, summary)  # all of it first: out_dead_letter may be this very file
        _Replay(rules, summary, journal).run(records, done, Path(out_dead_letter), workspace, include_refused)
    return summary


def _as_set_now(destination: Destination, call: dict[str, Any], mappings: dict[tuple[str, str, str], Mapping]) -> Any:
    """The recorded payload, with each field its mapping leaves to a destination setting (a webhook's
    ``url``) taken from the setting as it is now: a replay goes where the destination now says. ``mappings``:
    every mapping of the rules by (destination, name, action)."""
    payload = call["payload"]
    mapping = mappings.get((destination.name, call["mapping"], call["action"]))
    if mapping is None or not mapping.from_settings or not isinstance(payload, dict):
        return payload
    settings = destination.settings
    now = {key: settings[setting] for key, setting in mapping.from_settings.items() if setting in settings}
    return {**payload, **now}


def _lock(stream: IO[str], name: str) -> None:
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks here; one replay at a time is then the user's to keep
        return
    try:
        fcntl.flock(stream.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise ReplayError(f"another replay is using {name}; wait for it to finish") from None


def _journaled(stream: IO[str]) -> set[str]:
    stream.seek(0)
    keys = set()
    for line in stream:
        try:
            keys.add(json.loads(line)["key"])
        except (ValueError, KeyError, TypeError):
            continue  # a line cut short by a crash: that record was not settled
    stream.seek(0, os.SEEK_END)
    return keys


def _read(path: Path, summary: ReplaySummary) -> list[tuple[str, dict[str, Any]]]:
    """``(key, record)`` per delivery_failed record; counts what it skips."""
    out, seen = [], Counter[str]()
    with open(path, encoding="utf-8", errors="replace") as stream:
        for line in stream:
            if not line.strip():
                continue
            record = _record(line)
            if record is None:
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
            if not isinstance(call, dict) or not _valid_call(call):
                summary.unreadable += 1
                continue
            identity = record_key(call, 0)
            out.append((record_key(call, seen[identity]), record))
            seen[identity] += 1
    return out


def _record(line: str) -> Any:
    """One line of a dead-letter file, as JSON, or None; integers of any length and deep nesting as written."""
    try:
        return json.loads(line)
    except (ValueError, RecursionError):
        try:
            with any_json():
                return json.loads(line)
        except (ValueError, RecursionError):
            return None


def _valid_call(call: Any) -> bool:
    return (isinstance(call, dict) and isinstance(call.get("payload"), dict)
            and all(isinstance(call.get(k), str) for k in ("destination", "mapping", "action")))


def was_refused(record: dict[str, Any]) -> bool:
    """Whether the destination refused this record's call (records from before ``outcome`` by their status)."""
    outcome = record.get("outcome")
    if outcome is not None:
        return bool(outcome == REFUSED)
    status = record.get("status")
    return isinstance(status, int) and refusal_status(status)


class _Replay:
    """The journal side of a replay: the pipeline's hooks, writing one journal line per outcome."""

    def __init__(self, rules: RuleSet, summary: ReplaySummary, journal: IO[str]):
        self.rules, self.summary, self.journal = rules, summary, journal
        self.keys: dict[int, str] = {}  # id(call) -> record key, until its outcome is journaled
        self.out_path = ""

    def run(self, records: list[tuple[str, dict[str, Any]]], done: set[str], out_path: Path,
            workspace: str | None, include_refused: bool) -> None:
        self.out_path = str(out_path)
        todo: list[tuple[str, dict[str, Any], ActionCall]] = []
        mappings = {(d.name, m.name, m.action.name): m for d in self.rules.destinations for m in d.mappings}
        for key, record in records:
            if key in done:
                self.summary.already_replayed += 1
                continue
            if not include_refused and was_refused(record):
                self.summary.refused_skipped += 1
                continue
            data = record["call"]
            try:
                destination = self.rules.destination(data["destination"])
            except KeyError:
                destination = None
            if destination is None or data["action"] not in destination.catalog.actions:
                self.summary.unroutable += 1
                continue
            todo.append((key, record, ActionCall(data["destination"], data["mapping"], data["action"],
                                                 _as_set_now(destination, data, mappings), data.get("messageId"))))
        if not todo:
            return
        names = {call.destination for _, _, call in todo}
        adapters: dict[str, Adapter] = {}
        try:
            for name in sorted(names):
                adapters[name] = open_adapter(self.rules.destination(name), store=workspace)
        except BaseException:
            for adapter in adapters.values():
                adapter.close()
            raise
        out_path.parent.mkdir(parents=True, exist_ok=True)
        dead_letter = DeadLetter(str(out_path), mask=Secrets.of(self.rules.destinations).mask_reason)
        pipeline = Pipeline(self.rules, dead_letter=dead_letter, adapters=adapters, hooks=self, in_slices=True)
        try:
            for key, record, call in todo:
                self.keys[id(call)] = key
                pipeline.send(call, record.get("source"))
        finally:
            replayed = pipeline.close()
            dead_letter.close()
            self.journal.flush()
            os.fsync(self.journal.fileno())
        for name in ("delivered", "retried", "refused", "failed"):
            getattr(self.summary, name).update(getattr(replayed, name))

    # -- LedgerHooks ---------------------------------------------------------------------------

    def annotate(self, outcome: Outcome) -> dict[str, Any]:
        assert outcome.call is not None
        return {"replay_of": self.keys[id(outcome.call)]}

    def settled(self, settled: Sequence[tuple[Outcome, str | None]]) -> None:
        at = datetime.now(timezone.utc).isoformat(timespec="seconds")
        lines = []
        for outcome, _ in settled:
            call = outcome.call
            assert call is not None
            entry: dict[str, Any] = {
                "key": self.keys.pop(id(call)), "messageId": call.message_id, "destination": call.destination,
                "mapping": call.mapping, "attempts": outcome.attempts, "status": outcome.status}
            if outcome.ok:
                entry["result"] = "delivered"
            else:
                entry.update(result="requeued", outcome=outcome.state, to=self.out_path)
            entry["at"] = at
            lines.append(json.dumps(entry, ensure_ascii=False) + "\n")
        self.journal.write("".join(lines))
        self.journal.flush()
