"""Ride out a destination outage: hold its failed calls and deliver them again later, in per-person order.

:class:`PatientAdapter` wraps a destination's real adapter and keeps the adapter contract
(:mod:`engine.adapters.contract`). Calls pass through; a ``failed`` outcome (unreachable, 5xx or
429 after the destination's own retries) is not handed back but held, and so is every later call
of the same person, behind it and in order. Held calls are delivered again in rounds, the first
``first_wait`` after a failure, the wait doubling (with jitter) up to ``max_wait``. A round starts
with one call (while the destination is down, a round costs one request); once that is delivered,
it goes on in waves, each the first held call of every held person, until a wave meets a failure.
A batching adapter sends a wave in as few requests as it can (its ``flush`` sends it at once), and
since a wave never holds two calls of one person, no split into requests can reorder a person's
calls. A call comes back as ``failed`` only when ``give_up_after`` seconds have passed since its
event was received, or it was tried ``max_attempts`` times; its outcome then carries the last
answer and every request made. ``refused`` is final and passes through at once.

An adapter that sends each call on its own request (``sends_each_call``, see
:mod:`engine.adapters.contract`) gets at most one call per person per ``deliver``: otherwise, if the
destination came back between a person's failed call and the next one, the next one would arrive
first. A batching adapter gets calls as they come (a failed request fails its whole batch in order);
one with ``hold_behind`` is told who each call is for, and sends none of a person's calls it still holds
once one of theirs fails, so none of them overtakes it either.

Who a call is for, and when its event was received, come from ``about(call)``: the adapter sees
calls, not events. Used from its lane's thread only, except :meth:`let_go` and the read-only
figures (``waiting``, ``oldest``, ``next_round``), which any thread may call.
"""
from __future__ import annotations

import random as _random
import time
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, replace

from ..delivery.outcome import FAILED, RETRIED, Outcome
from ..model import ActionCall
from .contract import HELD_BACK, Adapter, deliver_apart

_NOBODY = object()
_CLOSED = "the destination was closed while it was held for a retry"

#: ``about(call)``: the person the call is for (None when its event named none) and when its event was received.
About = Callable[[ActionCall], tuple[Hashable, float]]


@dataclass(frozen=True)
class Patience:
    """How long a failed call is held and how often it is tried again (seconds)."""

    give_up_after: float = 24 * 3600.0   # since the event was received; 0: dead-letter at the first failure
    max_attempts: int = 0                # deliveries of one call in all; 0: no limit
    first_wait: float = 1.0
    max_wait: float = 300.0

    def wait(self, failures: int, draw: Callable[[], float]) -> float:
        """The pause after ``failures`` rounds failed in a row: half fixed, half jitter."""
        full = min(self.max_wait, self.first_wait * 2 ** max(0, failures - 1))
        return full / 2 + draw() * full / 2


@dataclass
class _Held:
    call: ActionCall
    received: float
    tries: int = 0             # times handed to the real adapter
    attempts: int = 0          # requests those made
    last: Outcome | None = None
    in_flight: bool = False    # handed to a batching adapter, its outcome comes on poll


class PatientAdapter:
    def __init__(self, adapter: Adapter, patience: Patience, about: About, *, destination: str = "",
                 clock: Callable[[], float] = time.time, random: Callable[[], float] = _random.random):
        self.adapter, self.patience, self.about, self.clock, self.random = adapter, patience, about, clock, random
        self.destination = destination
        self._queues: dict[Hashable, deque[_Held]] = {}   # per person, oldest first; insertion order = round order
        self._failures = 0                                # rounds failed in a row
        self.next_round = 0.0                             # clock time of the next round
        self.waiting = 0                                  # calls held
        self.oldest: float | None = None                  # when the oldest held call's event was received
        self._letting_go = False                          # held calls are not tried again
        self._kept = False                                # ... and stay unsettled at the close (let_go)
        self._delivered = False                           # a call was delivered again in this round
        self._one_each = bool(getattr(adapter, "sends_each_call", False))  # a person's calls go one at a time
        self._flush: Callable[[], list[Outcome]] | None = getattr(adapter, "flush", None)  # send batches now
        hold_behind = getattr(adapter, "hold_behind", None)
        if callable(hold_behind):  # a batching adapter sends none of a person's calls it holds after one fails
            hold_behind(lambda call: about(call)[0])

    def _send(self, calls: Sequence[ActionCall]) -> list[Outcome]:
        """The real adapter's ``deliver``; a bug it meets on a call is that call's failure, held like any other
        with the person's calls after it, rather than an exception that would leave what is held half changed."""
        return deliver_apart(self.adapter.deliver, calls, self.destination, lambda call: self.about(call)[0])

    # -- the contract -----------------------------------------------------------------------------

    def deliver(self, calls: Sequence[ActionCall]) -> list[Outcome]:
        ready = self._due()
        if not self._queues and not self._one_each:
            ready += self._sort(self._send(calls))
            return ready
        # A held person's later calls wait behind; the others go a call per person at a time, so a
        # failure among them holds that person's next call instead of letting it pass.
        segment: list[ActionCall] = []
        persons: set[Hashable] = set()
        for call in calls:
            person, received = self.about(call)
            queue = self._queues.get(person)
            if queue is not None:
                queue.append(_Held(call, received))
                self.waiting += 1
                continue
            if person in persons:
                ready += self._sort(self._send(segment))
                segment, persons = [], set()
                if person in self._queues:
                    self._queues[person].append(_Held(call, received))
                    self.waiting += 1
                    continue
            segment.append(call)
            persons.add(person)
        if segment:
            ready += self._sort(self._send(segment))
        return ready

    def poll(self) -> list[Outcome]:
        return self._due() + self._sort(self.adapter.poll())

    def close(self) -> list[Outcome]:
        """Settle everything: what is still held fails (with its last answer), then the real adapter closes.

        After :meth:`let_go`, what is held is dropped instead: its events stay in the spool.
        """
        if self._kept:
            self._queues.clear()
            self.waiting = 0
            self._counted()
            return self.adapter.close()
        self._letting_go = True
        # A retry in flight is answered by the real adapter's close: that answer is its one outcome.
        closing = self.adapter.close()
        in_flight = {id(queue[0].call): (person, queue) for person, queue in self._queues.items() if queue[0].in_flight}
        answered = []
        for outcome in closing:
            found = in_flight.pop(id(outcome.call), None)
            if found is None:
                answered.append(outcome)
            else:
                person, queue = found
                retried, _ = self._answered(person, queue, outcome)
                answered += retried or [self._given_up(queue.popleft(), _CLOSED)]
        outcomes = [self._given_up(held, _CLOSED) for queue in self._queues.values() for held in queue]
        self._queues.clear()
        self.waiting = 0
        self._counted()
        return answered + outcomes

    def let_go(self) -> None:
        """Stop trying held calls again (the server is stopping): they stay unsettled, and so in the spool."""
        self._letting_go = self._kept = True

    # -- holding and trying again -------------------------------------------------------------------

    def _sort(self, outcomes: list[Outcome]) -> list[Outcome]:
        """Outcomes the real adapter gave: a held call's answer, else a first answer (a failure is held)."""
        ready: list[Outcome] = []
        unsent: list[ActionCall] = []  # held back behind a failed call that was given up at once: send them
        for outcome in outcomes:
            if outcome.call is None or (outcome.state != FAILED and not self._queues):
                ready.append(outcome)
                continue
            person, received = self.about(outcome.call)
            queue = self._queues.get(person)
            if queue and queue[0].in_flight and queue[0].call is outcome.call:
                answered, again = self._answered(person, queue, outcome)
                ready += answered
                if again:
                    self._failed_round()
                continue
            if outcome.state != FAILED:
                ready.append(outcome)
                continue
            if outcome.message == HELD_BACK and not outcome.attempts:
                # Not sent: the adapter kept it back behind this person's call that failed just before. It
                # waits behind that call, untried; if that call was given up at once, it goes now.
                if queue:
                    queue.append(_Held(outcome.call, received))
                    self.waiting += 1
                else:
                    unsent.append(outcome.call)
                continue
            held = _Held(outcome.call, received, 1, outcome.attempts, outcome)
            if self._expired(held):
                ready.append(self._given_up(held))
                continue
            if not self._queues:
                self._failures = 1
                self.next_round = self.clock() + self.patience.wait(1, self.random)
            self._queues.setdefault(person, deque()).append(held)
            self.waiting += 1
        self._counted()
        if unsent:
            ready += self._sort(self._send(unsent))
        return ready

    def _due(self) -> list[Outcome]:
        """Give up what is past its limit; deliver held calls again if a round is due."""
        if not self._queues or self._letting_go:
            return []
        ready = self._give_up_due()
        if self._queues and self.clock() >= self.next_round:
            ready += self._round()
        self._counted()
        return ready

    def _round(self) -> list[Outcome]:
        """Waves of held calls, each the first held call of every held person (so a wave never holds two
        calls of one person, however an adapter splits it into requests), until a wave has a failure.
        The first wave is one call: while the destination is still down, a round costs one request."""
        ready: list[Outcome] = []
        self._delivered = False
        while self._queues and not self._letting_go:
            if any(queue[0].in_flight for queue in self._queues.values()):
                return ready  # a batching adapter has some: their answers come on poll
            heads = [(person, queue[0].call) for person, queue in self._queues.items()]
            if not self._delivered:
                heads = heads[:1]  # the round's first call goes alone: while the destination is down, one request
            wave = {id(call): person for person, call in heads}
            outcomes = self._send([call for _, call in heads])
            if self._flush is not None:
                outcomes += self._flush()
            failed = False
            for outcome in outcomes:
                person = wave.pop(id(outcome.call), _NOBODY)
                if person is _NOBODY:
                    ready += self._sort([outcome])
                    continue
                answered, again = self._answered(person, self._queues[person], outcome)
                ready += answered
                failed |= again
            for person in wave.values():  # not answered yet: a batching adapter without flush has it
                self._queues[person][0].in_flight = True
            if failed:
                self._failed_round()
            if failed or wave:
                return ready
        self._failures = 0
        return ready

    def _answered(self, person: Hashable, queue: deque[_Held], outcome: Outcome) -> tuple[list[Outcome], bool]:
        """The answer to a held call delivered again: it goes back, is given up, or waits for the next
        round; and whether it failed again."""
        held = queue[0]
        held.in_flight = False
        if outcome.message == HELD_BACK and not outcome.attempts:
            return [], True  # not sent (behind a failure the adapter had not told yet): no try, the round waits
        held.tries += 1
        held.attempts += outcome.attempts
        if outcome.state != FAILED:
            queue.popleft()
            self.waiting -= 1
            self._delivered = True
            if not queue:
                del self._queues[person]
            if outcome.ok and held.tries > 1:  # accepted on a later delivery: a retry to the user
                outcome = replace(outcome, state=RETRIED)
            return [replace(outcome, attempts=held.attempts)], False
        # Keep the last real answer (a status) over a breaker's "not sent" note.
        held.last = outcome if outcome.status is not None or held.last is None else \
            replace(held.last, message=outcome.message)
        if self._expired(held):
            queue.popleft()
            self.waiting -= 1
            if not queue:
                del self._queues[person]
            return [self._given_up(held)], True
        self._queues[person] = self._queues.pop(person)  # tried last in the next round
        return [], True

    def _failed_round(self) -> None:
        """A round met a failure: the destination is still down; the next round waits longer, unless
        this one delivered something first."""
        self._failures = 1 if self._delivered else self._failures + 1
        self._delivered = False
        self.next_round = self.clock() + self.patience.wait(self._failures, self.random)

    def _give_up_due(self) -> list[Outcome]:
        ready = []
        for person in list(self._queues):
            queue = self._queues[person]
            while queue and not queue[0].in_flight and self._expired(queue[0]):
                ready.append(self._given_up(queue.popleft()))
                self.waiting -= 1
            if not queue:
                del self._queues[person]
        return ready

    def _expired(self, held: _Held) -> bool:
        patience = self.patience
        return (self.clock() - held.received >= patience.give_up_after
                or 0 < patience.max_attempts <= held.tries)

    def _given_up(self, held: _Held, why: str = "") -> Outcome:
        """The final ``failed`` outcome of a held call: its last answer, every request made."""
        patience = self.patience
        if not why:
            why = (f"not delivered within {_duration(patience.give_up_after)} of its event"
                   if self.clock() - held.received >= patience.give_up_after
                   else f"not delivered in {held.tries} deliveries")
        if held.last is None:
            return Outcome(FAILED, 0, message=f"not sent: held behind an earlier call for the same person that was "
                                              f"not delivered; {why}", call=held.call)
        tries = f"; tried {held.tries} time{'s' * (held.tries != 1)}" if held.tries > 1 else ""
        return replace(held.last, state=FAILED, attempts=held.attempts, call=held.call,
                       message=f"{held.last.message} ({why}{tries})")

    def _counted(self) -> None:
        self.oldest = min((queue[0].received for queue in self._queues.values() if queue), default=None)


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"
