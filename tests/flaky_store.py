"""An embedded store that fails a whole delivery once, for tests of a person's order across a delivery process.

A call whose payload says ``fail_once`` fails its whole slice the first time it comes (a store that could not
commit: every call of the transaction fails), and is applied the next time; ``sleep`` makes the slice take
that many seconds longer. Each applied message id is appended to the file ``settings["path"]``, in order.
"""
from __future__ import annotations

import time
from typing import Sequence

from engine.adapters.contract import AdapterContext
from engine.delivery.outcome import DELIVERED, FAILED, Outcome
from engine.model import ActionCall


class FlakyStore:
    gather = 4096

    def __init__(self, context: AdapterContext):
        self.path = context.settings["path"]
        self.failed: set[str] = set()

    def deliver(self, calls: Sequence[ActionCall]) -> list[Outcome]:
        time.sleep(sum(call.payload.get("sleep", 0) for call in calls))
        if any(call.payload.get("fail_once") and call.message_id not in self.failed for call in calls):
            self.failed.update(call.message_id for call in calls if call.payload.get("fail_once"))
            return [Outcome(FAILED, 1, message="the store could not commit", call=call) for call in calls]
        with open(self.path, "a", encoding="utf-8") as applied:
            applied.writelines(call.message_id + "\n" for call in calls)
        return [Outcome(DELIVERED, 1, call=call) for call in calls]

    def poll(self) -> list[Outcome]:
        return []

    def close(self) -> list[Outcome]:
        return []
