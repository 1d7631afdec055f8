"""When to try a request again, and how long to wait: the retry policy and the loop that applies it.

Retried: connection errors and timeouts, 408, 429 and every 5xx except 501 (Not Implemented
will not change). Never retried: any other status, including the other 4xx. Waits grow
exponentially with full jitter (a uniform draw between 0 and ``base_delay * 2**n``, capped at
``max_delay``; see "Exponential Backoff and Jitter", AWS Architecture Blog, 2015), except that
a ``Retry-After`` answer (delay-seconds or an HTTP-date, RFC 9110 section 10.2.3) is honoured
as given. Attempts are bounded by ``max_attempts`` and the sum of waits by ``max_total_wait``:
a server asking for a longer wait fails the call now, to be dead-lettered and replayed later.

This module decides and waits; it does not send. Time comes from a clock object so tests run
the real loop against real servers without real sleeps. A Retrier, its policy and both clocks
may be shared by threads (each delivery lane runs its own loop and sleeps in its own thread).
"""
from __future__ import annotations

import random as _random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC
from email.utils import parsedate_to_datetime

from .http import Response, SendError
from .outcome import DELIVERED, FAILED, RETRIED, Outcome


class Clock:
    """Real time: the wall clock (to read HTTP-dates against) and a real sleep."""

    def time(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


class ManualClock(Clock):
    """A clock for tests: ``sleep`` moves the time forward at once and records each wait.

    Threads may sleep on one ManualClock: each wait is recorded and added to ``now`` exactly once.
    """

    def __init__(self, start: float = 1_700_000_000.0):
        self.now = start
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self.now += max(seconds, 0.0)


SYSTEM_CLOCK = Clock()


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5          # attempts in all, the first one included
    base_delay: float = 0.5        # seconds; the n-th retry waits up to base_delay * 2**(n-1)
    max_delay: float = 30.0        # cap on one backoff wait
    max_total_wait: float = 60.0   # cap on the waits for one call, Retry-After included

    def __post_init__(self):
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if min(self.base_delay, self.max_delay, self.max_total_wait) < 0:
            raise ValueError("delays must not be negative")

    @staticmethod
    def retryable_status(status: int) -> bool:
        return status in (408, 429) or (500 <= status <= 599 and status != 501)

    def backoff(self, retry: int, draw: Callable[[], float]) -> float:
        """Full jitter for the ``retry``-th retry (1-based): uniform in [0, min(max_delay, base*2**(retry-1))]."""
        return draw() * min(self.max_delay, self.base_delay * 2 ** (retry - 1))


def retry_after(response: Response | None, now: float) -> float | None:
    """Seconds the server asked us to wait, or None when it did not say (or said it unreadably)."""
    value = (response.headers.get("retry-after") or "").strip() if response is not None else ""
    if not value:
        return None
    if value.isascii() and value.isdigit():  # not "²": str.isdigit takes it, float does not
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # HTTP-dates are always GMT (RFC 9110 section 5.6.7)
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now)


class Retrier:
    """Runs an attempt until it is accepted, cannot succeed, or the policy's limits are reached."""

    def __init__(self, policy: RetryPolicy | None = None, *, clock: Clock | None = None,
                 random: Callable[[], float] | None = None):
        self.policy = policy or RetryPolicy()
        self.clock = clock or SYSTEM_CLOCK
        self.random = random or _random.random

    def run(self, attempt: Callable[[], Response], call=None, *, waited: float = 0.0) -> Outcome:
        """Call ``attempt`` (which sends once, returning a Response or raising SendError) per the policy.

        ``waited``: seconds this call already waited for earlier requests of its own (a transport that makes
        several per call): they count against the policy's wait limit, which is per call. The outcome's
        ``waited`` includes them.
        """
        policy, attempts = self.policy, 0
        while True:
            attempts += 1
            error: SendError | None = None
            response: Response | None
            try:
                response = attempt()
            except SendError as failure:
                error, response = failure, failure.response
            if error is None and response is not None and response.ok:
                return Outcome(DELIVERED if attempts == 1 else RETRIED, attempts, response.status, response.text(),
                               waited=waited, call=call, response=response)
            if response is None:  # no answer at all: the error says whether another try can help
                retryable = error is not None and error.retryable
            else:
                retryable = policy.retryable_status(response.status)
            if not retryable:
                return _failed(attempts, error, response, waited, call, "")
            if attempts >= policy.max_attempts:
                return _failed(attempts, error, response, waited, call,
                               f" (gave up after {attempts} attempts)" if attempts > 1 else "")
            budget = policy.max_total_wait - waited
            asked = retry_after(response, self.clock.time())
            if asked is not None and asked > budget:
                return _failed(attempts, error, response, waited, call,
                               f" (gave up after {attempts} attempt{'s' * (attempts > 1)}: Retry-After {asked:g}s "
                               f"is more than the {budget:g}s left of the {policy.max_total_wait:g}s wait limit)")
            delay = asked if asked is not None else min(policy.backoff(attempts, self.random), budget)
            self.clock.sleep(delay)
            waited += delay


def _failed(attempts: int, error: SendError | None, response: Response | None, waited: float, call,
            note: str) -> Outcome:
    if error is not None:
        message = str(error)
    else:
        assert response is not None  # an attempt either answers or raises
        message = f"HTTP {response.status} from {response.url}"
    return Outcome(FAILED, attempts, response.status if response is not None else None,
                   response.text() if response is not None else None, message + note, waited, call, response)
