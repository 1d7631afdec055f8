"""Nothing acknowledged is lost: ``kill -9`` of the server while a client sends, twice, then a restart."""
from __future__ import annotations

import json
import random
import threading
import time
import urllib.error
import urllib.request
from collections import defaultdict

from conftest import ROOT
from serving import Served, no_server_left_running, workspace_event_ids  # noqa: F401  (an autouse fixture)

PACK = ROOT / "rules" / "customerio.yaml"
EVENTS, BATCH, USERS = 20_000, 100, 50


def event(number: int) -> dict:
    return {"type": "track", "userId": f"user-{number % USERS}", "event": "Clicked",
            "messageId": f"m-{number}", "properties": {"n": number}}


class RetryingClient(threading.Thread):
    """Sends the batches in order; a batch not answered 200 is sent again, as Segment's clients do."""

    def __init__(self, url: str):
        super().__init__(daemon=True)
        self.url, self.acknowledged, self.attempts = url, set(), 0

    def run(self) -> None:
        for start in range(0, EVENTS, BATCH):
            batch = [event(n) for n in range(start, start + BATCH)]
            body = json.dumps({"batch": batch, "writeKey": "k", "sentAt": "2026-01-01T00:00:00Z"}).encode()
            while True:
                self.attempts += 1
                request = urllib.request.Request(self.url + "/v1/batch", data=body,
                                                 headers={"Content-Type": "application/json"})
                try:
                    with urllib.request.urlopen(request, timeout=10) as response:
                        if response.status == 200:
                            self.acknowledged.update(item["messageId"] for item in batch)
                            break
                except (OSError, urllib.error.HTTPError):
                    pass
                time.sleep(0.05)


def test_every_acknowledged_event_is_in_the_workspace_once_after_two_kills(tmp_path):
    server = Served(PACK, tmp_path).start()
    client = RetryingClient(server.url)
    client.start()
    chosen = random.Random()
    # Each kill lands while the client is still sending: after a random share of the events was acknowledged.
    for low, high in ((0.1, 0.4), (0.5, 0.8)):
        mark = int(EVENTS * chosen.uniform(low, high))
        while len(client.acknowledged) < mark and client.is_alive():
            time.sleep(0.005)
        server.kill()
        server.start()
    client.join(300)
    assert not client.is_alive()
    deadline = time.monotonic() + 120
    while len(workspace_event_ids(server.workspace)) < EVENTS and time.monotonic() < deadline:
        time.sleep(0.2)
    stored = workspace_event_ids(server.workspace)
    assert server.stop() == 0
    assert len(client.acknowledged) == EVENTS and client.attempts > EVENTS // BATCH  # some batches were sent again
    assert len(stored) == len(set(stored)) == EVENTS
    assert set(stored) == client.acknowledged
    # Each person's events reached the destination in the order they were sent.
    orders = defaultdict(list)
    for message_id in stored:
        number = int(message_id[2:])
        orders[number % USERS].append(number)
    assert all(numbers == sorted(numbers) for numbers in orders.values())
