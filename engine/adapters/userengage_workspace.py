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

from ..delivery.outcome import DELIVERED, FAILED, REFUSED, Outcome
from ..model import ActionCall
from ..userengage.app import App, Rejected
from ..userengage.requests import to_request
from ..userengage.store import AppError
from .contract import AdapterContext, SetupError

DEFAULT_PATH = "switchyard.db"


class UserengageWorkspaceAdapter:
    def __init__(self, context: AdapterContext):
        self.path = context.store or context.settings.get("workspace") or DEFAULT_PATH
        try:
            self.app = App.open(self.path, context.settings, destination=context.destination)
        except AppError as error:
            raise SetupError(f"cannot open the User.com stand-in in {self.path}: {error}") from None

    def deliver(self, calls: Sequence[ActionCall]) -> list[Outcome]:
        outcomes: list[Outcome | None] = [None] * len(calls)
        requests, positions = [], []
        for position, call in enumerate(calls):
            try:
                requests.append(to_request(call))
            except ValueError as error:
                outcomes[position] = Outcome(REFUSED, 1, message=f"cannot build the request: {error}", call=call)
                continue
            positions.append(position)
        if requests:
            try:
                results = self.app.apply_many(requests)
            except AppError as error:
                for position in positions:
                    outcomes[position] = Outcome(FAILED, 1, message=f"workspace {self.path}: {error}",
                                                 call=calls[position])
            else:
                for position, result in zip(positions, results):
                    call = calls[position]
                    if isinstance(result, Rejected):
                        outcomes[position] = Outcome(REFUSED, 1, result.status, result.reason,
                                                     f"refused by the User.com stand-in: {result.reason}", call=call)
                    else:
                        outcomes[position] = Outcome(DELIVERED, 1, call=call)
        return [outcome for outcome in outcomes if outcome is not None]

    def poll(self) -> list[Outcome]:
        return []

    def close(self) -> list[Outcome]:
        self.app.close()
        return []
