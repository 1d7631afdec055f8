"""The spool: events acknowledged to clients, kept in SQLite until every destination has them.

One file, ``spool.db`` in the spool folder, in WAL mode. A request's events are appended by one
writer thread that gathers every request waiting at that moment into one transaction (group
commit), so concurrent requests share one commit and one sync; :meth:`Spool.append` returns
only after that commit. How durable a commit is, is chosen by ``durability``:

- ``power`` (SQLite ``synchronous=FULL``): the WAL is synced to disk at each commit, so an
  acknowledged event survives the process being killed *and* the machine losing power.
- ``process`` (``synchronous=NORMAL``): the commit reaches the operating system but is not
  synced; it survives ``kill -9`` of the server, not a power cut of the machine.

``messageId``s seen within ``dedupe_window`` seconds are kept in the same transaction; a
repeated one (a client retrying after a lost answer) is dropped at ingest. Each destination's
progress (the last event id whose calls all have an outcome) is a row of its own; events that
every destination has passed are deleted. Row ids never repeat (AUTOINCREMENT), so a progress
row always means the same events.

Thread safety: ``append`` from any thread (the writer thread owns the writing connection);
:meth:`reader` gives each delivery thread a connection of its own.
"""
from __future__ import annotations

import os
import shutil
import sqlite3
import threading
import time
from concurrent.futures import Future
from pathlib import Path

from ..events import holds_lone_surrogate
from .limits import DURABILITY, Limits  # noqa: F401 - Limits: read with the spool

DEDUPE_WINDOW = 24 * 3600.0  # Segment keeps messageIds at least 24 h (HTTP API docs)
PRUNE_EVERY = 1.0            # seconds between deletions of delivered events and expired ids
#: Bytes the WAL file is cut back to once a checkpoint has emptied it: SQLite keeps it at its largest
#: size otherwise, so a burst would hold its disk space for ever.
WAL_KEPT = 64 << 20

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY AUTOINCREMENT, event BLOB NOT NULL,
                                   received REAL NOT NULL);
CREATE TABLE IF NOT EXISTS seen (message_id TEXT PRIMARY KEY, at REAL NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS seen_at ON seen (at);
CREATE TABLE IF NOT EXISTS progress (destination TEXT PRIMARY KEY, done INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS probe (at REAL NOT NULL);
"""


class SpoolError(Exception):
    """The spool cannot be opened or written: nothing more can be acknowledged."""


class SpoolFull(SpoolError):
    """A request's events would go past ``max_events`` undelivered ones: it gets a 429, nothing of it is kept."""


def connect(path: Path, durability: str) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(f"PRAGMA synchronous={DURABILITY[durability]}")
    db.execute(f"PRAGMA journal_size_limit={WAL_KEPT}")
    return db


class Spool:
    def __init__(self, folder: str | os.PathLike, *, durability: str = "power",
                 dedupe_window: float = DEDUPE_WINDOW, max_events: int | None = None):
        if durability not in DURABILITY:
            raise ValueError(f"durability must be one of {', '.join(DURABILITY)}")
        self.folder = Path(folder)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            self.path = self.folder / "spool.db"
            self._db = connect(self.path, durability)
            self._db.executescript(_SCHEMA)
            self._file = _identity(self.path)
        except (OSError, sqlite3.Error) as error:
            raise SpoolError(f"cannot open the spool in {self.folder}: {error}") from None
        self.durability, self.dedupe_window, self.max_events = durability, dedupe_window, max_events
        row = self._db.execute("SELECT max(id), min(id) FROM events").fetchone()
        seq = self._db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'events'").fetchone()
        self.last_id = max(row[0] or 0, seq[0] if seq else 0)
        self.done: dict[str, int] = dict(self._db.execute("SELECT destination, done FROM progress").fetchall())
        self.destinations: set[str] = set()
        self.problem: str | None = None
        self.arrived = threading.Condition()
        self._pending: list[tuple[list[tuple[str, bytes]], Future]] = []
        self._wake = threading.Condition()
        self._closing = False
        self._pruned = time.monotonic()
        self._used = self._measure()
        self._writer = threading.Thread(target=self._write_loop, name="spool writer", daemon=True)
        self._writer.start()

    # -- ingest ---------------------------------------------------------------------------------

    def append(self, events: list[tuple[str, bytes]]) -> Future:
        """Append ``(messageId, event JSON)`` pairs; the future gives ``(accepted, duplicates)`` after the commit."""
        future: Future = Future()
        with self._wake:
            if self._closing:
                future.set_exception(SpoolError("the spool is closed"))
                return future
            self._pending.append((events, future))
            self._wake.notify()
        return future

    def _write_loop(self) -> None:
        while True:
            with self._wake:
                while not self._pending and not self._closing:
                    self._wake.wait(PRUNE_EVERY)
                    if not self._pending:
                        break
                work, self._pending = self._pending, []
                closing = self._closing
            if work:
                try:
                    self._commit(work)
                except Exception as error:  # noqa: BLE001 - the writer must live on: these requests get a 503
                    self._failed(work, f"cannot write the spool {self.path}: {type(error).__name__}: {error}")
            elif not closing and (self.problem is not None or self._gone() is not None):
                self._probe()
            if time.monotonic() - self._pruned >= PRUNE_EVERY:
                self._prune()
            if closing and not work:
                return

    def _commit(self, work: list[tuple[list[tuple[str, bytes]], Future]]) -> None:
        db, now = self._db, time.time()
        if (gone := self._gone()) is not None:
            self._failed(work, gone)
            return
        results: list[tuple[int, int] | SpoolError] = []
        # Checked here as well as before a request is read: requests read at the same moment all passed
        # that check, and together went far past the limit. Now at most the last one taken goes past it.
        depth = self.depth()
        try:
            db.execute("BEGIN IMMEDIATE")
            remember = "INSERT OR IGNORE INTO seen (message_id, at) VALUES (?, ?)"
            for events, _ in work:
                if self.max_events is not None and depth >= self.max_events:
                    results.append(SpoolFull(f"the spool holds {self.max_events:,} events not yet delivered "
                                             "(--max-spool-events)"))
                    continue
                db.execute("SAVEPOINT request")
                try:
                    fresh = []
                    for message_id, event in events:
                        if db.execute(remember, (_seen_key(message_id), now)).rowcount:
                            fresh.append((event, now))
                    db.executemany("INSERT INTO events (event, received) VALUES (?, ?)", fresh)
                except (ValueError, TypeError, OverflowError) as error:  # one request's data: it alone fails
                    db.execute("ROLLBACK TO request")
                    results.append(SpoolError(f"cannot spool this request's events: {error}"))
                else:
                    results.append((len(fresh), len(events) - len(fresh)))
                    depth += len(fresh)
                db.execute("RELEASE request")
            last = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'events'").fetchone()
            db.execute("COMMIT")
        except sqlite3.Error as error:
            self._failed(work, f"cannot write the spool {self.path}: {error}")
            return
        self.problem = None
        self._used = self._measure()
        with self.arrived:
            self.last_id = last[0] if last else self.last_id
            self.arrived.notify_all()
        for (_, future), result in zip(work, results):
            if isinstance(result, SpoolError):
                future.set_exception(result)
            else:
                future.set_result(result)

    def _gone(self) -> str | None:
        """Why the spool's file is not the one this writer has open (removed, or replaced), else None: events
        committed to a removed file would be acknowledged and lost at the next start."""
        try:
            same = _identity(self.path) == self._file
        except OSError:
            same = False
        return None if same else f"the spool file {self.path} was removed or replaced; restart the server"

    def _probe(self) -> None:
        """After a failed commit, with no request to try: whether the spool takes a write again (the disk
        was freed), so that /ready says so without waiting for a request a load balancer no longer sends."""
        problem = self._gone()
        if problem is None:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.execute("DELETE FROM probe")
                self._db.execute("INSERT INTO probe (at) VALUES (?)", (time.time(),))
                self._db.execute("COMMIT")
            except sqlite3.Error as error:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                problem = f"cannot write the spool {self.path}: {error}"
        self.problem = problem

    def _failed(self, work: list[tuple[list[tuple[str, bytes]], Future]], problem: str) -> None:
        """Nothing of ``work`` was kept: roll back, and answer each of its requests with ``problem``."""
        if self._db.in_transaction:
            self._db.execute("ROLLBACK")
        self.problem = problem
        for _, future in work:
            if not future.done():
                future.set_exception(SpoolError(problem))

    def _prune(self) -> None:
        """Delete events every destination has passed, and ids older than the dedupe window."""
        self._pruned = time.monotonic()
        floor = self.floor()
        try:
            self._db.execute("DELETE FROM events WHERE id <= ?", (floor,))
            self._db.execute("DELETE FROM seen WHERE at < ?", (time.time() - self.dedupe_window,))
            self._used = self._measure()
        except sqlite3.Error:
            pass  # tried again in a second; the writer keeps going

    # -- delivery -------------------------------------------------------------------------------

    def reader(self) -> sqlite3.Connection:
        """A connection of its own for a delivery thread."""
        return connect(self.path, self.durability)

    @staticmethod
    def read(db: sqlite3.Connection, after: int, limit: int) -> list[tuple[int, bytes, float]]:
        """Up to ``limit`` events after ``after``: ``(id, event JSON, received)``, in order."""
        return db.execute("SELECT id, event, received FROM events WHERE id > ? ORDER BY id LIMIT ?",
                          (after, limit)).fetchall()

    def progress(self, destination: str) -> int:
        """The last event id ``destination`` is done with (0: none yet, it starts at the oldest event kept)."""
        return self.done.get(destination, 0)

    def mark(self, db: sqlite3.Connection, destination: str, done: int) -> None:
        """Record that every call of events up to ``done`` has its outcome for ``destination``."""
        db.execute("INSERT INTO progress (destination, done) VALUES (?, ?) "
                   "ON CONFLICT (destination) DO UPDATE SET done = excluded.done", (destination, done))
        self.done[destination] = done

    def floor(self) -> int:
        """The last event id every current destination is done with."""
        destinations = self.destinations or set(self.done)
        return min((self.done.get(name, 0) for name in destinations), default=self.last_id)

    def depth(self) -> int:
        """Events kept that some destination has still to take."""
        return self.last_id - self.floor()

    def lag(self, db: sqlite3.Connection, destination: str) -> float:
        """Seconds since the oldest event ``destination`` has not taken was received (0: none waiting)."""
        row = db.execute("SELECT received FROM events WHERE id > ? ORDER BY id LIMIT 1",
                         (self.progress(destination),)).fetchone()
        return max(0.0, time.time() - row[0]) if row else 0.0

    def size(self) -> int:
        """Bytes of the spool's database in use: its pages that hold something, as of the last commit or
        deletion. Not the files' sizes: SQLite reuses free pages and the WAL rather than giving them back,
        so those stayed at their largest once deliveries caught up, and the limit refused every request
        until a restart."""
        return self._used

    def _measure(self) -> int:
        """(Writer thread, or before it starts.)"""
        page_size, pages, free = (self._db.execute(f"PRAGMA {name}").fetchone()[0]
                                  for name in ("page_size", "page_count", "freelist_count"))
        return (pages - free) * page_size

    def free(self) -> int:
        return shutil.disk_usage(self.folder).free

    def writable(self) -> bool:
        return self.problem is None and self._writer.is_alive()

    def close(self) -> None:
        with self._wake:
            self._closing = True
            self._wake.notify()
        self._writer.join()
        self._db.close()


def _identity(path: Path) -> tuple[int, int]:
    status = os.stat(path)
    return status.st_dev, status.st_ino


def _seen_key(message_id: str) -> str | bytes:
    """What a messageId is remembered by: itself, or, when it holds a lone surrogate that SQLite cannot take
    as text, its bytes (a BLOB, which never equals any text: its JSON form, a client could send as an id)."""
    return message_id.encode("utf-8", "surrogatepass") if holds_lone_surrogate(message_id) else message_id
