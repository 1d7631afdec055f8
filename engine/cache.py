"""A private per-user directory for what every start would otherwise build again.

Building the trigger grammar's parse tables and compiling the rule-file check take about a
third of a start-up; both depend only on files that ship with Switchyard and on library
versions. Each entry is named by a hash of everything it was built from, so a changed
grammar, schema or library never reads a stale entry, and a damaged one is built again.

Entries are pickles or code objects, which run code when read, so a directory is used only
when it belongs to this user and nobody else can write to it, and an entry only when it is a
regular file (not a link) of this user's that nobody else can write. The place is
``$SWITCHYARD_CACHE_DIR``, else ``$XDG_CACHE_HOME/switchyard``, else ``~/.cache/switchyard``;
``SWITCHYARD_CACHE_DIR=`` (empty) turns the cache off. Failing to read or write is never an
error: the caller builds what it needs, as it would without a cache.
"""
from __future__ import annotations

import hashlib
import os
import stat
import sys
import tempfile
from importlib.util import MAGIC_NUMBER
from pathlib import Path

ENVIRONMENT = "SWITCHYARD_CACHE_DIR"


def key(*parts: str | bytes) -> str:
    """A name for what ``parts`` (the inputs of a build, versions included) build, under this Python.

    The Python is named by its version, implementation and bytecode magic number: code objects and
    pickles of one are not for another, and pre-releases share a version number with the release.
    """
    digest = hashlib.sha256(repr((sys.version_info, sys.implementation.cache_tag)).encode() + MAGIC_NUMBER)
    for part in parts:
        data = part.encode("utf-8") if isinstance(part, str) else part
        digest.update(len(data).to_bytes(8, "big") + data)
    return digest.hexdigest()[:32]


def read(name: str, entry_key: str) -> bytes | None:
    """The bytes stored for ``name`` under ``entry_key``, or None.

    The entry itself must be a regular file of this user's that nobody else can write, checked on
    the open file: the directory's check alone could be outrun by swapping a directory above it.
    """
    directory = _directory(create=False)
    if directory is None:
        return None
    try:
        descriptor = os.open(directory / f"{name}-{entry_key}", os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return None
    with os.fdopen(descriptor, "rb") as stream:
        try:
            if not _private(os.fstat(descriptor), stat.S_ISREG):
                return None
            return stream.read()
        except OSError:
            return None


def write(name: str, entry_key: str, data: bytes) -> None:
    """Store ``data``; a reader sees the whole entry or none (it is renamed into place)."""
    directory = _directory(create=True)
    if directory is None:
        return
    try:
        descriptor, temporary = tempfile.mkstemp(dir=directory, prefix=f".{name}-")
        try:
            with os.fdopen(descriptor, "wb") as stream:
                stream.write(data)
            os.replace(temporary, directory / f"{name}-{entry_key}")
        except BaseException:
            os.unlink(temporary)
            raise
    except OSError:
        pass


def _directory(create: bool) -> Path | None:
    configured = os.environ.get(ENVIRONMENT)
    if configured == "":
        return None
    if configured:
        directory = Path(configured)
    else:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        directory = Path(base) / "switchyard"
    try:
        if create:
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        status = directory.stat()
    except OSError:
        return None
    return directory if _private(status, stat.S_ISDIR) else None


def _private(status: os.stat_result, kind) -> bool:
    """Of this kind, this user's, and writable by nobody else."""
    owned = not hasattr(os, "getuid") or status.st_uid == os.getuid()
    return kind(status.st_mode) and owned and not status.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
