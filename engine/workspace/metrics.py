"""Delivery metrics: ``POST /api/v1/metrics`` bodies and ``type: delivery`` entities, stored by delivery id."""
from __future__ import annotations

import json
from typing import Any

from .call import Call
from .values import Refusal, dumps, object_of, optional_text, text, timestamp

#: The metrics ``/api/v1/metrics`` and ``type: delivery`` entities take (reference section 8).
METRICS = ("delivered", "opened", "clicked", "converted", "spammed", "bounced", "dropped", "deferred")


def _store(call: Call, delivery_id: str, metric: str, when: Any, details: dict, metadata: dict) -> str:
    call.db.execute("INSERT INTO metrics (delivery_id, metric, timestamp, recipient, reason, href, metadata, "
                    "received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (delivery_id, metric, timestamp(call.now, when, "timestamp"),
                     *(optional_text(details.get(key), key) for key in ("recipient", "reason", "href")),
                     dumps(metadata, "metadata"), call.now))
    return f"stored metric '{metric}' for delivery '{delivery_id}'"


def metrics(call: Call, body: Any) -> str:
    """``POST /api/v1/metrics``: ``{delivery_id, metric, timestamp, recipient?, reason?, href?, metadata?}``."""
    if not isinstance(body, dict):
        raise Refusal("invalid_body", "a metrics body is a JSON object")
    for key in ("delivery_id", "metric"):
        if body.get(key) in (None, ""):
            raise Refusal("missing_field", f"the metrics body has no {key}", key)
    if body["metric"] not in METRICS:
        raise Refusal("invalid_value", f"metric {json.dumps(body['metric'], default=repr)} is not one of "
                                       f"{', '.join(METRICS)}", "metric")
    return _store(call, text(body["delivery_id"], "delivery_id"), body["metric"], body.get("timestamp"),
                  body, object_of(body, "metadata"))


def delivery(call: Call, body: dict) -> str:
    """A ``type: delivery`` entity: the metric is the action, the delivery id is ``identifiers.id``."""
    identifiers = body.get("identifiers")
    if not isinstance(identifiers, dict) or identifiers.get("id") in (None, ""):
        raise Refusal("invalid_identifiers", 'a delivery is identified by {"id": <delivery id>}', "identifiers")
    attributes = object_of(body, "attributes")
    details = {key: attributes.pop(key, None) for key in ("recipient", "reason", "href")}
    return _store(call, text(identifiers["id"], "identifiers.id", "invalid_identifiers"), body["action"],
                  body.get("timestamp"), details, attributes)
