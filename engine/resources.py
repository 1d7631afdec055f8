"""Locate the files that ship with Switchyard: the grammar, the schemas and the default rules.

An installed wheel carries them in ``engine/_data``; a source checkout (including an
editable install) has them at the top level of the repository.
"""
from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def resource(name: str) -> Path:
    """Return the directory ``name`` (``grammar``, ``schemas`` or ``rules``)."""
    bundled = _PACKAGE / "_data" / name
    if bundled.is_dir():
        return bundled
    return _PACKAGE.parent / name
