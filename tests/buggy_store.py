"""An embedded store with a bug, for tests of what a lane does when ``deliver`` raises: it applies a slice of
calls in one SQLite transaction and raises (``KeyError``, rolling the transaction back) when a call's payload
has no ``"n"``. Each delivery is a line in the store's ``deliveries`` table."""
from __future__ import annotations

import sqlite3
from typing import Sequence

from engine.adapters.contract import AdapterContext
from engine.delivery.outcome import DELIVERED, Outcome
from engine.model import ActionCall


class BuggyStore:
    gather = 4096

    def __init__(self, context: AdapterContext):
        self.db = sqlite3.connect(context.settings["path"], isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA synchronous=OFF")  # a test's store: a commit a call must not cost an fsync
        self.db.execute("CREATE TABLE IF NOT EXISTS applied (message_id TEXT, n INTEGER)")
        self.db.execute("CREATE TABLE IF NOT EXISTS deliveries (calls INTEGER, raised INTEGER)")

    def deliver(self, calls: Sequence[ActionCall]) -> list[Outcome]:
        try:
            with self.db:
                self.db.execute("BEGIN")
                for call in calls:
                    self.db.execute("INSERT INTO applied VALUES (?, ?)", (call.message_id, call.payload["n"]))
        except KeyError:
            self.db.execute("INSERT INTO deliveries VALUES (?, 1)", (len(calls),))
            raise
        self.db.execute("INSERT INTO deliveries VALUES (?, 0)", (len(calls),))
        return [Outcome(DELIVERED, 1, call=call) for call in calls]

    def poll(self) -> list[Outcome]:
        return []

    def close(self) -> list[Outcome]:
        self.db.close()
        return []
