"""Group items into batches per key, and say when a batch must go.

A batch is released when it reaches its item count (``batch_size``), when one more item would
take its encoded size past ``max_bytes``, when its first item has waited ``max_age`` seconds
(checked on every :meth:`Batcher.add` and by :meth:`Batcher.flush_due`), and by
:meth:`Batcher.flush_all` at close. The batcher never sends anything and never starts a thread:
its owner sends what it releases and decides when to call ``flush_due``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable

MIN_BATCH_SIZE, MAX_BATCH_SIZE, DEFAULT_BATCH_SIZE = 2, 100, 50
DEFAULT_MAX_BYTES = 500_000   # Customer.io: "Your request must be smaller than 500kb"
DEFAULT_MAX_AGE = 1.0

COUNT, SIZE, TIME, CLOSE = "count", "size", "time", "close"


@dataclass
class Batch:
    """Items for one key, oldest first; ``size`` is the encoded size the request body will have."""

    key: Hashable
    items: list = field(default_factory=list)
    size: int = 0
    sizes: list[int] = field(default_factory=list)  # each item's, so one can be taken out again
    started: float = 0.0
    limit: int = DEFAULT_BATCH_SIZE
    reason: str | None = None  # why it was released: count, size, time or close


class Batcher:
    """Pending batches by key.

    Sizes are counted as ``envelope + sum(item sizes) + separator * (items - 1)``: with the
    defaults, the bytes of ``{"batch": [...]}`` around items joined by ``", "``.
    """

    def __init__(self, *, batch_size: int = DEFAULT_BATCH_SIZE, max_bytes: int = DEFAULT_MAX_BYTES,
                 max_age: float = DEFAULT_MAX_AGE, envelope: int = len(b'{"batch": []}'), separator: int = 2,
                 clock: Callable[[], float] = time.monotonic):
        self.batch_size = _checked_size(batch_size)
        self.max_bytes, self.max_age = max_bytes, max_age
        self.envelope, self.separator, self.clock = envelope, separator, clock
        self._pending: dict[Hashable, Batch] = {}

    def __len__(self) -> int:
        """Items waiting in all batches."""
        return sum(len(batch.items) for batch in self._pending.values())

    def add(self, key: Hashable, item, size: int, *, batch_size: int | None = None) -> list[Batch]:
        """Queue ``item`` (``size`` encoded bytes) under ``key``; return the batches released by it, in order.

        ``batch_size`` sets the key's count limit when its batch starts (e.g. a mapping's own
        setting). An item too large to share a request is released alone.
        """
        released = self.flush_due()
        batch = self._pending.get(key)
        if batch is not None and self._grown(batch, size) > self.max_bytes:
            released.append(self._release(key, SIZE))
            batch = None
        if batch is None:
            batch = self._pending[key] = Batch(key, started=self.clock(), limit=_checked_size(
                batch_size if batch_size is not None else self.batch_size), size=self.envelope - self.separator)
        batch.items.append(item)
        batch.sizes.append(size)
        batch.size += self.separator + size
        if len(batch.items) >= batch.limit:
            released.append(self._release(key, COUNT))
        elif batch.size >= self.max_bytes:
            released.append(self._release(key, SIZE))
        return released

    def flush_due(self) -> list[Batch]:
        """Release every batch whose first item has waited ``max_age`` seconds or more."""
        now = self.clock()
        due = [key for key, batch in self._pending.items() if now - batch.started >= self.max_age]
        return [self._release(key, TIME) for key in due]

    def next_due(self) -> float | None:
        """Seconds until the oldest batch is due (0 when one already is), or None when nothing waits."""
        if not self._pending:
            return None
        oldest = min(batch.started for batch in self._pending.values())
        return max(0.0, oldest + self.max_age - self.clock())

    def flush_all(self) -> list[Batch]:
        """Release everything that waits (at close)."""
        return [self._release(key, CLOSE) for key in list(self._pending)]

    def withdraw(self, key: Hashable, taken: Callable[[Any], bool]) -> list:
        """Take the items of ``key``'s waiting batch for which ``taken(item)`` is true out of it, in order;
        the batch keeps its age and the rest."""
        batch = self._pending.get(key)
        if batch is None:
            return []
        out: list[tuple[Any, int]] = []
        kept: list[tuple[Any, int]] = []
        for item, size in zip(batch.items, batch.sizes):
            (out if taken(item) else kept).append((item, size))
        if out:
            batch.items, batch.sizes = [item for item, _ in kept], [size for _, size in kept]
            batch.size = self.envelope + sum(batch.sizes) + self.separator * (len(kept) - 1)
            if not kept:
                del self._pending[key]
        return [item for item, _ in out]

    def _grown(self, batch: Batch, size: int) -> int:
        return batch.size + self.separator + size

    def _release(self, key, reason: str) -> Batch:
        batch = self._pending.pop(key)
        batch.reason = reason
        return batch


def _checked_size(value: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not MIN_BATCH_SIZE <= value <= MAX_BATCH_SIZE:
        raise ValueError(f"batch_size must be an integer from {MIN_BATCH_SIZE} to {MAX_BATCH_SIZE}, not {value!r}")
    return value
