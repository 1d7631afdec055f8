"""The embedded workspace: a local, SQLite-backed stand-in for a Customer.io workspace.

It applies the same Track API bodies the ``http`` transport sends, with the semantics of
Customer.io's documentation, and keeps everything it refuses with the reason::

    from engine.workspace import Workspace
    with Workspace.open("switchyard.db", {"id_only": False}) as workspace:
        workspace.apply({"type": "person", "action": "identify", "identifiers": {"id": "u1"}})
        workspace.apply_batch({"batch": [...]})          # one outcome per item
        workspace.apply_metrics({"delivery_id": "d1", "metric": "opened"})

``store`` owns the database, ``apply`` the semantics, ``inspect`` the read side, ``server``
the HTTP face and ``cli`` the ``switchyard workspace`` commands. See docs/workspace.md.
"""
from __future__ import annotations

from .apply import ENTITY_ACTIONS, METRICS, REJECTION_CODES, Applied, Rejected, Workspace
from .store import SCHEMA_VERSION, SETTING_NAMES, Settings, SettingsError, WorkspaceError

__all__ = ["Workspace", "Applied", "Rejected", "Settings", "WorkspaceError", "SettingsError", "ENTITY_ACTIONS",
           "METRICS", "REJECTION_CODES", "SCHEMA_VERSION", "SETTING_NAMES"]
