"""The ``customerio`` catalog over HTTP: Track API requests with basic auth, batching and retries.

Bodies, endpoints and hosts come from :mod:`engine.customerio.requests` (shared by every
transport); this adapter only decides how they travel. A call whose mapping has
``enable_batching`` waits in the destination's batch, released by its ``batch_size`` (2 to 100,
default 50), by the 500 KB request limit, or one second after the batch's first call (a timer
thread checks, so a slow stream is not held back), and goes out as ``POST /api/v2/batch``. Other
calls go out at once to ``/api/v2/entity`` (``reportDeliveryEvent``: ``/api/v1/metrics``), after
the batch waiting before them, so calls always reach Customer.io in the order of the events.

Per-item errors: when the batch API answers with ``errors`` naming a ``batch_index``, only those
calls fail. When it rejects a whole batch as invalid (400, 413, 422), each call is sent again on
its own, so one bad call does not fail its neighbours.

``deliver`` and ``close`` return the outcomes settled since the last call, each carrying its call:
a batched call's outcome comes back later than its ``deliver``.
"""
from __future__ import annotations

import base64
import json
import threading
import time

from ..customerio.requests import PATHS, batch_body, host_for, to_request
from ..delivery.batcher import DEFAULT_BATCH_SIZE, DEFAULT_MAX_AGE, Batcher
from ..delivery.http import Sender
from ..delivery.outcome import FAILED, Outcome
from ..delivery.retry import Retrier
from . import SetupError

SPLIT_STATUSES = frozenset({400, 413, 422})
# One batch for the whole destination, not one per mapping: Customer.io applies calls in the order
# it receives them, and per-mapping batches would let a suppress overtake the events before it.
STREAM = "stream"  # the batch as a whole was refused: find the bad calls alone


class CustomerioHttpAdapter:
    def __init__(self, settings, *, retrier: Retrier | None = None, timeout: float = 10.0,
                 max_age: float = DEFAULT_MAX_AGE, clock=time.monotonic, timer: bool = True):
        site_id, api_key = settings.get("site_id"), settings.get("api_key")
        if not site_id or not api_key:
            raise SetupError("customerio over http needs the 'site_id' and 'api_key' settings")
        credentials = base64.b64encode(f"{site_id}:{api_key}".encode()).decode("ascii")
        self.headers = {"Content-Type": "application/json", "Authorization": f"Basic {credentials}"}
        self.host = host_for(settings)
        self.sender = Sender(timeout)
        self.retrier = retrier or Retrier()
        self.batcher = Batcher(max_age=max_age, clock=clock)
        self._lock = threading.Lock()
        self._settled: list[Outcome] = []   # outcomes the timer thread settled, handed out next time
        self._stop = threading.Event()
        self._timer = None
        if timer:
            self._timer = threading.Thread(target=self._tick, args=(min(0.1, max_age / 4),), daemon=True,
                                           name="customerio-batch-timer")
            self._timer.start()

    def deliver(self, call) -> list[Outcome]:
        """Send or queue ``call``; return every outcome settled since the last call."""
        try:
            request = to_request(call)
        except ValueError as error:
            return self._drain([Outcome(FAILED, 0, message=str(error), call=call)])
        with self._lock:
            if not request.batchable:
                # Whatever waits was earlier in the stream: it goes first, so order is kept.
                earlier = self._send_batches(self.batcher.flush_all())
                return self._drain(earlier + [self._post(PATHS[request.endpoint], request.body, call)])
            item = _encode(request.body)
            released = self.batcher.add(STREAM, (call, request.body), len(item),
                                        batch_size=call.payload.get("batch_size", DEFAULT_BATCH_SIZE))
            return self._drain(self._send_batches(released))

    def flush_due(self) -> list[Outcome]:
        """Send the batches whose time is up; return every outcome settled since the last call."""
        with self._lock:
            return self._drain(self._send_batches(self.batcher.flush_due()))

    def close(self) -> list[Outcome]:
        """Send everything still waiting; return the outcomes not handed out yet."""
        self._stop.set()
        if self._timer is not None:
            self._timer.join()
        with self._lock:
            outcomes = self._drain(self._send_batches(self.batcher.flush_all()))
        self.sender.close()
        return outcomes

    # -- sending ----------------------------------------------------------------------------

    def _tick(self, interval: float) -> None:
        while not self._stop.wait(interval):
            with self._lock:
                self._settled += self._send_batches(self.batcher.flush_due())

    def _drain(self, outcomes: list[Outcome]) -> list[Outcome]:
        settled, self._settled = self._settled, []
        return settled + outcomes

    def _post(self, path: str, body: dict, call=None) -> Outcome:
        data, url = _encode(body), self.host + path
        return self.retrier.run(lambda: self.sender.send("POST", url, data, self.headers), call)

    def _send_batches(self, batches) -> list[Outcome]:
        outcomes = []
        for batch in batches:
            calls = [call for call, _ in batch.items]
            bodies = [body for _, body in batch.items]
            outcome = self._post(PATHS["batch"], batch_body(bodies))
            if not outcome.ok and outcome.status in SPLIT_STATUSES and len(calls) > 1:
                outcomes += [self._post(PATHS["entity"], body, call) for call, body in batch.items]
                continue
            rejected = _item_errors(outcome, len(calls)) if outcome.ok else {}
            for index, call in enumerate(calls):
                mine = outcome.for_call(call)
                if index in rejected:
                    error = rejected[index]
                    mine = mine.failed_as(f"Customer.io rejected batch item {index}: {_describe(error)}",
                                          body=json.dumps(error, ensure_ascii=False))
                outcomes.append(mine)
        return outcomes


def _encode(body: dict) -> bytes:
    # The same encoding as the Batcher's size accounting: json.dumps's default separators.
    return json.dumps(body, ensure_ascii=False).encode()


def _item_errors(outcome: Outcome, size: int) -> dict[int, dict]:
    """``batch_index`` -> error for a batch answer that reports per-item errors (Track API 207).

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
        return {index: unread for index in range(size)}
    found = {}
    for error in errors if isinstance(errors, list) else []:
        if isinstance(error, dict) and isinstance(error.get("batch_index"), int):
            found[error["batch_index"]] = error
    return found


def _describe(error: dict) -> str:
    parts = [str(error[key]) for key in ("field", "reason", "message") if error.get(key)]
    return " ".join(parts) or "no reason given"
