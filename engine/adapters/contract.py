"""The adapter contract: calls in, exactly one :class:`~engine.delivery.outcome.Outcome` per call out.

Every transport of every catalog (bundled or from a plugin) implements :class:`Adapter`, and
the pipeline (:mod:`engine.pipeline`) is its only caller:

- ``deliver(calls)`` takes calls in event order and returns the outcomes ready now: all of them
  for a transport that answers at once, some or none for one that batches.
- ``poll()`` returns the outcomes that became ready since (a batch whose time was up, a
  retry that finished); the pipeline calls it when the adapter's lane is idle.
- ``close()`` settles everything still waiting and returns those outcomes; the adapter is done.

Across the three, each call given to ``deliver`` comes back exactly once. An adapter raises only
for set-up errors (:class:`SetupError`, at construction: a missing setting, an unwritable
path); what goes wrong with one call is that call's ``refused`` or ``failed`` outcome, never an
exception (if ``deliver`` raises anyway, :func:`deliver_apart` gives it the calls again one at a time
and fails only those that make it raise). An adapter is used from one thread at a time (its lane), so
it needs no lock of its own unless it starts threads itself.

Adapters are constructed as ``factory(context)`` with an :class:`AdapterContext`; a catalog
names its factories per transport in its ``_destination.json`` (``x-adapters``), see
:mod:`engine.adapters.registry`.

Optionally, a factory has a ``prepare(call)`` attribute: a pure function of one call (no I/O, no
adapter state) that builds what ``deliver`` sends, such as the encoded request body. ``run
--workers`` then calls it in the process that evaluated the event and hands the result over as
``call.prepared``; ``deliver`` builds it itself when that is None. The answers must be the same.
When ``call.prepared`` is set, ``deliver`` reads nothing else of the payload: a call handed to a
delivery process in its own process crosses with what was built and without its payload.

Optionally, an adapter has ``gather: int``: the number of calls it takes best in one ``deliver`` (an
embedded store applies them in one transaction). Its lane then hands it up to that many at a
time, with or without a progress journal, instead of pacing ``deliver`` by time.

Optionally, an adapter that batches has ``flush() -> outcomes``: send what it holds back now and
return those outcomes, as ``close`` does, but stay open. Serve's held calls use it to deliver a
backlog in full batches without waiting out each batch's time.

Optionally, an adapter has ``sends_each_call = True``: ``deliver`` sends each call in a request of
its own, in order, and answers them all before it returns (the webhook). Serve's held calls
(:mod:`engine.adapters.patient`) then hand it one call per person at a time, so that a person's call
that fails is never overtaken by their next one.

Optionally, an adapter that batches has ``hold_behind(person)``, ``person(call)`` saying who a call is
for: from then on, once a call of a person fails, the adapter sends none of that person's later calls
that it holds (waiting in a batch) or is given in the same ``deliver``, ``poll`` or ``flush``, and
answers each with :func:`held_back` instead, in order. Serve's held calls call it, and hold those
calls behind the failed one; calls of other people in the same batches still go.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from importlib import import_module
from typing import Any, Callable, Hashable, Mapping, Protocol, Sequence, runtime_checkable

from ..delivery.outcome import FAILED, Outcome
from ..model import ActionCall


class SetupError(Exception):
    """A destination cannot deliver at all (a missing setting, an unknown transport, an unusable path)."""


#: Why a call was not sent: an adapter told ``hold_behind`` kept it back behind its person's failed call.
HELD_BACK = "not sent: held behind an earlier call for the same person that failed"


def held_back(call: ActionCall) -> Outcome:
    """The ``failed`` outcome of a call kept back unsent (``hold_behind``), told apart by its message."""
    return Outcome(FAILED, 0, message=HELD_BACK, call=call)


#: What building a request can raise for one call, which then is that call's refusal (:func:`unbuildable`):
#: a value JSON cannot carry, nesting too deep, an integer too large for a step that needs a float.
UNBUILDABLE = (ValueError, RecursionError, OverflowError)


def unbuildable(error: Exception) -> str:
    """Why a call's request could not be built: the reason its ``refused`` outcome gives.

    A payload nested nearly as deep as an event may be (about 1,000 levels) runs out of recursion in
    the request builders; that is this call's problem alone, as a value JSON cannot carry is.
    """
    if isinstance(error, RecursionError):
        return "cannot build the request: the payload is nested too deeply"
    return f"cannot build the request: {error}"


#: Calls of one slice that may raise on their own before :func:`deliver_apart` stops trying the rest: an
#: adapter that raises for every call fails a slice after as many quick tries.
RAISING_ALONE = 64


def deliver_apart(deliver: Callable[[Sequence[ActionCall]], list[Outcome]], calls: Sequence[ActionCall],
                  destination: str, person: Callable[[ActionCall], Hashable] | None = None,
                  held: set[Hashable] | None = None) -> list[Outcome]:
    """``deliver(calls)``; if it raises (a bug: the contract allows no exception there), each call is given to
    it again alone, in order: only the calls that make it raise fail, with the exception as their reason.

    So a call is sent at most twice: an HTTP transport may have sent it before it raised (at least once);
    an embedded store rolls the raising transaction back. After :data:`RAISING_ALONE` calls raised alone,
    the calls left fail without a try.

    With ``person`` (who a call is for), a person's calls after one of theirs failed (raised, or came back
    ``failed``) are not sent but answered :func:`held_back`, as an adapter told ``hold_behind`` does. ``held``
    keeps those people across deliveries (the caller says when to forget them); calls of the people in it
    are held back from the start.
    """
    outcomes: list[Outcome] = []
    if person is not None and held:
        outcomes = [held_back(call) for call in calls if person(call) in held]
        if outcomes:
            calls = [call for call in calls if person(call) not in held]
            if not calls:
                return outcomes
    try:
        done = deliver(calls)
    except Exception as error:  # noqa: BLE001 - one adapter's bug fails its own calls, not the run
        return outcomes + _one_at_a_time(deliver, calls, destination, error, person,
                                         held if held is not None else set())
    if person is not None and held is not None:
        held.update(person(outcome.call) for outcome in done if outcome.state == FAILED and outcome.call is not None)
    return outcomes + done


def _one_at_a_time(deliver: Callable[[Sequence[ActionCall]], list[Outcome]], calls: Sequence[ActionCall],
                   destination: str, raised: Exception, person: Callable[[ActionCall], Hashable] | None,
                   held: set[Hashable]) -> list[Outcome]:
    outcomes: list[Outcome] = []
    raising = 0
    for call in calls:
        who = person(call) if person is not None else None
        if person is not None and who in held:
            outcomes.append(held_back(call))
            continue
        if len(calls) > 1 and raising < RAISING_ALONE:
            try:
                done = deliver([call])
            except Exception as error:  # noqa: BLE001 - as above
                raising, raised = raising + 1, error
            else:
                outcomes += done
                if person is not None and any(outcome.state == FAILED for outcome in done):
                    held.add(who)
                continue
        outcomes.append(Outcome(FAILED, 0, message=f"the adapter of '{destination}' failed: "
                                                   f"{type(raised).__name__}: {raised}", call=call))
        if person is not None:
            held.add(who)
    return outcomes


@dataclass(frozen=True)
class AdapterContext:
    """What an adapter is opened with.

    ``store`` is the embedded store file for embedded transports (``run --workspace PATH``);
    each destination keeps its own state in it, apart by ``destination``.
    """

    destination: str
    catalog: str
    transport: str
    settings: Mapping[str, Any]
    store: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)


@runtime_checkable
class Adapter(Protocol):
    def deliver(self, calls: Sequence[ActionCall]) -> list[Outcome]: ...

    def poll(self) -> list[Outcome]: ...

    def close(self) -> list[Outcome]: ...


AdapterFactory = Callable[[AdapterContext], Adapter]
Prepare = Callable[[ActionCall], Any]


def factory(catalog: str, transport: str, spec: str) -> AdapterFactory:
    """The factory ``spec`` (``"module:attribute"``) names, or a SetupError saying what is wrong."""
    module_name, _, attribute = spec.partition(":")
    try:
        found = getattr(import_module(module_name), attribute) if attribute else None
    except (ImportError, AttributeError) as error:
        raise SetupError(f"catalog '{catalog}': the adapter of transport '{transport}' ({spec}) cannot be "
                         f"imported: {error}") from None
    if not callable(found):
        raise SetupError(f"catalog '{catalog}': the adapter of transport '{transport}' ({spec}) is not callable")
    return found  # type: ignore[no-any-return]
