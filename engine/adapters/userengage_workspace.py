"""``transport: workspace`` of the ``userengage`` catalog: apply calls to the embedded User.com stand-in.

The requests are exactly those ``transport: http`` makes (:func:`engine.userengage.requests.to_request`,
walked by :func:`engine.userengage.steps.perform`), applied to :class:`engine.userengage.app.App`
in the same store file as other destinations' embedded state (``--workspace PATH``, else the
destination's ``workspace`` setting, else ``switchyard.db``), apart by destination name. Each
``deliver`` is one transaction (a savepoint per call) and returns after the commit. A call the
stand-in refuses is ``refused``, as User.com's 4xx would be, and is kept in its ``rejected`` table.
"""
from __future__ import annotations

from typing import Sequence

from ..delivery.outcome import Outcome
from ..model import ActionCall
from ..userengage.app import App, Rejected
from ..userengage.requests import UserRequest, to_request
from ..userengage.store import AppError
from .contract import UNBUILDABLE, AdapterContext, SetupError, unbuildable
from .embedded import GATHER, apply_calls

DEFAULT_PATH = "switchyard.db"


class UserengageWorkspaceAdapter:
    gather = GATHER   # calls a transaction (engine.adapters.embedded)

    def __init__(self, context: AdapterContext):
        self.path = context.store or context.settings.get("workspace") or DEFAULT_PATH
        try:
            self.app = App.open(self.path, context.settings, destination=context.destination)
        except AppError as error:
            raise SetupError(f"cannot open the User.com stand-in in {self.path}: {error}") from None

    @staticmethod
    def prepare(call: ActionCall) -> UserRequest | str:
        """The requests of ``call`` (a pure function of it), or why they cannot be built."""
        try:
            return to_request(call)
        except UNBUILDABLE as error:
            return unbuildable(error)

    def deliver(self, calls: Sequence[ActionCall]) -> list[Outcome]:
        return apply_calls(calls, self.prepare, self.app.apply_many, failure=AppError, rejected=Rejected,
                           where=f"workspace {self.path}", refused_by="the User.com stand-in")

    def poll(self) -> list[Outcome]:
        return []

    def close(self) -> list[Outcome]:
        self.app.close()
        return []
