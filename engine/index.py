"""An index of triggers by the ``type`` and ``event`` values they require.

A rule set with a thousand mappings usually has a thousand different event names in its
triggers, and any one event can match only the few that name it. The index groups events by
their ``type`` and ``event`` and hands each event just the triggers that can match its group,
in their original order, so the cost per event follows the matching mappings rather than the
size of the rule set.

Within a group the index also knows those two values, so it specialises each trigger for the
group: ``type = "track" and event != "Application Opened" and properties.total > 10`` is just
``properties.total > 10`` for the group ("track", "Order Completed"), and a trigger the group
decides entirely costs nothing. Each group runs as one generated function that tests its
triggers inline, in order, and returns the items that match. Triggers whose requirements cannot be read (see
:mod:`engine.trigger.keys`) are still handed over, so the index never changes a result.

A group is prepared the first time an event of it arrives. Groups are keyed only by values
that appear in the triggers, and by a missing name (any other value shares one group), so the
index stays bounded however many distinct names the events carry; the lookup by raw values
in front of it holds at most ``_RAW_KEYS`` pairs.
"""
from __future__ import annotations

import weakref
from collections.abc import Iterable
from typing import Any, Generic, TypeVar

from engine.trigger.codegen import Exactly, NoneOf, decide, generate_matching

Item = TypeVar("Item")

_OTHER = object()  # every value that no trigger compares with
# Events are also found by their raw (type, event) pair, names no trigger uses included, until
# this many pairs are known: a stream names a few hundred events, not millions, and beyond the
# limit an event is still grouped correctly, only less directly.
_RAW_KEYS = 10_000


class TriggerIndex(Generic[Item]):
    """Items with their triggers; :meth:`candidates` gives those whose trigger can match an event."""

    def __init__(self, entries: Iterable[tuple[Any, Item]]):
        """``entries``: ``(trigger, item)`` pairs, in the order results must keep."""
        self._entries: list[tuple[Any, Item]] = list(entries)
        triggers = [trigger for trigger, _ in self._entries]
        self._types = frozenset().union(*(t.compared.get("type", ()) for t in triggers))
        self._names = frozenset().union(*(t.compared.get("event", ()) for t in triggers))
        self._any_name: list[int] = []
        self._by_name: dict[str, list[int]] = {}
        for position, trigger in enumerate(triggers):
            names = trigger.keys.get("event")
            if names is None:
                self._any_name.append(position)
            for name in names or ():
                self._by_name.setdefault(name, []).append(position)
        self._groups: dict[tuple, tuple] = {}  # group key -> (candidates, matching function)
        self._matching: dict[tuple, Any] = {}  # raw (type, event) -> the group's matching function
        self.matching = self._lookup()

    def __len__(self) -> int:
        return len(self._entries)

    def candidates(self, event: dict) -> tuple[Item, ...]:
        """The items whose trigger can match ``event`` (a dict), in order: those its group does not rule out."""
        return self._group_of(event)[0]

    def _lookup(self):
        """``matching(event)``: the items whose trigger matches ``event`` (a dict), in order.

        A closure rather than a method, since it runs for every event: the usual case is one
        dict lookup by the event's raw ``type`` and ``event`` values and one call.
        """
        lookup = self._matching.get
        # Held weakly: a closure holding the index would make the two a cycle, and with them every
        # trigger and builder of the rule set, garbage that only a full collection frees (a second
        # at the end of a 10,000-mapping lint). ``matching`` serves while its index is alive.
        group_of = weakref.WeakMethod(self._group_of)

        def first_of_its_group(event: dict) -> list:
            return group_of()(event)[1](event)  # type: ignore[misc]

        def matching(event: dict) -> list[Item]:
            try:
                group = lookup((event.get("type"), event.get("event")), first_of_its_group)
            except TypeError:  # an unhashable value such as a list: its group, by the long way
                group = first_of_its_group
            return group(event)
        return matching

    def _group_of(self, event: dict) -> tuple:
        kind = event.get("type")
        name = event.get("event")
        key = (kind if isinstance(kind, str) and kind in self._types else _OTHER,
               name if isinstance(name, str) and name in self._names else _OTHER)
        group = self._groups.get(key)
        if group is None:
            group = self._groups[key] = self._group(*key)
        if isinstance(kind, str) and (isinstance(name, str) or name is None) and len(self._matching) < _RAW_KEYS:
            self._matching[kind, name] = group[1]  # so matching finds it by the raw values next time
        return group

    def _group(self, kind: Any, name: Any) -> tuple:
        known = {"type": NoneOf(self._types) if kind is _OTHER else Exactly(kind),
                 "event": NoneOf(self._names) if name is _OTHER else Exactly(name)}
        positions = self._any_name if name is _OTHER else sorted(self._any_name + self._by_name.get(name, []))
        entries = []
        for position in positions:
            trigger, item = self._entries[position]
            types = trigger.keys.get("type")
            if types is None or kind in types:
                entries.append((trigger, item))
        candidates = tuple(item for trigger, item in entries if decide(trigger.compiled, known) is not False)
        matching = generate_matching([(trigger.compiled, item) for trigger, item in entries], known)
        if matching is None:  # too deep for Python's compiler: run the triggers one by one
            pairs = tuple((trigger.matches, item) for trigger, item in entries)

            def matching(event: dict) -> list:
                return [item for matches, item in pairs if matches(event)]
        return candidates, matching
