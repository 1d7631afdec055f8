"""Looking inside the User.com stand-in: queries that return plain data, and the text the CLI prints.

The queries take an open connection (:func:`engine.userengage.store.connect`) and return dicts
and lists ready for ``json.dumps``; times are Unix seconds as stored. ``render_*`` turn them into
text. Nothing here writes or prints, and nothing a file holds makes it fail (see
:mod:`engine.workspace.inspect`, whose helpers it shares).
"""
from __future__ import annotations

from typing import Any

from ..workspace.inspect import named, short, stored, table, when

_USER_COLUMNS = {"id": "u.custom_id", "anonymous_id": "u.anonymous_id"}


def _where(filters: dict) -> tuple[str, list]:
    """A WHERE clause over the filters given; column names come from ``_USER_COLUMNS``, never from input."""
    used = [(_USER_COLUMNS[name], value) for name, value in filters.items() if value is not None]
    if not used:
        return "", []
    return " WHERE " + " AND ".join(f"{column} = ?" for column, _ in used), [value for _, value in used]


def _profile(row) -> dict:
    return {"custom_id": row["custom_id"], "user_key": row["user_key"], "anonymous_id": row["anonymous_id"],
            **{name: stored(row[name]) for name in ("fields", "attributes")},
            "page_views": row["page_views"], "last_seen": row["last_seen"],
            "created_at": row["created_at"], "updated_at": row["updated_at"]}


# -- users -----------------------------------------------------------------------------------------

def users(db, *, id=None, anonymous_id=None) -> list[dict]:
    """Every user matching the filters, oldest first, with their counts."""
    where, values = _where({"id": id, "anonymous_id": anonymous_id})
    rows = db.execute(
        "SELECT u.*, (SELECT count(*) FROM events WHERE user_pk = u.pk) AS events, "
        "(SELECT count(*) FROM memberships WHERE user_pk = u.pk) AS companies "
        f"FROM users u{where} ORDER BY u.pk", values).fetchall()
    return [{**_profile(row), "events": row["events"], "companies": row["companies"]} for row in rows]


def find_user(db, *, id=None, anonymous_id=None, recent: int = 10) -> dict | None:
    """One user with everything about them (by custom id, else the latest with that anonymous id), or None."""
    where, values = _where({"id": id, "anonymous_id": anonymous_id})
    row = db.execute(f"SELECT u.* FROM users u{where} ORDER BY u.pk DESC LIMIT 1", values).fetchone() if where else None
    if row is None:
        return None
    pk = row["pk"]
    companies = [{"custom_id": c["custom_id"], "name": _field(stored(c["fields"]), "name")} for c in db.execute(
        "SELECT c.custom_id, c.fields FROM memberships m JOIN companies c ON c.pk = m.company_pk "
        "WHERE m.user_pk = ? ORDER BY c.custom_id", (pk,))]
    event_count = db.execute("SELECT count(*) FROM events WHERE user_pk = ?", (pk,)).fetchone()[0]
    pages = [{"url": p["url"], "path": p["path"], "title": p["title"], "timestamp": p["timestamp"]}
             for p in db.execute("SELECT * FROM page_views WHERE user_pk = ? ORDER BY timestamp DESC, pk DESC LIMIT ?",
                                 (pk, recent))]
    return {**_profile(row), "companies": companies,
            "counts": {"events": event_count, "page_views": row["page_views"], "companies": len(companies)},
            "recent_events": _events(db, " WHERE e.user_pk = ?", [pk], recent), "recent_page_views": pages}


# -- events ----------------------------------------------------------------------------------------

def events(db, *, id=None, anonymous_id=None, name=None, limit: int = 50) -> list[dict]:
    """Event occurrences, newest first."""
    where, values = _where({"id": id, "anonymous_id": anonymous_id})
    if name is not None:
        where, values = (where + " AND" if where else " WHERE") + " e.name = ?", [*values, name]
    return _events(db, where, values, limit)


def _events(db, where: str, values: list, limit: int) -> list[dict]:
    rows = db.execute("SELECT e.*, u.custom_id FROM events e JOIN users u ON u.pk = e.user_pk"
                      f"{where} ORDER BY e.timestamp DESC, e.pk DESC LIMIT ?", [*values, limit])
    return [{"user": row["custom_id"], "name": row["name"], "timestamp": row["timestamp"],
             "data": stored(row["data"]), "received_at": row["received_at"]} for row in rows]


# -- companies -------------------------------------------------------------------------------------

def companies(db, *, id=None) -> list[dict]:
    """Every company (or the one with custom id ``id``), oldest first, with its member count."""
    where, values = (" WHERE c.custom_id = ?", [id]) if id is not None else ("", [])
    rows = db.execute("SELECT c.*, (SELECT count(*) FROM memberships WHERE company_pk = c.pk) AS members "
                      f"FROM companies c{where} ORDER BY c.pk", values).fetchall()
    return [{**_company(row), "members": row["members"]} for row in rows]


def find_company(db, *, id: str) -> dict | None:
    row = db.execute("SELECT * FROM companies WHERE custom_id = ?", (id,)).fetchone()
    if row is None:
        return None
    members = [m[0] for m in db.execute("SELECT u.custom_id FROM memberships m JOIN users u ON u.pk = m.user_pk "
                                        "WHERE m.company_pk = ? ORDER BY u.custom_id", (row["pk"],))]
    return {**_company(row), "members": members}


def _company(row) -> dict:
    return {"custom_id": row["custom_id"], "fields": stored(row["fields"]),
            "attributes": stored(row["attributes"]), "created_at": row["created_at"],
            "updated_at": row["updated_at"]}


def totals(db) -> dict:
    counts = {name: db.execute(f"SELECT count(*) FROM {name}").fetchone()[0]  # names from this tuple only
              for name in ("users", "events", "page_views", "companies", "rejected")}
    return counts


# -- text ------------------------------------------------------------------------------------------

def render_users(rows: list[dict], counts: dict) -> str:
    lines = [table(["custom id", "anonymous id", "email", "events", "page views", "companies", "last seen"],
                   [[r["custom_id"], r["anonymous_id"], _field(r["fields"], "email"), r["events"], r["page_views"],
                     r["companies"], when(r["last_seen"])] for r in rows])] if rows else []
    lines.append(f"{len(rows)} of {counts['users']} users; events {counts['events']}, page views "
                 f"{counts['page_views']}, companies {counts['companies']}, refused requests {counts['rejected']}")
    return "\n".join(lines)


def render_user(user: dict) -> str:
    counts = user["counts"]
    facts = [["custom id", user["custom_id"]], ["anonymous id", user["anonymous_id"]], ["user key", user["user_key"]],
             ["created", when(user["created_at"])], ["last seen", when(user["last_seen"])],
             ["counts", f"events {counts['events']}, page views {counts['page_views']}, "
                        f"companies {counts['companies']}"]]
    return "\n\n".join([
        f"user {user['custom_id']}\n" + _indent(table(None, facts)),
        _section("profile", ["field", "value"], named(user["fields"], as_json=False)),
        _section("attributes", ["name", "value"], named(user["attributes"])),
        _section("companies", ["custom id", "name"], [[c["custom_id"], c["name"]] for c in user["companies"]]),
        _section("recent events", ["time", "name", "data"],
                 [[when(e["timestamp"]), short(e["name"], 32), short(e["data"])] for e in user["recent_events"]]),
        _section("recent page views", ["time", "path", "title"],
                 [[when(p["timestamp"]), p["path"], p["title"]] for p in user["recent_page_views"]]),
    ])


def render_events(rows: list[dict]) -> str:
    return table(["time", "user", "name", "data"],
                 [[when(e["timestamp"]), e["user"], short(e["name"], 32), short(e["data"])] for e in rows]) \
        + f"\n{len(rows)} event(s)"


def render_companies(rows: list[dict]) -> str:
    return "\n".join([table(["custom id", "name", "members", "attributes"],
                            [[c["custom_id"], _field(c["fields"], "name"), c["members"], short(c["attributes"], 64)]
                             for c in rows]) if rows else "", f"{len(rows)} company(ies)"]).lstrip("\n")


def render_company(company: dict) -> str:
    return "\n\n".join([
        f"company {company['custom_id']}\n  created  {when(company['created_at'])}\n"
        f"  updated  {when(company['updated_at'])}",
        _section("fields", ["field", "value"], named(company["fields"], as_json=False)),
        _section("attributes", ["name", "value"], named(company["attributes"])),
        _section("members", ["custom id"], [[member] for member in company["members"]]),
    ])


def render_definitions(found: dict) -> str:
    rows = [[scope, name, spec["type"], "defined" if spec["defined"] else "created on first use"]
            for scope, names in found.items() for name, spec in names.items()]
    return table(["scope", "attribute", "type", "origin"], rows) if rows else "no attribute definitions"


def _field(fields: Any, name: str) -> Any:
    """One profile field, None when absent (or when what is stored is not an object)."""
    return fields.get(name) if isinstance(fields, dict) else None


def _section(title: str, headers: list[str], rows: list[list]) -> str:
    return f"{title}: none" if not rows else f"{title}\n{_indent(table(headers, rows))}"


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())
