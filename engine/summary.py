"""The run summary: where every event read went, and what became of every call.

Every event read ends in exactly one bucket (with calls, invalid payload only, filtered, no
matching mapping, invalid event); every call ends in exactly one outcome (delivered, retried,
refused, failed). :meth:`Summary.render` is the delivery overview ``run`` prints and
:meth:`Summary.to_dict` its ``--summary-json``. A Summary is plain data: the pipeline
(:mod:`engine.pipeline`) owns the one that a run fills and takes its lock around every change.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

Pair = tuple[str, str]  # (destination, mapping)


def per_mapping(counter: Counter[Pair]) -> dict[str, int]:
    """A (destination, mapping) counter as JSON: ``{"destination / mapping": n}``."""
    return {f"{destination} / {mapping}": count for (destination, mapping), count in counter.items()}


@dataclass
class Summary:
    events: int = 0
    sent: int = 0                 # events with at least one call, whatever became of the calls: "with calls"
    payload_errors_only: int = 0  # events whose matching mappings all produced invalid payloads
    filtered: int = 0
    unmatched: int = 0
    invalid_events: int = 0
    unreadable: int = 0
    calls: Counter[Pair] = field(default_factory=Counter)
    invalid_payloads: Counter[Pair] = field(default_factory=Counter)
    delivered: Counter[Pair] = field(default_factory=Counter)      # accepted, retried ones included
    retried: Counter[Pair] = field(default_factory=Counter)        # accepted after more than one attempt
    refused: Counter[Pair] = field(default_factory=Counter)        # the destination said no to the call
    failed: Counter[Pair] = field(default_factory=Counter)         # not delivered: unreachable, retries used up
    already_done: Counter[Pair] = field(default_factory=Counter)   # booked by an earlier run (progress journal)
    dead_lettered: int = 0
    dry_run_calls: bool = False   # a dry run: calls are printed, not delivered, so they have no outcome
    stopped_by: str | None = None  # the signal that stopped the reading (SIGTERM, SIGINT), if one did
    dead_letter_unwritten: int = 0  # records the dead-letter file could not take (a full disk)
    problem: str | None = None      # why the run stopped early on its own (the dead-letter file failed)

    @property
    def accounted(self) -> bool:
        """Whether every event read is in exactly one bucket, and every call has its outcome."""
        events = self.sent + self.payload_errors_only + self.filtered + self.unmatched + self.invalid_events
        return self.events == events and (self.dry_run_calls or all(
            self.calls[pair] == self.delivered[pair] + self.refused[pair] + self.failed[pair] + self.already_done[pair]
            for pair in self.calls))

    @property
    def lost(self) -> bool:
        """Whether anything counted could not be kept (the run then exits 1 whatever else happened)."""
        return self.dead_letter_unwritten > 0

    @property
    def undelivered(self) -> int:
        """Calls refused or failed: what makes ``run`` exit 1."""
        return sum(self.refused.values()) + sum(self.failed.values())

    def add(self, other: Summary) -> None:
        """Add the counts of ``other``, the summary of another part of the same run."""
        for name in _COUNTS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for name in _COUNTERS:
            counts = getattr(other, name)
            if counts:
                getattr(self, name).update(counts)  # in place: a worker's part adds to the run's often

    def to_dict(self) -> dict[str, Any]:
        return {
            "events": self.events, "with_calls": self.sent, "invalid_payload_only": self.payload_errors_only,
            "filtered": self.filtered, "no_matching_mapping": self.unmatched, "invalid_events": self.invalid_events,
            "unreadable_lines": self.unreadable, "dead_lettered": self.dead_lettered,
            "stopped_by": self.stopped_by, "dead_letter_unwritten": self.dead_letter_unwritten,
            "problem": self.problem,
            "calls": per_mapping(self.calls),
            "invalid_payloads": per_mapping(self.invalid_payloads),
            "delivered": per_mapping(self.delivered),
            "retried": per_mapping(self.retried),
            "refused": per_mapping(self.refused),
            "failed": per_mapping(self.failed),
            "already_done": per_mapping(self.already_done),
        }

    def render(self, dry_run: bool, dead_letter_path: str | None) -> str:
        lines = [
            f"events read            {self.events}",
            f"  with calls           {self.sent}",
            f"  invalid payload only {self.payload_errors_only}",
            f"  filtered             {self.filtered}",
            f"  no matching mapping  {self.unmatched}",
            f"  invalid events       {self.invalid_events}",
            f"unreadable lines       {self.unreadable}",
        ]
        pairs = set(self.calls) | set(self.invalid_payloads)
        if pairs:
            columns = ("calls", "invalid") if dry_run else (
                "calls", "delivered", "retried", "refused", "failed", "invalid")
            lines += mapping_table("calls per mapping", columns, {pair: [self.calls[pair], self.invalid_payloads[pair]]
                                   if dry_run else [self.calls[pair], self.delivered[pair], self.retried[pair],
                                                    self.refused[pair], self.failed[pair], self.invalid_payloads[pair]]
                                   for pair in pairs})
        if self.already_done:
            lines.append(f"already done           {sum(self.already_done.values())} calls, booked by an earlier run "
                         f"of this command (its progress journal); counted in calls, not sent again")
        if self.dead_lettered:
            where = dead_letter_path or "not kept (a dry run writes no file; --dead-letter FILE keeps them)"
            lines.append(f"dead-lettered          {self.dead_lettered} -> {where}")
        if self.problem:
            lines.append(f"STOPPED: {self.problem}; {self.dead_letter_unwritten} record(s) were not written, "
                         f"and the input after these {self.events + self.unreadable} lines was not processed")
        if self.stopped_by:
            lines.append(f"stopped by {self.stopped_by}: the input after these {self.events + self.unreadable} "
                         f"lines was not processed; everything processed was delivered or dead-lettered")
        if not self.accounted:
            lines.append("WARNING: event counts do not add up")
        elif self.dead_letter_unwritten:  # counted, but not all of them kept: not "accounted for" as a reader takes it
            lines.append(f"every event counted; {self.dead_letter_unwritten} of their dead-letter records are not in "
                         "the file (STOPPED above)")
        else:
            lines.append("every event accounted for")
        return "\n".join(lines)


def mapping_table(title: str, columns: Sequence[str], rows: Mapping[Pair, Sequence[int]]) -> list[str]:
    """The lines of a table of counts per destination / mapping, each number under its column's name."""
    width = max(len(title), *(len(f"  {destination} / {mapping}") for destination, mapping in rows))
    lines = [f"{title:<{width}}" + "".join(f"{column:>11}" for column in columns)]
    for (destination, mapping), values in sorted(rows.items()):
        lines.append(f"{'  ' + destination + ' / ' + mapping:<{width}}" + "".join(f"{value:>11}" for value in values))
    return lines


_COUNTS = tuple(f.name for f in fields(Summary) if f.type in ("int", int))
_COUNTERS = tuple(f.name for f in fields(Summary) if str(f.type).startswith("Counter"))
