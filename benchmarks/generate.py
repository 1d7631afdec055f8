"""Seeded generator of realistic Segment-spec events (about 1 KB each) for the benchmarks.

    python benchmarks/generate.py 100000 > /tmp/events.jsonl     # NDJSON on stdout

A mix of track / identify / page / screen / group calls (60/15/15/5/5), with web contexts
(page, userAgent, campaign, traits) and mobile ones (app, device, os, network), nested
properties (a products array, tags), and some numbers sent as strings, as real SDKs and
hand-written integrations do (``properties.total``, ``traits.logins``).

The same ``(count, seed)`` always gives the same events: the benchmarks and
tests/test_benchmarks.py depend on it. Only the ten names in :data:`EVENT_NAMES` ever appear
in ``event``, so rule sets can name events that never occur.
"""
from __future__ import annotations

import json
import random
import sys

EVENT_NAMES = ["Order Completed", "Product Viewed", "Product Added", "Signed Up", "Checkout Started",
               "Application Opened", "Application Installed", "Order Refunded", "Coupon Applied", "Video Played"]
PLANS = ["free", "pro", "team", "enterprise"]
TAGS = ["sale", "new", "gift", "clearance"]
DEVICES = {"ios": ("iOS", "17.1", "iPhone15,2", "Apple", "analytics-ios"),
           "android": ("Android", "14", "Pixel 8", "Google", "analytics-android")}


def _mobile(rng: random.Random) -> dict:
    kind = rng.choice(["ios", "android"])
    os_name, os_version, model, manufacturer, library = DEVICES[kind]
    return {"app": {"name": "Shop", "version": f"5.{rng.randint(0, 9)}.{rng.randint(0, 20)}", "build": "1042"},
            "device": {"type": kind, "id": f"dev-{rng.randint(1, 10**6)}", "token": f"tok{rng.getrandbits(64):x}",
                       "model": model, "manufacturer": manufacturer},
            "os": {"name": os_name, "version": os_version}, "network": {"wifi": rng.random() < 0.5},
            "locale": "en-US", "timezone": "Europe/Berlin", "ip": f"198.51.100.{rng.randint(1, 254)}",
            "library": {"name": library, "version": "4.11.0"}}


def _web(rng: random.Random) -> dict:
    return {"page": {"path": "/products/42", "referrer": "https://search.example/?q=shoes",
                     "title": "Running shoes", "url": f"https://shop.example/{rng.choice(['products/42', 'pricing'])}"},
            "userAgent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0",
            "ip": f"{rng.choice(['10.0.0', '203.0.113'])}.{rng.randint(1, 254)}", "locale": "en-US",
            "campaign": {"source": rng.choice(["newsletter", "google", "partner"]), "medium": "email", "name": "fall"},
            "traits": {"email": f"user{rng.randint(1, 10**5)}@example.com", "plan": rng.choice(PLANS)},
            "library": {"name": "analytics.js", "version": "4.1.0"}}


def _maybe_string(rng: random.Random, number, share: float = 0.1):
    """``number``, or (with probability ``share``) the same number as a string."""
    return str(number) if rng.random() < share else number


def event(rng: random.Random, index: int) -> dict:
    """One event; ``index`` makes its messageId."""
    kind = rng.choices(["track", "identify", "page", "screen", "group"], weights=[60, 15, 15, 5, 5])[0]
    name = rng.choice(EVENT_NAMES) if kind == "track" else None
    # Page calls come from browsers; screen calls and Application events from apps; the rest from either.
    mobile = kind == "screen" or (kind != "page" and rng.random() < 0.4) or (name or "").startswith("Application")
    base = {"type": kind, "messageId": f"m-{index:09d}", "anonymousId": f"anon-{rng.getrandbits(40):x}",
            "userId": f"u{rng.randint(1, 10**5)}" if rng.random() < 0.8 else None,
            "timestamp": f"2026-11-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:00.000Z",
            "receivedAt": "2026-11-23T09:00:00.123Z", "sentAt": "2026-11-23T08:59:59.999Z",
            "context": _mobile(rng) if mobile else _web(rng), "integrations": {"All": True}}
    if kind == "track":
        base["event"] = name
        base["properties"] = {
            "order_id": f"o-{rng.randint(1, 10**6)}", "total": _maybe_string(rng, round(rng.uniform(1, 900), 2)),
            "currency": rng.choice(["USD", "EUR"]), "plan": rng.choice(PLANS), "coupon": rng.choice([None, "FALL10"]),
            "tags": rng.sample(TAGS, rng.randint(0, 2)),
            "products": [{"sku": f"SKU-{rng.randint(100, 999)}", "price": rng.randint(5, 200),
                          "quantity": rng.randint(1, 3), "category": rng.choice(["shoes", "hats"])}
                         for _ in range(rng.randint(1, 3))]}
    elif kind == "identify":
        base["traits"] = {"email": f"user{rng.randint(1, 10**5)}@example.com", "first_name": "Ada",
                          "last_name": "Lovelace", "plan": rng.choice(PLANS), "vip": rng.random() < 0.1,
                          "created_at": "2025-03-25T10:00:00Z", "logins": _maybe_string(rng, rng.randint(0, 500))}
    elif kind in ("page", "screen"):
        base["name"] = rng.choice(["Home", "Pricing", "Product", "Cart"])
        base["properties"] = {"path": "/pricing", "url": "https://shop.example/pricing", "title": "Pricing"}
    else:
        base["groupId"] = f"g-{rng.randint(1, 500)}"
        base["traits"] = {"name": "Acme Inc", "plan": rng.choice(PLANS), "employees": rng.randint(1, 5000)}
    return base


def events(count: int, seed: int = 42) -> list[dict]:
    """The first ``count`` events of the stream ``seed``."""
    rng = random.Random(seed)
    return [event(rng, index) for index in range(count)]


def main(argv: list[str]) -> None:
    count = int(argv[0]) if argv else 10000
    seed = int(argv[1]) if len(argv) > 1 else 42
    rng = random.Random(seed)
    write = sys.stdout.write
    for index in range(count):
        write(json.dumps(event(rng, index)) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
