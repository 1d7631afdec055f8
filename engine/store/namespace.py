"""Several destinations' embedded state in one SQLite file, each in its own tables.

A file holds a registry (``switchyard_namespaces``): for each destination, its catalog, the
prefix of its tables and its schema version. A catalog (:class:`Catalog`) is a list of
append-only migrations written with plain table names (``people``); opening a destination's
namespace runs the migrations it lacks with the names prefixed (``crm__people``), and then
every statement given to the :class:`Connection` has its table, index and trigger names
rewritten the same way, once per statement text. Code above this module writes SQL as if the
catalog were alone in the file.

The rewriting is by position, not by a full SQL parse: a catalog name is rewritten where a
table or index name stands (after ``FROM``, ``JOIN``, ``INTO``, ``UPDATE``, ``TABLE``,
``INDEX``, ``TRIGGER``, ``VIEW``, ``ON``, ``REFERENCES``, ``EXISTS``) or where it qualifies a
column (``people.pk``); never inside string literals or as an alias (``AS events``). Write
joins with ``JOIN``, not a comma.

Files from before the registry (``PRAGMA user_version`` 1 to 999) hold one customerio
workspace without prefix: it is registered as the file's unnamed namespace, and the first
destination that opens the file by name adopts it. A file opened without a destination name
uses its only namespace of the catalog; a new file gets an unnamed one, adopted the same way.
A connection opened to read (``read_only``, as the inspection commands open one) writes nothing:
it reads such a file as it is, and a namespace at an older schema version from a migrated copy
in a temporary database.
"""
from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

#: ``PRAGMA user_version`` of a file with a namespace registry. Earlier files used 1 to 999 for the
#: schema version of their one workspace, so an earlier switchyard refuses this file ("upgrade").
FILE_FORMAT = 1000
REGISTRY = "switchyard_namespaces"
#: The catalog whose state files from before the registry hold, without prefix.
LEGACY_CATALOG = "customerio"
#: How long a connection waits for another process's write lock before giving up, in seconds.
BUSY_TIMEOUT = 30.0

_CREATED = re.compile(r"\bCREATE\s+(?:UNIQUE\s+)?(?:TABLE|INDEX|TRIGGER|VIEW)\s+(?:IF\s+NOT\s+EXISTS\s+)?(\w+)",
                      re.IGNORECASE)
_TOKENS = re.compile(r"""'(?:[^']|'')*'|"(?:[^"]|"")*"|`[^`]*`|\[[^\]]*\]|--[^\n]*|/\*.*?\*/"""
                     r"|[A-Za-z_][A-Za-z0-9_$]*|\s+|.", re.DOTALL)
_NAME_FOLLOWS = frozenset({"FROM", "JOIN", "INTO", "UPDATE", "TABLE", "INDEX", "TRIGGER", "VIEW", "ON",
                           "REFERENCES", "EXISTS"})
_CACHED_STATEMENTS = 512  # sqlite3's prepared statements per connection (default 128)
_CHECKPOINT_PAGES = 4000
_MAX_REWRITTEN = 4096     # statement texts remembered per connection


class StoreError(Exception):
    """The file cannot be used: unreadable, from a newer switchyard, locked too long."""


class DestinationError(StoreError):
    """No destination was named and the file holds several, or the one named is not in the file."""


@dataclass(frozen=True)
class Catalog:
    """A catalog's embedded schema: its name and its migrations, one script per schema version.

    Never edit a released migration: add one. Each statement ends with ``;`` (a trigger's body
    may hold more).
    """

    name: str
    migrations: tuple[str, ...]

    @property
    def version(self) -> int:
        return len(self.migrations)

    @cached_property
    def names(self) -> frozenset[str]:
        """The table, index and trigger names the migrations create, in lower case."""
        return frozenset(name.lower() for script in self.migrations for name in _CREATED.findall(script))


@dataclass(frozen=True)
class Namespace:
    """One destination's tables in the file; ``destination`` is "" until a destination adopts them."""

    destination: str
    catalog: str
    prefix: str
    schema_version: int


class Connection(sqlite3.Connection):
    """A connection whose statements, written with a catalog's plain names, run against one namespace's tables.

    Only ``execute``, ``executemany`` and ``executescript`` rewrite; a cursor's own ``execute``
    does not. Like any sqlite3 connection, use it from one thread at a time.
    """

    namespace: Namespace | None = None
    _prefix = ""
    _names: frozenset[str] = frozenset()

    def use(self, namespace: Namespace, catalog: Catalog) -> None:
        """Run later statements against ``namespace``'s tables."""
        self.namespace, self._prefix, self._names = namespace, namespace.prefix, catalog.names
        self._rewritten: dict[str, str] = {}

    def table(self, name: str) -> str:
        """The name a catalog table has in the file (for the rare literal that names it, as in sqlite_sequence)."""
        return self._prefix + name

    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
        if self._prefix:
            sql = self._rewritten.get(sql) or self._rewrite(sql)
        return sqlite3.Connection.execute(self, sql, parameters)

    def executemany(self, sql: str, parameters: Any, /) -> sqlite3.Cursor:
        if self._prefix:
            sql = self._rewritten.get(sql) or self._rewrite(sql)
        return sqlite3.Connection.executemany(self, sql, parameters)

    def executescript(self, sql_script: str, /) -> sqlite3.Cursor:
        return sqlite3.Connection.executescript(self, rewrite(sql_script, self._prefix, self._names))

    def _rewrite(self, sql: str) -> str:
        if len(self._rewritten) >= _MAX_REWRITTEN:  # statements built with literals in them: do not grow forever
            self._rewritten.clear()
        self._rewritten[sql] = rewritten = rewrite(sql, self._prefix, self._names)
        return rewritten


def rewrite(sql: str, prefix: str, names: frozenset[str]) -> str:
    """``sql`` with each of ``names`` that stands as a table, index or trigger name given ``prefix``."""
    if not prefix:
        return sql
    tokens = _TOKENS.findall(sql)
    significant = [index for index, token in enumerate(tokens)
                   if not token.isspace() and not token.startswith(("--", "/*"))]
    previous = ""
    for position, index in enumerate(significant):
        token = tokens[index]
        quoted = token[:1] in ('"', "`", "[")
        name = token[1:-1] if quoted else token
        following = tokens[significant[position + 1]] if position + 1 < len(significant) else ""
        if (name.lower() in names and (quoted or name[:1].isalpha() or name[:1] == "_")
                and (previous in _NAME_FOLLOWS or following == ".")):
            tokens[index] = f'"{prefix}{name}"' if quoted else prefix + name
        previous = token.upper() if not quoted else ""
    return "".join(tokens)


def statements(script: str) -> list[str]:
    """The statements of a migration script, so that each runs inside one transaction.

    (``executescript`` would commit first.) A ``;`` ends a statement only where SQLite says the
    statement is complete, so a trigger's body stays whole.
    """
    found, pending = [], ""
    for part in script.split(";"):
        pending += part + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \n;"):
                found.append(pending.strip())
            pending = ""
    return found


# -- opening -----------------------------------------------------------------------------------------

def connect(path: Any, catalog: Catalog, *, destination: str | None = None, create: bool = True,
            timeout: float = BUSY_TIMEOUT, read_only: bool = False) -> Connection:
    """An open connection to ``destination``'s namespace of ``catalog`` in the file at ``path``, migrated.

    ``destination`` None: the file's only namespace of the catalog (an unnamed one is created
    when it has none). A name: its namespace; else the unnamed one, adopted; else a new one.
    ``create=False`` opens only what exists: a missing file, or a destination the file does
    not hold, is an error instead of something new. In WAL mode with ``synchronous=NORMAL``:
    a committed transaction survives the process being killed; a power cut may lose the last ones.

    ``read_only`` opens only what exists, to read, and writes nothing to the file: a file from
    before the registry is not registered or adopted (an earlier switchyard can still open it),
    and a namespace at an older schema version is copied into a temporary database and migrated there.
    """
    if (read_only or not create) and not Path(path).is_file():
        raise StoreError(f"no workspace at {path}")
    if read_only:
        return _connect_to_read(path, catalog, destination, timeout)
    try:
        # isolation_level=None: no implicit transactions; each write says where it begins.
        # check_same_thread=False: a run opens its adapters before the first event and hands each to
        # its delivery lane's thread; a connection is still used by one thread at a time.
        db = sqlite3.connect(path, timeout=timeout, isolation_level=None, factory=Connection,
                             cached_statements=_CACHED_STATEMENTS, check_same_thread=False)
    except sqlite3.Error as error:
        raise StoreError(f"cannot open workspace {path}: {error}") from None
    assert isinstance(db, Connection)
    try:
        db.row_factory = sqlite3.Row
        _use_wal(db, timeout)
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA cache_size=-65536")
        # Copy the WAL into the file (and fsync it) every 16 MB rather than 4: at a few hundred
        # calls a transaction, the default's fsyncs cost a quarter of the time. Trim it after.
        db.execute(f"PRAGMA wal_autocheckpoint={_CHECKPOINT_PAGES:d}")
        db.execute(f"PRAGMA journal_size_limit={4 * _CHECKPOINT_PAGES * 4096:d}")
        _open_namespace(db, str(path), catalog, destination, create)
    except sqlite3.DatabaseError as error:
        db.close()
        raise StoreError(f"cannot open workspace {path}: {error}") from None
    except StoreError:
        db.close()
        raise
    return db


def destinations(path: Any, catalog: str | None = None) -> list[str]:
    """The destination names the file at ``path`` holds (of ``catalog`` only, if given), sorted; [] if none."""
    if not Path(path).is_file():
        return []
    try:
        db = sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True)
        try:
            return sorted(row.destination for row in _registry(db)
                          if row.destination and catalog in (None, row.catalog))
        finally:
            db.close()
    except sqlite3.Error as error:
        raise StoreError(f"cannot read {path}: {error}") from None


def _use_wal(db: sqlite3.Connection, timeout: float) -> None:
    """Switch to WAL mode, retrying while another process holds the lock.

    Turning a new database to WAL needs an exclusive lock, and SQLite answers "database is
    locked" at once instead of waiting when two processes create the same file together.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
        time.sleep(0.01)


def _registry(db: sqlite3.Connection) -> list[Namespace]:
    """The registry's rows; [] for a file without one."""
    if db.execute("PRAGMA user_version").fetchone()[0] != FILE_FORMAT:
        return []
    return [Namespace(*row) for row in db.execute(
        f"SELECT destination, catalog, prefix, schema_version FROM {REGISTRY} ORDER BY destination")]


def _format(db: sqlite3.Connection) -> int:
    """The file's ``PRAGMA user_version``: 0 new, 1 to 999 a workspace from before the registry, or
    :data:`FILE_FORMAT`; a newer format is refused."""
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version > FILE_FORMAT:
        raise StoreError(f"the file has format {version}, newer than this switchyard's {FILE_FORMAT}; "
                         "upgrade switchyard")
    return version


def _connect_to_read(path: Any, catalog: Catalog, destination: str | None, timeout: float) -> Connection:
    """A connection to the namespace :func:`connect` would open that never writes the file (``mode=ro``)."""
    try:
        db = sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True, timeout=timeout,
                             isolation_level=None, factory=Connection, cached_statements=_CACHED_STATEMENTS,
                             check_same_thread=False)
    except sqlite3.Error as error:
        raise StoreError(f"cannot open workspace {path}: {error}") from None
    assert isinstance(db, Connection)
    try:
        db.row_factory = sqlite3.Row
        version = _format(db)
        # A file from before the registry, read as _set_up would register it.
        rows = (_registry(db) if version == FILE_FORMAT
                else [Namespace("", LEGACY_CATALOG, "", version)] if version else [])
        namespace = _find(rows, str(path), catalog, destination)
        if namespace is None:
            raise DestinationError(_missing(rows, str(path), catalog, destination))
        _check_version(namespace, catalog)
        if namespace.schema_version < catalog.version:
            db = _migrated_copy(db, namespace, catalog)
            namespace = Namespace(namespace.destination, catalog.name, namespace.prefix, catalog.version)
        db.use(namespace, catalog)
    except sqlite3.DatabaseError as error:
        db.close()
        raise StoreError(f"cannot open workspace {path}: {error}") from None
    except StoreError:
        db.close()
        raise
    return db


def _migrated_copy(db: Connection, namespace: Namespace, catalog: Catalog) -> Connection:
    """The file ``db`` reads, copied (``db`` closed) with ``namespace`` migrated there. The copy is SQLite's
    private temporary database (the empty name): it spills to a temporary file past its cache, so a large
    workspace is not held in memory, and it is gone when the connection closes."""
    memory = sqlite3.connect("", isolation_level=None, factory=Connection, check_same_thread=False)
    assert isinstance(memory, Connection)
    try:
        db.backup(memory)
    finally:
        db.close()
    memory.row_factory = sqlite3.Row
    _migrate(memory, namespace, catalog)
    return memory


def _check_version(namespace: Namespace, catalog: Catalog) -> None:
    if namespace.schema_version > catalog.version:
        raise StoreError(f"the workspace has schema version {namespace.schema_version}; this switchyard "
                         f"knows versions up to {catalog.version}; upgrade switchyard")


def _migrate(db: Connection, namespace: Namespace, catalog: Catalog) -> None:
    """Run the migrations ``namespace`` lacks, in the transaction the caller holds, if any."""
    db.use(namespace, catalog)
    for script in catalog.migrations[namespace.schema_version:]:
        for statement in statements(script):
            db.execute(statement)


def _open_namespace(db: Connection, path: str, catalog: Catalog, destination: str | None, create: bool) -> None:
    namespace = _find(_registry(db), path, catalog, destination)
    if namespace is None or namespace.schema_version != catalog.version:
        with _write(db):  # again under the write lock: another process may have set up the file meanwhile
            _set_up(db)
            rows = _registry(db)
            namespace = _find(rows, path, catalog, destination)
            if namespace is None:
                if not create:
                    raise DestinationError(_missing(rows, path, catalog, destination))
                namespace = _claim(db, rows, catalog, destination or "")
            _check_version(namespace, catalog)
            _migrate(db, namespace, catalog)
            db.execute(f"UPDATE {REGISTRY} SET schema_version = ? WHERE prefix = ?",
                       (catalog.version, namespace.prefix))
            namespace = Namespace(namespace.destination, catalog.name, namespace.prefix, catalog.version)
    db.use(namespace, catalog)


def _set_up(db: sqlite3.Connection) -> None:
    """Give the file a registry; a file from before the registry has its workspace registered, unnamed."""
    version = _format(db)
    if version == FILE_FORMAT:
        return
    db.execute(f"CREATE TABLE {REGISTRY} (destination TEXT PRIMARY KEY, catalog TEXT NOT NULL, "
               "prefix TEXT NOT NULL UNIQUE, schema_version INTEGER NOT NULL)")
    if version:
        db.execute(f"INSERT INTO {REGISTRY} VALUES ('', ?, '', ?)", (LEGACY_CATALOG, version))
    db.execute(f"PRAGMA user_version = {FILE_FORMAT:d}")


def _find(rows: Sequence[Namespace], path: str, catalog: Catalog, destination: str | None) -> Namespace | None:
    """The namespace ``destination`` already has (None: the catalog's only one), or None."""
    mine = [row for row in rows if row.catalog == catalog.name]
    if destination is None:
        if len(mine) > 1:
            raise DestinationError(f"{path} holds the {catalog.name} state of several destinations "
                                   f"({_names(mine)}); name one")
        return mine[0] if mine else None
    named = next((row for row in rows if row.destination == destination), None)
    if named is not None and named.catalog != catalog.name:
        raise DestinationError(f"destination '{destination}' in {path} holds {named.catalog} state, "
                               f"not {catalog.name}")
    return named


def _missing(rows: Sequence[Namespace], path: str, catalog: Catalog, destination: str | None) -> str:
    mine = [row for row in rows if row.catalog == catalog.name]
    if destination is None or not mine:
        return f"{path} holds no {catalog.name} state" + (f" of destination '{destination}'" if destination else "")
    return f"{path} holds no destination '{destination}'; its {catalog.name} destinations: {_names(mine)}"


def _names(rows: Sequence[Namespace]) -> str:
    return ", ".join(row.destination or "one not named yet (give no destination)" for row in rows)


def _claim(db: sqlite3.Connection, rows: Sequence[Namespace], catalog: Catalog, destination: str) -> Namespace:
    """The catalog's unnamed namespace adopted by ``destination``, or a new, empty one (schema version 0)."""
    unnamed = next((row for row in rows if row.catalog == catalog.name and not row.destination), None)
    if unnamed is not None and destination:
        db.execute(f"UPDATE {REGISTRY} SET destination = ? WHERE prefix = ?", (destination, unnamed.prefix))
        return Namespace(destination, catalog.name, unnamed.prefix, unnamed.schema_version)
    taken = {row.prefix for row in rows}
    existing = [row[0].lower() for row in db.execute("SELECT name FROM sqlite_master")]
    if not destination and catalog.name == LEGACY_CATALOG and "" not in taken and not catalog.names & set(existing):
        prefix = ""  # unprefixed, as files before the registry had it
    else:
        base = re.sub(r"[^a-z0-9]+", "_", (destination or catalog.name).lower()).strip("_") or "destination"
        candidates = (base + ("" if n == 1 else f"_{n}") + "__" for n in range(1, 1_000_000))
        prefix = next(candidate for candidate in candidates
                      if candidate not in taken and not any(name.startswith(candidate) for name in existing))
    db.execute(f"INSERT INTO {REGISTRY} VALUES (?, ?, ?, 0)", (destination, catalog.name, prefix))
    return Namespace(destination, catalog.name, prefix, 0)


@contextmanager
def _write(db: sqlite3.Connection) -> Iterator[None]:
    try:
        db.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as error:
        raise StoreError(f"cannot start a write transaction: {error}") from None
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


@contextmanager
def transaction(db: sqlite3.Connection, error: type[Exception] = StoreError) -> Iterator[sqlite3.Connection]:
    """One write transaction (``BEGIN IMMEDIATE``): committed when the block ends, rolled back if it raises.

    A failure of the database itself (a full disk, an I/O error) is raised as ``error``, the store's
    own exception, since it is not the caller's input that was wrong.
    """
    try:
        db.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as failure:
        raise error(f"cannot start a write transaction: {failure}") from None
    try:
        yield db
    except sqlite3.OperationalError as failure:
        db.execute("ROLLBACK")
        raise error(f"write failed: {failure}") from failure
    except BaseException:
        db.execute("ROLLBACK")
        raise
    try:
        db.execute("COMMIT")
    except sqlite3.OperationalError as failure:
        db.execute("ROLLBACK")
        raise error(f"cannot commit: {failure}") from None
