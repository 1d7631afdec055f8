"""The event tester: why each filter and mapping did or did not fire for one event.

Segment's Event Tester shows only the outcome; we show each condition with the value it
saw, so a user can see which part of a trigger failed. Output is plain data (for
``--format json``) and :func:`render` turns it into text.
"""
from __future__ import annotations

import json
from typing import Any

from .model import ActionCall, MappingError
from .paths import MISSING
from .ruleset import Destination, Filter, Mapping, RuleSet, invalid_event_reason


class _Observer:
    """The :class:`engine.ruleset.Tracer` of one event: explains each trigger the walk asks about, and
    writes down what it saw, per destination, in the order of the walk."""

    def __init__(self) -> None:
        self.entries: dict[str, dict[str, Any]] = {}
        self.items: dict[tuple[str, str], dict[str, Any]] = {}
        self.candidates: list[tuple[float, int, int, int, str, str]] = []  # ratio, held, total, vacuous, names

    def entry(self, destination: Destination) -> dict[str, Any]:
        found = self.entries.get(destination.name)
        if found is None:
            found = self.entries[destination.name] = {
                "name": destination.name, "catalog": destination.catalog.name,
                "filters": [], "mappings": [], "dropped_by": None}
        return found

    def filter(self, destination: Destination, rule: Filter, event: dict) -> bool:
        explanation = rule.trigger.explain(event)
        self.entry(destination)["filters"].append({
            "name": rule.name, "enabled": rule.enabled, "matched": explanation.result,
            "effect": "drop" if rule.drop else "drop_fields", "trigger": explanation.to_dict()})
        return bool(explanation.result)

    def dropped(self, destination: Destination, rule: Filter) -> None:
        self.entry(destination)["dropped_by"] = rule.name

    def mapping(self, destination: Destination, mapping: Mapping, event: dict) -> bool:
        explanation = mapping.trigger.explain(event)
        item = {"name": mapping.name, "action": mapping.action.name, "enabled": mapping.enabled,
                "matched": explanation.result, "trigger": explanation.to_dict()}
        self.entry(destination)["mappings"].append(item)
        self.items[destination.name, mapping.name] = item
        if explanation.result and not mapping.enabled:
            # Not part of the walk's result; shown so the user sees what enabling it would do.
            self.built(destination, mapping, mapping.build(destination.name, event, event.get("messageId")))
            item["note"] = "disabled: would fire if enabled"
        elif not explanation.result and mapping.enabled:
            total = explanation.condition_count()
            # A condition counts when its result brings the match nearer: one that holds, or one that does
            # not hold under `not` (the one that holds there is what stopped the match).
            held = [leaf for leaf, toward in explanation.toward_match() if toward]
            # `event != "x"` holds on a screen, which has no `event`, and `products[*].sku != "TEST"` on an
            # event without products: that says nothing about how near the event came, so they do not count.
            vacuous = sum(1 for leaf in held if leaf.seen is MISSING or leaf.seen is None or leaf.seen == [])
            satisfied = len(held) - vacuous
            self.candidates.append((satisfied / total if total else 0.0, satisfied, total, vacuous,
                                    destination.name, mapping.name))
        return bool(explanation.result)

    def built(self, destination: Destination, mapping: Mapping, outcome: ActionCall | MappingError) -> None:
        item = self.items[destination.name, mapping.name]
        if isinstance(outcome, ActionCall):
            item["payload"] = outcome.payload
        else:
            item["error"] = outcome.message


def explain(rules: RuleSet, event: Any) -> dict[str, Any]:
    """Per destination, filter and mapping: each condition, the value it saw, and the outcome."""
    invalid = invalid_event_reason(event)
    report: dict[str, Any] = {
        "event": {"type": event.get("type") if isinstance(event, dict) else None,
                  "messageId": event.get("messageId") if isinstance(event, dict) else None},
        "invalid": invalid, "destinations": []}
    if invalid:
        return report
    observer = _Observer()
    rules.evaluate(event, observer)
    report["destinations"] = [observer.entry(destination) for destination in rules.destinations]
    fired = any(m["matched"] and m["enabled"] for d in report["destinations"] for m in d["mappings"])
    report["matched"] = fired
    if not fired and observer.candidates:
        ratio, satisfied, total, vacuous, destination, mapping = max(observer.candidates,
                                                                    key=lambda c: (c[0], c[1]))
        if satisfied:
            report["nearest_miss"] = {"destination": destination, "mapping": mapping,
                                      "satisfied": satisfied, "conditions": total,
                                      "held_on_missing_fields": vacuous}
    return report


def _condition_lines(node: dict[str, Any], depth: int, out: list[str]) -> None:
    mark = "✓" if node["result"] else "✗"
    pad = "    " * depth
    if node["kind"] == "condition":
        seen = "missing" if node.get("missing") else json.dumps(node.get("seen"), ensure_ascii=False)
        out.append(f"{pad}{mark} {node['text']}   (saw {seen})")
    elif node["kind"] == "always":
        out.append(f"{pad}{mark} true")
    else:
        label = {"all": "ALL of", "any": "ANY of", "not": "NOT"}.get(node["kind"], node["kind"])
        out.append(f"{pad}{mark} {label}")
        for child in node.get("children", []):
            _condition_lines(child, depth + 1, out)


def render(report: dict[str, Any]) -> str:
    """The report as text for a terminal."""
    if report["invalid"]:
        return f"This event cannot be evaluated: {report['invalid']}"
    out = []
    for destination in report["destinations"]:
        out.append(f"destination {destination['name']} ({destination['catalog']})")
        for rule in destination["filters"]:
            state = "matched" if rule["matched"] else "did not match"
            suffix = " (disabled)" if not rule["enabled"] else ""
            effect = rule["effect"] if rule["matched"] else "no effect"
            out.append(f"  filter {rule['name']!r}: {state}{suffix} -> {effect}")
            _condition_lines(rule["trigger"], 2, out)
        if destination["dropped_by"]:
            out.append(f"  event dropped by filter {destination['dropped_by']!r}; no mapping evaluated")
            continue
        for mapping in destination["mappings"]:
            state = "MATCHED" if mapping["matched"] else "no match"
            suffix = "" if mapping["enabled"] else " (disabled)"
            out.append(f"  mapping {mapping['name']!r} -> {mapping['action']}: {state}{suffix}")
            _condition_lines(mapping["trigger"], 2, out)
            if "payload" in mapping:
                body = json.dumps(mapping["payload"], indent=2, ensure_ascii=False).replace("\n", "\n      ")
                out.append(f"      payload: {body}")
            if "error" in mapping:
                out.append(f"      invalid payload: {mapping['error']}")
    if not report["matched"]:
        out.append("No mapping matched this event.")
        miss = report.get("nearest_miss")
        if miss:
            more = miss.get("held_on_missing_fields")
            note = f"; {more} more held only because their field is missing" if more else ""
            out.append(f"Nearest miss: {miss['destination']} / {miss['mapping']!r} "
                       f"({miss['satisfied']} of {miss['conditions']} conditions held{note})")
    return "\n".join(out)
