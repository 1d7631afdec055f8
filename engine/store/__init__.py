"""The embedded stores' SQLite file: one file per run, each destination's state in its own namespace.

    from engine.store import Catalog, connect
    db = connect("switchyard.db", Catalog("customerio", MIGRATIONS), destination="crm")
    db.execute("SELECT count(*) FROM people")        # runs against crm's people table

:mod:`engine.store.namespace` owns the registry, the prefixes, the migrations and the SQL
rewriting. It knows no catalog's semantics; :mod:`engine.workspace` (Customer.io) builds on it.
"""
from __future__ import annotations

from .namespace import (
                        BUSY_TIMEOUT,
                        FILE_FORMAT,
                        Catalog,
                        Connection,
                        DestinationError,
                        Namespace,
                        StoreError,
                        connect,
                        destinations,
                        rewrite,
                        statements,
                        transaction,
)

__all__ = ["BUSY_TIMEOUT", "FILE_FORMAT", "Catalog", "Connection", "DestinationError", "Namespace", "StoreError",
           "connect", "destinations", "rewrite", "statements",
           "transaction"]
