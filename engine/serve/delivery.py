"""Delivery from the spool: one thread per destination, each with its own pipeline and progress.

Each destination reads the spool from where it stopped, evaluates its own rules over a chunk of
events through a :class:`~engine.pipeline.Pipeline` (its lane delivers them in spool order, so
calls for one person reach it in the order the events arrived), waits until every call of the
chunk has an outcome (delivered, or refused or failed and in the dead-letter file), and only then
records the chunk's last event id as its progress. After a crash it starts again after that id:
every acknowledged event is delivered at least once, and the embedded workspace applies a repeated
call once. A destination that is slow or down holds back only its own progress; its backlog waits
in the spool while the others go on.

Thread safety: each :class:`DestinationWorker` owns its pipeline, adapter and spool connection;
the shared dead-letter file and spool take their own locks.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from ..adapters import open_adapter
from ..deadletter import DeadLetter
from ..delivery.outcome import Outcome
from ..pipeline import Pipeline
from ..ruleset import Destination, RuleSet
from .spool import Spool

#: Events a destination takes from the spool at a time.
CHUNK = 2000
#: Seconds an idle destination waits for new events before looking again.
IDLE_WAIT = 0.2

Settled = Callable[[str, Sequence[tuple[Outcome, "str | None"]]], None]


class _Hooks:
    """Tells the metrics about each outcome of one destination (after its dead letter is written)."""

    def __init__(self, destination: str, settled: Settled | None):
        self.destination, self._settled = destination, settled

    def annotate(self, outcome: Outcome) -> dict[str, Any]:
        return {}

    def settled(self, settled: Sequence[tuple[Outcome, str | None]]) -> None:
        if self._settled is not None:
            self._settled(self.destination, settled)


class DestinationWorker:
    """One destination's delivery thread: spool -> its rules -> its lane, progress after each chunk."""

    def __init__(self, spool: Spool, destination: Destination, *, dead_letter: DeadLetter, store: str | None,
                 settled: Settled | None = None, chunk: int = CHUNK):
        self.spool, self.name, self.chunk = spool, destination.name, chunk
        adapter = open_adapter(destination, store=store)  # a SetupError stops the start or the reload
        self.pipeline = Pipeline(RuleSet([destination]), dead_letter=dead_letter, adapters={self.name: adapter},
                                 hooks=_Hooks(self.name, settled))
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

    def _work(self) -> None:
        db = self.spool.reader()
        spool, name = self.spool, self.name
        done = spool.progress(name)
        try:
            while not self._stop.is_set():
                rows = spool.read(db, done, self.chunk)
                if not rows:
                    with spool.arrived:
                        if spool.last_id <= done and not self._stop.is_set():
                            spool.arrived.wait(IDLE_WAIT)
                    continue
                self.pipeline.submit_many((str(row_id), orjson.loads(event)) for row_id, event in rows)
                while not self.pipeline.flush(timeout=0.25):
                    if self._stop.is_set() and time.monotonic() >= self._deadline:
                        self.left_unsettled = True
                        return  # what is not settled stays after ``done`` in the spool: delivered after a restart
                done = rows[-1][0]
                spool.mark(db, name, done)
            self.pipeline.close()
        except Exception as error:  # noqa: BLE001 - reported by /ready and the log; the events stay spooled
            self.error = f"{type(error).__name__}: {error}"
        finally:
            db.close()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()


class Delivery:
    """Every destination of the loaded rules, delivering from the spool; swapped whole on reload."""

    def __init__(self, spool: Spool, rules: RuleSet, *, dead_letter: DeadLetter, store: str | None,
                 settled: Settled | None = None):
        self.spool, self.dead_letter, self.store, self.settled = spool, dead_letter, store, settled
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
                                                 store=self.store, settled=self.settled))
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
