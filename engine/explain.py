"""The event tester: why each filter and mapping did or did not fire for one event.

Segment's Event Tester shows only the outcome; we show each condition with the value it
saw, so a user can see which part of a trigger failed. Output is plain data (for
``--format json``) and :func:`render` turns it into text.
"""
from __future__ import annotations

import json

from .model import ActionCall
from .ruleset import invalid_event_reason


def explain(rules, event) -> dict:
    invalid = invalid_event_reason(event)
    report = {"event": {"type": event.get("type") if isinstance(event, dict) else None,
                        "messageId": event.get("messageId") if isinstance(event, dict) else None},
              "invalid": invalid, "destinations": []}
    if invalid:
        return report
    candidates = []
    for destination in rules.destinations:
        entry = {"name": destination.name, "catalog": destination.catalog.name,
                 "filters": [], "mappings": [], "dropped_by": None}
        current = event
        for rule in destination.filters:
            explanation = rule.trigger.explain(current)
            entry["filters"].append({"name": rule.name, "enabled": rule.enabled, "matched": explanation.result,
                                     "effect": "drop" if rule.drop else "drop_fields",
                                     "trigger": explanation.to_dict()})
            if rule.enabled and explanation.result:
                if rule.drop:
                    entry["dropped_by"] = rule.name
                    break
                current = rule.apply(current)
        if entry["dropped_by"] is None:
            for mapping in destination.mappings:
                explanation = mapping.trigger.explain(current)
                item = {"name": mapping.name, "action": mapping.action.name, "enabled": mapping.enabled,
                        "matched": explanation.result, "trigger": explanation.to_dict()}
                if explanation.result:
                    outcome = mapping.build(destination.name, current, current.get("messageId"))
                    if isinstance(outcome, ActionCall):
                        item["payload"] = outcome.payload
                    else:
                        item["error"] = outcome.message
                    if not mapping.enabled:
                        item["note"] = "disabled: would fire if enabled"
                elif mapping.enabled:
                    total = explanation.condition_count()
                    candidates.append((explanation.satisfied_count() / total if total else 0.0,
                                       explanation.satisfied_count(), total, destination.name, mapping.name))
                entry["mappings"].append(item)
        report["destinations"].append(entry)
    fired = any(m["matched"] and m["enabled"] for d in report["destinations"] for m in d["mappings"])
    report["matched"] = fired
    if not fired and candidates:
        ratio, satisfied, total, destination, mapping = max(candidates, key=lambda c: (c[0], c[1]))
        report["nearest_miss"] = {"destination": destination, "mapping": mapping,
                                  "satisfied": satisfied, "conditions": total}
    return report


def _condition_lines(node: dict, depth: int, out: list):
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


def render(report: dict) -> str:
    """The report as text for a terminal."""
    if report["invalid"]:
        return f"This event cannot be evaluated: {report['invalid']}"
    out = []
    for destination in report["destinations"]:
        out.append(f"destination {destination['name']} ({destination['catalog']})")
        for rule in destination["filters"]:
            state = "matched" if rule["matched"] else "did not match"
            suffix = " (disabled)" if not rule["enabled"] else ""
            out.append(f"  filter {rule['name']!r}: {state}{suffix} -> {rule['effect'] if rule['matched'] else 'no effect'}")
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
            out.append(f"Nearest miss: {miss['destination']} / {miss['mapping']!r} "
                       f"({miss['satisfied']} of {miss['conditions']} conditions held)")
    return "\n".join(out)
