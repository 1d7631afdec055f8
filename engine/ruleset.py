"""A compiled rule set: destinations, their filters and mappings, ready for events.

Everything here is built once by :mod:`engine.loader`; ``evaluate`` does no parsing,
no schema loading and no I/O, and never mutates the event, so one RuleSet can serve
many threads.

There is one walk over filters and mappings (:meth:`Destination.evaluate`). Given a
:class:`Tracer`, it asks the tracer whether each filter and mapping holds instead of asking the
trigger index, so ``explain`` (:mod:`engine.explain`) observes the very path that evaluates.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Protocol

from .index import TriggerIndex
from .model import ActionCall, Discarded, MappingError, Result, call_factory

if TYPE_CHECKING:
    from .catalog import Action, Catalog
    from .env import Settings
    from .paths import Path
    from .trigger import Trigger

Builder = Callable[[dict, Any], "ActionCall | MappingError"]

_new_call = call_factory()

EVENT_TYPES = ("track", "identify", "page", "screen", "group", "alias")
_EVENT_TYPES = frozenset(EVENT_TYPES)


class Tracer(Protocol):
    """What ``explain`` watches during a walk; it also decides each trigger, by explaining it."""

    def filter(self, destination: Destination, rule: Filter, event: dict) -> bool: ...

    def mapping(self, destination: Destination, mapping: Mapping, event: dict) -> bool: ...

    def built(self, destination: Destination, mapping: Mapping, outcome: ActionCall | MappingError) -> None: ...

    def dropped(self, destination: Destination, rule: Filter) -> None: ...


@dataclass
class Filter:
    name: str
    trigger: Trigger
    drop: bool                            # drop the whole event, else remove ``fields``
    fields: tuple[Path, ...] = ()         # paths to remove
    enabled: bool = True

    def apply(self, event: dict) -> dict:
        for path in self.fields:
            event = path.without(event)
        return event


@dataclass
class Mapping:
    name: str
    trigger: Trigger
    action: Action
    mapper: Any              # engine.mapping.fields mapper: ``apply(event) -> payload``
    enabled: bool = True
    #: Fields the mapping leaves to a destination setting (``x-setting``): field -> setting. A replay
    #: sends them with the setting's current value (a new webhook URL), not the one recorded.
    from_settings: dict[str, str] = field(default_factory=dict)

    def build(self, destination: str, event: dict, message_id) -> ActionCall | MappingError:
        """The call for an event this mapping matched, or why there is none."""
        return self.builder(destination)(event, message_id)

    def builder(self, destination: str) -> Builder:
        """:meth:`build` for one destination, as the closure the per-event path calls."""
        apply, validator, name, action = self.mapper.apply, self.action.validator, self.name, self.action.name
        is_valid, errors = validator.is_valid, validator.errors

        def build(event: dict, message_id) -> ActionCall | MappingError:
            try:
                payload = apply(event)
            except Exception as error:  # noqa: BLE001 - any evaluation failure belongs to this event only
                return MappingError(destination, name, action, str(error))
            if not is_valid(payload) and (problems := errors(payload)):
                return MappingError(destination, name, action, " ".join(problems))
            return _new_call(destination, name, action, payload, message_id)
        return build


@dataclass
class Destination:
    name: str
    catalog: Catalog
    transport: str | None
    settings: Settings
    filters: list[Filter]
    mappings: list[Mapping]
    tests: list[Any]
    file: str
    index: TriggerIndex[Builder] = field(init=False, repr=False)
    builders: dict[str, Builder] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # Mappings are fixed once loaded; the index skips those whose trigger cannot match, and
        # hands over each matching mapping's builder.
        self.builders = {m.name: m.builder(self.name) for m in self.mappings}
        self.index = TriggerIndex((m.trigger, self.builders[m.name]) for m in self.mappings if m.enabled)

    def evaluate(self, event: dict, result: Result, tracer: Tracer | None = None) -> str | None:
        """Add this destination's calls and errors to ``result``; return the filter that dropped the event.

        With a ``tracer``, each filter and mapping is decided by it (it explains the trigger) and
        every outcome is shown to it; without one, the trigger index picks the mappings.
        """
        for rule in self.filters:
            if rule.enabled and (rule.trigger.matches(event) if tracer is None else tracer.filter(self, rule, event)):
                if rule.drop:
                    if tracer is not None:
                        tracer.dropped(self, rule)
                    return rule.name
                event = rule.apply(event)
            elif tracer is not None and not rule.enabled:
                tracer.filter(self, rule, event)
        if tracer is None:
            builders = self.index.matching(event)
        else:
            chosen = [m for m in self.mappings if tracer.mapping(self, m, event) and m.enabled]
            builders = [self.builders[m.name] for m in chosen]
        if builders:
            message_id = event.get("messageId")
            for build in builders:
                outcome = build(event, message_id)
                (result.calls if outcome.__class__ is ActionCall else result.errors).append(outcome)
                if tracer is not None:
                    tracer.built(self, chosen.pop(0), outcome)
        return None


def invalid_event_reason(event: Any) -> str | None:
    """Why ``event`` is not a Segment-spec event, or None when it is one."""
    if not isinstance(event, dict):
        return "invalid event: not a JSON object"
    kind = event.get("type")
    if kind not in EVENT_TYPES:
        seen = "missing" if kind is None else json.dumps(kind)
        return f"invalid event: 'type' must be one of {', '.join(EVENT_TYPES)} but it was {seen}"
    return None


class RuleSet:
    """Rule files loaded as one: destinations in file-name order."""

    def __init__(self, destinations: list[Destination]):
        self.destinations = destinations

    def __repr__(self) -> str:
        names = ", ".join(d.name for d in self.destinations)
        return f"RuleSet({names})"

    def destination(self, name: str) -> Destination:
        for destination in self.destinations:
            if destination.name == name:
                return destination
        raise KeyError(name)

    def evaluate(self, event: Any, tracer: Tracer | None = None) -> Result:
        """Run every destination's filters and mappings over one event (``tracer``: see :class:`Tracer`)."""
        result = Result()
        kind = event.get("type") if event.__class__ is dict else None
        if kind.__class__ is not str or kind not in _EVENT_TYPES:  # the full check, with the reason
            result.reason = invalid_event_reason(event)
            if result.reason:
                result.discarded = Discarded.INVALID_EVENT
                return result
        filtered_by = None
        for destination in self.destinations:
            dropped = destination.evaluate(event, result, tracer)
            if dropped and filtered_by is None:
                filtered_by = dropped
        if not result.calls and not result.errors:
            if filtered_by:
                result.discarded, result.reason = Discarded.FILTERED, f"filtered by {filtered_by}"
            else:
                result.discarded, result.reason = Discarded.NO_MATCH, "no matching mapping"
        return result
