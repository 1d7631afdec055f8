"""An index of triggers by the ``type`` and ``event`` values they require.

A rule set with a thousand mappings usually has a thousand different event names in its
triggers, and any one event can match only the few that name it. The index hands an event
just the triggers that can match it, in their original order, so the cost per event follows
the matching mappings rather than the size of the rule set. Triggers whose requirements
cannot be read (see :mod:`engine.trigger.keys`) are always handed over: the index only skips
a trigger when running it could not have matched, so it never changes a result.

Built once at load. Its cache is keyed only by values that appear in the triggers (any other
value shares one entry), so it stays bounded however many distinct names the events carry.
"""
from __future__ import annotations

from typing import Any, Callable, Generic, Iterable, TypeVar

Item = TypeVar("Item")
Entry = tuple[Callable[[Any], bool], Any]  # (trigger.matches, item)

_OTHER = object()  # every value that no trigger names


class TriggerIndex(Generic[Item]):
    """Items with their triggers; :meth:`candidates` gives those whose trigger can match an event."""

    def __init__(self, entries: Iterable[tuple[Any, Item]]):
        """``entries``: ``(trigger, item)`` pairs, in the order results must keep."""
        self._entries: list[tuple[Any, Item]] = list(entries)
        self._types = frozenset().union(*(t.keys.get("type", ()) for t, _ in self._entries))
        self._names = frozenset().union(*(t.keys.get("event", ()) for t, _ in self._entries))
        self._any_name: list[int] = []
        self._by_name: dict[str, list[int]] = {}
        for position, (trigger, _) in enumerate(self._entries):
            names = trigger.keys.get("event")
            if names is None:
                self._any_name.append(position)
            for name in names or ():
                self._by_name.setdefault(name, []).append(position)
        self._cache: dict[tuple, tuple[Entry, ...]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def candidates(self, event: dict) -> tuple[Entry, ...]:
        """``(matches, item)`` for every entry whose trigger can match ``event`` (a dict), in order."""
        kind = event.get("type")
        name = event.get("event")
        key = (kind if kind.__class__ is str and kind in self._types else _OTHER,
               name if name.__class__ is str and name in self._names else _OTHER)
        found = self._cache.get(key)
        if found is None:
            found = self._cache[key] = self._select(*key)
        return found

    def matching(self, event: dict) -> list[Item]:
        """The items whose trigger matches ``event``, in order."""
        return [item for matches, item in self.candidates(event) if matches(event)]

    def _select(self, kind: Any, name: Any) -> tuple[Entry, ...]:
        positions = self._any_name if name is _OTHER else sorted(self._any_name + self._by_name[name])
        selected = []
        for position in positions:
            trigger, item = self._entries[position]
            types = trigger.keys.get("type")
            if types is None or kind in types:
                selected.append((trigger.matches, item))
        return tuple(selected)
