"""Delivery from the spool: one thread per destination, each with its own pipeline and progress.

Each destination reads the spool from where it stopped, evaluates its own rules over a chunk of
events through a :class:`~engine.pipeline.Pipeline` (its lane delivers them in spool order, so
calls for one person reach it in the order the events arrived), and records a chunk's last event id
as its progress once every call of that chunk and of those before it has an outcome (delivered, or
refused or failed and in the dead-letter file). A failed call is held and delivered again with
backoff (:mod:`engine.adapters.patient`), with the person's later calls behind it, until it is
delivered or its limit passes; meanwhile its chunk is not done, so progress stays before it.
Two chunks are in hand at a time: the next one is evaluated while the lane delivers the last
(SQLite and HTTP work run outside the GIL). After a crash it starts again after that id: every
acknowledged event is delivered at least once, and the embedded workspace applies a repeated
call once. A destination that is slow or down holds back only its own progress; its backlog waits
in the spool while the others go on.

Thread safety: each :class:`DestinationWorker` owns its pipeline, adapter and spool connection;
the shared dead-letter file and spool take their own locks.
"""
from __future__ import annotations

import functools
import logging
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..adapters import open_adapter
from ..adapters.patient import Patience, PatientAdapter
from ..adapters.registry import gathers
from ..deadletter import DeadLetter
from ..delivery.outcome import Outcome
from ..events import id_text, loads_exact, person_of
from ..parallel import usable_cores
from ..pipeline import Pipeline
from ..ruleset import Destination, RuleSet
from .spool import Spool

log = logging.getLogger("switchyard.serve")


class DeadLettersLost(Exception):
    """Dead-letter records of a destination's calls could not be written: its progress must not pass them."""


#: Seconds between tries of a spool read or write SQLite could not do (a full disk).
SPOOL_RETRY = 1.0
#: Events a destination takes from the spool at a time.
CHUNK = 2000
#: Seconds an idle destination waits for new events before looking again.
IDLE_WAIT = 0.2
#: Failed calls held 24 h from their event, tried again after 1 s doubling to 5 min (serve's defaults).
PATIENCE = Patience()
#: Chunks a destination has in the pipeline at once: the next is evaluated while the last is delivered.
IN_FLIGHT = 2

Settled = Callable[[str, Sequence[tuple[Outcome, "str | None"]]], None]


@dataclass
class _Chunk:
    """Spool rows ``first``..``last`` handed to the pipeline, and how many of their calls have an outcome."""

    first: int
    last: int
    expected: int | None = None   # known once the chunk is evaluated
    settled: int = 0
    message_ids: tuple[str, ...] = ()   # whose people the worker remembers while the chunk is in hand

    @property
    def done(self) -> bool:
        return self.expected is not None and self.settled >= self.expected


class _Hooks:
    """Counts each outcome against its chunk (the source is its spool row id), then tells the metrics."""

    def __init__(self, worker: DestinationWorker, settled: Settled | None):
        self.worker, self._settled = worker, settled

    def annotate(self, outcome: Outcome) -> dict[str, Any]:
        return {}

    def settled(self, settled: Sequence[tuple[Outcome, str | None]]) -> None:
        self.worker.count_settled(settled)
        if self._settled is not None:
            self._settled(self.worker.name, settled)


def in_process(destination: Destination, lanes: str) -> bool:
    """Whether ``destination``'s adapter runs in a process of its own (engine.adapters.remote), for ``lanes``.

    Only an embedded store's: its SQL is most of delivery's work, and in the server's process it takes
    turns with reading requests under one GIL. An HTTP adapter stays in the lane's thread, where the held
    calls (engine.adapters.patient) can ask it to keep each person's calls in order.
    """
    if lanes == "thread" or not gathers(destination):
        return False
    return lanes == "process" or usable_cores() >= 2


class DestinationWorker:
    """One destination's delivery thread: spool -> its rules -> its lane, progress after each chunk."""

    def __init__(self, spool: Spool, destination: Destination, *, dead_letter: DeadLetter, store: str | None,
                 settled: Settled | None = None, chunk: int = CHUNK, patience: Patience = PATIENCE,
                 lanes: str = "auto"):
        self.spool, self.name, self.chunk = spool, destination.name, chunk
        # A SetupError stops the start or the reload.
        # In a process, the store builds its own requests: the server's process has requests to ingest.
        adapter = open_adapter(destination, store=store, process=in_process(destination, lanes), builds_here=False)
        self._people: dict[str, tuple[Any, float]] = {}  # messageId -> (person, received), chunks in hand
        self.patient = PatientAdapter(adapter, patience, self._about, destination=self.name)
        self.pipeline = Pipeline(RuleSet([destination]), dead_letter=dead_letter,
                                 adapters={self.name: self.patient}, hooks=_Hooks(self, settled))
        self._chunks: deque[_Chunk] = deque()
        self._progress = threading.Condition()
        self._stop = threading.Event()
        self._deadline = float("inf")
        self.error: str | None = None
        self.left_unsettled = False   # stopped at the deadline with calls in hand (they stay in the spool)
        self._thread = threading.Thread(target=self._work, name=f"deliver {self.name}", daemon=True)

    def start(self) -> DestinationWorker:
        self._thread.start()
        return self

    def stop(self, deadline: float) -> bool:
        """Finish the chunk in hand until ``deadline`` (time.monotonic()); True if every call in hand settled."""
        self._deadline = deadline
        self._stop.set()
        with self.spool.arrived:
            self.spool.arrived.notify_all()
        self._thread.join(max(0.0, deadline - time.monotonic()) + 1.0)
        return not self._thread.is_alive() and not self.left_unsettled

    def _about(self, call: Any) -> tuple[Any, float]:
        """The person a call is for (:func:`~engine.events.person_of` its event) and when its event was received."""
        # By its text, as ingest deduplicates it: 1 and 1.0, one key of a dict, are two ids.
        return self._people.get(id_text(call.message_id)) or (None, time.time())

    def _remember(self, rows: list[tuple[int, bytes, float]]) -> tuple[list[tuple[str, Any]], tuple[str, ...]]:
        """The chunk's events, parsed, and their messageIds; each one's person is remembered for the adapter."""
        events, ids, people = [], [], self._people
        for row_id, raw, received in rows:
            event, _ = loads_exact(raw, ours=True)  # an integer beyond 64 bits, a lone surrogate: as received
            message_id = event.get("messageId") if isinstance(event, dict) else None
            if message_id.__class__ in (str, int, float):  # ingest gives any other one an id of text
                key = id_text(message_id)
                people[key] = (person_of(event), received)
                ids.append(key)
            events.append((str(row_id), event))
        return events, tuple(ids)

    def count_settled(self, settled: Sequence[tuple[Outcome, str | None]]) -> None:
        """Called by the lane's thread for outcomes just booked."""
        with self._progress:
            chunks = self._chunks
            for _, source in settled:
                row = int(source) if source is not None else 0
                for chunk in chunks:  # at most IN_FLIGHT of them
                    if chunk.first <= row <= chunk.last:
                        chunk.settled += 1
                        break
            self._progress.notify_all()

    def _finished(self) -> int | None:
        """The last row of the chunks at the front whose calls all have outcomes, removing them; else None."""
        last = None
        with self._progress:
            while self._chunks and self._chunks[0].done:
                chunk = self._chunks.popleft()
                last = chunk.last
                for message_id in chunk.message_ids:
                    self._people.pop(message_id, None)
        return last

    def _work(self) -> None:
        db = self.spool.reader()
        spool, name, chunks = self.spool, self.name, self._chunks
        read = spool.progress(name)  # the last row handed to the pipeline
        try:
            while not self._stop.is_set():
                finished = self._finished()
                if finished is not None:
                    self._mark(db, finished)
                if len(chunks) >= IN_FLIGHT:
                    with self._progress:
                        if not chunks[0].done:
                            self._progress.wait(0.25)
                    continue
                rows = self._until_done(functools.partial(spool.read, db, read, self.chunk))
                if not rows:
                    if chunks:
                        with self._progress:
                            if not chunks[0].done:
                                self._progress.wait(0.05)
                    else:
                        with spool.arrived:
                            if spool.last_id <= read and not self._stop.is_set():
                                spool.arrived.wait(IDLE_WAIT)
                    continue
                events, message_ids = self._remember(rows)
                chunk = _Chunk(rows[0][0], rows[-1][0], message_ids=message_ids)
                with self._progress:
                    chunks.append(chunk)
                calls = self.pipeline.summary.calls
                before = sum(calls.values())
                self.pipeline.submit_many(events)
                with self._progress:
                    chunk.expected = sum(calls.values()) - before
                    self._progress.notify_all()
                read = rows[-1][0]
            # Stopping: what is in hand may settle until the deadline; what does not stays in the spool.
            # Held calls are not tried again: they are delivered after the restart, not dead-lettered.
            self.patient.let_go()
            lane = self.pipeline.lanes[name]
            while chunks and time.monotonic() < self._deadline:
                finished = self._finished()
                if finished is not None:
                    self._mark(db, finished)
                if chunks and 0 < lane.pending <= self.patient.waiting:
                    break  # only held calls are left: nothing more will settle
                with self._progress:
                    if chunks and not chunks[0].done:
                        self._progress.wait(0.05)
            if chunks:
                self.left_unsettled = True  # delivered again after a restart, or by the reloaded rules
                self.pipeline.abandon(max(0.0, self._deadline - time.monotonic()))
                return
            self.pipeline.close()
        except Exception as error:  # noqa: BLE001 - reported by /ready and the log; the events stay spooled
            self.error = str(error) if isinstance(error, DeadLettersLost) else f"{type(error).__name__}: {error}"
            log.error("delivery to '%s' stopped: %s", self.name, self.error)
        finally:
            db.close()

    def _mark(self, db: Any, finished: int) -> None:
        """Record progress up to spool row ``finished``; not if a dead-letter record of a call before it could
        not be written (a full disk): those calls are not on disk, so their events must stay in the spool, to be
        delivered again once the server restarts or reloads, and this destination stops here."""
        summary = self.pipeline.summary
        if summary.dead_letter_unwritten:
            raise DeadLettersLost(f"{summary.problem}; {summary.dead_letter_unwritten} record(s) not written, so "
                                  "delivery stopped there and its events stay in the spool: free the disk, then "
                                  "reload (SIGHUP) or restart")
        self._until_done(lambda: self.spool.mark(db, self.name, finished))

    def _until_done(self, step: Callable[[], Any]) -> Any:
        """``step()`` (a read of the spool, or recording progress), tried again every second while SQLite cannot
        (a full disk, a lock held too long): the destination goes on once the disk has room, rather than
        stopping until a reload. /ready says why meanwhile. Raises SQLite's error if the server stops."""
        while True:
            try:
                result = step()
            except sqlite3.OperationalError as error:
                if self.error is None:
                    log.error("delivery to '%s' waits for the spool: %s", self.name, error)
                self.error = f"waits for the spool: {error}"
                if self._stop.wait(SPOOL_RETRY):
                    raise
                continue
            if self.error is not None:
                log.info("delivery to '%s' goes on", self.name)
                self.error = None
            return result

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()


class Delivery:
    """Every destination of the loaded rules, delivering from the spool; swapped whole on reload."""

    def __init__(self, spool: Spool, rules: RuleSet, *, dead_letter: DeadLetter, store: str | None,
                 settled: Settled | None = None, patience: Patience = PATIENCE, lanes: str = "auto"):
        self.spool, self.dead_letter, self.store, self.settled = spool, dead_letter, store, settled
        self.patience, self.lanes = patience, lanes
        self.rules = rules
        self.workers: list[DestinationWorker] = []
        self._lock = threading.Lock()

    def start(self) -> None:
        self.workers = self._open(self.rules)
        self.spool.destinations = {worker.name for worker in self.workers}
        for worker in self.workers:
            worker.start()

    def _open(self, rules: RuleSet) -> list[DestinationWorker]:
        workers: list[DestinationWorker] = []
        try:
            for destination in rules.destinations:
                workers.append(DestinationWorker(self.spool, destination, dead_letter=self.dead_letter,
                                                 store=self.store, settled=self.settled,
                                                 patience=self.patience, lanes=self.lanes))
        except BaseException:
            for worker in workers:
                worker.pipeline.close()
            raise
        return workers

    def swap(self, rules: RuleSet, deadline: float) -> None:
        """Deliver with ``rules`` from now on: the current chunks finish, then the new rules take over
        from each destination's progress. A destination that cannot open keeps the old rules running."""
        with self._lock:
            fresh = self._open(rules)
            self.stop(deadline)
            self.rules, self.workers = rules, fresh
            self.spool.destinations = {worker.name for worker in fresh}
            for worker in fresh:
                worker.start()

    def stop(self, deadline: float) -> bool:
        """Stop every destination after its chunk in hand, waiting until ``deadline`` at most."""
        for worker in self.workers:
            worker._stop.set()
        return all([worker.stop(deadline) for worker in self.workers])

    @property
    def problems(self) -> list[str]:
        return [f"{worker.name}: {worker.error}" for worker in self.workers if worker.error]
