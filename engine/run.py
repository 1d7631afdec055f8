"""``switchyard run``: evaluate a stream of events and deliver the calls, losing nothing.

Every event read ends in exactly one bucket of the summary (sent, invalid payload,
filtered, no matching mapping, invalid event), and every unreadable line, invalid
event, invalid payload and failed delivery is written to the dead-letter file with
its reason. With several workers, events are evaluated in other processes
(:mod:`engine.parallel`) but counted, written and delivered here, in this one.
"""
from __future__ import annotations

import sys
import time
from collections import Counter
from contextlib import closing
from dataclasses import dataclass, field, fields
from functools import partial

from .adapters import DeliveryError, open_adapter
from .delivery.outcome import DELIVERED, FAILED, RETRIED, Outcome
from .events import Lines, Unreadable, call_line, to_line

CHUNK_BYTES = 1 << 20  # the lines a worker is given at a time: about a thousand events
EVENT_BYTES = 1000     # what one event already read counts for in a chunk: about its line's worth


def per_mapping(counter: Counter) -> dict:
    """A (destination, mapping) counter as JSON: ``{"destination / mapping": n}``."""
    return {f"{destination} / {mapping}": count for (destination, mapping), count in counter.items()}


@dataclass
class Summary:
    events: int = 0
    sent: int = 0                 # events that produced at least one call
    payload_errors_only: int = 0  # events whose matching mappings all produced invalid payloads
    filtered: int = 0
    unmatched: int = 0
    invalid_events: int = 0
    unreadable: int = 0
    calls: Counter = field(default_factory=Counter)           # (destination, mapping) -> calls
    invalid_payloads: Counter = field(default_factory=Counter)
    delivered: Counter = field(default_factory=Counter)      # accepted, retried ones included
    retried: Counter = field(default_factory=Counter)        # accepted after more than one attempt
    failed: Counter = field(default_factory=Counter)         # not delivered: unreachable, auth, retries used up
    refused: Counter = field(default_factory=Counter)        # the destination said no to the call's content
    dead_lettered: int = 0

    @property
    def accounted(self) -> bool:
        return self.events == (self.sent + self.payload_errors_only + self.filtered + self.unmatched
                               + self.invalid_events)

    def add(self, other: "Summary") -> None:
        """Add the counts of ``other``, the summary of another part of the same run."""
        for name in (f.name for f in fields(self)):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def to_dict(self) -> dict:
        return {
            "events": self.events, "sent": self.sent, "invalid_payload_only": self.payload_errors_only,
            "filtered": self.filtered, "no_matching_mapping": self.unmatched, "invalid_events": self.invalid_events,
            "unreadable_lines": self.unreadable, "dead_lettered": self.dead_lettered,
            "calls": per_mapping(self.calls),
            "invalid_payloads": per_mapping(self.invalid_payloads),
            "delivered": per_mapping(self.delivered),
            "retried": per_mapping(self.retried),
            "failed": per_mapping(self.failed),
            "refused": per_mapping(self.refused),
        }

    def render(self, dry_run: bool, dead_letter_path: str | None) -> str:
        lines = [
            f"events read            {self.events}",
            f"  sent                 {self.sent}",
            f"  invalid payload only {self.payload_errors_only}",
            f"  filtered             {self.filtered}",
            f"  no matching mapping  {self.unmatched}",
            f"  invalid events       {self.invalid_events}",
            f"unreadable lines       {self.unreadable}",
        ]
        pairs = sorted(set(self.calls) | set(self.invalid_payloads))
        if pairs:
            width = max(len(f"{d} / {m}") for d, m in pairs) + 2
            columns = ("calls", "invalid") if dry_run else (
                "calls", "delivered", "retried", "refused", "failed", "invalid")
            lines.append(f"{'calls per mapping':<{width}}" + "".join(f"{c:>11}" for c in columns))
            for pair in pairs:
                values = [self.calls[pair], self.invalid_payloads[pair]] if dry_run else [
                    self.calls[pair], self.delivered[pair], self.retried[pair], self.refused[pair],
                    self.failed[pair], self.invalid_payloads[pair]]
                lines.append(f"  {pair[0] + ' / ' + pair[1]:<{width - 2}}" + "".join(f"{v:>11}" for v in values))
        if self.dead_lettered:
            lines.append(f"dead-lettered          {self.dead_lettered} -> {dead_letter_path}")
        lines.append("every event accounted for" if self.accounted else "WARNING: event counts do not add up")
        return "\n".join(lines)


class DeadLetter:
    """Appends one JSON record per lost-otherwise item; opens the file only when needed."""

    def __init__(self, path: str | None):
        self.path = path
        self._stream = None
        self.count = 0

    def write(self, record: dict) -> None:
        self.write_lines(to_line(record) if self.path is not None else b"", 1)

    def write_lines(self, lines: bytes, count: int) -> None:
        """Append ``count`` records already written as NDJSON lines."""
        self.count += count
        if self.path is None or not lines:
            return
        if self._stream is None:
            self._stream = open(self.path, "ab")
        self._stream.write(lines)

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()


class Progress:
    """A one-line counter on stderr for long runs, only when stderr is a terminal."""

    def __init__(self, stream=None, every: float = 0.5):
        stream = sys.stderr if stream is None else stream  # read at call time: tests swap sys.stderr
        self.enabled = stream.isatty()
        self.stream, self.every = stream, every
        self.started = self.last = time.monotonic()
        self._next = 256

    def tick(self, count: int) -> None:
        """Note that ``count`` events have been read so far; looks at the clock every 256 events."""
        if not self.enabled or count < self._next:
            return
        self._next = count + 256
        now = time.monotonic()
        if now - self.last >= self.every:
            self.last = now
            rate = count / max(now - self.started, 1e-9)
            self.stream.write(f"\r  {count:,} events  ({rate:,.0f}/s)")
            self.stream.flush()

    def done(self) -> None:
        if self.enabled and self.last != self.started:
            self.stream.write("\r" + " " * 60 + "\r")


class _Deliveries:
    """Hands calls to adapters and books every outcome, including those a batching adapter settles later.

    Adapter contract: ``deliver(call)`` returns the outcomes it settled (this call's, earlier calls'
    from a released batch, or none while the call waits), or None for "delivered"; it may raise
    DeliveryError for this call. ``close()`` returns the outcomes of whatever was still waiting.
    """

    def __init__(self, adapters: dict, summary: Summary, dead_letter: DeadLetter):
        self.adapters, self.summary, self.dead_letter = adapters, summary, dead_letter
        self.sources: dict[int, tuple] = {}  # id(call) -> (call, source) until its outcome arrives

    def deliver(self, call, source) -> None:
        self.sources[id(call)] = (call, source)
        try:
            settled = self.adapters[call.destination].deliver(call)
        except DeliveryError as error:
            settled = [getattr(error, "outcome", None) or Outcome(FAILED, 1, error.status, error.body, str(error))]
            settled = [outcome if outcome.call is not None else outcome.for_call(call) for outcome in settled]
        self.book(settled if settled is not None else [Outcome(DELIVERED, 1, call=call)])

    def close(self) -> None:
        for adapter in self.adapters.values():
            self.book(adapter.close() or [])

    def book(self, outcomes) -> None:
        for outcome in outcomes:
            call, source = self.sources.pop(id(outcome.call))
            pair = (call.destination, call.mapping)
            if outcome.ok:
                self.summary.delivered[pair] += 1
                if outcome.state == RETRIED:
                    self.summary.retried[pair] += 1
            else:
                (self.summary.refused if outcome.refused else self.summary.failed)[pair] += 1
                self.dead_letter.write(outcome.dead_letter_record(source))


def run(rules, inputs, *, dry_run: bool, out, dead_letter: DeadLetter, progress: Progress,
        workspace: str | None = None, workers: int = 1, ordered: bool = False) -> Summary:
    """Evaluate every event from ``inputs`` (``(source, event)`` pairs) and deliver or print the calls.

    ``inputs`` may also hold :class:`~engine.events.Lines` (from :func:`engine.events.read_parts`),
    parsed where they are evaluated. With ``workers`` above 1, that many processes evaluate the
    events (see :mod:`engine.parallel`); calls are then printed and delivered a chunk of events at a
    time, in the order the chunks are done unless ``ordered`` keeps them in input order.
    """
    summary = Summary()
    write = _binary_writer(out)
    adapters = {} if dry_run else {d.name: open_adapter(d, workspace=workspace) for d in rules.destinations}
    deliveries = _Deliveries(adapters, summary, dead_letter)
    try:
        if workers == 1:
            emit = (lambda call, source: write(call_line(call))) if dry_run else deliveries.deliver
            for item in inputs:
                for source, event in _events(item):
                    _account(rules, source, event, summary, dead_letter.write, emit)
                progress.tick(summary.events)  # a part is at most about 1 MB of input
        else:
            from .parallel import imap  # only here: multiprocessing and concurrent.futures take a while to import

            evaluate = partial(_evaluate_chunk, rules, dry_run)
            with closing(imap(evaluate, _chunks(inputs), workers, ordered=ordered)) as parts:
                for part in parts:
                    summary.add(part.summary)
                    write(part.output)
                    dead_letter.write_lines(part.dead_letters, part.dead_letter_count)
                    for call, source in part.calls:
                        deliveries.deliver(call, source)
                    progress.tick(summary.events)
    finally:
        deliveries.close()
        progress.done()
    summary.dead_lettered = dead_letter.count
    return summary


def _events(item):
    """The ``(source, event)`` pairs of one of the inputs: the pair itself, or those of some Lines."""
    return item.events() if isinstance(item, Lines) else (item,)


def _account(rules, source: str, event, summary: Summary, dead_letter, emit) -> None:
    """Evaluate one event and count it in ``summary``.

    ``dead_letter(record)`` keeps what cannot be sent; ``emit(call, source)`` takes each call.
    """
    if event.__class__ is Unreadable:
        summary.unreadable += 1
        dead_letter({"kind": "unreadable", "source": source, "reason": event.reason, "line": event.text})
        return
    summary.events += 1
    result = rules.evaluate(event)
    calls, errors = result.calls, result.errors
    for error in errors:
        summary.invalid_payloads[(error.destination, error.mapping)] += 1
        dead_letter({"kind": "invalid_payload", "source": source, **error.to_dict(), "reason": error.message,
                     "event": event})
    if calls:
        summary.sent += 1
        counts = summary.calls
        for call in calls:
            counts[call.destination, call.mapping] += 1
            emit(call, source)
    elif errors:
        summary.payload_errors_only += 1
    elif result.discarded.startswith("filtered"):
        summary.filtered += 1
    elif result.discarded.startswith("invalid event"):
        summary.invalid_events += 1
        dead_letter({"kind": "invalid_event", "source": source, "reason": result.discarded, "event": event})
    else:
        summary.unmatched += 1


@dataclass
class _Part:
    """What a worker hands back for one chunk of inputs; the calls are delivered by the parent."""

    summary: Summary
    output: bytes                 # the --dry-run lines
    dead_letters: bytes           # NDJSON records
    dead_letter_count: int
    calls: list                   # (ActionCall, source) pairs to deliver, unless --dry-run


def _evaluate_chunk(rules, dry_run: bool, chunk: list) -> _Part:
    """Parse and evaluate a chunk of inputs, in a worker process."""
    summary, output, dead_letters, calls = Summary(), [], [], []

    def keep(record):
        dead_letters.append(to_line(record))

    def emit(call, source):
        if dry_run:
            output.append(call_line(call))
        else:
            calls.append((call, source))

    for item in chunk:
        for source, event in _events(item):
            _account(rules, source, event, summary, keep, emit)
    return _Part(summary, b"".join(output), b"".join(dead_letters), len(dead_letters), calls)


def _chunks(inputs):
    """Group ``inputs`` into lists of about CHUNK_BYTES, for the workers."""
    chunk, size = [], 0
    for item in inputs:
        chunk.append(item)
        size += len(item.data) if isinstance(item, Lines) else EVENT_BYTES
        if size >= CHUNK_BYTES:
            yield chunk
            chunk, size = [], 0
    if chunk:
        yield chunk


def _binary_writer(out):
    """A function writing bytes to ``out``, straight to its binary buffer when it has one."""
    buffer = getattr(out, "buffer", None)
    if buffer is None:
        return lambda data: out.write(data.decode("utf-8"))
    out.flush()  # whatever was written as text goes first
    return buffer.write
