"""An adapter in a process of its own: the destination's lane hands calls over a pipe and books the outcomes.

Building request bodies and running SQL for each call is Python work that the GIL keeps on one
core beside the evaluation of events. :class:`RemoteAdapter` is an :class:`~engine.adapters.contract.Adapter`
like any other: ``deliver`` sends the calls to a child process that runs the destination's real
adapter, and returns the outcomes that are back by then; ``poll`` returns those that came back
since; ``close`` closes the real adapter and returns the rest. So the pipeline and its lanes are
unchanged, and on a machine with two cores evaluation and delivery run side by side.

The child is started with ``spawn`` (a fresh interpreter, safe whatever threads this process
has) and opens the adapter from its :class:`~engine.adapters.contract.AdapterContext`: it needs no
rules. A reader thread on each side takes what the other sends as it comes, so neither ever waits
on a full pipe. If the run is killed, the child delivers nothing more after the slice in hand. If
the child dies, every call it had not answered for is failed with the reason,
never lost from the count; calls are replayable from the dead-letter file as usual.
"""
from __future__ import annotations

import atexit
import itertools
import os
import queue
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from ..collector import for_streams
from ..delivery.outcome import DELIVERED, FAILED, REFUSED, Outcome
from ..delivery.pacing import JOURNAL_GATHER, next_slice
from ..model import ActionCall, call_factory
from ..parallel import pickled
from .contract import HELD_BACK, Adapter, AdapterContext, deliver_apart, factory, held_back

# What crosses the pipe: calls as lists of (token, destination, mapping, action, payload, message id,
# prepared, (person, seen) or None: see hold_behind); answers as (slice, cpu, wall, [token, ...], [(token,
# state, attempts, status, body, message, waited), ...]): first the calls delivered at the first attempt
# with nothing more to say, then the rest. ``slice`` is how many calls the child hands its adapter at a
# time, ``cpu`` and ``wall`` the seconds of CPU it used and the seconds that passed since its last answer.
# Plain tuples, not ActionCall and Outcome, because pickling an object calls Python code for each one
# (their __reduce__): that was a fifth of a lane's time into the workspace.
Crossing = tuple[int, str, str, str, Any, Any, Any, Any]
Answer = tuple[int, str, int, "int | None", "str | None", str, float]
Answers = tuple[int, float, float, list[int], list[Answer]]

_IDLE_POLL = 0.05  # seconds between the child's polls of its adapter while it holds calls
#: Seconds before a delivery process that died is started again; calls meanwhile fail at once (replayable).
RESTART_PAUSE = 1.0
#: Seconds a delivery process has to end once its run's process exits, before it is killed.
EXIT_GRACE = 5.0
#: The share of a core a child must keep busy to count as the slower side (over its recent time: each
#: answer's figures weigh in, the older ones less and less).
BUSY = 0.9
#: How much the share of requests built here moves with each answer.
SHARE_STEP = 0.05


class RemoteAdapter:
    """Runs the adapter ``spec`` names in a child process; see the module docstring.

    At most two of the child's slices (:class:`_Pace`) are out unanswered: one it works on, one waiting
    in the pipe (counted in calls: a short slice out leaves room for most of the next). So ``deliver``
    takes as long as the child does, less a slice, and the lane paces its journal by it as for an
    adapter in a thread; and a kill can leave no more than that delivered but not booked, for a resumed
    run to send twice (docs/delivery.md). Told who each call is for (:meth:`hold_behind`, serve's held
    calls), it keeps a person's calls behind their failed one although the answers come back late.

    ``deliver`` builds a share of the calls' requests here (the adapter's ``prepare``, as ``run --workers``
    does in its workers; first those of the next calls, while it waits for room in the window), so that
    the child only applies them; a call crosses with its request and without its payload. How large a
    share follows which side is slower: building them here takes the interpreter lock from the
    evaluation of events in this process, so while the child has time to spare (each answer says how
    much CPU it used meanwhile) this side builds a smaller share, and while it keeps a core busy, a
    larger one. With ``builds_here`` False the child builds them all (serve: its process ingests requests,
    and a request built there takes its time from that).

    A child that dies fails the calls it had not answered for at once, and the next ``deliver`` (after
    :data:`RESTART_PAUSE`) starts a new one, so a run or a server goes on delivering.
    """

    def __init__(self, context: AdapterContext, spec: str, *, builds_here: bool = True):
        found = factory(context.catalog, context.transport, spec)
        gather, prepare = getattr(found, "gather", None), getattr(found, "prepare", None)
        if isinstance(gather, int) and gather > 0:
            self.gather = gather  # the lane hands over what the child's adapter takes in one go
        self._window = 2 * (gather if isinstance(gather, int) and gather > 0 else JOURNAL_GATHER)
        self._prepare = prepare if callable(prepare) else None
        self._context = AdapterContext(context.destination, context.catalog, context.transport,
                                       dict(context.settings), context.store, dict(context.options))
        self._spec, self._builds_here, self.name = spec, builds_here, context.destination
        self._tokens = itertools.count()
        self._issued = -1  # the last token given to a call
        # The share of the requests built here; see _balance.
        self._share, self._credit = (0.5 if builds_here else 0.0), 0.0
        self._cpu = self._wall = 0.0           # the child's recent seconds, older ones weighing less
        self._waiting: dict[int, ActionCall] = {}   # token -> call, until its outcome is handed out
        self._person: Callable[[ActionCall], Any] | None = None  # see hold_behind
        self._crossed: dict[int, tuple[Any, int]] = {}  # token -> (person, seen), while waiting (hold_behind)
        self._orphaned: set = set()  # people whose calls a child that died took with it, until the caller knows
        self._start()

    def hold_behind(self, person: Callable[[ActionCall], Any]) -> None:
        """Serve's held calls say who each call is for (engine.adapters.contract). Once a person's call fails
        (in the child: raises, or comes back failed), none of their later calls is applied until the caller has
        that failure in hand and so holds the person's calls itself: each later call is answered
        :func:`~engine.adapters.contract.held_back`, as the contract says.

        The answers come back while later calls are already on their way, so the child decides: each call
        crosses with its person and ``seen``, the last token whose outcome the caller had been given when it
        handed the call over (every token up to it has been). A call of a person whose failed call has a
        later token than that was handed over before the caller knew of the failure: it is held back. This
        side answers those calls ``held_back`` as soon as it collects the failure, in order right after it, so
        that none of the person's calls handed over since can be queued before them (the child's own answer
        for them, later, is then ignored). The calls of a person whose call was lost with a child that died
        are held here, in the ``deliver`` that finds it dead: the child started in its place knows nothing."""
        self._person = person

    def _seen(self) -> int:
        """The last token whose outcome the caller has been given, every one before it too."""
        return next(iter(self._waiting)) - 1 if self._waiting else self._issued

    def _start(self) -> None:
        import multiprocessing
        import multiprocessing.util  # registers multiprocessing's exit handler now, before _end_at_exit's

        spawn = multiprocessing.get_context("spawn")
        ours, theirs = spawn.Pipe()
        self._process = spawn.Process(target=_child, args=(theirs, self._context, self._spec), daemon=True,
                                      name=f"switchyard lane {self.name}")
        self._process.start()
        self._exit_code: int | None = None  # once the child is ended and its Process object closed
        _end_at_exit(self)
        theirs.close()
        self._connection = ours
        self._answers: queue.SimpleQueue[Answers | BaseException] = queue.SimpleQueue()
        self._gone = ""  # why the child can take no more calls, once it cannot
        self._started = time.monotonic()
        self._reader = threading.Thread(target=_read, args=(ours, self._answers), name=f"lane {self.name} answers",
                                        daemon=True)
        self._reader.start()

    def deliver(self, calls: Sequence[ActionCall]) -> list[Outcome]:
        seen = self._seen()  # before the outcomes collected now, which the caller gets only on return
        outcomes = self._collect()
        if self._orphaned:
            calls, back = self._behind_orphaned(calls)
            outcomes += back
        if self._gone and not self._restarted():
            self._orphaned = set()
            return outcomes + _failed(calls, self._gone)
        start = ahead = 0
        built: dict[int, Any] = {}  # index -> the request built here
        prepare = self._prepare
        while start < len(calls):
            # What fits in the window goes, up to a slice a message: a short slice out (the end of a batch)
            # leaves room for most of the next, so the child has it in hand when it is done with the one before.
            while len(self._waiting) >= self._window and not self._gone:
                if prepare is not None and ahead < min(len(calls), start + self._window // 2):
                    self._build(calls, ahead, built, prepare)
                    ahead += 1
                    outcomes += self._collect()
                else:
                    outcomes += self._collect(wait=_IDLE_POLL)
            if self._gone:  # it died meanwhile: these calls fail now, and their lane goes on
                return outcomes + _failed(calls[start:], self._gone)
            some = calls[start:start + max(1, min(self._window - len(self._waiting), self._window // 2))]
            if prepare is not None:
                for index in range(ahead, start + len(some)):
                    self._build(calls, index, built, prepare)
            outcomes += self._hand_over([(next(self._tokens), call, built.pop(start + index, call.prepared))
                                         for index, call in enumerate(some)], seen)
            start += len(some)
            ahead = max(ahead, start)
        outcomes += self._collect()
        self._orphaned = set()  # the caller has their failures now
        return outcomes

    def _behind_orphaned(self, calls: Sequence[ActionCall]) -> tuple[list[ActionCall], list[Outcome]]:
        """``calls`` less those of the people whose calls a child that died took with it, and those held back."""
        person, orphaned = self._person, self._orphaned
        assert person is not None
        held = [held_back(call) for call in calls if person(call) in orphaned]
        return ([call for call in calls if person(call) not in orphaned] if held else list(calls)), held

    def poll(self) -> list[Outcome]:
        outcomes = self._collect()
        self._orphaned = set()
        return outcomes

    def close(self) -> list[Outcome]:
        outcomes = self._collect()
        if not self._gone:
            try:
                self._connection.send(None)
            except (OSError, ValueError) as error:
                outcomes += self._died(f"the delivery process of '{self.name}' is gone ({error})")
        self._end(timeout=None)
        outcomes += self._collect()
        reason = self._gone or f"the delivery process of '{self.name}' ended without answering for this call"
        return outcomes + self._died(reason)

    # -- the child's life ----------------------------------------------------------------------------

    def _restarted(self) -> bool:
        """Start a new child in place of the one that died, unless one was started a moment ago."""
        if time.monotonic() - self._started < RESTART_PAUSE:
            return False
        self._end(timeout=EXIT_GRACE)
        self._start()
        return True

    def _end(self, timeout: float | None) -> None:
        """Wait for the child to close (``timeout`` None: however long its adapter's close takes), then
        make sure it is gone."""
        self._reader.join(timeout)
        self._process.join(EXIT_GRACE)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()
        self._connection.close()
        # The two pipes multiprocessing keeps to a child stay open until its Process object is collected:
        # under serve, four descriptors more for each reload of two destinations' rules.
        self._exit_code = self._process.exitcode
        self._process.close()

    def _abandon(self) -> None:
        """This process is exiting without closing the adapter: the child stops after its slice in hand
        (it sees the pipe close), or is killed after :data:`EXIT_GRACE` seconds."""
        if self._exit_code is None and self._process.is_alive():  # _end closes the Process object
            self._connection.close()
            self._process.join(EXIT_GRACE)
            if self._process.is_alive():
                self._process.kill()

    # -- answers -------------------------------------------------------------------------------------

    def _collect(self, wait: float = 0.0) -> list[Outcome]:
        """The outcomes the child has sent back, after waiting up to ``wait`` seconds for the first; if it
        died, every call it had not answered for, failed."""
        outcomes: list[Outcome] = []
        while True:
            try:
                item = self._answers.get(timeout=wait) if wait else self._answers.get_nowait()
            except queue.Empty:
                return outcomes
            wait = 0.0
            if isinstance(item, BaseException):
                code = self._process.exitcode if self._exit_code is None else self._exit_code
                outcomes += self._died(f"the delivery process of '{self.name}' stopped"
                                       + (f" (exit code {code})" if code is not None else ""))
                continue
            size, cpu, wall, delivered, answers = item
            self._window = 2 * size
            self._balance(cpu, wall)
            waiting = self._waiting
            others = {answer[0]: answer for answer in answers}
            crossed = self._crossed
            for token in sorted(delivered + list(others)) if others else delivered:  # in the calls' order
                call = waiting.pop(token, None)
                if call is not None:
                    answer = others.get(token)
                    who = crossed.pop(token, None) if crossed else None
                    outcomes.append(Outcome(DELIVERED, 1, call=call) if answer is None else
                                    Outcome(*answer[1:], call=call))
                    if answer is not None and answer[1] == FAILED and who is not None and answer[5] != HELD_BACK:
                        outcomes += self._held_behind(token, who[0])

    def _held_behind(self, failed: int, person: Any) -> list[Outcome]:
        """``held_back`` now for ``person``'s calls the child holds behind their call ``failed`` just collected:
        those handed over before the caller could know of it (see :meth:`hold_behind`)."""
        held = [token for token, (who, seen) in self._crossed.items()
                if token > failed and who == person and seen < failed]
        for token in held:
            del self._crossed[token]
        return [held_back(self._waiting.pop(token)) for token in held]

    def _build(self, calls: Sequence[ActionCall], index: int, built: dict[int, Any], prepare: Any) -> None:
        """Build the request of ``calls[index]`` here if this side's share says so (see :meth:`_balance`);
        else the child builds it."""
        call = calls[index]
        if call.prepared is not None:  # built in a worker (run --workers): no share of this side's to take
            return
        self._credit += self._share
        if self._credit >= 1.0:
            self._credit -= 1.0
            built[index] = prepare(call)

    def _balance(self, cpu: float, wall: float) -> None:
        """Build a smaller share of requests here while the child has time to spare (this side, or the
        destination, is the slower), a larger one while it keeps a core busy. Not without ``builds_here``."""
        if not self._builds_here:
            return
        self._cpu, self._wall = 0.75 * self._cpu + cpu, 0.75 * self._wall + wall
        if self._cpu < BUSY * self._wall:
            self._share = max(0.0, self._share - SHARE_STEP)
        else:
            self._share = min(1.0, self._share + SHARE_STEP)

    def _died(self, reason: str) -> list[Outcome]:
        """The child can take no more calls: each call it holds fails with ``reason``."""
        self._gone = self._gone or reason
        if self._person is not None:
            self._orphaned |= {self._person(call) for call in self._waiting.values()}
        failed = _failed(list(self._waiting.values()), reason)
        self._waiting.clear()
        self._crossed.clear()
        return failed

    def _hand_over(self, batch: list[tuple[int, ActionCall, Any]], seen: int) -> list[Outcome]:
        """Send ``(token, the lane's call, its request when built)`` to the child, in one piece if they
        pickle together, else each that pickles: one that cannot fails alone, not its neighbours."""
        failed: list[Outcome] = []
        person = self._person
        whos = {token: (person(call), seen) for token, call, _ in batch} if person is not None else {}
        self._issued = batch[-1][0]
        try:
            pieces = [(batch, pickled([_crossing(*item, whos.get(item[0])) for item in batch]))]
        except Exception:  # noqa: BLE001 - looked for below, call by call
            pieces = []
            for item in batch:
                try:
                    pieces.append(([item], pickled([_crossing(*item, whos.get(item[0]))])))
                except Exception as error:  # noqa: BLE001 - the reason is this call's outcome
                    # Refused, not failed: it never can be (nested deeper than pickling goes, say), so holding it
                    # to try again (serve) would stall the destination behind it until the holding's limit.
                    failed.append(Outcome(REFUSED, 0, message=f"cannot hand this call to the delivery process of "
                                                             f"'{self.name}': {type(error).__name__}: {error}",
                                          call=item[1]))
        for items, _ in pieces:  # all before any is sent: if the pipe breaks, each fails with the rest it holds
            self._waiting.update((token, call) for token, call, _ in items)
            if whos:
                self._crossed.update((token, whos[token]) for token, _, _ in items)
        for _, data in pieces:
            try:
                self._connection.send_bytes(data)
            except (OSError, ValueError) as error:
                return failed + self._died(f"the delivery process of '{self.name}' is gone ({error})")
        return failed


def _crossing(token: int, call: ActionCall, prepared: Any, who: tuple[int, Any] | None) -> Crossing:
    """``call`` as it crosses to the child: once its request is built, the request without the payload it
    was built from (an adapter's ``deliver`` reads only ``prepared`` when it is set), a third less to
    pickle. Outcomes come back by token, so the lane books and dead-letters its own whole call."""
    return (token, call.destination, call.mapping, call.action, call.payload if prepared is None else None,
            call.message_id, prepared, who)


def _failed(calls: Sequence[ActionCall], reason: str) -> list[Outcome]:
    return [Outcome(FAILED, 0, message=reason, call=call) for call in calls]


def _read(connection: Any, answers: queue.SimpleQueue[Answers | BaseException]) -> None:
    """A reader thread: everything one child says, as it says it, until it closes."""
    while True:
        try:
            message = connection.recv()
        except (EOFError, OSError) as error:
            answers.put(error)
            return
        if message is None:  # the child closed its adapter: nothing more will come
            return
        answers.put(message)


_live: weakref.WeakSet[RemoteAdapter] = weakref.WeakSet()


def _end_at_exit(adapter: RemoteAdapter) -> None:
    """Have ``adapter``'s child ended when this process exits, before multiprocessing's own exit handler
    (registered when it was imported, so run after this one), which would wait for ever on a child that
    ignores SIGTERM: a server that stops without closing its pipelines must still exit."""
    if not _live:
        atexit.unregister(_end_all)
        atexit.register(_end_all)
    _live.add(adapter)


def _end_all() -> None:
    for adapter in list(_live):
        adapter._abandon()


def _child(connection: Any, context: AdapterContext, spec: str) -> None:
    """The child process: open the real adapter, then feed it what comes in and send back what comes out."""
    import signal

    # The parent decides when delivery stops (it closes the pipe); a signal to the whole group must not cut
    # a transaction or a request in half here.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    parent = os.getppid()
    try:
        adapter: Adapter = factory(context.catalog, context.transport, spec)(context)
    except Exception as error:  # noqa: BLE001 - the parent opened it a moment ago; say why it failed now
        _fail_everything(connection, f"the adapter of '{context.destination}' could not open: {error}")
        return
    with for_streams():
        _deliver_what_comes(connection, adapter, context, parent)


def _deliver_what_comes(connection: Any, adapter: Adapter, context: AdapterContext, parent: int) -> None:
    """The child once its adapter is open: deliver what the parent sends, a slice at a time, and send back
    what comes out, until the parent closes the pipe."""
    tokens: dict[int, int] = {}  # id(call) -> token, while the adapter holds the call
    people: dict[int, Any] = {}  # id(call) -> person, while the adapter holds it (the parent holds calls behind)
    behind = _Behind()
    pace = _Pace(getattr(adapter, "gather", None))
    since = (time.process_time(), time.perf_counter())  # at the last answer

    def send(outcomes: list[Outcome]) -> None:
        nonlocal since
        delivered, answers = [], []
        for outcome in outcomes:
            token = tokens.pop(id(outcome.call), None)
            if token is None:
                continue
            if people:
                person = people.pop(id(outcome.call), _NOTHING)
                if outcome.state == FAILED and person is not _NOTHING:
                    behind.failed(person, token)
            if (outcome.state == DELIVERED and outcome.attempts == 1 and outcome.status is None
                    and outcome.body is None and not outcome.message and not outcome.waited):
                delivered.append(token)
            else:
                answers.append((token, outcome.state, outcome.attempts, outcome.status, outcome.body,
                                outcome.message, outcome.waited))
        if delivered or answers:
            try:
                now = (time.process_time(), time.perf_counter())
                connection.send((pace.size, now[0] - since[0], now[1] - since[1], delivered, answers))
                since = now
            except OSError:
                _orphaned()

    def person(call: ActionCall) -> Any:
        return people.get(id(call))
    # Once calls come with their person (serve's held calls), a batching adapter keeps a person's later calls
    # behind their failed one itself; never before: run's calls come without, and would all be one person.
    hold_behind = getattr(adapter, "hold_behind", None)
    one_each = bool(getattr(adapter, "sends_each_call", False))
    inbox = _Inbox(connection)
    make_call = call_factory()
    while True:
        try:
            pairs = inbox.take(pace.size, wait=_IDLE_POLL if tokens else None)
        except queue.Empty:
            send(_guarded(adapter.poll, context))
            continue
        if pairs is None:
            send(_guarded(adapter.close, context))
            connection.send(None)
            connection.close()
            return
        if os.getppid() != parent:
            _orphaned()
        if pairs[0][7] is not None:
            if callable(hold_behind):
                hold_behind(person)
                hold_behind = None
            if one_each:
                pairs = inbox.one_each(pairs)
        some, back = [], []
        for token, destination, mapping, action, payload, message_id, prepared, who in pairs:
            call = make_call(destination, mapping, action, payload, message_id, prepared)
            tokens[id(call)] = token
            if who is not None:
                people[id(call)] = who[0]
                if behind.holds(*who):
                    back.append(held_back(call))
                    continue
            some.append(call)
        began = time.perf_counter()
        outcomes = back + (deliver_apart(adapter.deliver, some, context.destination,  # as in a lane
                                         person if people else None, set()) if some else [])
        pace.took(time.perf_counter() - began, len(some))
        send(outcomes)


class _Behind:
    """The child's half of :meth:`RemoteAdapter.hold_behind`: the token of each person's failed call, until the
    parent has that failure in hand (a call of theirs comes with ``seen`` at or past it) and holds the person's
    calls itself."""

    def __init__(self) -> None:
        self._failed: dict[Any, int] = {}  # person -> the token of their first failed call the parent has not seen
        self._seen = -1

    def holds(self, person: Any, seen: int) -> bool:
        """Whether a call of ``person``, handed over when the parent had every outcome up to ``seen``, must wait
        behind a failed one."""
        if seen > self._seen:
            self._seen = seen
            if self._failed:
                self._failed = {who: token for who, token in self._failed.items() if token > seen}
        token = self._failed.get(person)
        return token is not None and token > seen

    def failed(self, person: Any, token: int) -> None:
        """A call of ``person`` failed (or was held back): their calls handed over before the parent knows wait."""
        self._failed.setdefault(person, token)


_GONE = object()  # the pipe broke: the parent was killed
_NOTHING = object()


class _Inbox:
    """The calls the parent sends, read by a thread of their own as they come (so the parent never waits on
    a full pipe while a slice is delivered here: it could book no outcome meanwhile), and handed out a slice
    at a time whichever messages brought them: a short message (the end of one of the parent's batches)
    joins the next rather than costing a delivery, a transaction, of its own. The parent's window bounds
    how many wait here."""

    def __init__(self, connection: Any):
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._held: list[Crossing] = []  # calls come and not yet handed out
        self._last: Any = _NOTHING  # None (a close) or _GONE once it has come: after the calls before it
        threading.Thread(target=_read_into, args=(connection, self._queue), name="calls", daemon=True).start()

    def take(self, size: int, wait: float | None) -> list[Crossing] | None:
        """Up to ``size`` of the calls come, in order; None once the parent closed, after every
        call sent before. Raises queue.Empty when nothing came within ``wait`` seconds (None: no limit)."""
        if not self._held:
            item = self._last if self._last is not _NOTHING else self._queue.get(timeout=wait)
            if item is _GONE:
                _orphaned()
            if item is None:
                return None
            self._held = item
        while len(self._held) < size and self._last is _NOTHING:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is None or item is _GONE:
                self._last = item
            else:
                self._held = self._held + item
        some, self._held = self._held[:size], self._held[size:]
        return some


    def one_each(self, some: list[Crossing]) -> list[Crossing]:
        """``some`` up to the second call of one person, the rest put back to come first: for an adapter that
        sends each call on its own request, in order (the webhook), a failed call must be known before the
        person's next call goes."""
        seen: set = set()
        for index, crossing in enumerate(some):
            who = crossing[7]
            if who is not None:
                if who[0] in seen:
                    self._held = some[index:] + self._held
                    return some[:index]
                seen.add(who[0])
        return some


def _read_into(connection: Any, inbox: queue.SimpleQueue[Any]) -> None:
    """The child's reader thread: every batch the parent sends, then None (a close) or ``_GONE``."""
    while True:
        try:
            batch = connection.recv()
        except (EOFError, OSError):
            inbox.put(_GONE)
            return
        inbox.put(batch)
        if batch is None:
            return


class _Pace:
    """How many calls the child hands its adapter at a time, as a journaling lane does
    (:mod:`engine.delivery.pacing`). The parent's lane cannot pace a delivery that returns at once, and
    answers that come back a slice at a time keep what a kill can have delivered but not booked to
    about one slice."""

    def __init__(self, gather: int | None):
        self.fixed = isinstance(gather, int) and gather > 0
        self.size: int = gather if self.fixed else JOURNAL_GATHER  # type: ignore[assignment]

    def took(self, seconds: float, count: int) -> None:
        if not self.fixed and count:
            self.size = next_slice(self.size, seconds, count)


def _orphaned() -> NoReturn:
    """The parent is gone (killed): deliver nothing more. What it had not booked, the same command sends
    again when it resumes (docs/delivery.md); sending it now, unanswered, would only send it twice."""
    os._exit(0)


def _guarded(step: Any, context: AdapterContext) -> list[Outcome]:
    try:
        return list(step())
    except Exception:  # noqa: BLE001 - the calls stay unanswered and are failed at close
        return []


def _fail_everything(connection: Any, reason: str) -> None:
    """Answer the next batch with a failure, then end: the parent starts a new child for later calls, so a
    store that could not be opened for a moment (locked, say) is tried again."""
    try:
        batch = connection.recv()
    except (EOFError, OSError):
        return
    if batch is None:
        connection.send(None)
        return
    connection.send((len(batch), 0.0, 0.0, [], [(item[0], FAILED, 0, None, None, reason, 0.0) for item in batch]))
