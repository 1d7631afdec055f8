"""How many calls an adapter is handed at a time, so that a progress journal stays close behind.

A lane (:mod:`engine.pipeline`) and a delivery process (:mod:`engine.adapters.remote`) hand their
adapter calls a slice at a time. An adapter that names its ``gather`` (an embedded store: one
transaction) always gets that many: its transactions are what it costs (each commit writes every page
it touched), and it applies a repeat once. Others, while a journal is kept, get as many as they settle
in :data:`JOURNAL_SLICE` seconds, but at least :data:`JOURNAL_GATHER`: outcomes are booked, and the
journal moved on, that often, so a crash sends at most that much twice. A webhook stays near 64 calls.
"""
from __future__ import annotations

#: At most this many calls are handed to an adapter in one ``deliver``, unless it names its own number
#: (``gather``, see :mod:`engine.adapters.contract`).
GATHER = 4096
JOURNAL_GATHER = 64
JOURNAL_SLICE = 0.05


def next_slice(current: int, seconds: float, count: int) -> int:
    """The slice after one of ``count`` calls that took ``seconds``: what settles in :data:`JOURNAL_SLICE`.

    It at most doubles from ``current``: a delivery that returned at once (a process lane with room
    in its pipe, a batch that only queued) says little about the next one.
    """
    pace = seconds / count if count else 0.0
    return max(JOURNAL_GATHER, min(GATHER, 2 * current, int(JOURNAL_SLICE / max(pace, 1e-9))))
