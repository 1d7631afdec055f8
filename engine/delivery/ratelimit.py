"""At most N requests a second to one destination, shared fairly by every process that sends to it.

A destination's ``max_requests_per_second`` setting (HTTP transports) caps the requests its
adapter sends, retries included. One ``switchyard run`` has one adapter per destination, so it
takes the whole rate; a Spark job has one per running task, so the driver divides the rate by
the number of tasks that run at once and hands each adapter its share (``rate_shares`` in
:class:`~engine.adapters.contract.AdapterContext.options`). 200 executors then send, together,
what one process would.

Requests are spaced evenly (no burst): the first goes at once, each next one no sooner than
``1 / rate`` seconds after the one before.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

SETTING = "max_requests_per_second"
SHARES = "rate_shares"  # adapter option: how many senders share the destination's rate


class RateLimit:
    """Spaces calls to :meth:`wait` at least ``1 / per_second`` seconds apart."""

    def __init__(self, per_second: float, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Any] = time.sleep):
        if not per_second > 0:
            raise ValueError(f"a rate must be above 0 requests a second, got {per_second}")
        self.per_second = per_second
        self.interval = 1.0 / per_second
        self._clock, self._sleep = clock, sleep
        self._next = float("-inf")
        self._lock = threading.Lock()  # an adapter is used by one lane, but its retries may share it

    def wait(self) -> float:
        """Wait until the next request may go; returns the seconds waited."""
        with self._lock:
            now = self._clock()
            at = max(now, self._next)
            self._next = at + self.interval
        waited = at - now
        if waited > 0:
            self._sleep(waited)
        return waited


def rate_limit(settings: Mapping[str, Any], options: Mapping[str, Any] | None = None) -> RateLimit | None:
    """The limit a destination's adapter keeps: its setting divided by the senders sharing it, or None."""
    rate = settings.get(SETTING)
    if rate is None:
        return None
    shares = max(1, int((options or {}).get(SHARES, 1)))
    return RateLimit(float(rate) / shares)
