"""Package attributes imported on first use, so that a command loads only the modules it needs.

``switchyard run --dry-run`` and ``lint`` never touch the workspace or the HTTP client; importing
them at start-up would cost every run tens of milliseconds.
"""
from __future__ import annotations

from importlib import import_module
from typing import Any, Callable


def attributes(namespace: dict[str, Any], exports: dict[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` (PEP 562): ``name`` is the attribute of that name of module ``exports[name]``.

    Each value is kept in ``namespace`` (the package's globals) once imported.
    """
    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {namespace['__name__']!r} has no attribute {name!r}")
        value = namespace[name] = getattr(import_module(exports[name]), name)
        return value
    return __getattr__
