"""Python's garbage collector tuned for a stream of events, in whichever process handles it."""
from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def for_streams() -> Iterator[None]:
    """Within: what is loaded so far (rules, an adapter) is frozen, never walked again, and collections
    come ten times less often, since each event's and each call's objects die young and hold no cycles.

    Measured on 200,000 events into the workspace: about 15% of the run was collections walking the
    rule set and finding nothing; in the store's delivery process, 2 to 4% of the run (paired runs).
    The usual thresholds come back at the end.
    """
    thresholds = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(thresholds[0] * 10, thresholds[1], thresholds[2])
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()
