"""Expand ``${VAR}`` and ``${VAR:-default}`` in destination settings.

Settings that came from the environment are secrets by default (API keys, tokens):
:class:`Settings` remembers which ones, so every place that shows settings can mask them.
"""
from __future__ import annotations

import os
import re
from typing import Mapping

_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
MASK = "********"


class UnsetVariable(Exception):
    """A ``${VAR}`` with no default names a variable that is not set."""

    def __init__(self, name: str, offset: int):
        super().__init__(f"environment variable {name} is not set and has no default")
        self.name = name
        self.offset = offset


def expand(text: str, environ: Mapping[str, str] | None = None) -> tuple[str, bool]:
    """Return ``text`` with references replaced, and whether any value came from the environment."""
    environ = os.environ if environ is None else environ
    from_environment = False

    def substitute(match: re.Match) -> str:
        nonlocal from_environment
        name, default = match.group(1), match.group(2)
        if name in environ:
            from_environment = True
            return environ[name]
        if default is None:
            raise UnsetVariable(name, match.start())
        return default

    return _REFERENCE.sub(substitute, text), from_environment


class Settings(dict):
    """Destination settings after expansion; values read from the environment are never shown."""

    def __init__(self, values: dict, secret_keys: set[str]):
        super().__init__(values)
        self.secret_keys = frozenset(secret_keys)

    def masked(self) -> dict:
        return {key: (MASK if key in self.secret_keys else value) for key, value in self.items()}

    def __repr__(self) -> str:
        return f"Settings({self.masked()!r})"
