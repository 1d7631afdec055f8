"""A stand-in embedded store for tests of delivery processes: takes ``gather`` calls a delivery, each
delivery one line in its log (how many calls it got) and slow, so that calls pile up behind it."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Sequence

from engine.adapters.contract import AdapterContext
from engine.delivery.outcome import DELIVERED, Outcome
from engine.model import ActionCall


class SlowStore:
    gather = 100

    def __init__(self, context: AdapterContext):
        self.log = Path(context.settings["log"])

    def deliver(self, calls: Sequence[ActionCall]) -> list[Outcome]:
        time.sleep(0.3)
        with self.log.open("a") as log:
            log.write(f"{len(calls)}\n")
        return [Outcome(DELIVERED, 1, call=call) for call in calls]

    def poll(self) -> list[Outcome]:
        return []

    def close(self) -> list[Outcome]:
        return []
