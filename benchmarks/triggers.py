"""The 50-trigger set of the trigger benchmark, each with its twin for the ``rule-engine`` package.

One row per trigger: ``(ours, rule_engine_expression)``. The triggers are the kind real rule
files hold (event-name equality, Segment's Track Event exclusion chain, numeric comparisons,
contains / starts with, exists, booleans, nested paths, or-groups), written over the fields of
:mod:`benchmarks.generate`'s events; some name events that never occur there ("User Deleted",
type "alias") as real rule sets do. tests/test_benchmarks.py checks that each matches some
events but not all, and that both columns give the same answer on every generated event.

The twins are evaluated with ``rule_engine.Rule(expr, context=rule_engine.Context(default_value=None))``,
so a missing field reads as ``null`` there as it does here. A path ``a.b.c`` is written
``a&["b"]&["c"]``: item access, safe on a missing key or a null container (rule-engine 5
deprecates reading a mapping's keys with dots, and dots cost it an exception per step). Where
rule-engine's meaning differs, the twin spells out ours:

- Ordering (``<``, ``>`` ...) between different types, or with ``null``, raises in rule-engine;
  ours is simply false (a field holding the string ``"12.5"`` is never ``> 100``). The twins
  guard with ``x.is_nan == false``, which only a number passes (``is_nan`` is an attribute of
  numbers alone, and an unknown attribute reads as null).
- ``x.starts_with(...)``, ``x.ends_with(...)`` and ``"s" in x`` raise on ``null``; ours is false
  on a missing field, so the twins guard with ``x != null``. They would still raise on a number
  in those fields, which the generated events never have: there the two cannot agree without a
  guard on every such condition.
- A string literal compared with a number field compares as numbers here (as in Segment); in
  rule-engine a string and a number never compare, so ``properties.total > "800"`` becomes two
  guarded branches (``x.as_lower != null`` only passes a string).
- ``timestamp < "2026-11-04T00:00:00Z"`` compares instants here; the twin parses the field with
  ``$parse_datetime``, which raises on a string that is not a timestamp (the events have none).
- ``[*]`` has no rule-engine syntax; the twins use ``$any([... for p in properties["products"]])``.
- rule-engine has no ``not in``: ``not (x in [...])``.

Written for rule-engine 4.5 and later (4.0 lacks ``starts_with`` and ``ends_with``).
"""
from __future__ import annotations

# Segment's Track Event preset, as in rules/customerio.yaml.
TRACK_EVENT_EXCLUSIONS = ["Application Installed", "Application Opened", "Application Uninstalled",
                          "Device Created or Updated", "Device Deleted", "Relationship Deleted", "User Deleted",
                          "User Suppressed", "User Unsuppressed", "Object Deleted", "Report Delivery Event",
                          "Report Content Event"]
TRACK_EVENT = 'type = "track"\n' + "".join(f'and event != "{name}"\n' for name in TRACK_EVENT_EXCLUSIONS)
TRACK_EVENT_TWIN = 'type == "track"' + "".join(f' and event != "{name}"' for name in TRACK_EVENT_EXCLUSIONS)

TRIGGERS: list[tuple[str, str]] = [
    # -- type and event name (what the index keys on) -----------------------------------------
    ('type = "identify"', 'type == "identify"'),
    ('type = "page"', 'type == "page"'),
    ('type = "screen"', 'type == "screen"'),
    ('type = "group"', 'type == "group"'),
    ('type = "track" and event = "Order Completed"', 'type == "track" and event == "Order Completed"'),
    ('type = "track" and event = "Product Viewed"', 'type == "track" and event == "Product Viewed"'),
    ('event = "Signed Up"', 'event == "Signed Up"'),
    ('event is "Checkout Started"', 'event == "Checkout Started"'),
    ('type is "track" and event == "Coupon Applied"', 'type == "track" and event == "Coupon Applied"'),
    ('match(event, "Product Added")', 'event == "Product Added"'),  # Segment's match() without * is equals
    ('event = "Application Installed" or event = "Application Opened" or event = "Device Created or Updated"',
     'event == "Application Installed" or event == "Application Opened" or event == "Device Created or Updated"'),
    ('event in ["Order Refunded", "User Deleted", "Object Deleted", "Relationship Deleted"]',
     'event in ["Order Refunded", "User Deleted", "Object Deleted", "Relationship Deleted"]'),
    ('type = "alias" or event = "Video Played"', 'type == "alias" or event == "Video Played"'),
    (TRACK_EVENT, TRACK_EVENT_TWIN),
    ('type = "track" and event not in ["Application Installed", "Application Opened", "Order Refunded"]',
     'type == "track" and not (event in ["Application Installed", "Application Opened", "Order Refunded"])'),
    # -- numbers (some totals and logins arrive as strings, which never compare with a number) --
    ('type = "track" and event = "Order Completed" and properties.total > 100',
     'type == "track" and event == "Order Completed"'
     ' and properties&["total"].is_nan == false and properties&["total"] > 100'),
    ('event = "Order Refunded" and properties.total >= 500',
     'event == "Order Refunded" and properties&["total"].is_nan == false and properties&["total"] >= 500'),
    ('type = "track" and event = "Coupon Applied" and properties.total < 100',
     'type == "track" and event == "Coupon Applied"'
     ' and properties&["total"].is_nan == false and properties&["total"] < 100'),
    ('type = "track" and properties.total is greater than "800"',  # numbers compare as numbers, strings by code point
     'type == "track" and ((properties&["total"].is_nan == false and properties&["total"] > 800)'
     ' or (properties&["total"].as_lower != null and properties&["total"] > "800"))'),
    ('type = "identify" and traits.logins is greater than 400',
     'type == "identify" and traits&["logins"].is_nan == false and traits&["logins"] > 400'),
    ('type = "group" and traits.employees <= 500',
     'type == "group" and traits&["employees"].is_nan == false and traits&["employees"] <= 500'),
    ('event = "Product Added" and properties.products[0].quantity >= 3',
     'event == "Product Added" and properties&["products"] != null'
     ' and properties["products"][0]["quantity"].is_nan == false and properties["products"][0]["quantity"] >= 3'),
    ('event = "Checkout Started" and properties.products[*].price > 190',
     'event == "Checkout Started" and properties&["products"] != null'
     ' and $any([p&["price"].is_nan == false and p&["price"] > 190 for p in properties&["products"]])'),
    ('timestamp < "2026-11-04T00:00:00Z"',
     'timestamp != null and $parse_datetime(timestamp) < d"2026-11-04T00:00:00Z"'),
    # -- strings --------------------------------------------------------------------------------
    ('context.ip starts with "10."', 'context&["ip"] != null and context&["ip"].starts_with("10.")'),
    ('type = "track" and contains(event, "Order")', 'type == "track" and event != null and "Order" in event'),
    ('type = "track" and match(event, "Product*")',
     'type == "track" and event != null and event.starts_with("Product")'),
    ('type = "page" and match(context.traits.email, "*0@example.com")',
     'type == "page" and context&["traits"]&["email"] != null'
     ' and context&["traits"]&["email"].ends_with("0@example.com")'),
    ('type = "page" and context.userAgent contains "Chrome"',
     'type == "page" and context&["userAgent"] != null and "Chrome" in context&["userAgent"]'),
    ('type = "track" and !contains(event, "Application")',
     'type == "track" and event != null and not ("Application" in event)'),
    ('event = "Order Completed" and properties.coupon starts with "FALL"',
     'event == "Order Completed" and properties&["coupon"] != null and properties&["coupon"].starts_with("FALL")'),
    ('type = "page" and context.page.url does not start with "https://shop.example/products"',
     'type == "page" and context&["page"]&["url"] != null'
     ' and not context&["page"]&["url"].starts_with("https://shop.example/products")'),
    ('event = "Order Completed" and properties.products[*].sku ends with "7"',
     'event == "Order Completed" and properties&["products"] != null'
     ' and $any([p&["sku"] != null and p&["sku"].ends_with("7") for p in properties&["products"]])'),
    ('type = "identify" and traits.email matches "^user1[0-9]*@"',
     'type == "identify" and traits&["email"] =~~ "^user1[0-9]*@"'),
    ('event = "Product Viewed" and properties.tags contains "sale"',
     'event == "Product Viewed" and properties&["tags"] != null and "sale" in properties&["tags"]'),
    # -- exists and booleans --------------------------------------------------------------------
    ('type = "identify" and userId exists', 'type == "identify" and userId != null'),
    ('userId does not exist', 'userId == null'),
    ('event = "Order Completed" and properties.coupon exists',
     'event == "Order Completed" and properties&["coupon"] != null'),
    ('type = "identify" and traits.email exists', 'type == "identify" and traits&["email"] != null'),
    ('event = "Application Opened" and context.device.token != null',
     'event == "Application Opened" and context&["device"]&["token"] != null'),
    ('type = "track" and context.campaign = null', 'type == "track" and context&["campaign"] == null'),
    ('type = "identify" and traits.vip is true', 'type == "identify" and traits&["vip"] == true'),
    ('type = "screen" and context.network.wifi = false', 'type == "screen" and context&["network"]&["wifi"] == false'),
    ('type = "identify" and traits.vip is not true', 'type == "identify" and traits&["vip"] != true'),
    # -- nested paths, lists and groups ---------------------------------------------------------
    ('type = "track" and context.device.type in ["ios", "android"]',
     'type == "track" and context&["device"]&["type"] in ["ios", "android"]'),
    ('context.traits.plan not in ["free", "pro"]', 'not (context&["traits"]&["plan"] in ["free", "pro"])'),
    ('type = "track" and event is "Signed Up"\n'
     'and ANY(properties.plan in ["pro", "team"], context.traits.plan in ["pro", "team"])',
     'type == "track" and event == "Signed Up"'
     ' and (properties&["plan"] in ["pro", "team"] or context&["traits"]&["plan"] in ["pro", "team"])'),
    ('(type = "page" or type = "screen") and name = "Pricing"',
     '(type == "page" or type == "screen") and name == "Pricing"'),
    ('event = "Order Completed" and (properties.currency = "EUR" or properties.total > 500)'
     ' and not (properties.coupon exists)',
     'event == "Order Completed"'
     ' and (properties&["currency"] == "EUR" or (properties&["total"].is_nan == false and properties&["total"] > 500))'
     ' and not (properties&["coupon"] != null)'),
    ('ALL(type = "group", ANY(traits.plan = "enterprise", traits.employees > 4000))',
     'type == "group" and (traits&["plan"] == "enterprise"'
     ' or (traits&["employees"].is_nan == false and traits&["employees"] > 4000))'),
]
