"""A compiled rule set: destinations, their filters and mappings, ready for events.

Everything here is built once by :mod:`engine.loader`; ``evaluate`` does no parsing,
no schema loading and no I/O, and never mutates the event, so one RuleSet can serve
many threads.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

from .index import TriggerIndex
from .model import ActionCall, MappingError, Result, call_factory

_new_call = call_factory()

EVENT_TYPES = ("track", "identify", "page", "screen", "group", "alias")
_EVENT_TYPES = frozenset(EVENT_TYPES)


@dataclass
class Filter:
    name: str
    trigger: object          # engine.trigger.Trigger
    drop: bool               # drop the whole event, else remove ``fields``
    fields: tuple = ()       # engine.paths.Path values to remove
    enabled: bool = True

    def apply(self, event: dict) -> dict:
        for path in self.fields:
            event = path.without(event)
        return event


@dataclass
class Mapping:
    name: str
    trigger: object          # engine.trigger.Trigger
    action: object           # engine.catalog.Action
    mapper: object           # engine.mapping fields mapper
    enabled: bool = True

    def build(self, destination: str, event: dict, message_id) -> ActionCall | MappingError:
        """The call for an event this mapping matched, or why there is none."""
        return self.builder(destination)(event, message_id)

    def builder(self, destination: str):
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
    catalog: object          # engine.catalog.Catalog
    transport: str | None
    settings: object         # engine.env.Settings
    filters: list
    mappings: list
    tests: list
    file: str

    def __post_init__(self):
        # Mappings are fixed once loaded; the index skips those whose trigger cannot match, and
        # hands over each matching mapping's builder.
        self.index = TriggerIndex((m.trigger, m.builder(self.name)) for m in self.mappings if m.enabled)

    def evaluate(self, event: dict, result: Result) -> str | None:
        """Add this destination's calls and errors to ``result``; return the filter that dropped the event."""
        for rule in self.filters:
            if rule.enabled and rule.trigger.matches(event):
                if rule.drop:
                    return rule.name
                event = rule.apply(event)
        builders = self.index.matching(event)
        if builders:
            message_id = event.get("messageId")
            for build in builders:
                outcome = build(event, message_id)
                (result.calls if outcome.__class__ is ActionCall else result.errors).append(outcome)
        return None


def invalid_event_reason(event) -> str | None:
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

    def __init__(self, destinations: list):
        self.destinations = destinations

    def __repr__(self) -> str:
        names = ", ".join(d.name for d in self.destinations)
        return f"RuleSet({names})"

    def destination(self, name: str) -> Destination:
        for destination in self.destinations:
            if destination.name == name:
                return destination
        raise KeyError(name)

    def evaluate(self, event) -> Result:
        """Run every destination's filters and mappings over one event."""
        result = Result()
        kind = event.get("type") if event.__class__ is dict else None
        if kind.__class__ is not str or kind not in _EVENT_TYPES:  # the full check, with the reason
            result.discarded = invalid_event_reason(event)
            if result.discarded:
                return result
        filtered_by = None
        for destination in self.destinations:
            dropped = destination.evaluate(event, result)
            if dropped and filtered_by is None:
                filtered_by = dropped
        if not result.calls and not result.errors:
            result.discarded = f"filtered by {filtered_by}" if filtered_by else "no matching mapping"
        return result

    def explain(self, event) -> dict:
        """Per destination, filter and mapping: each condition, the value it saw, and the outcome."""
        from .explain import explain

        return explain(self, event)
