"""The values the engine hands to its users: action calls and evaluation results."""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Callable


@dataclass(frozen=True, slots=True)
class ActionCall:
    """A typed call for a backend adapter: a payload that passed its action's schema.

    ``prepared`` is what the destination's adapter builds from the call before sending it (the
    request body, encoded), when it was built ahead, in the process that evaluated the event
    (``run --workers``); an adapter builds it itself when it is None. It is not part of the call's
    value: calls compare, print and dead-letter without it.
    """

    destination: str
    mapping: str
    action: str
    payload: dict[str, Any]
    message_id: str | None = None
    prepared: Any = field(default=None, compare=False, repr=False)

    def with_prepared(self, prepared: Any) -> ActionCall:
        """This call, carrying what its adapter built from it ahead of delivery."""
        return _make_call(self.destination, self.mapping, self.action, self.payload, self.message_id, prepared)

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        # A frozen slotted dataclass pickles through dataclasses' Python-level state functions, which
        # cost ``run --workers`` about a tenth of the main process's time unpickling calls; this is a
        # third of that.
        return _rebuilt, (self.destination, self.mapping, self.action, self.payload, self.message_id,
                          self.prepared)

    def to_dict(self) -> dict[str, Any]:
        return {
            "destination": self.destination,
            "mapping": self.mapping,
            "action": self.action,
            "messageId": self.message_id,
            "payload": self.payload,
        }


def call_factory() -> Callable[..., ActionCall]:
    """A constructor of ActionCall for the per-event path, about twice as fast as ``ActionCall(...)``.

    A frozen dataclass sets each field through ``object.__setattr__``; this sets the slots
    directly, which is what that amounts to. Same object, same immutability afterwards.
    """
    new = object.__new__
    set_destination, set_mapping, set_action, set_payload, set_message_id, set_prepared = (
        ActionCall.__dict__[name].__set__
        for name in ("destination", "mapping", "action", "payload", "message_id", "prepared"))

    def make(destination: str, mapping: str, action: str, payload: dict[str, Any], message_id: Any,
             prepared: Any = None) -> ActionCall:
        call = new(ActionCall)
        set_destination(call, destination)
        set_mapping(call, mapping)
        set_action(call, action)
        set_payload(call, payload)
        set_message_id(call, message_id)
        set_prepared(call, prepared)
        return call
    return make


_make_call = call_factory()


def _rebuilt(destination: str, mapping: str, action: str, payload: dict[str, Any], message_id: Any,
             prepared: Any) -> ActionCall:
    """A pickled ActionCall made again (:meth:`ActionCall.__reduce__`)."""
    return _make_call(destination, mapping, action, payload, message_id, prepared)


@dataclass(frozen=True, slots=True)
class MappingError:
    """A mapping matched but its payload could not be built or is invalid; nothing is delivered."""

    destination: str
    mapping: str
    action: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"destination": self.destination, "mapping": self.mapping, "action": self.action,
                "message": self.message}


class Discarded(StrEnum):
    """Why an event produced neither a call nor an invalid payload."""

    FILTERED = "filtered"               # every destination that could take it dropped it with a filter
    NO_MATCH = "no matching mapping"    # no enabled mapping's trigger held
    INVALID_EVENT = "invalid event"     # not a Segment-spec event at all


@dataclass(slots=True)
class Result:
    """What one event produced across the rule set.

    ``discarded`` is None when anything fired (a call or an invalid payload), else why not;
    ``reason`` then says it in words: ``filtered by <filter>``, ``no matching mapping`` or
    ``invalid event: <why>`` (what a rule file's test names in ``discarded:``).
    """

    calls: list[ActionCall] = field(default_factory=list)
    errors: list[MappingError] = field(default_factory=list)
    discarded: Discarded | None = None
    reason: str | None = None
