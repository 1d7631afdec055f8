"""The embedded workspace: a local, SQLite-backed stand-in for a Customer.io workspace.

It applies the same Track API bodies the ``http`` transport sends, with the semantics of
Customer.io's documentation, and keeps everything it refuses with the reason::

    from engine.workspace import Workspace
    with Workspace.open("switchyard.db", {"id_only": False}, destination="crm") as workspace:
        workspace.apply({"type": "person", "action": "identify", "identifiers": {"id": "u1"}})
        workspace.apply_many([("entity", body), ("metrics", body)])  # one transaction, one outcome each
        workspace.apply_batch({"batch": [...]})          # one outcome per item
        workspace.apply_metrics({"delivery_id": "d1", "metric": "opened"})

One file holds the workspaces of several destinations, apart by destination name
(:mod:`engine.store`). ``store`` owns the schema and settings, ``apply`` the Workspace and which
handler applies which call (``people``, ``events``, ``objects``, ``metrics``, with ``identifiers``,
``values`` and ``call`` beneath them), ``inspect`` the read side, ``server`` the HTTP face and
``cli`` the ``switchyard workspace`` commands. See docs/workspace.md.
"""
from __future__ import annotations

from engine.lazy import attributes

# Imported when first used, so that `switchyard run --dry-run` and lint do not load the workspace.
_EXPORTS = {
    **{name: "engine.workspace.apply"
       for name in ("Workspace", "Applied", "Rejected", "ENTITY_ACTIONS", "METRICS", "REJECTION_CODES")},
    **{name: "engine.workspace.store"
       for name in ("Settings", "WorkspaceError", "SettingsError", "DestinationError", "SCHEMA_VERSION",
                    "SETTING_NAMES", "destinations")},
}

__all__ = list(_EXPORTS)

__getattr__ = attributes(globals(), _EXPORTS)
