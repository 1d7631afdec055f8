"""``transport: workspace``: apply Customer.io calls to the embedded SQLite workspace.

The bodies are exactly what ``transport: http`` would send (:func:`engine.customerio.requests.to_request`),
so a run against the workspace shows what Customer.io would do with the same calls. A call the
workspace refuses fails like a 400 from the Track API: counted, dead-lettered with the reason, and
also kept in the workspace's ``rejected`` table.
"""
from __future__ import annotations

from ..customerio.requests import to_request
from ..delivery.outcome import DELIVERED, FAILED, Outcome
from ..workspace import Rejected, Workspace, WorkspaceError

DEFAULT_PATH = "switchyard.db"


class WorkspaceAdapter:
    def __init__(self, settings, path: str | None = None):
        self.path = path or settings.get("workspace") or DEFAULT_PATH
        self.workspace = Workspace.open(self.path, dict(settings))

    def deliver(self, call) -> list[Outcome]:
        request = to_request(call)
        try:
            if request.endpoint == "metrics":
                result = self.workspace.apply_metrics(request.body)
            else:
                result = self.workspace.apply(request.body)
        except WorkspaceError as error:
            return [Outcome(FAILED, 1, message=f"workspace {self.path}: {error}", call=call)]
        if isinstance(result, Rejected):
            return [Outcome(FAILED, 1, 400, result.reason, f"refused by the workspace: {result.reason}", call=call)]
        return [Outcome(DELIVERED, 1, call=call)]

    def close(self) -> list:
        self.workspace.close()
        return []
