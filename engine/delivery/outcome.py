"""What happened to one call: delivered, delivered after retries, refused or failed, and the evidence.

An :class:`Outcome` is what adapters hand back (exactly one per call, see
:mod:`engine.adapters.contract`) and what the run summary and the dead-letter file are built
from; :meth:`Outcome.dead_letter_record` is the one place the ``delivery_failed`` record format
is written (``engine.replay`` reads it back).

The four states, and what each means to the user:

- ``delivered``: accepted on the first attempt.
- ``retried``: accepted after one or more retries (or a token refresh).
- ``refused``: the destination said no to this call's content (a 4xx other than auth and
  throttling, an item refused inside a batch answer, the embedded store's refusal). Sending it
  again will not help until the data or the destination changes: never retried, dead-lettered,
  and ``replay`` skips it unless asked with ``--include-refused``.
- ``failed``: not delivered for a reason that may pass (unreachable, auth, retries used up):
  dead-lettered and replayable.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..model import ActionCall

DELIVERED = "delivered"
RETRIED = "retried"
REFUSED = "refused"
FAILED = "failed"
STATES = (DELIVERED, RETRIED, REFUSED, FAILED)


def refusal_status(status: int | None) -> bool:
    """Whether an HTTP status says no to the call's content: a 4xx other than auth and throttling,
    or a 207 Multi-Status batch answer that names the item."""
    return status is not None and (status == 207 or 400 <= status < 500 and status not in (401, 403, 408, 429))


@dataclass(frozen=True, init=False)
class Outcome:
    """``status``/``body`` are the last HTTP answer (None when there was none, e.g. a timeout)."""

    state: str
    attempts: int
    status: int | None = None
    body: str | None = None
    message: str = ""
    waited: float = 0.0      # seconds spent waiting between attempts
    call: ActionCall | None = None   # the call this is about, once known
    response: Any = field(default=None, repr=False, compare=False)  # the whole last Response, if any

    def __init__(self, state: str, attempts: int, status: int | None = None, body: str | None = None,
                 message: str = "", waited: float = 0.0, call: ActionCall | None = None, response: Any = None):
        # Every field at once: a frozen dataclass's own __init__ sets each through object.__setattr__,
        # 1.05 against 0.6 us, and a delivery process makes an outcome per call on each side of its pipe.
        self.__dict__.update(state=state, attempts=attempts, status=status, body=body, message=message,
                             waited=waited, call=call, response=response)

    @property
    def ok(self) -> bool:
        return self.state == DELIVERED or self.state == RETRIED

    @property
    def refused(self) -> bool:
        return self.state == REFUSED

    @property
    def reason(self) -> str:
        """Why the call was not delivered (empty when it was)."""
        return "" if self.ok else self.message

    def for_call(self, call: ActionCall) -> Outcome:
        """This outcome about ``call`` (a batch's one answer settles each of its calls)."""
        # Made directly: dataclasses.replace looks the fields up again for each of a batch's calls.
        return Outcome(self.state, self.attempts, self.status, self.body, self.message, self.waited, call,
                       self.response)

    def failed_as(self, message: str, status: int | None = None, body: str | None = None, *,
                  refused: bool = False) -> Outcome:
        """This outcome turned into a failure or a refusal (a batch item the server rejected on its own)."""
        return replace(self, state=REFUSED if refused else FAILED, message=message,
                       status=self.status if status is None else status, body=self.body if body is None else body)

    def dead_letter_record(self, source: str | None = None) -> dict:
        """The ``delivery_failed`` dead-letter record for this call (``outcome`` says refused or failed)."""
        return {"kind": "delivery_failed", "outcome": self.state, "source": source, "reason": self.message,
                "status": self.status, "body": self.body, "attempts": self.attempts,
                "call": self.call.to_dict() if self.call is not None else None}


def not_delivered(state: str, message: str, call: ActionCall, *, attempts: int = 1, status: int | None = None,
                  body: str | None = None) -> Outcome:
    """A refused or failed outcome for ``call`` with no HTTP answer behind it (or only a status)."""
    return Outcome(state, attempts, status, body, message, call=call)


def from_http(outcome: Outcome) -> Outcome:
    """A transport's finished attempt as the contract's state: a final 4xx refusal becomes ``refused``."""
    if outcome.state == FAILED and refusal_status(outcome.status):
        return replace(outcome, state=REFUSED)
    return outcome
