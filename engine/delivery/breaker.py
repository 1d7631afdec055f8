"""A circuit breaker per destination: stop waiting on a destination that keeps failing, and try it again later.

Without it, a destination that refuses connections costs every call its whole retry policy
(about 4.8 s a call with the defaults: 80 minutes per 1,000 events). With it, after
``failures`` calls in a row failed for a reason that says the destination is down (no answer at
all: refused, reset, timed out; or a 5xx after the retries), the destination is **paused**
(the breaker is *open*): its calls fail at once, without a request, with a reason that says so,
and go to the dead-letter file as ``failed`` (replayable). ``pause`` seconds later one call is
sent as a probe, with a single attempt (*half-open*): if it is answered the breaker closes and
calls go as usual; if not, the destination is paused again.

An answer that is not a failure of the destination (any 2xx, a 4xx refusal, 401/403) closes the
breaker and resets the count: the destination is up and it is the call, or the credentials,
that it refuses. The other destinations are not affected: each adapter has its own breaker.

Setting (``circuit_breaker`` in a destination's settings, HTTP transports)::

    circuit_breaker: {failures: 5, pause: 30}   # the defaults; failures: 0 turns the breaker off

A Breaker belongs to one adapter and is used from its lane's thread only.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from .http import Response, SendError
from .outcome import FAILED, Outcome
from .retry import Retrier

SETTING = "circuit_breaker"
DEFAULT_FAILURES = 5
DEFAULT_PAUSE = 30.0


def is_down(outcome: Outcome) -> bool:
    """Whether a finished call says the destination is down: no answer at all, or a 5xx."""
    return outcome.state == FAILED and (outcome.status is None or outcome.status >= 500)


class Breaker:
    def __init__(self, destination: str, *, failures: int = DEFAULT_FAILURES, pause: float = DEFAULT_PAUSE,
                 clock: Callable[[], float] = time.monotonic):
        if failures < 1 or not pause > 0:
            raise ValueError("a circuit breaker needs failures >= 1 and pause > 0")
        self.destination, self.failures, self.pause, self.clock = destination, failures, pause, clock
        self.in_a_row = 0                     # calls that failed in a row, the destination down
        self.paused_until: float | None = None  # set while open
        self.last_reason = ""

    @property
    def open(self) -> bool:
        return self.paused_until is not None

    def run(self, retrier: Retrier, attempt: Callable[[], Response], call: Any = None, *,
            waited: float = 0.0) -> Outcome:
        """``retrier.run(attempt, call, waited=waited)`` while the destination is up; a failure without a
        request while it is paused; one attempt as a probe when the pause is over."""
        if self.paused_until is not None:
            if self.clock() < self.paused_until:
                return Outcome(FAILED, 0, message=self._paused_reason(), waited=waited, call=call)
            retrier = Retrier(replace(retrier.policy, max_attempts=1), clock=retrier.clock, random=retrier.random)
        unsendable = False

        def observed() -> Response:
            nonlocal unsendable
            try:
                return attempt()
            except SendError as error:
                unsendable = not error.retryable
                raise

        outcome = retrier.run(observed, call, waited=waited)
        if not unsendable:  # a URL, header or certificate that can never work says nothing of the destination
            self.record(outcome)
        return outcome

    def record(self, outcome: Outcome) -> None:
        """Count a finished call: a failure of the destination, or an answer that shows it is up."""
        if not is_down(outcome):
            self.in_a_row, self.paused_until = 0, None
            return
        self.in_a_row += 1
        self.last_reason = outcome.message
        if self.paused_until is not None or self.in_a_row >= self.failures:
            self.paused_until = self.clock() + self.pause  # opened, or a probe failed: pause again

    def _paused_reason(self) -> str:
        return (f"not sent: '{self.destination}' is paused by its circuit breaker after {self.in_a_row} calls in a "
                f"row failed (last: {self.last_reason}); it is tried again {self.pause:g}s after the last failure "
                f"(failed, replayable)")


def circuit_breaker(destination: str, settings: Mapping[str, Any]) -> Breaker | None:
    """The breaker a destination's ``circuit_breaker`` setting asks for; None when ``failures`` is 0."""
    given = settings.get(SETTING) or {}
    failures = int(given.get("failures", DEFAULT_FAILURES))
    if failures == 0:
        return None
    return Breaker(destination, failures=failures, pause=float(given.get("pause", DEFAULT_PAUSE)))
