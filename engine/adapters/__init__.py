"""Backend adapters: deliver :class:`~engine.model.ActionCall` values to where they go.

An adapter is chosen by the destination's catalog and ``transport``. It raises
:class:`DeliveryError` for a call it could not deliver; the caller dead-letters that call,
so an adapter never has to decide what is lost.
"""
from __future__ import annotations


class DeliveryError(Exception):
    """A call was not delivered; ``status`` and ``body`` are the server's answer when there was one."""

    def __init__(self, message: str, status: int | None = None, body: str | None = None):
        super().__init__(message)
        self.status = status
        self.body = body


class SetupError(Exception):
    """A destination cannot deliver at all (a missing setting, an unknown transport)."""


def open_adapter(destination, *, workspace: str | None = None):
    """The adapter for ``destination``'s catalog and transport; ``workspace`` overrides its workspace path."""
    key = (destination.catalog.name, destination.transport)
    if key == ("webhook", "http"):
        from .webhook import WebhookAdapter

        return WebhookAdapter(destination.settings)
    if key == ("customerio", "http"):
        from .customerio_http import CustomerioHttpAdapter

        return CustomerioHttpAdapter(destination.settings)
    if key == ("customerio", "workspace"):
        from ..workspace import WorkspaceError
        from .workspace import WorkspaceAdapter

        try:
            return WorkspaceAdapter(destination.settings, workspace)
        except WorkspaceError as error:
            raise SetupError(f"destination '{destination.name}': cannot open the workspace: {error}") from None
    if destination.transport == "file":
        from .file import FileAdapter

        return FileAdapter(destination.name, destination.settings)
    raise SetupError(f"destination '{destination.name}': no adapter for catalog '{key[0]}' with transport '{key[1]}'")
