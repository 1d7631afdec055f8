"""One pipeline for every way events come in: evaluate, deliver per destination, count, dead-letter.

``run``, ``replay`` (and the server) are thin drivers around :class:`Pipeline`::

    pipeline = Pipeline(rules, dead_letter=DeadLetter("deadletter.ndjson"), adapters=open_adapters(rules))
    pipeline.submit(event, "events.jsonl:1")     # evaluate, count, hand the calls to their lanes
    pipeline.flush()                             # wait until every call so far has its outcome
    summary = pipeline.close()                   # close the adapters; the summary of everything

Each destination has its own **lane**: a thread that owns the destination's adapter and hands it
calls in the order they were submitted, so calls for one person reach each destination in event
order, and a destination that is slow or down (retries wait in its lane) never holds back
another. A lane takes at most ``capacity`` calls ahead of its adapter; past that, ``submit``
waits (memory stays bounded when a destination is slower than the input).

Thread safety: ``submit``, ``submit_lines``, ``send``, ``flush`` may be called from any thread.
The compiled rules are immutable; the summary and the dead-letter file are changed under one
lock (:class:`Ledger`); each adapter is used by its lane's thread only.

Without adapters (a dry run) calls are written, one NDJSON line each, to ``output``.
"""
from __future__ import annotations

import pickle
import queue
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from .adapters.contract import Adapter, deliver_apart
from .deadletter import DeadLetter, DeadLetterError
from .delivery.outcome import FAILED, RETRIED, Outcome
from .delivery.pacing import GATHER, JOURNAL_GATHER, next_slice
from .events import Lines, Unreadable, call_line, to_line
from .model import ActionCall, Discarded
from .resume import Position, ProgressJournal
from .ruleset import RuleSet
from .summary import Summary

#: Calls a lane takes ahead of its adapter before ``submit`` waits.
LANE_CAPACITY = 20_000
#: Calls gathered per destination before they are handed to its lane (fewer thread hand-overs).
HAND_OVER = 512
#: Seconds between an idle lane's ``poll`` calls while its adapter holds calls (batches).
POLL_INTERVAL = 0.05

Sourced = tuple[ActionCall, "str | None"]  # a call and where its event came from (file:line)


class PipelineClosed(RuntimeError):
    """An event or call was given to a pipeline after :meth:`Pipeline.close` (or ``abandon``)."""


class LedgerHooks(Protocol):
    """What a driver adds to booking (``replay``: a journal line per outcome)."""

    def annotate(self, outcome: Outcome) -> dict[str, Any]:
        """Fields added to the dead-letter record of a call that was not delivered."""
        ...

    def settled(self, settled: Sequence[tuple[Outcome, str | None]]) -> None:
        """Outcomes just booked, after their dead-letter records are written."""
        ...


class Ledger:
    """The run's summary and dead-letter file, changed by many threads under one lock."""

    def __init__(self, dead_letter: DeadLetter, *, dry_run: bool = False, hooks: LedgerHooks | None = None):
        self.summary = Summary(dry_run_calls=dry_run)
        self.dead_letter = dead_letter
        self.hooks = hooks
        self.lock = threading.Lock()

    def book(self, settled: Sequence[tuple[Outcome, str | None]]) -> None:
        """Count outcomes, each with the source of its call's event; dead-letter what was not delivered."""
        records = []
        with self.lock:
            summary = self.summary
            for outcome, source in settled:
                call = outcome.call
                assert call is not None
                pair = (call.destination, call.mapping)
                if outcome.ok:
                    summary.delivered[pair] += 1
                    if outcome.state == RETRIED:
                        summary.retried[pair] += 1
                else:
                    (summary.refused if outcome.refused else summary.failed)[pair] += 1
                    record = outcome.dead_letter_record(source)
                    if self.hooks is not None:
                        record.update(self.hooks.annotate(outcome))
                    records.append(to_line(record))
        if records:
            self.keep(b"".join(records), len(records))
        if self.hooks is not None:
            self.hooks.settled(settled)  # after the dead letters are written: a crash in between repeats


    def keep(self, lines: bytes, count: int) -> None:
        """Write dead-letter records; if the file cannot take them, count them as lost and stop the input."""
        try:
            self.dead_letter.write_lines(lines, count)
        except Exception as error:  # noqa: BLE001 - a bug too: the records are counted as lost and the run says so
            with self.lock:
                self.summary.dead_letter_unwritten += count
                self.summary.problem = str(error) if isinstance(error, DeadLetterError) else \
                    f"cannot write dead-letter records: {type(error).__name__}: {error}"


class Lane:
    """One destination's delivery: a thread that owns its adapter and feeds it calls in order."""

    def __init__(self, name: str, adapter: Adapter, ledger: Ledger, *, capacity: int = LANE_CAPACITY,
                 journal: ProgressJournal | None = None, in_slices: bool = False):
        self.name, self.adapter, self.ledger, self.capacity = name, adapter, ledger, capacity
        self.journal = journal
        self._booked = _Booked(journal.position) if journal is not None else None
        # With a journal, or ``in_slices``: calls go to the adapter a slice at a time, booked after each, so a
        # crash leaves at most a slice delivered but not booked (sent again by the next run).
        self._in_slices = journal is not None or in_slices
        # Calls per deliver: what the adapter asks for (an embedded store: one transaction), else up to
        # GATHER, and while journaling as many as the adapter settles in a moment (engine.delivery.pacing).
        asked = int(getattr(adapter, "gather", 0))
        self._gather, self._paced = asked or GATHER, not asked
        self._slice = JOURNAL_GATHER if self._paced else self._gather
        self._queue: queue.SimpleQueue[list[Sourced] | None] = queue.SimpleQueue()
        self._sources: dict[int, Sourced] = {}   # id(call) -> (call, source), while the adapter holds it
        self._pending = 0                         # calls submitted whose outcome is not booked yet
        self._state = threading.Condition()
        self._abandoned = False
        self._stopped = False  # the thread has ended: calls put from now on are failed at once
        self._broken = ""      # why, when its adapter raised
        self._thread = threading.Thread(target=self._work, name=f"lane {name}", daemon=True)
        self._thread.start()

    def put(self, calls: list[Sourced]) -> None:
        """Hand over calls, in order; waits while the lane already holds ``capacity`` calls. A lane whose thread
        has stopped (its adapter's ``poll`` or ``close`` raised) fails them at once: none is left unanswered."""
        with self._state:
            while self._pending >= self.capacity and self._thread.is_alive():
                self._state.wait(0.5)
            self._pending += len(calls)
            stopped = self._stopped
            if not stopped:
                self._queue.put(calls)  # under the lock: the thread, stopping, drains the queue after it
        if stopped:
            self._fail_stopped(calls, self._broken)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until every call handed over has its outcome booked; False if ``timeout`` passed first."""
        with self._state:
            return self._state.wait_for(lambda: self._pending == 0 or not self._thread.is_alive(), timeout)

    def close(self) -> None:
        """Deliver what is queued, close the adapter, book the rest, and end the thread."""
        self._queue.put(None)
        self._thread.join()

    def abandon(self, timeout: float) -> bool:
        """Stop after the ``deliver`` in progress and close the adapter, leaving every call not answered
        by then without an outcome (nothing booked, nothing dead-lettered, not even what the adapter
        answers as it closes, such as a batch it sends then): for a server whose events stay in its
        spool and are delivered again after the next start. False if the thread was still in a
        delivery after ``timeout`` seconds (it ends on its own when that returns)."""
        self._abandoned = True
        self._queue.put(None)
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def pending(self) -> int:
        return self._pending

    # -- the lane's thread ----------------------------------------------------------------------

    def _work(self) -> None:
        get, adapter = self._queue.get, self.adapter
        broken = ""
        try:
            while True:
                try:
                    calls = get(timeout=POLL_INTERVAL) if self._sources else get()
                except queue.Empty:
                    self._settle(adapter.poll())
                    continue
                if calls is None or self._abandoned:
                    break
                calls = self._more(calls)
                booked = self._booked
                start = 0
                while start < len(calls) and not self._abandoned:
                    some = calls[start:start + self._slice] if self._in_slices else calls[start:]
                    start += len(some)
                    began = time.perf_counter()
                    for call, source in some:
                        self._sources[id(call)] = (call, source)
                        if booked is not None:
                            booked.handed(call, source)
                    outcomes = deliver_apart(adapter.deliver, [call for call, _ in some], self.name)
                    if self._in_slices and self._paced:
                        self._slice = next_slice(self._slice, time.perf_counter() - began, len(some))
                    self._settle(outcomes)
            closing = adapter.close()
            if not self._abandoned:  # abandoned: whatever the close sent is delivered again by the caller
                self._settle(closing)
        except Exception as error:  # noqa: BLE001 - poll or close raised: what is left fails below
            broken = f": {type(error).__name__}: {error}"
        finally:
            if self._abandoned:  # left unanswered on purpose: the caller keeps those calls' events
                self._sources.clear()
                self._drain_queue()
            else:
                self._fail_unanswered(broken)

    def _fail_unanswered(self, broken: str) -> None:
        """Whatever the adapter never answered for is failed, never lost from the count."""
        self._settle([Outcome(FAILED, 0, message=f"the adapter of '{self.name}' gave no outcome for this "
                              f"call{broken}", call=call) for call, _ in list(self._sources.values())])
        with self._state:
            self._stopped, self._broken = True, broken
        left = self._drain_queue()
        if left:
            self._fail_stopped(left, broken)

    def _fail_stopped(self, calls: list[Sourced], broken: str) -> None:
        """Fail calls the stopped thread will never hand its adapter (booked as handed, then failed)."""
        for call, source in calls:
            self._sources[id(call)] = (call, source)
            if self._booked is not None:
                self._booked.handed(call, source)
        self._settle([Outcome(FAILED, 0, message=f"the lane of '{self.name}' stopped{broken}", call=call)
                      for call, _ in calls])

    def _more(self, calls: list[Sourced]) -> list[Sourced]:
        """``calls`` and whatever else is queued behind them, up to ``GATHER`` calls: one bigger ``deliver``
        (one transaction, fuller batches) instead of many small ones while the lane is behind."""
        while len(calls) < self._gather:
            try:
                more = self._queue.get_nowait()
            except queue.Empty:
                break
            if more is None:
                self._queue.put(None)  # the close comes after these calls: keep it for the loop
                break
            calls = calls + more
        return calls

    def _settle(self, outcomes: list[Outcome]) -> None:
        if not outcomes:
            return
        settled = []
        for outcome in outcomes:
            entry = self._sources.pop(id(outcome.call), None)
            if entry is None:
                continue  # not a call of this lane, or already settled: the contract says once
            settled.append((outcome.for_call(entry[0]) if outcome.call is not entry[0] else outcome, entry[1]))
        self.ledger.book(settled)
        # A dead-letter record that could not be written is not booked: the journal stops there.
        if self._booked is not None and settled and not self.ledger.summary.lost:
            below = self._booked.settled([outcome.call for outcome, _ in settled])
            if below is not None:
                self.journal.advance(self.name, below)  # type: ignore[union-attr]
        with self._state:
            self._pending -= len(settled)
            self._state.notify_all()

    def _drain_queue(self) -> list[Sourced]:
        left: list[Sourced] = []
        while True:
            try:
                calls = self._queue.get_nowait()
            except queue.Empty:
                return left
            if calls:
                left += calls


class _Booked:
    """A lane's calls in the order it handed them to its adapter, and how far they are all booked.

    Owned by the lane's thread. Outcomes may come back out of order (a batch behind a single
    call); the journal only moves past a call once every call handed before it is booked. Each call
    keeps its event's source, read as a position (``position``) only where the journal moves to.
    """

    def __init__(self, position: Callable[[str | None], Position | None]) -> None:
        self._position = position
        self._next = 0                                   # the number of the next call handed over
        self._low = 0                                    # the first call not booked yet
        self._numbers: dict[int, int] = {}               # id(call) -> its number, until booked
        self._sources: dict[int, str | None] = {}        # number -> where its event came from (file:line)
        self._done: set[int] = set()                     # booked numbers at or above _low
        self._last: Position | None = None               # the position of the last call passed that has one

    def handed(self, call: ActionCall, source: str | None) -> None:
        self._numbers[id(call)] = self._next
        self._sources[self._next] = source
        self._next += 1

    def settled(self, calls: Sequence[ActionCall | None]) -> Position | None:
        """Mark ``calls`` booked; the position before which every call is booked, if it is known."""
        for call in calls:
            number = self._numbers.pop(id(call), None)
            if number is not None:
                self._done.add(number)
        passed = []
        while self._low in self._done:
            self._done.discard(self._low)
            passed.append(self._sources.pop(self._low))
            self._low += 1
        if not passed:
            return None
        for source in reversed(passed):  # the newest that reads as a position: usually the first tried
            position = self._position(source)
            if position is not None:
                self._last = position
                break
        if self._low < self._next:
            # That call's event is not done: skip only what is before it.
            return self._position(self._sources[self._low])
        # All booked: every event up to the last one's is done (its other calls came before it).
        return None if self._last is None else (self._last[0], self._last[1] + 1)


@dataclass
class Part:
    """What a worker process hands back for a chunk of input: its counts, output and calls."""

    summary: Summary
    output: bytes                 # the --dry-run lines
    dead_letters: bytes           # NDJSON records
    dead_letter_count: int
    calls: bytes                  # calls to deliver (a list of Sourced, engine.parallel.pickled), unless --dry-run
    last_source: str | None = None  # the chunk's last event's, for the progress journal


class Pipeline:
    def __init__(self, rules: RuleSet, *, dead_letter: DeadLetter, adapters: Mapping[str, Adapter] | None = None,
                 output: Callable[[bytes], Any] | None = None, capacity: int = LANE_CAPACITY,
                 hand_over: int = HAND_OVER, hooks: LedgerHooks | None = None,
                 journal: ProgressJournal | None = None, in_slices: bool = False):
        """``adapters`` by destination name; None for a dry run, whose calls go to ``output``.

        ``journal``: book each destination's progress there (see :mod:`engine.resume`), and skip the
        calls an earlier run of the same command already booked; they count as ``already_done``.
        ``in_slices``: without a journal, still deliver a slice at a time and book it (``hooks``) before
        the next, as ``replay`` needs: its journal line for a call must follow the call by a moment.
        """
        self.rules = rules
        self.dry_run = adapters is None
        self.ledger = Ledger(dead_letter, dry_run=self.dry_run, hooks=hooks)
        self.dead_letter = dead_letter
        self.output = output
        self.hand_over = hand_over
        self.journal = None if self.dry_run else journal
        self.lanes = {name: Lane(name, adapter, self.ledger, capacity=capacity, journal=self.journal,
                                 in_slices=in_slices) for name, adapter in (adapters or {}).items()}
        self._skipping = bool(self.journal is not None and self.journal.resumed)
        self._handing = threading.Lock()  # one thread at a time hands calls to the lanes, in order
        self._waiting: dict[str, list[Sourced]] = {name: [] for name in self.lanes}
        self._closed = False

    @property
    def summary(self) -> Summary:
        return self.ledger.summary

    @property
    def problem(self) -> str | None:
        """Why the run must stop reading (the dead-letter file cannot be written), or None."""
        return self.ledger.summary.problem

    # -- input ----------------------------------------------------------------------------------

    def submit(self, event: Any, source: str | None = None) -> None:
        """Evaluate one event (or an :class:`~engine.events.Unreadable` line) and deliver its calls."""
        self.submit_many(((source, event),))

    def submit_lines(self, lines: Lines) -> None:
        """Evaluate every line of a part of NDJSON input."""
        self.submit_many(lines.events())

    def submit_many(self, items: Iterable[tuple[str | None, Any]]) -> None:
        """Evaluate ``(source, event)`` pairs, in order, counting them under one lock."""
        self._check_open()
        records: list[bytes] = []
        emitted: list[Sourced] = []
        written: list[bytes] = []
        emit = (writer(written) if self.output is not None else _forget) if self.dry_run else emitted.append
        source = None
        with self.ledger.lock:
            summary, evaluate, keep = self.ledger.summary, self.rules.evaluate, records.append
            if self._skipping:
                kept = self.journal.kept  # type: ignore[union-attr]
                for source, event in items:
                    # An earlier run wrote this event's own records (unreadable, invalid): count, do not repeat.
                    account(evaluate, source, event, summary, _forget if kept(source) else keep, emit)
            else:
                for source, event in items:
                    account(evaluate, source, event, summary, keep, emit)
        self._take(emitted, records, len(records), source)
        if written:
            self.output(b"".join(written))  # type: ignore[misc]  # written only when there is an output
        self.hand_over_all()  # a live stream's calls go now, not when more input comes

    def submit_part(self, part: Part) -> None:
        """Take a worker's part: add its counts, write its output and dead letters, deliver its calls."""
        self._check_open()
        with self.ledger.lock:
            self.ledger.summary.add(part.summary)
        if self.dry_run and self.output is not None and part.output:
            self.output(part.output)
        records, count = part.dead_letters, part.dead_letter_count
        if self._skipping and count:
            records, count = self.journal.not_kept(records)  # type: ignore[union-attr]
        calls = pickle.loads(part.calls) if part.calls and not self.dry_run else []
        self._take(calls, [records], count, part.last_source)

    def send(self, call: ActionCall, source: str | None = None) -> None:
        """Deliver a call built earlier (``replay``): counted as a call, not as an event."""
        self._check_open()
        with self.ledger.lock:
            self.ledger.summary.calls[call.destination, call.mapping] += 1
        if self.dry_run:
            if self.output is not None:
                self.output(call_line(call))
            return
        self._take([(call, source)], [], 0)

    def _take(self, calls: list[Sourced], records: list[bytes], record_count: int,
              last_source: str | None = None) -> None:
        """Write the events' own records, then hand their calls to the lanes; ``last_source``: the last
        event's, once its records are written (the journal notes it)."""
        if record_count:
            self.ledger.keep(b"".join(records), record_count)
            if self.journal is not None and not self.ledger.summary.lost:
                self.journal.records_written(last_source)
        if not calls:
            return
        if self.dry_run:  # a dry run's calls were written as they came (writer)
            return
        ready: list[tuple[Lane, list[Sourced]]] = []
        with self._handing:  # batches reach a lane in the order they were gathered, whatever the threads
            with self.ledger.lock:
                if self._skipping:
                    calls = self._not_done(calls)
                for entry in calls:
                    waiting = self._waiting[entry[0].destination]
                    waiting.append(entry)
                    if len(waiting) >= self.hand_over:
                        ready.append((self.lanes[entry[0].destination], waiting[:]))
                        waiting.clear()
            for lane, batch in ready:
                lane.put(batch)

    def _not_done(self, calls: list[Sourced]) -> list[Sourced]:
        """``calls`` without those an earlier run of this command booked (under the ledger's lock)."""
        journal, done = self.journal, self.ledger.summary.already_done
        assert journal is not None
        kept = []
        for entry in calls:
            call = entry[0]
            if journal.skips(call.destination, entry[1]):
                done[call.destination, call.mapping] += 1
            else:
                kept.append(entry)
        last = journal.position(calls[-1][1]) if calls else None
        if last is not None and journal.passed(last):
            self._skipping = False  # input is read in order: past every destination's point, no more checks
        return kept

    def _check_open(self) -> None:
        if self._closed:
            raise PipelineClosed("this pipeline is closed: its adapters are done; make a new one")

    # -- flushing and closing -------------------------------------------------------------------

    def hand_over_all(self) -> None:
        """Hand every call gathered so far to its lane, without waiting for outcomes."""
        with self._handing:
            with self.ledger.lock:
                ready = [(self.lanes[name], waiting[:]) for name, waiting in self._waiting.items() if waiting]
                for waiting in self._waiting.values():
                    waiting.clear()
            for lane, batch in ready:
                lane.put(batch)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every call submitted so far has its outcome, batches included.

        Returns False if ``timeout`` seconds passed first (what is left stays in the lanes).
        """
        self.hand_over_all()
        return all(lane.wait_idle(timeout) for lane in self.lanes.values())

    def abandon(self, timeout: float) -> bool:
        """Close every lane and adapter without settling what is left (:meth:`Lane.abandon`), waiting up to
        ``timeout`` seconds; False if a lane was still in a delivery then."""
        self._closed = True
        deadline = time.monotonic() + timeout
        return all([lane.abandon(max(0.0, deadline - time.monotonic())) for lane in self.lanes.values()])

    def close(self) -> Summary:
        """Deliver everything, close every adapter, and return the summary."""
        if not self._closed:
            self._closed = True
            self.hand_over_all()
            for lane in self.lanes.values():
                lane.close()
            with self.ledger.lock:
                self.ledger.summary.dead_lettered = self.dead_letter.count
        return self.ledger.summary


def writer(lines: list[bytes]) -> Callable[[Sourced], None]:
    """``emit`` for a dry run: each call becomes its NDJSON line at once. Calls kept as objects until a
    part's end outlived the young collections and made the old ones walk them: ``--workers 2`` ran 10%
    longer (paired runs, 200,000 events)."""
    append = lines.append

    def write(entry: Sourced) -> None:
        append(call_line(entry[0]))
    return write


def _forget(item: object) -> None:
    """Drop a record already written by an earlier run of the same command, or a dry run's call with no output."""


def account(evaluate: Callable[[Any], Any], source: str | None, event: Any, summary: Summary,
            keep: Callable[[bytes], Any], emit: Callable[[Sourced], Any]) -> None:
    """Evaluate one event and count it in ``summary``: the one place an event's bucket is decided.

    ``keep`` takes each dead-letter record (an NDJSON line); ``emit`` takes each call, with the source.
    """
    if event.__class__ is Unreadable:
        summary.unreadable += 1
        keep(to_line({"kind": "unreadable", "source": source, "reason": event.reason, "line": event.text}))
        return
    summary.events += 1
    try:
        result = evaluate(event)
    except RecursionError:
        summary.invalid_events += 1
        keep(to_line({"kind": "invalid_event", "source": source,
                      "reason": "invalid event: nested too deeply to evaluate", "event": None}))
        return
    calls, errors = result.calls, result.errors
    for error in errors:
        summary.invalid_payloads[(error.destination, error.mapping)] += 1
        keep(to_line({"kind": "invalid_payload", "source": source, **error.to_dict(), "reason": error.message,
                      "event": event}))
    if calls:
        summary.sent += 1
        counts = summary.calls
        for call in calls:
            counts[call.destination, call.mapping] += 1
            emit((call, source))
    elif errors:
        summary.payload_errors_only += 1
    elif result.discarded is Discarded.FILTERED:
        summary.filtered += 1
    elif result.discarded is Discarded.INVALID_EVENT:
        summary.invalid_events += 1
        keep(to_line({"kind": "invalid_event", "source": source, "reason": result.reason, "event": event}))
    else:
        summary.unmatched += 1
