"""The ``customerio`` catalog over HTTP: Track API requests with basic auth, batching and retries.

Bodies, endpoints and hosts come from :mod:`engine.customerio.requests` (shared by every
transport); this adapter only decides how they travel. A call whose mapping has
``enable_batching`` waits in the destination's batch, released by its ``batch_size`` (2 to 100,
default 50), by the 500 KB request limit, or one second after the batch's first call (checked on
every ``deliver`` and on ``poll``, which the pipeline calls while the lane is idle), and goes out
as ``POST /api/v2/batch``. Other calls go out at once to ``/api/v2/entity``
(``reportDeliveryEvent``: ``/api/v1/metrics``), after the batch waiting before them, so calls
always reach Customer.io in the order of the events.

Per-item errors: when the batch API answers with ``errors`` naming a ``batch_index``, only those
calls are refused. When it rejects a whole batch as invalid (400, 413, 422), each call is sent
again on its own, so one bad call does not fail its neighbours.

Each item is encoded once: its bytes are kept in the batch and joined into the request.

Serve's held calls (:mod:`engine.adapters.patient`) call :meth:`CustomerioHttpAdapter.hold_behind`:
after a call fails, the same person's calls still waiting in the batch, or coming later in the same
``deliver``, are answered ``failed`` without being sent, so that none arrives before the failed one is
delivered again. Without it (``run``), each batch goes as built.
"""
from __future__ import annotations

import json
import time
from typing import Any, Callable, Hashable, Sequence

from ..customerio.requests import BATCH_ENVELOPE, BATCH_SEPARATOR, PATHS, batch_bytes, host_for, to_request
from ..delivery.batcher import DEFAULT_BATCH_SIZE, DEFAULT_MAX_AGE, Batch, Batcher
from ..delivery.breaker import circuit_breaker
from ..delivery.encoding import encode
from ..delivery.http import Response, Sender
from ..delivery.outcome import FAILED, REFUSED, Outcome, from_http
from ..delivery.ratelimit import RateLimit, rate_limit
from ..delivery.retry import Retrier, RetryPolicy
from ..env import basic_credentials
from ..model import ActionCall
from .contract import UNBUILDABLE, AdapterContext, SetupError, held_back, unbuildable

SPLIT_STATUSES = frozenset({400, 413, 422})
# One batch for the whole destination, not one per mapping: Customer.io applies calls in the order
# it receives them, and per-mapping batches would let a suppress overtake the events before it.
STREAM = "stream"  # the batch as a whole was refused: find the bad calls alone


class CustomerioHttpAdapter:
    def __init__(self, context: AdapterContext, *, retrier: Retrier | None = None, timeout: float = 10.0,
                 max_age: float = DEFAULT_MAX_AGE, clock: Callable[[], float] = time.monotonic):
        settings = context.settings
        site_id, api_key = settings.get("site_id"), settings.get("api_key")
        if not site_id or not api_key:
            raise SetupError("customerio over http needs the 'site_id' and 'api_key' settings")
        self.headers = {"Content-Type": "application/json",
                        "Authorization": f"Basic {basic_credentials(str(site_id), str(api_key))}"}
        self.host = host_for(settings)
        self.sender = Sender(float(settings.get("timeout", timeout)))
        self.retrier = retrier or Retrier(RetryPolicy(max_attempts=int(settings.get("max_attempts", 5))))
        self.rate = rate_limit(settings, context.options)  # max_requests_per_second, every attempt counts
        self.breaker = circuit_breaker(context.destination, settings)
        self.batcher = Batcher(max_age=max_age, clock=clock, envelope=BATCH_ENVELOPE, separator=BATCH_SEPARATOR)
        self._person: Callable[[ActionCall], Hashable] = _nobody  # hold_behind's
        self._stopped: set[Hashable] = set()  # people with a failed call in this deliver, poll or flush

    @staticmethod
    def prepare(call: ActionCall) -> tuple[str, bool, int, bytes] | str:
        """The request of ``call``: (endpoint, batchable, batch size, body bytes), or why it cannot be sent.

        A pure function of the call (the contract's ``prepare``): ``run --workers`` builds it in the
        process that evaluated the event.
        """
        try:
            request = to_request(call)
            body = encode(request.body)
        except UNBUILDABLE as error:  # UnencodableBody is a ValueError
            return unbuildable(error)
        return request.endpoint, request.batchable, call.payload.get("batch_size", DEFAULT_BATCH_SIZE), body

    def deliver(self, calls: Sequence[ActionCall]) -> list[Outcome]:
        """Send or queue each call in order; return every outcome settled meanwhile."""
        try:
            return self._deliver(calls)
        finally:
            self._stopped.clear()  # the people held back are held by the caller from now on

    def _deliver(self, calls: Sequence[ActionCall]) -> list[Outcome]:
        outcomes: list[Outcome] = []
        prepare = self.prepare
        for call in calls:
            if self._held(call):
                outcomes.append(held_back(call))
                continue
            prepared = call.prepared if call.prepared is not None else prepare(call)
            if isinstance(prepared, str):
                outcomes.append(Outcome(REFUSED, 0, message=prepared, call=call))
                continue
            endpoint, batchable, batch_size, item = prepared
            if not batchable:
                # Whatever waits was earlier in the stream: it goes first, so order is kept.
                outcomes += self._send_batches(self.batcher.flush_all())
                if self._held(call):
                    outcomes.append(held_back(call))
                    continue
                outcomes.append(self._noted(self._post(PATHS[endpoint], item, call)))
                continue
            released = self.batcher.add(STREAM, (call, item), len(item), batch_size=batch_size)
            outcomes += self._send_batches(released)
        return outcomes

    def poll(self) -> list[Outcome]:
        """Send the batches whose time is up."""
        try:
            return self._send_batches(self.batcher.flush_due())
        finally:
            self._stopped.clear()

    def flush(self) -> list[Outcome]:
        """Send every batch now, whatever its age."""
        try:
            return self._send_batches(self.batcher.flush_all())
        finally:
            self._stopped.clear()

    def close(self) -> list[Outcome]:
        """Send everything still waiting."""
        outcomes = self.flush()
        self.sender.close()
        return outcomes

    def hold_behind(self, person: Callable[[ActionCall], Hashable]) -> None:
        """From now on, once a call of a person fails, send none of their later calls that this adapter
        holds or is given in the same ``deliver``, ``poll`` or ``flush``: each is answered ``failed``,
        not sent (the contract's ``hold_behind``; serve's held calls keep them in order)."""
        self._person = person

    # -- sending ----------------------------------------------------------------------------

    def _post(self, path: str, data: bytes, call: ActionCall | None = None) -> Outcome:
        url = self.host + path
        rate: RateLimit | None = self.rate

        def attempt() -> Response:
            if rate is not None:
                rate.wait()
            return self.sender.send("POST", url, data, self.headers)
        breaker = self.breaker
        outcome = self.retrier.run(attempt, call) if breaker is None else breaker.run(self.retrier, attempt, call)
        return from_http(outcome)

    def _send_batches(self, batches: list[Batch]) -> list[Outcome]:
        outcomes = []
        stopped = len(self._stopped)
        for batch in batches:
            items: list[tuple[ActionCall, bytes]] = batch.items
            if self._stopped:
                outcomes += [held_back(call) for call, _ in items if self._held(call)]
                items = [(call, item) for call, item in items if not self._held(call)]
                if not items:
                    continue
            outcome = self._post(PATHS["batch"], batch_bytes([item for _, item in items]))
            if not outcome.ok and outcome.status in SPLIT_STATUSES and len(items) > 1:
                outcomes += [held_back(call) if self._held(call) else
                             self._noted(self._post(PATHS["entity"], item, call)) for call, item in items]
                continue
            rejected, readable = _item_errors(outcome, len(items)) if outcome.ok else ({}, True)
            for index, (call, _) in enumerate(items):
                mine = outcome.for_call(call)
                if index in rejected:
                    error = rejected[index]
                    # An answer that names the item refuses it; one that cannot be read says nothing of
                    # the item, so it stays replayable.
                    mine = mine.failed_as(f"Customer.io rejected batch item {index}: {_describe(error)}",
                                          body=json.dumps(error, ensure_ascii=False), refused=readable)
                outcomes.append(self._noted(mine))
        if len(self._stopped) > stopped:
            # The waiting batch is later in the stream than every batch just sent.
            withdrawn = self.batcher.withdraw(STREAM, lambda entry: self._held(entry[0]))
            outcomes += [held_back(call) for call, _ in withdrawn]
        return outcomes

    def _held(self, call: ActionCall) -> bool:
        """Whether ``call`` is kept back: its person had a call fail in this deliver, poll or flush."""
        return bool(self._stopped) and self._person(call) in self._stopped

    def _noted(self, outcome: Outcome) -> Outcome:
        """``outcome``, its person remembered as stopped when it failed and calls are held behind failures."""
        if outcome.state == FAILED and self._person is not _nobody and outcome.call is not None:
            self._stopped.add(self._person(outcome.call))
        return outcome


def _nobody(call: ActionCall) -> Hashable:
    """The person of every call until :meth:`CustomerioHttpAdapter.hold_behind` says otherwise; never looked up."""
    return None


def _item_errors(outcome: Outcome, size: int) -> tuple[dict[int, dict[str, Any]], bool]:
    """``batch_index`` -> error for a batch answer that reports per-item errors (Track API 207), and
    whether the answer could be read.

    A 207 whose errors cannot be read fails every item: replaying some accepted calls again is
    better than losing rejected ones.
    """
    body = outcome.response.body if outcome.response is not None else (outcome.body or "").encode()
    try:
        answer = json.loads(body) if body else None
    except ValueError:
        answer = None
    errors = answer.get("errors") if isinstance(answer, dict) else None
    if outcome.status == 207 and not isinstance(errors, list):
        unread = {"message": "Customer.io answered 207 Multi-Status without readable per-item errors"}
        return {index: unread for index in range(size)}, False
    found = {}
    for error in errors if isinstance(errors, list) else []:
        if isinstance(error, dict) and isinstance(error.get("batch_index"), int):
            found[error["batch_index"]] = error
    return found, True


def _describe(error: dict) -> str:
    parts = [str(error[key]) for key in ("field", "reason", "message") if error.get(key)]
    return " ".join(parts) or "no reason given"
