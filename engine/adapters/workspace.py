"""``transport: workspace``: apply Customer.io calls to the embedded SQLite workspace.

The bodies are exactly what ``transport: http`` would send (:func:`engine.customerio.requests.to_request`),
so a run against the workspace shows what Customer.io would do with the same calls. Each
``deliver`` applies its calls in one transaction (a savepoint each, so a refused call rolls back
alone) and returns after the commit: a call reported delivered is in the file. A call the
workspace refuses is ``refused``, like a 400 from the Track API: dead-lettered with the reason,
and also kept in the workspace's ``rejected`` table.

Each destination keeps its own people, objects and events in the file (``--workspace PATH``,
else the destination's ``workspace`` setting, else ``switchyard.db``), apart by its name.
"""
from __future__ import annotations

from typing import Any, Sequence

from ..customerio.requests import to_request
from ..delivery.outcome import Outcome
from ..model import ActionCall
from ..workspace import Rejected, Workspace, WorkspaceError
from .contract import UNBUILDABLE, AdapterContext, SetupError, unbuildable
from .embedded import GATHER, apply_calls

DEFAULT_PATH = "switchyard.db"


class WorkspaceAdapter:
    gather = GATHER   # calls a transaction (engine.adapters.embedded)

    def __init__(self, context: AdapterContext):
        self.path = context.store or context.settings.get("workspace") or DEFAULT_PATH
        try:
            self.workspace = Workspace.open(self.path, dict(context.settings), destination=context.destination)
        except WorkspaceError as error:
            raise SetupError(f"cannot open the workspace {self.path}: {error}") from None

    @staticmethod
    def prepare(call: ActionCall) -> tuple[str, dict[str, Any]] | str:
        """The Track API request of ``call`` (endpoint, body), or why it cannot be built.

        A pure function of the call (the contract's ``prepare``): ``run --workers`` builds it in the
        process that evaluated the event.
        """
        try:
            request = to_request(call)
        except UNBUILDABLE as error:
            return unbuildable(error)
        return request.endpoint, request.body

    def deliver(self, calls: Sequence[ActionCall]) -> list[Outcome]:
        return apply_calls(calls, self.prepare, self.workspace.apply_many, failure=WorkspaceError,
                           rejected=Rejected, where=f"workspace {self.path}", refused_by="the workspace")

    def poll(self) -> list[Outcome]:
        return []

    def close(self) -> list[Outcome]:
        self.workspace.close()
        return []
