"""Rule files with 10, 100 or 1,000 mappings, for the scaling and load benchmarks.

Like real rule sets, every mapping keys on ``type`` and the event's name. The same seven
mappings are live at every size (identify, page, group, and four of the track events that
:mod:`benchmarks.generate` emits); the rest name events from a large vocabulary that the
generated events never use ("Feature 0042 Used"). So an event matches the same mappings
whatever the size, and the per-event cost can only grow with what the engine does for
mappings that cannot match.
"""
from __future__ import annotations

import json

LIVE = [
    ("Identify", 'type = "identify"', {"email": "traits.email", "plan": "traits.plan"}),
    ("Page", 'type = "page"', {"url": "properties.url", "title": "properties.title"}),
    ("Group", 'type = "group"', {"group": "groupId", "plan": "traits.plan"}),
    ("Order Completed", 'type = "track" and event = "Order Completed"', None),
    ("Product Viewed", 'event = "Product Viewed"', None),
    ("Signed Up", 'type = "track" and event = "Signed Up" and properties.plan in ["pro", "team"]', None),
    ("Checkout Started", 'event in ["Checkout Started", "Checkout Resumed"]', None),
]
TRACK_FIELDS = {"order_id": "properties.order_id", "total": "properties.total",
                "email": "coalesce(context.traits.email, traits.email)", "name": "event"}

# The shapes of the mappings for events that never occur, in turn.
_DEAD_SHAPES = [
    'type = "track" and event = "{name}"',
    'event = "{name}"',
    'type = "track" and event = "{name}" and properties.total > 100',
    'event in ["{name}", "{name} (legacy)"]',
]


def mapping_count_rules(count: int, name: str = "scaling") -> str:
    """The text of a webhook rule file (``transport: file``) with ``count`` mappings (at least 7)."""
    if count < len(LIVE):
        raise ValueError(f"a scaling rule set has at least {len(LIVE)} mappings")
    lines = [
        "version: 1",
        "destination:",
        f"  name: {name}",
        "  catalog: webhook",
        "  transport: file",
        "  settings:",
        "    url: https://crm.example/hook",
        "    path: out/scaling.ndjson",
        "mappings:",
    ]
    mappings = [(title, trigger, fields or TRACK_FIELDS) for title, trigger, fields in LIVE]
    for number in range(count - len(LIVE)):
        event = f"Feature {number:04d} Used"
        mappings.append((event, _DEAD_SHAPES[number % len(_DEAD_SHAPES)].format(name=event), TRACK_FIELDS))
    for title, trigger, fields in mappings:
        lines.append(f"  - name: {json.dumps(title)}")
        lines.append(f"    trigger: {json.dumps(trigger)}")
        lines.append("    action: send")
        lines.append("    fields:")
        lines.append("      data:")
        lines.extend(f"        {key}: {json.dumps(value)}" for key, value in fields.items())
    return "\n".join(lines) + "\n"
