"""The spool's settings a user picks: how durable a commit is, and when the spool refuses more.

Kept apart with no imports so that the command line reads its defaults without loading the server.
"""
from __future__ import annotations

from dataclasses import dataclass

#: --durability -> SQLite's ``synchronous`` setting in WAL mode (see :mod:`engine.serve.spool`).
DURABILITY = {"power": "FULL", "process": "NORMAL"}


@dataclass(frozen=True)
class Limits:
    """When the spool refuses more (429 with ``Retry-After``), and how long clients wait before retrying."""

    max_events: int = 1_000_000        # events some destination has still to take
    max_bytes: int = 2 << 30           # the spool's files on disk
    min_free_bytes: int = 256 << 20    # free disk under the spool folder
    retry_after: int = 5               # seconds


#: Seconds a request head (its request line and headers) may take to come whole (``--head-timeout``).
HEAD_TIMEOUT = 10.0
#: Seconds a request body may take to come whole after its head (``--body-timeout``): 500 KB, the most
#: a batch may be, at 10 KB a second.
BODY_TIMEOUT = 60.0
#: Seconds a connection's answers may fill the server's buffer for it without draining (``--send-timeout``).
SEND_TIMEOUT = 30.0
