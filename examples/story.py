"""Write examples/events.jsonl: a month of one shop's Segment events, as a story.

    python examples/story.py > examples/events.jsonl

Ada browses anonymously, becomes a lead by email, signs up, buys, installs the app and joins
her company's account; Bob buys and later uninstalls; Carol's guest profile is merged into
her account; Dan is suppressed and unsuppressed; Eve asks to be deleted. Around them, other
shoppers browse and buy, and a few lines are malformed, as real streams are.
"""
from __future__ import annotations

import json
import random
from datetime import datetime, timedelta, timezone

rng = random.Random(2026)
clock = datetime(2026, 10, 1, 8, 0, tzinfo=timezone.utc)
lines: list[str] = []
counter = 0

WEB = {"library": {"name": "analytics.js", "version": "4.1.0"}, "locale": "en-US",
       "userAgent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 Safari/605.1.15"}


def tick(minutes: int = 7) -> str:
    global clock
    clock += timedelta(minutes=rng.randint(1, minutes))
    return clock.strftime("%Y-%m-%dT%H:%M:%S.") + f"{clock.microsecond // 1000:03d}Z"


def emit(kind: str, **fields) -> None:
    global counter
    counter += 1
    event = {"type": kind, "messageId": f"msg-{counter:05d}", "timestamp": tick(), **fields}
    event.setdefault("context", {**WEB, "ip": f"203.0.113.{rng.randint(2, 250)}"})
    lines.append(json.dumps(event, ensure_ascii=False))


def page(path: str, **ids) -> None:
    emit("page", name=path.strip("/").title() or "Home",
         properties={"path": path, "url": f"https://shop.example{path}", "title": f"Shop {path}"}, **ids)


def mobile(token: str, platform: str, version: str = "5.2.0") -> dict:
    return {"app": {"name": "Shop", "version": version, "build": "520"},
            "device": {"token": token, "type": platform, "model": "iPhone15,2" if platform == "ios" else "Pixel 8"},
            "os": {"name": "iOS" if platform == "ios" else "Android"}, "library": {"name": "analytics-ios"}}


def order(user: str, order_id: str, items: list[tuple[str, float]], **extra) -> None:
    emit("track", userId=user, event="Order Completed",
         properties={"order_id": order_id, "total": round(sum(p for _, p in items), 2), "currency": "EUR",
                     "products": [{"sku": s, "price": p, "quantity": 1} for s, p in items], **extra})


# Ada: anonymous browsing, a lead by email, sign-up, purchases, the app, her company.
for path in ("/", "/products/trail-shoe", "/pricing", "/products/rain-jacket"):
    page(path, anonymousId="anon-ada")
emit("identify", anonymousId="anon-ada", traits={"email": "ada@example.com", "source": "newsletter"})
emit("track", anonymousId="anon-ada", event="Newsletter Subscribed", properties={"list": "weekly"})
emit("identify", userId="ada-1001", anonymousId="anon-ada",
     traits={"email": "ada@example.com", "first_name": "Ada", "last_name": "Lovelace", "plan": "pro",
             "created_at": "2026-10-01T09:12:00Z", "phone": "+4915112345678"})
emit("track", userId="ada-1001", event="Signed Up", properties={"plan": "pro", "trial_ends_at": "2026-10-15T00:00:00Z"})
order("ada-1001", "o-5001", [("SHOE-42", 89.0), ("SOCK-3", 9.5)], coupon="WELCOME10")
emit("track", userId="ada-1001", event="Application Installed", context=mobile("tok-ada-iphone", "ios"),
     properties={"version": "5.2.0", "build": "520"})
emit("track", userId="ada-1001", event="Application Opened", context=mobile("tok-ada-iphone", "ios"),
     properties={"from_background": False})
emit("group", userId="ada-1001", groupId="acme",
     traits={"name": "Acme GmbH", "objectAttributes": {"name": "Acme GmbH", "plan": "enterprise", "seats": 40,
                                                         "renewal_at": "2027-01-01T00:00:00Z"},
             "relationshipAttributes": {"role": "admin"}})

# Bob: buys on the web and in the app, then uninstalls it.
emit("identify", userId="bob-1002", traits={"email": "bob@example.com", "first_name": "Bob", "plan": "free"})
page("/products/rain-jacket", userId="bob-1002")
emit("track", userId="bob-1002", event="Product Added", properties={"sku": "JACKET-7", "price": 129.0})
order("bob-1002", "o-5002", [("JACKET-7", 129.0)])
emit("track", userId="bob-1002", event="Application Installed", context=mobile("tok-bob-pixel", "android", "5.1.3"))
emit("group", userId="bob-1002", groupId="acme", traits={"relationshipAttributes": {"role": "member"}})
emit("track", userId="bob-1002", event="Application Uninstalled", context=mobile("tok-bob-pixel", "android", "5.1.3"))

# Carol: an old guest-checkout profile, merged into her new account by an alias.
emit("identify", userId="guest-8812", traits={"email": "carol.old@example.com", "guest": True})
order("guest-8812", "o-4999", [("HAT-1", 24.0)])
for path in ("/", "/blog/trail-running", "/products/trail-shoe"):
    page(path, anonymousId="anon-carol")
emit("identify", userId="carol-1003", anonymousId="anon-carol",
     traits={"email": "carol@example.com", "first_name": "Carol"})
emit("alias", userId="carol-1003", previousId="guest-8812")
order("carol-1003", "o-5003", [("SHOE-42", 89.0)])

# Dan: suppressed, his events refused, then unsuppressed.
emit("identify", userId="dan-1004", traits={"email": "dan@example.com", "first_name": "Dan"})
emit("track", userId="dan-1004", event="User Suppressed", properties={"reason": "complaint"})
emit("track", userId="dan-1004", event="Product Viewed", properties={"sku": "HAT-1"})
emit("track", userId="dan-1004", event="User Unsuppressed")

# Eve: asks to be deleted.
emit("identify", userId="eve-1005", traits={"email": "eve@example.com", "first_name": "Eve", "unsubscribed": True})
emit("track", userId="eve-1005", event="User Deleted", properties={"request": "gdpr-7781"})

# Messaging feedback and object housekeeping.
emit("track", userId="ada-1001", event="Report Delivery Event",
     properties={"deliveryId": "dlv-ada-1", "metric": "opened", "recipient": "ada@example.com"})
emit("group", userId="bob-1002", groupId="old-co", traits={"objectAttributes": {"name": "Old Co"}})
emit("track", userId="bob-1002", event="Relationship Deleted", properties={"objectId": "old-co"})
emit("track", userId="bob-1002", event="Object Deleted", properties={"objectId": "old-co"})

# Other shoppers: browsing, identifying, buying; some app screens.
for index in range(75):
    user = f"shopper-{2000 + index}"
    anonymous = f"anon-{rng.getrandbits(32):08x}"
    for path in rng.sample(["/", "/pricing", "/products/trail-shoe", "/products/hat", "/blog/care"], 3):
        page(path, anonymousId=anonymous)
    if rng.random() < 0.6:
        emit("identify", userId=user, anonymousId=anonymous,
             traits={"email": f"{user}@example.com", "plan": rng.choice(["free", "pro"]),
                     "created_at": clock.strftime("%Y-%m-%dT%H:%M:%SZ")})
        if rng.random() < 0.5:
            order(user, f"o-{6000 + index}", [("HAT-1", 24.0)] + ([("SOCK-3", 9.5)] if rng.random() < 0.5 else []))
        if rng.random() < 0.3:
            emit("screen", userId=user, name="Cart", context=mobile(f"tok-{user}", "ios"))

# Internal traffic (filtered by the CRM rules) and a page call without a URL (an invalid payload).
order("bob-1002", "o-test-1", [("TEST", 1.0)], note="staging check")
lines[-1] = lines[-1].replace('"ip": "203.0.113.', '"ip": "10.0.0.')
emit("page", userId="ada-1001", name="Account", properties={"path": "/account"})

# Malformed lines: a truncated write, a value that is not an event, an event with no type.
lines.insert(len(lines) // 3,
             '{"type": "track", "userId": "bob-1002", "event": "Order Completed", "properties": {"order_')
lines.insert(len(lines) // 2, '[1, 2, 3]')
lines.insert(2 * len(lines) // 3, json.dumps({"userId": "ada-1001", "event": "Order Completed"}))

print("\n".join(lines))
