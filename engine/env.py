"""Expand ``${VAR}`` and ``${VAR:-default}`` in destination settings.

Settings that came from the environment are secrets by default (API keys, tokens):
:class:`Settings` remembers which ones, so every place that shows settings can mask them.
"""
from __future__ import annotations

import os
import re
from typing import Mapping

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
MASK = "********"


class UnsetVariable(Exception):
    """A ``${VAR}`` with no default names a variable that is not set."""

    def __init__(self, name: str, offset: int):
        super().__init__(f"environment variable {name} is not set and has no default")
        self.name = name
        self.offset = offset


def expand(text: str, environ: Mapping[str, str] | None = None) -> tuple[str, bool]:
    """Return ``text`` with references replaced, and whether any value came from the environment.

    A default may hold references of its own, as in the shell: ``${OUT:-out/${NAME:-x}.ndjson}``.
    It is expanded only when used, so an unset variable in an unused default is no error. A
    ``${`` that does not close is kept as written.
    """
    return _expand(text, 0, os.environ if environ is None else environ)


def _expand(text: str, base: int, environ: Mapping[str, str]) -> tuple[str, bool]:
    parts: list[str] = []
    from_environment = False
    position = 0
    while (start := text.find("${", position)) != -1:
        name = _NAME.match(text, start + 2)
        after = name.end() if name else start + 2
        if name and text.startswith("}", after):
            default, end = None, after + 1
        elif name and text.startswith(":-", after) and (close := _closing(text, after + 2)) is not None:
            default, end = text[after + 2:close], close + 1
        else:
            parts.append(text[position:after])
            position = after
            continue
        parts.append(text[position:start])
        if name.group() in environ:
            from_environment = True
            parts.append(environ[name.group()])
        elif default is None:
            raise UnsetVariable(name.group(), base + start)
        else:
            value, inner = _expand(default, base + after + 2, environ)
            from_environment |= inner
            parts.append(value)
        position = end
    parts.append(text[position:])
    return "".join(parts), from_environment


def _closing(text: str, position: int) -> int | None:
    """Where the ``}`` that closes a default starting at ``position`` is, counting nested ``${``."""
    depth = 0
    while position < len(text):
        if text.startswith("${", position):
            depth += 1
            position += 2
            continue
        if text[position] == "}":
            if not depth:
                return position
            depth -= 1
        position += 1
    return None


class Settings(dict):
    """Destination settings after expansion; values read from the environment are never shown."""

    def __init__(self, values: dict, secret_keys: set[str]):
        super().__init__(values)
        self.secret_keys = frozenset(secret_keys)

    def masked(self) -> dict:
        return {key: (MASK if key in self.secret_keys else value) for key, value in self.items()}

    def __repr__(self) -> str:
        return f"Settings({self.masked()!r})"
