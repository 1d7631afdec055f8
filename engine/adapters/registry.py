"""Find the adapter of a destination: its catalog names a factory per transport.

No transport is known here by name: ``_destination.json`` of each catalog (bundled or from a
plugin, :mod:`engine.catalog`) says ``"x-adapters": {"http": "package.module:Factory", ...}``,
and the factory is imported the first time a run needs it, so a dry run or a lint imports no
HTTP client or database.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

from .contract import Adapter, AdapterContext, Prepare, SetupError, factory

if TYPE_CHECKING:
    from ..ruleset import Destination


def open_adapter(destination: Destination, *, store: str | None = None,
                 options: Mapping[str, Any] | None = None, process: bool = False, builds_here: bool = True) -> Adapter:
    """The adapter for ``destination``'s catalog and transport, ready to deliver.

    ``store`` is the embedded store file for embedded transports (``run --workspace PATH``).
    With ``process``, the adapter runs in a process of its own (:mod:`engine.adapters.remote`),
    after it was opened and closed here once, so that set-up errors still come before any event;
    ``builds_here`` False: that process builds every request itself (see RemoteAdapter).
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

    return RemoteAdapter(context, spec, builds_here=builds_here)


def preparer(destination: Destination) -> Prepare | None:
    """The ``prepare`` of ``destination``'s adapter (see :mod:`engine.adapters.contract`), or None."""
    prepare = _declared(destination, "prepare")
    return prepare if callable(prepare) else None


def gathers(destination: Destination) -> bool:
    """Whether ``destination``'s adapter names its ``gather`` (an embedded store: one transaction a delivery)."""
    gather = _declared(destination, "gather")
    return isinstance(gather, int) and gather > 0


def _declared(destination: Destination, name: str) -> Any:
    """An attribute of ``destination``'s adapter factory, or None (the run's open_adapter says what is wrong)."""
    catalog, transport = destination.catalog, destination.transport
    spec = catalog.adapters.get(transport) if transport is not None else None
    if spec is None:
        return None
    try:
        return getattr(factory(catalog.name, transport or "", spec), name, None)
    except SetupError:
        return None
