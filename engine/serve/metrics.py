"""The server's Prometheus metrics, in a registry of its own (several servers can live in one process).

Counters are kept as things happen (requests by status, events accepted and deduplicated, each
destination's outcomes); the spool depth and each destination's delivery lag are read when scraped.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from ..delivery.outcome import Outcome

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _Lag(Collector):
    def __init__(self, lags: Callable[[], Iterable[tuple[str, float]]]):
        self.lags = lags

    def collect(self):
        family = GaugeMetricFamily("switchyard_delivery_lag_seconds",
                                   "Age of the oldest spooled event a destination has not taken yet",
                                   labels=["destination"])
        for destination, seconds in self.lags():
            family.add_metric([destination], seconds)
        yield family


Held = Callable[[], Iterable[tuple[str, int, "float | None", "float | None"]]]


class _Held(Collector):
    """Calls a destination holds to deliver again after a failure (engine.adapters.patient)."""

    def __init__(self, held: Held):
        self.held = held

    def collect(self):
        waiting = GaugeMetricFamily("switchyard_calls_waiting_retry",
                                    "Calls that failed (or wait behind one of the same person), held to be "
                                    "delivered again", labels=["destination"])
        oldest = GaugeMetricFamily("switchyard_oldest_waiting_retry_seconds",
                                   "Age of the event of the oldest call held for a retry (0: none held)",
                                   labels=["destination"])
        upcoming = GaugeMetricFamily("switchyard_next_retry_seconds",
                                     "Seconds until held calls are delivered again (0: none held, or now)",
                                     labels=["destination"])
        now = time.time()
        for destination, count, received, next_round in self.held():
            waiting.add_metric([destination], count)
            oldest.add_metric([destination], max(0.0, now - received) if received is not None else 0.0)
            upcoming.add_metric([destination], max(0.0, next_round - now) if next_round is not None else 0.0)
        yield waiting
        yield oldest
        yield upcoming


class Metrics:
    def __init__(self, depth: Callable[[], float], lags: Callable[[], Iterable[tuple[str, float]]],
                 held: Held | None = None):
        self.registry = registry = CollectorRegistry()
        self.requests = Counter("switchyard_requests", "HTTP requests answered, by status", ["status"],
                                registry=registry)
        self.accepted = Counter("switchyard_events_accepted", "Events written to the spool and acknowledged",
                                registry=registry)
        self.deduplicated = Counter("switchyard_events_deduplicated",
                                    "Events dropped at ingest: their messageId was seen within the window",
                                    registry=registry)
        self.invalid = Counter("switchyard_events_invalid",
                               "Events acknowledged but not spooled (no valid type): in the dead-letter file",
                               registry=registry)
        self.outcomes = Counter("switchyard_calls", "Calls settled per destination, by outcome",
                                ["destination", "outcome"], registry=registry)
        Gauge("switchyard_spool_depth", "Spooled events some destination has still to take",
              registry=registry).set_function(depth)
        registry.register(_Lag(lags))
        if held is not None:
            registry.register(_Held(held))

    def settled(self, destination: str, settled: Sequence[tuple[Outcome, str | None]]) -> None:
        counts: dict[str, int] = {}
        for outcome, _ in settled:
            state = "delivered" if outcome.ok else outcome.state
            counts[state] = counts.get(state, 0) + 1
        for state, count in counts.items():
            self.outcomes.labels(destination, state).inc(count)

    def text(self) -> bytes:
        return generate_latest(self.registry)
