"""Looking inside a workspace: queries that return plain data, and the text tables the CLI prints.

The query functions take an open connection (:func:`engine.workspace.store.connect`) and
return dicts and lists ready for ``json.dumps``; times are Unix seconds as stored. The
``render_*`` functions turn that data into text. Nothing here writes or prints, and nothing
a file holds makes it fail: a time no calendar has, text that is not JSON where JSON is
kept, an integer of 5,000 digits are all shown as they are.
"""
from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ..events import json_text, loads_exact

_PERSON_COLUMNS = {"id": "p.id", "email": "p.email", "cio_id": "p.cio_id"}
#: The code of a value not stored while the rest of its call was applied: listed with refused calls, not one.
IGNORED = "attribute_ignored"


def _where(filters: dict, columns: dict) -> tuple[str, list]:
    """A WHERE clause over the filters given; the column names come from ``columns``, never from input."""
    used = [(columns[name], value) for name, value in filters.items() if value is not None]
    if not used:
        return "", []
    return " WHERE " + " AND ".join(f"{column} = ?" for column, _ in used), [value for _, value in used]


def _identity(row) -> dict:
    return {"cio_id": row["cio_id"], "id": row["id"], "email": row["email"]}


def stored(value: Any) -> Any:
    """A JSON column's value: what the workspace wrote reads back whole (integers of any length, deep
    nesting, a lone surrogate's escape); text that is not JSON (another program wrote it) as it is."""
    if not isinstance(value, (str, bytes)):
        return value  # NULL, or a number
    try:
        return loads_exact(value.encode("utf-8") if isinstance(value, str) else value, ours=True)[0]
    except ValueError:  # not JSON; UnicodeError is a ValueError
        return value if isinstance(value, str) else value.decode("utf-8", "replace")


# -- people ----------------------------------------------------------------------------------------

def people(db, *, id=None, email=None, cio_id=None) -> list[dict]:
    """Every person matching the filters (email without regard to the case of A-Z), oldest first."""
    where, values = _where({"id": id, "email": email, "cio_id": cio_id}, _PERSON_COLUMNS)
    rows = db.execute(
        "SELECT p.*, (SELECT count(*) FROM events WHERE person_pk = p.pk) AS events, "
        "(SELECT count(*) FROM devices WHERE person_pk = p.pk) AS devices, "
        "(SELECT count(*) FROM relationships WHERE person_pk = p.pk) AS relationships "
        f"FROM people p{where} ORDER BY p.pk", values).fetchall()
    return [{**_identity(row), "unsubscribed": bool(row["unsubscribed"]), "attributes": stored(row["attributes"]),
             "events": row["events"], "page_views": row["page_views"], "devices": row["devices"],
             "relationships": row["relationships"], "last_seen": row["last_seen"], "created_at": row["created_at"]}
            for row in rows]


def find_person(db, *, id=None, email=None, cio_id=None, recent: int = 10) -> dict | None:
    """One person with everything about them, or None; ``recent`` is how many events to include."""
    where, values = _where({"id": id, "email": email, "cio_id": cio_id}, _PERSON_COLUMNS)
    row = db.execute(f"SELECT p.* FROM people p{where} ORDER BY p.pk LIMIT 1", values).fetchone() if where else None
    if row is None:
        return None
    pk = row["pk"]
    counts = {kind: count for kind, count in db.execute(
        "SELECT kind, count(*) FROM events WHERE person_pk = ? GROUP BY kind", (pk,))}
    devices = [{"token": d["token"], "platform": d["platform"], "last_used": d["last_used"],
                "attributes": stored(d["attributes"])}
               for d in db.execute("SELECT * FROM devices WHERE person_pk = ? ORDER BY token", (pk,))]
    relationships = [{"object_type_id": r["object_type_id"], "object_id": r["object_id"],
                      "attributes": stored(r["attributes"])}
                     for r in db.execute("SELECT o.object_type_id, o.object_id, r.attributes FROM relationships r "
                                         "JOIN objects o ON o.pk = r.object_pk WHERE r.person_pk = ? "
                                         "ORDER BY o.object_type_id, o.object_id", (pk,))]
    return {
        **_identity(row),
        "anonymous_ids": [a[0] for a in db.execute(
            "SELECT anonymous_id FROM anonymous_ids WHERE person_pk = ? ORDER BY anonymous_id", (pk,))],
        "unsubscribed": bool(row["unsubscribed"]),
        "created_at": row["created_at"], "updated_at": row["updated_at"], "last_seen": row["last_seen"],
        "attributes": stored(row["attributes"]),
        "devices": devices,
        "relationships": relationships,
        "counts": {"events": sum(counts.values()), "pages": counts.get("page", 0), "screens": counts.get("screen", 0),
                   "page_views": row["page_views"], "devices": len(devices), "relationships": len(relationships)},
        "recent_events": _events(db, "WHERE e.person_pk = ?", [pk], recent),
    }


def find_suppression(db, kind: str, value: str) -> dict | None:
    """The suppression covering an identifier (``id``, ``email``, ``cio_id``), or None."""
    collation = "NOCASE" if kind == "email" else "BINARY"
    row = db.execute("SELECT s.* FROM suppressed_identifiers i JOIN suppressions s ON s.pk = i.suppression_pk "
                     f"WHERE i.kind = ? AND i.value = ? COLLATE {collation}", (kind, value)).fetchone()
    if row is None:
        return None
    identifiers = db.execute("SELECT kind, value FROM suppressed_identifiers WHERE suppression_pk = ? ORDER BY kind",
                             (row["pk"],)).fetchall()
    return {"suppressed_at": row["suppressed_at"], "refused_calls": row["refused"],
            "identifiers": {i["kind"]: i["value"] for i in identifiers}}


# -- events ----------------------------------------------------------------------------------------

def events(db, *, id=None, email=None, cio_id=None, anonymous_id=None, type=None, limit: int = 50) -> list[dict]:
    """Events newest first; ``type`` is the kind (event, page, screen, ...); anonymous ones have no person."""
    where, values = _where({"id": id, "email": email, "cio_id": cio_id, "anonymous_id": anonymous_id, "type": type},
                           {**_PERSON_COLUMNS, "anonymous_id": "e.anonymous_id", "type": "e.kind"})
    return _events(db, where, values, limit)


def _events(db, where: str, values: list, limit: int) -> list[dict]:
    rows = db.execute("SELECT e.*, p.cio_id, p.id, p.email FROM events e LEFT JOIN people p ON p.pk = e.person_pk "
                      f"{where} ORDER BY e.timestamp DESC, e.pk DESC LIMIT ?", [*values, limit]).fetchall()
    return [{"timestamp": row["timestamp"], "type": row["kind"], "name": row["name"],
             "person": None if row["cio_id"] is None else _identity(row), "anonymous_id": row["anonymous_id"],
             "event_id": row["event_id"], "data": stored(row["data"])} for row in rows]


# -- objects ---------------------------------------------------------------------------------------

def objects(db, *, type=None, id=None) -> list[dict]:
    where, values = _where({"type": type, "id": id}, {"type": "o.object_type_id", "id": "o.object_id"})
    rows = db.execute("SELECT o.*, (SELECT count(*) FROM relationships WHERE object_pk = o.pk) AS people "
                      f"FROM objects o{where} ORDER BY o.object_type_id, o.object_id", values).fetchall()
    return [{"object_type_id": row["object_type_id"], "object_id": row["object_id"],
             "attributes": stored(row["attributes"]), "people": row["people"]} for row in rows]


def find_object(db, *, type: str = "1", id: str) -> dict | None:
    row = db.execute("SELECT * FROM objects WHERE object_type_id = ? AND object_id = ?", (type, id)).fetchone()
    if row is None:
        return None
    related = db.execute("SELECT p.cio_id, p.id, p.email, r.attributes FROM relationships r JOIN people p "
                         "ON p.pk = r.person_pk WHERE r.object_pk = ? ORDER BY p.pk", (row["pk"],)).fetchall()
    return {"object_type_id": row["object_type_id"], "object_id": row["object_id"],
            "attributes": stored(row["attributes"]), "created_at": row["created_at"],
            "updated_at": row["updated_at"],
            "people": [{**_identity(r), "relationship_attributes": stored(r["attributes"])} for r in related]}


def waiting(db) -> list[dict]:
    """Group calls from anonymous people, waiting for an identify that names their anonymous id."""
    return [{"anonymous_id": row["anonymous_id"], "received_at": row["received_at"], "body": stored(row["body"])}
            for row in db.execute("SELECT * FROM waiting ORDER BY pk")]


# -- refused calls, metrics, totals ----------------------------------------------------------------

def rejected(db, *, code=None, limit: int = 50) -> list[dict]:
    """Refused calls (and values not stored, code ``attribute_ignored``, of calls that were applied), newest first."""
    where, values = _where({"code": code}, {"code": "code"})
    rows = db.execute(f"SELECT * FROM rejected{where} ORDER BY pk DESC LIMIT ?", [*values, limit]).fetchall()
    return [{"received_at": row["received_at"], "source": row["source"], "batch_index": row["batch_index"],
             "code": row["code"], "field": row["field"], "reason": row["reason"], "body": stored(row["body"])}
            for row in rows]


def metrics(db, *, delivery_id=None, limit: int = 50) -> list[dict]:
    where, values = _where({"delivery_id": delivery_id}, {"delivery_id": "delivery_id"})
    rows = db.execute(f"SELECT * FROM metrics{where} ORDER BY timestamp DESC, pk DESC LIMIT ?",
                      [*values, limit]).fetchall()
    return [{"delivery_id": row["delivery_id"], "metric": row["metric"], "timestamp": row["timestamp"],
             "recipient": row["recipient"], "reason": row["reason"], "href": row["href"],
             "metadata": stored(row["metadata"])} for row in rows]


def totals(db) -> dict:
    """How much the workspace holds: the footer of ``workspace people``."""
    def count(sql: str) -> int:
        return db.execute(sql).fetchone()[0]
    return {"people": count("SELECT count(*) FROM people"), "objects": count("SELECT count(*) FROM objects"),
            "events": count("SELECT count(*) FROM events"),
            "anonymous_events": count("SELECT count(*) FROM events WHERE person_pk IS NULL"),
            "waiting_group_calls": count("SELECT count(*) FROM waiting"),
            "suppressions": count("SELECT count(*) FROM suppressions"),
            # a value not stored (attribute_ignored) is kept in `rejected` too, but its call was applied
            "rejected": count(f"SELECT count(*) FROM rejected WHERE code != '{IGNORED}'"),
            "ignored_values": count(f"SELECT count(*) FROM rejected WHERE code = '{IGNORED}'"),
            "metrics": count("SELECT count(*) FROM metrics")}


# -- text ------------------------------------------------------------------------------------------

def when(seconds) -> str:
    """Unix seconds as ``YYYY-MM-DD HH:MM:SS`` UTC; empty for none.

    A value that is no time from year 1 to 9999 (milliseconds sent as seconds: 1714550400000) is
    shown as it is stored, so one odd value does not stop a listing.
    """
    if seconds is None:
        return ""
    try:
        return datetime.fromtimestamp(seconds, UTC).replace(tzinfo=None).isoformat(" ", "seconds")
    except (ValueError, OverflowError, OSError, TypeError):  # out of range, NaN, text
        return str(seconds)


def short(value, width: int = 48, *, as_json: bool = False) -> str:
    """``value`` on one line, cut to ``width``; strings as they are unless ``as_json`` (to show "123" from 123)."""
    text = value if isinstance(value, str) and not as_json else json_text(value)
    return text if len(text) <= width else text[:width - 1] + "…"


def named(value: Any, *, as_json: bool = True) -> list[list[str]]:
    """``[name, value]`` rows of a stored object, values as :func:`short` shows them; a stored value that is
    not an object is one row without a name."""
    if isinstance(value, dict):
        return [[name, short(item, as_json=as_json)] for name, item in value.items()]
    return [["", short(value, as_json=True)]]


def table(headers: list[str] | None, rows: list[list]) -> str:
    """Left-aligned columns, two spaces apart, under a header row unless ``headers`` is None."""
    cells = ([headers] if headers else []) + [["" if cell is None else str(cell) for cell in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in cells)


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def render_people(rows: list[dict], counts: dict) -> str:
    lines = [table(["cio_id", "id", "email", "unsubscribed", "events", "page views", "devices", "objects", "last seen"],
                   [[r["cio_id"], r["id"], r["email"], _yes(r["unsubscribed"]), r["events"], r["page_views"],
                     r["devices"], r["relationships"], when(r["last_seen"])] for r in rows])] if rows else []
    lines.append(f"{len(rows)} of {counts['people']} people")
    lines.append(f"anonymous events not merged {counts['anonymous_events']}, group calls waiting for an identify "
                 f"{counts['waiting_group_calls']}, suppressions {counts['suppressions']}, "
                 f"refused calls {counts['rejected']}, ignored values {counts['ignored_values']}")
    return "\n".join(lines)


def render_person(person: dict) -> str:
    counts = person["counts"]
    facts = [["cio_id", person["cio_id"]], ["id", person["id"]], ["email", person["email"]],
             ["anonymous ids", ", ".join(person["anonymous_ids"])], ["unsubscribed", _yes(person["unsubscribed"])],
             ["created", when(person["created_at"])], ["last seen", when(person["last_seen"])],
             ["counts", (f"events {counts['events']} (pages {counts['pages']}, screens {counts['screens']}), "
                        f"page views {counts['page_views']}, devices {counts['devices']}, "
                        f"relationships {counts['relationships']}")]]
    sections = [f"person {person['cio_id']}\n" + _indent(table(None, facts))]
    sections.append(_section("attributes", ["name", "value"], named(person["attributes"])))
    sections.append(_section("devices", ["token", "platform", "last used", "attributes"],
                             [[short(d["token"], 24), d["platform"], when(d["last_used"]), short(d["attributes"])]
                              for d in person["devices"]]))
    sections.append(_section("relationships", ["type", "object", "attributes"],
                             [[r["object_type_id"], r["object_id"], short(r["attributes"])]
                              for r in person["relationships"]]))
    recent = person["recent_events"]
    sections.append(_section(f"recent events ({len(recent)} of {counts['events']}, newest first)",
                             ["time", "type", "name", "data"],
                             [[when(e["timestamp"]), e["type"], short(e["name"], 32), short(e["data"])]
                              for e in recent]))
    return "\n\n".join(sections)


def render_suppression(kind: str, value: str, suppression: dict) -> str:
    identifiers = ", ".join(f"{k} {v}" for k, v in suppression["identifiers"].items())
    return (f"{kind} '{value}' is suppressed since {when(suppression['suppressed_at'])} ({identifiers}); "
            f"its profile was deleted; {suppression['refused_calls']} later call(s) refused")


def render_events(rows: list[dict]) -> str:
    return table(["time", "type", "name", "person", "anonymous id", "data"],
                 [[when(e["timestamp"]), e["type"], short(e["name"], 32),
                   "" if e["person"] is None else e["person"]["cio_id"], e["anonymous_id"], short(e["data"])]
                  for e in rows]) + f"\n{len(rows)} event(s)"


def render_objects(rows: list[dict], waiting_calls: list[dict]) -> str:
    lines = [table(["type", "object", "people", "attributes"],
                   [[o["object_type_id"], o["object_id"], o["people"], short(o["attributes"], 64)] for o in rows])]
    lines.append(f"{len(rows)} object(s)")
    for call in waiting_calls:
        body = call["body"]
        lines.append(f"waiting for an identify of anonymous id '{call['anonymous_id']}': "
                     f"{short(body.get('identifiers') if isinstance(body, dict) else body, 64)}")
    return "\n".join(lines)


def render_object(obj: dict) -> str:
    head = (f"object {obj['object_type_id']}/{obj['object_id']}\n"
            f"  created  {when(obj['created_at'])}\n  updated  {when(obj['updated_at'])}")
    return "\n\n".join([
        head,
        _section("attributes", ["name", "value"], named(obj["attributes"])),
        _section("people", ["cio_id", "id", "email", "relationship attributes"],
                 [[p["cio_id"], p["id"], p["email"], short(p["relationship_attributes"])] for p in obj["people"]]),
    ])


def render_rejected(rows: list[dict]) -> str:
    def source(row: dict) -> str:
        return row["source"] if row["batch_index"] is None else f"{row['source']}[{row['batch_index']}]"
    ignored = sum(row["code"] == IGNORED for row in rows)
    return table(["time", "source", "code", "field", "reason"],
                 [[when(r["received_at"]), source(r), r["code"], r["field"], r["reason"]] for r in rows]
                 ) + f"\n{len(rows) - ignored} refused call(s)" + (f", {ignored} ignored value(s)" if ignored else "")


def render_metrics(rows: list[dict]) -> str:
    return table(["time", "delivery", "metric", "recipient", "reason", "href"],
                 [[when(m["timestamp"]), m["delivery_id"], m["metric"], m["recipient"], m["reason"], m["href"]]
                  for m in rows]) + f"\n{len(rows)} metric(s)"


def render_settings(settings: dict) -> str:
    types = ", ".join(f"{name}={kind}" for name, kind in settings["attribute_types"].items()) or "(none)"
    return table(["setting", "value"], [["id_only", _yes(settings["id_only"])],
                                        ["anonymous_merge", _yes(settings["anonymous_merge"])],
                                        ["typed_attributes", _yes(settings["typed_attributes"])],
                                        ["attribute_types", types]])


def _section(title: str, headers: list[str], rows: list[list]) -> str:
    if not rows:
        return f"{title}: none"
    return f"{title}\n{_indent(table(headers, rows))}"


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())
