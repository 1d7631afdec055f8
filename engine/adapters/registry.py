"""Find the adapter of a destination: its catalog names a factory per transport.

No transport is known here by name: ``_destination.json`` of each catalog (bundled or from a
plugin, :mod:`engine.catalog`) says ``"x-adapters": {"http": "package.module:Factory", ...}``,
and the factory is imported the first time a run needs it, so a dry run or a lint imports no
HTTP client or database.
"""
from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any, Mapping

from .contract import Adapter, AdapterContext, AdapterFactory, SetupError

if TYPE_CHECKING:
    from ..ruleset import Destination


def factory(catalog: str, transport: str, spec: str) -> AdapterFactory:
    """The factory ``spec`` (``"module:attribute"``) names, or a SetupError saying what is wrong."""
    module_name, _, attribute = spec.partition(":")
    try:
        found = getattr(import_module(module_name), attribute) if attribute else None
    except (ImportError, AttributeError) as error:
        raise SetupError(f"catalog '{catalog}': the adapter of transport '{transport}' ({spec}) cannot be "
                         f"imported: {error}") from None
    if not callable(found):
        raise SetupError(f"catalog '{catalog}': the adapter of transport '{transport}' ({spec}) is not callable")
    return found  # type: ignore[no-any-return]


def open_adapter(destination: Destination, *, store: str | None = None,
                 options: Mapping[str, Any] | None = None, process: bool = False) -> Adapter:
    """The adapter for ``destination``'s catalog and transport, ready to deliver.

    ``store`` is the embedded store file for embedded transports (``run --workspace PATH``).
    With ``process``, the adapter runs in a process of its own (:mod:`engine.adapters.remote`),
    after it was opened and closed here once, so that set-up errors still come before any event.
    Raises SetupError when the destination cannot deliver at all.
    """
    catalog, transport = destination.catalog, destination.transport
    if transport is None:
        raise SetupError(f"destination '{destination.name}': catalog '{catalog.name}' has no default transport; "
                         f"set `transport` ({', '.join(catalog.transports)})")
    spec = catalog.adapters.get(transport)
    if spec is None:
        raise SetupError(f"destination '{destination.name}': catalog '{catalog.name}' has no adapter for "
                         f"transport '{transport}'")
    context = AdapterContext(destination.name, catalog.name, transport, destination.settings, store,
                             dict(options or {}))
    try:
        adapter = factory(catalog.name, transport, spec)(context)
    except SetupError as error:
        message = str(error)
        if not message.startswith("destination '"):
            message = f"destination '{destination.name}': {message}"
        raise SetupError(message) from None
    if not process:
        return adapter
    adapter.close()
    from .remote import RemoteAdapter

    return RemoteAdapter(context, spec)
