"""What runs on the executors: key each line by person and time, then route a partition through the pipeline.

Nothing here imports pyspark: these are plain functions over iterators that Spark calls on each
partition (and tests call directly). Each event is evaluated by :func:`engine.pipeline.account`,
the one place an event's bucket is decided, and its calls are delivered through a
:class:`~engine.pipeline.Pipeline` with the task's own adapters, whose ledger hands every settled
outcome back here; so a Spark job counts, delivers and dead-letters exactly as ``switchyard run``.

Each partition yields one **outcome row** (:data:`FIELDS`) per call, per invalid payload, and per
event that produced no call, with the reason; ``event_bucket`` is set on exactly one row of each
event or unreadable line, the bucket of ``switchyard run``'s summary it counts in.
"""
from __future__ import annotations

import threading
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from ..adapters import Adapter, SetupError, open_adapter
from ..deadletter import DeadLetter
from ..delivery.outcome import Outcome
from ..delivery.ratelimit import SHARES
from ..events import holds_lone_surrogate, id_text, loads_exact, parse, person_of, read_line, stored_json
from ..model import ActionCall
from ..pipeline import Pipeline, Sourced, account
from ..summary import Summary
from .shipment import Shipment

# One row per call, invalid payload, or event without a call. ``payload`` and ``event`` are JSON
# text; ``event`` holds the event of an invalid event or payload, and the line of an unreadable one.
FIELDS = ("kind", "event_bucket", "destination", "mapping", "action", "messageId", "outcome", "attempts",
          "status", "reason", "payload", "body", "source", "person", "partition", "sequence", "event")
#: The fields that hold integers, and their size in bits; every other field is text (or null). Rows are
#: handed to Spark unverified (PySpark's check of each row in Python cost about 3.4 µs a row), so they
#: must hold exactly these types: tests/test_spark_job.py checks every row it makes.
INTEGERS = {"attempts": 32, "status": 32, "partition": 32, "sequence": 64}

# kind of the row -> the bucket of an event whose only rows are of that kind
CALL, INVALID_PAYLOAD = "call", "invalid_payload"
FILTERED, NO_MATCH, INVALID_EVENT, UNREADABLE = "filtered", "no_matching_mapping", "invalid_event", "unreadable"
SENT, PAYLOAD_ONLY = "sent", "invalid_payload_only"
BUCKETS = (SENT, PAYLOAD_ONLY, FILTERED, NO_MATCH, INVALID_EVENT, UNREADABLE)

# Transports that write to this machine's disk: their files would be scattered over the executors.
LOCAL_TRANSPORTS = frozenset({"workspace", "file"})

Key = tuple[str, float, tuple[str, int, int]]  # (person, instant, position in the input)
Keyed = tuple[Key, tuple[str, str | bytes]]    # key, (source, line): bytes for a line that is not UTF-8

_EARLIEST = float("-inf")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


# -- before the shuffle: key each line ----------------------------------------------------------


def keyed(rows: Iterable[Sequence[Any]], aliases: dict[str, str] | None = None) -> Iterator[Keyed]:
    """``(value, source, block, row[, raw])`` rows as ``((person, instant, position), (source, line))``; blank
    lines dropped. A line whose ``raw`` bytes are given (they are not UTF-8) goes on as those bytes.

    ``position`` (source, start of its block, row number) is the line's place in the input: events
    of one person with the same timestamp keep their input order. ``aliases`` (from
    :func:`joined_by_alias`) makes the ids an alias joins one person.
    """
    for value, source, block, row, *raw in rows:
        if raw and raw[0] is not None:
            value = bytes(raw[0])
        elif value is None or (value[:1] != "{" and not value.strip()):  # most lines start with {: no copy
            continue
        source = source or ""
        event = _parse(value, source)
        person = person_of(event)
        if aliases:
            person = aliases.get(person, person)
        yield (person, instant_of(event), (source, block or 0, row)), (source, value)


def alias_links(rows: Iterable[Sequence[Any]]) -> Iterator[tuple[str, str]]:
    """``(previousId, userId)`` of every alias event among the rows (lines that mention "alias")."""
    for row in rows:
        line = bytes(row[4]) if len(row) > 4 and row[4] is not None else row[0]  # bytes: not UTF-8, no alias
        event = _parse(line, "") if line else None
        if event.__class__ is dict and event.get("type") == "alias":
            previous, user = event.get("previousId"), event.get("userId")
            if previous not in (None, "") and user not in (None, ""):
                previous, user = id_text(previous), id_text(user)
                if previous and user:
                    yield previous, user


def joined_by_alias(links: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Every id an alias joins to another -> the one id their group is partitioned by (the smallest).

    An alias merges two people (Customer.io's Merge People): the events of both must reach the
    destination in time order, the merge after them, so both ids go to the same partition.
    """
    parent: dict[str, str] = {}

    def root(name: str) -> str:
        while parent.get(name, name) != name:
            name = parent[name]
        return name

    for previous, user in links:
        a, b = root(previous), root(user)
        if a != b:
            parent[max(a, b)] = min(a, b)
    return {name: root(name) for name in parent}


def instant_of(event: Any) -> float:
    """The event's ``timestamp`` in microseconds since the epoch, a whole number (UTC if it names no zone);
    earliest if it has none. Whole: float seconds no longer told microseconds apart past the year 2242."""
    value = event.get("timestamp") if event.__class__ is dict else None
    if value.__class__ is str:
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return _EARLIEST
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return (moment - _EPOCH) // _MICROSECOND
    return _EARLIEST


def partition_of(key: Key) -> int:
    """The same number for every event of a person, on every machine; events without a person spread out."""
    person = key[0]
    return zlib.crc32(person.encode("utf-8", "surrogatepass") if person else repr(key[2]).encode())


# -- after the shuffle: route a partition --------------------------------------------------------


@dataclass(frozen=True)
class Job:
    """What every task of a job is given: the rules, and how to deliver."""

    shipment: Shipment
    dry_run: bool = False
    store: str | None = None      # the embedded workspace file (local mode only)
    rate_shares: int = 1          # tasks that run at once: each takes this share of a rate limit


def route_partition(job: Job, partition: int, items: Iterable[Keyed]) -> Iterator[tuple]:
    """The outcome rows of one partition's events, sorted by person and time, delivered unless ``dry_run``."""
    router = _Router(job, partition)
    try:
        yield from router.route(items)
    finally:
        router.close()


class _Router:
    """One task's evaluation and delivery; the pipeline's lanes hand settled outcomes back (LedgerHooks)."""

    def __init__(self, job: Job, partition: int):
        self.job, self.partition = job, partition
        self.rules = job.shipment.rules()
        self.summary = Summary(dry_run_calls=job.dry_run)
        self.done: list[tuple] = []         # rows of calls whose outcome came, not yet yielded
        self.waiting: dict[int, tuple[ActionCall, tuple]] = {}  # id(call) -> (call, its row so far)
        self.lock = threading.Lock()
        self.pipeline: Pipeline | None = None
        if not job.dry_run:
            adapters = self._open_adapters()
            self.pipeline = Pipeline(self.rules, dead_letter=DeadLetter(None), adapters=adapters, hooks=self)

    def _open_adapters(self) -> dict[str, Adapter]:
        adapters: dict[str, Adapter] = {}
        try:
            for destination in self.rules.destinations:
                adapters[destination.name] = open_adapter(destination, store=self.job.store,
                                                          options={SHARES: self.job.rate_shares})
        except BaseException:
            for adapter in adapters.values():
                adapter.close()
            raise
        return adapters

    def route(self, items: Iterable[Keyed]) -> Iterator[tuple]:
        summary, partition, dry_run, pipeline = self.summary, self.partition, self.job.dry_run, self.pipeline
        last = _Last(self.rules.evaluate)
        rows: list[tuple] = []
        for sequence, ((person, _, _), (source, line)) in enumerate(items):
            event = _parse(line, source)
            counts = _counts(summary)
            records: list[bytes] = []
            emitted: list[Sourced] = []
            last.result = None
            account(last, source, event, summary, records.append, emitted.append)
            where = (source, _text(person), partition, sequence)
            bucket: str | None = _bucket(counts, summary)
            for call, _ in emitted:
                row = _call_row(call, bucket, where)
                bucket = None
                if dry_run:
                    rows.append(row)
                else:
                    with self.lock:
                        self.waiting[id(call)] = (call, row)
                    assert pipeline is not None
                    pipeline.send(call, source)
            for record in records:
                rows.append(_record_row(loads_exact(record, ours=True)[0], bucket, where))
                bucket = None
            if bucket is not None:  # filtered or no matching mapping: no record, one row
                reason = last.result.reason if last.result is not None else None
                rows.append(_row(kind=bucket, event_bucket=bucket, reason=reason, where=where))
            if len(rows) >= 1024 or len(self.done) >= 1024:
                yield from rows
                rows.clear()
                yield from self._take_settled()
        if pipeline is not None:
            pipeline.close()
            self.pipeline = None
        yield from rows
        yield from self._take_settled()

    def close(self) -> None:
        """Close the adapters if the task ended early (its outcomes are then lost with the task)."""
        if self.pipeline is not None:
            self.pipeline.close()
            self.pipeline = None

    def _take_settled(self) -> list[tuple]:
        with self.lock:
            taken, self.done = self.done, []
        return taken

    # -- LedgerHooks: called from the lanes' threads --------------------------------------------

    def annotate(self, outcome: Outcome) -> dict[str, Any]:
        return {}

    def settled(self, settled: Sequence[tuple[Outcome, str | None]]) -> None:
        with self.lock:
            for outcome, _ in settled:
                _, row = self.waiting.pop(id(outcome.call))
                self.done.append(_with_outcome(row, outcome))


class _Last:
    """``evaluate``, keeping the last result: a filtered event's reason names the filter."""

    def __init__(self, evaluate: Any):
        self.evaluate = evaluate
        self.result: Any = None

    def __call__(self, event: Any) -> Any:
        self.result = self.evaluate(event)
        return self.result


def _counts(summary: Summary) -> tuple[int, ...]:
    return (summary.sent, summary.payload_errors_only, summary.filtered, summary.unmatched,
            summary.invalid_events, summary.unreadable)


def _bucket(before: tuple[int, ...], summary: Summary) -> str:
    """The bucket ``account`` just counted the event in."""
    for bucket, old, new in zip(BUCKETS, before, _counts(summary)):
        if new != old:
            return bucket
    raise AssertionError("account() counted the event in no bucket")


_INDEX = {name: index for index, name in enumerate(FIELDS)}


def _row(kind: str, event_bucket: str | None = None, destination: str | None = None, mapping: str | None = None,
         action: str | None = None, messageId: str | None = None, reason: str | None = None,
         payload: str | None = None, event: str | None = None, *, where: tuple) -> tuple:
    """A row in :data:`FIELDS` order, built as one tuple (a row per call: this is on every event's path);
    the outcome's fields are filled in by :func:`_with_outcome`."""
    source, person, partition, sequence = where
    return (kind, event_bucket, destination, mapping, action, messageId, None, None, None, reason, payload, None,
            source, person, partition, sequence, event)


def _call_row(call: ActionCall, bucket: str | None, where: tuple) -> tuple:
    return _row(CALL, bucket, call.destination, call.mapping, call.action, _text(call.message_id),
                payload=stored_json(call.payload), where=where)


def _with_outcome(row: tuple, outcome: Outcome) -> tuple:
    values = list(row)
    values[_INDEX["outcome"]] = outcome.state
    values[_INDEX["attempts"]] = outcome.attempts
    values[_INDEX["status"]] = outcome.status
    values[_INDEX["reason"]] = outcome.reason or None
    values[_INDEX["body"]] = None if outcome.ok else outcome.body
    return tuple(values)


def _record_row(record: dict[str, Any], bucket: str | None, where: tuple) -> tuple:
    """A row from the dead-letter record ``account`` wrote: an invalid payload or event, or an unreadable line."""
    kind = record["kind"]
    if kind == UNREADABLE:
        return _row(kind=kind, event_bucket=bucket, reason=record["reason"], event=record["line"], where=where)
    event = stored_json(record["event"]) if record.get("event") is not None else None
    if kind == INVALID_PAYLOAD:
        return _row(kind=kind, event_bucket=bucket, destination=record["destination"], mapping=record["mapping"],
                    action=record["action"], reason=record["reason"], event=event, where=where)
    return _row(kind=kind, event_bucket=bucket, reason=record["reason"], event=event, where=where)


def _parse(line: str | bytes, source: str) -> Any:
    return read_line(line if isinstance(line, bytes) else line.encode("utf-8", "surrogatepass"), source)


def _text(value: Any) -> str | None:
    """An id as a column's text: a string as it is, anything else as JSON. So is a string holding a lone
    surrogate (``"m\\udfff"``), which Spark's strings cannot carry (it became ``m?`` in the table), and one
    starting with a double quote, which could otherwise be read back as such JSON."""
    if value is None or (value.__class__ is str and not value.startswith('"') and not holds_lone_surrogate(value)):
        return value
    return stored_json(value)


def _message_id(column: str | None) -> Any:
    """The message id :func:`_text` wrote: a string written as JSON is read back."""
    if column is None or not column.startswith('"'):
        return column
    try:
        value, _ = loads_exact(column.encode(), ours=True)
    except ValueError:
        return column
    return value if value.__class__ is str else column


# -- reading outcome rows back -------------------------------------------------------------------


def summarize(counts: Iterable[tuple[str, str | None, str | None, str | None, str | None, int]],
              *, dry_run: bool) -> Summary:
    """The summary of ``switchyard run`` from counts of outcome rows by
    ``(kind, event_bucket, destination, mapping, outcome)``."""
    summary = Summary(dry_run_calls=dry_run)
    totals = {FILTERED: "filtered", NO_MATCH: "unmatched", INVALID_EVENT: "invalid_events",
              UNREADABLE: "unreadable", SENT: "sent", PAYLOAD_ONLY: "payload_errors_only"}
    for kind, bucket, destination, mapping, outcome, count in counts:
        if bucket is not None:
            setattr(summary, totals[bucket], getattr(summary, totals[bucket]) + count)
            if bucket != UNREADABLE:
                summary.events += count
        pair = (destination or "", mapping or "")
        if kind == CALL:
            summary.calls[pair] += count
            if outcome in ("delivered", "retried"):
                summary.delivered[pair] += count
                if outcome == "retried":
                    summary.retried[pair] += count
            elif outcome == "refused":
                summary.refused[pair] += count
                summary.dead_lettered += count
            elif outcome == "failed":
                summary.failed[pair] += count
                summary.dead_lettered += count
        elif kind == INVALID_PAYLOAD:
            summary.invalid_payloads[pair] += count
            summary.dead_lettered += count
        elif kind in (INVALID_EVENT, UNREADABLE):
            summary.dead_lettered += count
    return summary


def dead_letter_record(row: dict[str, Any]) -> dict[str, Any] | None:
    """The ``switchyard run`` dead-letter record of an outcome row (as a dict), or None if it was delivered
    or is not a record (filtered, no matching mapping, a dry run's call)."""
    kind = row["kind"]
    if kind == CALL:
        if row["outcome"] not in ("refused", "failed"):
            return None
        call = {"destination": row["destination"], "mapping": row["mapping"], "action": row["action"],
                "messageId": _message_id(row["messageId"]),
                "payload": loads_exact(row["payload"].encode(), ours=True)[0]}
        return {"kind": "delivery_failed", "outcome": row["outcome"], "source": row["source"],
                "reason": row["reason"], "status": row["status"], "body": row["body"],
                "attempts": row["attempts"], "call": call}
    event = parse(row["event"].encode("utf-8", "surrogatepass"), "") if row.get("event") is not None else None
    if kind == INVALID_PAYLOAD:
        return {"kind": kind, "source": row["source"], "destination": row["destination"], "mapping": row["mapping"],
                "action": row["action"], "message": row["reason"], "reason": row["reason"], "event": event}
    if kind == INVALID_EVENT:
        return {"kind": kind, "source": row["source"], "reason": row["reason"], "event": event}
    if kind == UNREADABLE:
        return {"kind": kind, "source": row["source"], "reason": row["reason"], "line": row["event"]}
    return None


def refuse_local_transports(destinations: Iterable[Any], *, local: bool) -> None:
    """Raise SetupError for a destination that writes to this machine's disk, unless Spark runs ``local``."""
    if local:
        return
    for destination in destinations:
        if destination.transport in LOCAL_TRANSPORTS:
            raise SetupError(
                f"destination '{destination.name}': transport '{destination.transport}' writes to the disk of "
                f"whichever executor runs a task, so it is refused on a cluster (allowed with --master local[N]); "
                f"deliver over transport: http (for Customer.io, to `switchyard workspace serve`)")

