"""Seeded generator of realistic Segment-spec events (about 1 KB each) for benchmarks.

    python benchmarks/generate.py 100000 > /tmp/events.jsonl
"""
from __future__ import annotations

import json
import random
import sys

EVENT_NAMES = ["Order Completed", "Product Viewed", "Product Added", "Signed Up", "Checkout Started",
               "Application Opened", "Application Installed", "Order Refunded", "Coupon Applied", "Video Played"]
PLANS = ["free", "pro", "team", "enterprise"]


def _context(rng: random.Random) -> dict:
    if rng.random() < 0.4:
        return {"app": {"name": "Shop", "version": f"5.{rng.randint(0, 9)}.{rng.randint(0, 20)}", "build": "1042"},
                "device": {"type": rng.choice(["ios", "android"]), "id": f"dev-{rng.randint(1, 10**6)}",
                           "token": f"tok{rng.getrandbits(64):x}", "model": "Pixel 8", "manufacturer": "Google"},
                "os": {"name": "Android", "version": "14"}, "network": {"wifi": rng.random() < 0.5},
                "locale": "en-US", "timezone": "Europe/Berlin", "ip": f"198.51.100.{rng.randint(1, 254)}",
                "library": {"name": "analytics-android", "version": "4.11.0"}}
    return {"page": {"path": "/products/42", "referrer": "https://search.example/?q=shoes",
                     "title": "Running shoes", "url": "https://shop.example/products/42"},
            "userAgent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0",
            "ip": f"{rng.choice(['10.0.0', '203.0.113'])}.{rng.randint(1, 254)}", "locale": "en-US",
            "campaign": {"source": rng.choice(["newsletter", "google", "partner"]), "medium": "email", "name": "fall"},
            "traits": {"email": f"user{rng.randint(1, 10**5)}@example.com", "plan": rng.choice(PLANS)},
            "library": {"name": "analytics.js", "version": "4.1.0"}}


def event(rng: random.Random, index: int) -> dict:
    kind = rng.choices(["track", "identify", "page", "screen", "group"], weights=[60, 15, 15, 5, 5])[0]
    base = {"type": kind, "messageId": f"m-{index:09d}", "anonymousId": f"anon-{rng.getrandbits(40):x}",
            "userId": f"u{rng.randint(1, 10**5)}" if rng.random() < 0.8 else None,
            "timestamp": f"2026-11-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:00.000Z",
            "receivedAt": "2026-11-23T09:00:00.123Z", "sentAt": "2026-11-23T08:59:59.999Z",
            "context": _context(rng), "integrations": {"All": True}}
    if kind == "track":
        total = round(rng.uniform(1, 900), 2)
        base["event"] = rng.choice(EVENT_NAMES)
        base["properties"] = {
            "order_id": f"o-{rng.randint(1, 10**6)}", "total": str(total) if rng.random() < 0.1 else total,
            "currency": rng.choice(["USD", "EUR"]), "plan": rng.choice(PLANS), "coupon": rng.choice([None, "FALL10"]),
            "products": [{"sku": f"SKU-{rng.randint(100, 999)}", "price": rng.randint(5, 200),
                          "quantity": rng.randint(1, 3), "category": rng.choice(["shoes", "hats"])}
                         for _ in range(rng.randint(1, 3))]}
    elif kind == "identify":
        base["traits"] = {"email": f"user{rng.randint(1, 10**5)}@example.com", "first_name": "Ada",
                          "last_name": "Lovelace", "plan": rng.choice(PLANS), "vip": rng.random() < 0.1,
                          "created_at": "2025-03-25T10:00:00Z", "logins": rng.randint(0, 500)}
    elif kind in ("page", "screen"):
        base["name"] = rng.choice(["Home", "Pricing", "Product", "Cart"])
        base["properties"] = {"path": "/pricing", "url": "https://shop.example/pricing", "title": "Pricing"}
    else:
        base["groupId"] = f"g-{rng.randint(1, 500)}"
        base["traits"] = {"name": "Acme Inc", "plan": rng.choice(PLANS), "employees": rng.randint(1, 5000)}
    return base


def events(count: int, seed: int = 42):
    rng = random.Random(seed)
    return [event(rng, index) for index in range(count)]


if __name__ == "__main__":
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 10000
    rng = random.Random(42)
    out = sys.stdout
    for index in range(count):
        out.write(json.dumps(event(rng, index)) + "\n")
