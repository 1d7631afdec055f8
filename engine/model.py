"""The values the engine hands to its users: action calls and evaluation results."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class ActionCall:
    """A typed call for a backend adapter: a payload that passed its action's schema."""

    destination: str
    mapping: str
    action: str
    payload: dict
    message_id: str | None = None

    def to_dict(self) -> dict:
        return {
            "destination": self.destination,
            "mapping": self.mapping,
            "action": self.action,
            "messageId": self.message_id,
            "payload": self.payload,
        }


@dataclass(frozen=True, slots=True)
class MappingError:
    """A mapping matched but its payload could not be built or is invalid; nothing is delivered."""

    destination: str
    mapping: str
    action: str
    message: str

    def to_dict(self) -> dict:
        return {"destination": self.destination, "mapping": self.mapping, "action": self.action, "message": self.message}


@dataclass(slots=True)
class Result:
    """What one event produced across the rule set.

    ``discarded`` is None when anything fired, else why not: ``filtered by <filter>``,
    ``no matching mapping`` or ``invalid event: <why>``.
    """

    calls: list = field(default_factory=list)
    errors: list = field(default_factory=list)
    discarded: str | None = None
