"""``transport: file``: append each call as one NDJSON line, for local runs and audits.

The file is opened (and its folder made) when the adapter opens, so an unwritable path stops
the run before the first event. Each ``deliver`` (a batch of calls) ends with a flush and an
fsync, so a call reported as delivered is on disk even if the process is killed right after.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from ..deadletter import sync
from ..delivery.outcome import DELIVERED, FAILED, Outcome
from ..events import call_line
from ..model import ActionCall
from .contract import AdapterContext, SetupError


class FileAdapter:
    def __init__(self, context: AdapterContext):
        self.path = Path(context.settings.get("path") or f"out/{context.destination}.ndjson")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._stream = self.path.open("ab")
        except OSError as error:
            raise SetupError(f"cannot write to {self.path}: {error.strerror or error}") from None

    def deliver(self, calls: Sequence[ActionCall]) -> list[Outcome]:
        try:
            self._stream.write(b"".join(call_line(call) for call in calls))
            self._stream.flush()
            sync(self._stream.fileno())
        except OSError as error:
            reason = f"cannot write to {self.path}: {error.strerror or error}"
            return [Outcome(FAILED, 1, message=reason, call=call) for call in calls]
        return [Outcome(DELIVERED, 1, call=call) for call in calls]

    def poll(self) -> list[Outcome]:
        return []

    def close(self) -> list[Outcome]:
        try:
            self._stream.close()
        except OSError:
            pass  # every deliver already flushed and synced, or reported its own failure
        return []
