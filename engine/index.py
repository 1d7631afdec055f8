"""An index of triggers by the ``type`` and ``event`` values they require.

A rule set with a thousand mappings usually has a thousand different event names in its
triggers, and any one event can match only the few that name it. The index groups events by
their ``type`` and ``event`` and hands each event just the triggers that can match its group,
in their original order, so the cost per event follows the matching mappings rather than the
size of the rule set.

Within a group the index also knows those two values, so it specialises each trigger for the
group: ``type = "track" and event != "Application Opened" and properties.total > 10`` is just
``properties.total > 10`` for the group ("track", "Order Completed"), and a trigger the group
decides entirely costs no call at all. Triggers whose requirements cannot be read (see
:mod:`engine.trigger.keys`) are still handed over, so the index never changes a result.

A group is prepared the first time an event of it arrives. Groups are keyed only by values
that appear in the triggers (any other value shares one group), so the index stays bounded
however many distinct names the events carry.
"""
from __future__ import annotations

from typing import Any, Callable, Generic, Iterable, TypeVar

from engine.trigger.codegen import Exactly, NoneOf

Item = TypeVar("Item")
#: (the trigger specialised for the group, or None when it surely matches there; the item)
Entry = tuple[Callable[[Any], bool] | None, Any]

_OTHER = object()  # every value that no trigger compares with


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
        self._groups: dict[tuple, tuple[Entry, ...]] = {}
        self._specialised: dict[tuple, Callable[[Any], bool] | bool] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def candidates(self, event: dict) -> tuple[Entry, ...]:
        """``(matches, item)`` for every entry whose trigger can match ``event`` (a dict), in order.

        ``matches`` is None when the trigger surely matches events of this group.
        """
        kind = event.get("type")
        name = event.get("event")
        key = (kind if isinstance(kind, str) and kind in self._types else _OTHER,
               name if isinstance(name, str) and name in self._names else _OTHER)
        found = self._groups.get(key)
        if found is None:
            found = self._groups[key] = self._group(*key)
        return found

    def matching(self, event: dict) -> list[Item]:
        """The items whose trigger matches ``event``, in order."""
        return [item for matches, item in self.candidates(event) if matches is None or matches(event)]

    def _group(self, kind: Any, name: Any) -> tuple[Entry, ...]:
        known = {"type": NoneOf(self._types) if kind is _OTHER else Exactly(kind),
                 "event": NoneOf(self._names) if name is _OTHER else Exactly(name)}
        positions = self._any_name if name is _OTHER else sorted(self._any_name + self._by_name.get(name, []))
        group = []
        for position in positions:
            trigger, item = self._entries[position]
            types = trigger.keys.get("type")
            if types is not None and kind not in types:
                continue
            matches = self._specialise(position, trigger, known)
            if matches is not False:
                group.append((None if matches is True else matches, item))
        return tuple(group)

    def _specialise(self, position: int, trigger, known: dict) -> Callable[[Any], bool] | bool:
        # Only what the trigger compares with changes its code, so groups share specialisations.
        facts = tuple(self._fact(trigger, field, fact) for field, fact in known.items())
        cache_key = (position, facts)
        found = self._specialised.get(cache_key)
        if found is None:
            found = self._specialised[cache_key] = trigger.specialise(known)
        return found

    @staticmethod
    def _fact(trigger, field: str, fact) -> Any:
        if field not in trigger.compared:
            return None  # the trigger never reads this field: what is known of it changes nothing
        return fact.value if isinstance(fact, Exactly) else _OTHER
