"""What happened to one call: delivered, delivered after retries, or failed, and the evidence.

An :class:`Outcome` is what adapters hand back and what the run summary and the dead-letter
file are built from; :meth:`Outcome.dead_letter_record` is the one place the
``delivery_failed`` record format is written (``engine.replay`` reads it back).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

DELIVERED = "delivered"   # accepted on the first attempt
RETRIED = "retried"       # accepted after one or more retries (or a token refresh)
FAILED = "failed"         # not accepted: dead-letter it


@dataclass(frozen=True)
class Outcome:
    """``status``/``body`` are the last HTTP answer (None when there was none, e.g. a timeout)."""

    state: str
    attempts: int
    status: int | None = None
    body: str | None = None
    message: str = ""
    waited: float = 0.0      # seconds spent waiting between attempts
    call: object = None      # the engine.model.ActionCall this is about, once known
    response: object = field(default=None, repr=False, compare=False)  # the whole last Response, if any

    @property
    def ok(self) -> bool:
        return self.state != FAILED

    @property
    def refused(self) -> bool:
        """The destination said no to this call's content: a 4xx other than auth and throttling, or an
        item refused inside a 207 Multi-Status batch answer.

        Sending it again will not help until the data or the destination changes, unlike a failure
        to reach the destination; ``run`` counts the two apart.
        """
        return self.state == FAILED and self.status is not None and (
            self.status == 207 or 400 <= self.status < 500 and self.status not in (401, 403, 408, 429))

    def for_call(self, call) -> "Outcome":
        """This outcome about ``call`` (a batch's one answer settles each of its calls)."""
        return replace(self, call=call)

    def failed_as(self, message: str, status: int | None = None, body: str | None = None) -> "Outcome":
        """This outcome turned into a failure (a batch item the server rejected on its own)."""
        return replace(self, state=FAILED, message=message, status=self.status if status is None else status,
                       body=self.body if body is None else body)

    def dead_letter_record(self, source: str | None = None) -> dict:
        """The ``delivery_failed`` dead-letter record for this failed call."""
        return {"kind": "delivery_failed", "source": source, "reason": self.message, "status": self.status,
                "body": self.body, "attempts": self.attempts,
                "call": self.call.to_dict() if self.call is not None else None}
