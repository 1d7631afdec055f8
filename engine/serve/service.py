"""What a running server is made of, apart from HTTP: rules, spool, delivery, dead letters, limits, metrics.

:class:`Service` is opened once, read by the ASGI app (:mod:`engine.serve.app`) on every request,
reloaded on SIGHUP, and stopped at the end. The ASGI app decides answers; this module decides
whether the spool can take more (back-pressure) and what is ready.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..adapters.patient import Patience
from ..deadletter import DeadLetter
from ..diagnostics import ERROR, format_text
from ..env import Secrets
from ..loader import compile_paths
from ..ruleset import RuleSet
from .delivery import Delivery
from .limits import Limits
from .metrics import Metrics
from .spool import DEDUPE_WINDOW, Spool

log = logging.getLogger("switchyard.serve")


@dataclass
class Options:
    paths: Sequence[str]
    spool: str = "spool"
    workspace: str | None = None
    dead_letter: str = "deadletter.ndjson"
    write_keys: frozenset[str] = frozenset()
    durability: str = "power"
    dedupe_window: float = DEDUPE_WINDOW
    limits: Limits = field(default_factory=Limits)
    stop_deadline: float = 10.0   # seconds deliveries may take to settle at a stop or a reload
    patience: Patience = field(default_factory=Patience)   # how failed calls are held and tried again
    lanes: str = "auto"   # embedded stores in a process of their own: auto (with 2 cores or more), process, thread


class RulesError(Exception):
    """The rule files have problems; ``problems`` as ``lint`` prints them."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


def load_rules(paths: Sequence[str]) -> RuleSet:
    rules, problems = compile_paths([Path(path) for path in paths])
    errors = [format_text(problem) for problem in problems if problem.severity == ERROR]
    if errors:
        raise RulesError(errors)
    return rules


class Service:
    def __init__(self, options: Options, rules: RuleSet):
        self.options = options
        self.draining = False
        self.dead_letter = DeadLetter(options.dead_letter, mask=Secrets.of(rules.destinations).mask_reason)
        self.dead_letter.check()
        self.spool = Spool(options.spool, durability=options.durability, dedupe_window=options.dedupe_window,
                           max_events=options.limits.max_events)
        self._lag_db = self.spool.reader()
        self._lag_lock = threading.Lock()
        self.metrics = Metrics(self.spool.depth, self._lags, self._held)
        self.delivery = Delivery(self.spool, rules, dead_letter=self.dead_letter, store=options.workspace,
                                 settled=self.metrics.settled, patience=options.patience,
                                 lanes=options.lanes)
        self._reload_lock = threading.Lock()
        self._refusal_checked = 0.0
        self._refusal: str | None = None

    def start(self) -> Service:
        self.delivery.start()
        return self

    @property
    def rules(self) -> RuleSet:
        return self.delivery.rules

    def _lags(self) -> Iterator[tuple[str, float]]:
        with self._lag_lock:
            for worker in self.delivery.workers:
                yield worker.name, self.spool.lag(self._lag_db, worker.name)

    def _held(self) -> Iterator[tuple[str, int, float | None, float | None]]:
        """Per destination: calls held for a retry, when the oldest one's event came, when the next round is."""
        for worker in self.delivery.workers:
            patient = worker.patient
            waiting = patient.waiting
            yield worker.name, waiting, patient.oldest, patient.next_round if waiting else None

    def key_accepted(self, key: str | None) -> bool:
        return not self.options.write_keys or key in self.options.write_keys

    def full(self) -> str | None:
        """Why the spool takes no more now (back-pressure), or None; looked at most every 50 ms."""
        now = time.monotonic()
        if now - self._refusal_checked >= 0.05:
            self._refusal_checked = now
            self._refusal = self._full()
        return self._refusal

    def _full(self) -> str | None:
        limits, spool = self.options.limits, self.spool
        if spool.depth() >= limits.max_events:
            return f"the spool holds {limits.max_events:,} events not yet delivered (--max-spool-events)"
        if spool.size() >= limits.max_bytes:
            return f"the spool is over {limits.max_bytes:,} bytes (--max-spool-bytes)"
        try:
            free = spool.free()
        except OSError:  # the spool's folder is gone: the writer answers 503 (spool_unavailable)
            return None
        if free < limits.min_free_bytes:
            return f"less than {limits.min_free_bytes:,} bytes of disk are free under the spool (--min-free-bytes)"
        return None

    def ready(self) -> list[str]:
        """Why the server is not ready (empty: it is): rules loaded, spool writable, deliveries running."""
        problems = []
        if self.draining:
            problems.append("stopping")
        if not self.spool.writable():
            problems.append(self.spool.problem or "the spool writer stopped")
        problems += self.delivery.problems
        return problems

    def reload(self) -> bool:
        """Load the rule files again and swap them in; on any problem keep the old rules and log each one."""
        with self._reload_lock:
            if self.draining:  # a SIGHUP just before the stop: the stop has the deliveries
                log.info("reload: not done, the server is stopping")
                return False
            try:
                rules = load_rules(self.options.paths)
                # Calls of the old rules may still settle: their secrets stay masked too.
                self.dead_letter.mask = Secrets.of([*self.rules.destinations, *rules.destinations]).mask_reason
                self.delivery.swap(rules, time.monotonic() + self.options.stop_deadline)
            except RulesError as error:
                for problem in error.problems:
                    log.error("reload: %s", problem)
                log.error("reload: the rules were not changed (%d problems)", len(error.problems))
                return False
            except Exception as error:  # noqa: BLE001 - a destination cannot open: the old rules go on
                log.error("reload: the rules were not changed: %s", error)
                return False
            log.info("reload: rules loaded (%s)", ", ".join(d.name for d in rules.destinations))
            return True

    def stop(self) -> bool:
        """Stop deliveries (each finishes its chunk until the deadline) and close the spool; True if all settled."""
        self.draining = True
        with self._reload_lock:  # a reload under way finishes its swap first; none starts after
            settled = self.delivery.stop(time.monotonic() + self.options.stop_deadline)
            self.spool.close()
            self._lag_db.close()
            self.dead_letter.close()
        return settled
