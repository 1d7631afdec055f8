"""Batching per key by count, by encoded size and by age, and batches sent to a real server."""
from __future__ import annotations

import json

import pytest

from engine.delivery import Batcher, Sender
from engine.delivery.batcher import CLOSE, COUNT, SIZE, TIME


class Tick:
    """A monotonic clock the test moves by hand."""

    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def encoded(item) -> int:
    return len(json.dumps(item).encode())


def body(batch) -> bytes:
    return json.dumps({"batch": batch.items}).encode()


def add(batcher, key, item, **options):
    return batcher.add(key, item, encoded(item), **options)


def test_a_batch_is_released_when_it_reaches_its_count():
    batcher = Batcher(batch_size=3, clock=Tick())
    released = [batch for n in range(7) for batch in add(batcher, "k", {"n": n})]
    assert [([i["n"] for i in b.items], b.reason) for b in released] == [([0, 1, 2], COUNT), ([3, 4, 5], COUNT)]
    assert len(batcher) == 1
    (last,) = batcher.flush_all()
    assert ([i["n"] for i in last.items], last.reason) == ([6], CLOSE) and len(batcher) == 0


def test_keys_are_batched_apart_and_each_key_may_have_its_own_count():
    batcher = Batcher(batch_size=50, clock=Tick())
    released = []
    for n in range(6):
        released += add(batcher, "a", n, batch_size=2)
        released += add(batcher, "b", n)
    assert [(b.key, b.items) for b in released] == [("a", [0, 1]), ("a", [2, 3]), ("a", [4, 5])]
    assert [(b.key, b.items) for b in batcher.flush_all()] == [("b", [0, 1, 2, 3, 4, 5])]


def test_the_size_counts_the_exact_encoded_request_body():
    batcher = Batcher(clock=Tick())
    items = [{"id": "x" * n} for n in range(1, 6)]
    for item in items:
        add(batcher, "k", item)
    (batch,) = batcher.flush_all()
    assert batch.size == len(body(batch))


def test_withdrawn_items_leave_the_batch_in_order_and_its_size_stays_exact():
    clock = Tick()
    batcher = Batcher(clock=clock)
    for n in range(6):
        add(batcher, "k", {"who": "ann" if n % 2 else "bob", "n": n})
    clock.now += 0.5
    taken = batcher.withdraw("k", lambda item: item["who"] == "ann")
    assert [item["n"] for item in taken] == [1, 3, 5]
    assert batcher.withdraw("k", lambda item: False) == [] and batcher.withdraw("other", lambda item: True) == []
    clock.now += 0.5  # the batch keeps its age: due one second after its first item, as before
    (batch,) = batcher.flush_due()
    assert [item["n"] for item in batch.items] == [0, 2, 4] and batch.size == len(body(batch))


def test_a_batch_whose_items_are_all_withdrawn_is_gone():
    batcher = Batcher(clock=Tick())
    add(batcher, "k", {"n": 1})
    assert batcher.withdraw("k", lambda item: True) == [{"n": 1}]
    assert len(batcher) == 0 and batcher.flush_all() == []


def test_an_item_that_would_pass_the_size_limit_starts_a_new_batch():
    items = [{"id": n, "pad": "x" * 60} for n in range(5)]
    one = encoded(items[0])
    limit = len(b'{"batch": []}') + 2 * one + 2  # room for exactly two items
    batcher = Batcher(max_bytes=limit, clock=Tick())
    released = [batch for item in items for batch in add(batcher, "k", item)]
    assert [([i["id"] for i in b.items], b.reason) for b in released] == [([0, 1], SIZE), ([2, 3], SIZE)]
    assert all(len(body(b)) <= limit for b in released)


def test_an_item_larger_than_the_limit_goes_alone():
    batcher = Batcher(max_bytes=100, clock=Tick())
    assert add(batcher, "k", {"small": 1}) == []
    released = add(batcher, "k", {"big": "y" * 200})
    assert [(b.items, b.reason) for b in released] == [([{"small": 1}], SIZE), ([{"big": "y" * 200}], SIZE)]
    assert len(batcher) == 0


def test_a_batch_is_released_when_its_first_item_is_old_enough():
    tick = Tick()
    batcher = Batcher(max_age=1.0, clock=tick)
    add(batcher, "a", 1)
    tick.now += 0.6
    add(batcher, "a", 2)
    assert batcher.flush_due() == [] and batcher.next_due() == pytest.approx(0.4)
    tick.now += 0.4
    (batch,) = batcher.flush_due()
    assert (batch.items, batch.reason) == ([1, 2], TIME) and batcher.next_due() is None


def test_adding_releases_other_keys_that_are_due():
    tick = Tick()
    batcher = Batcher(max_age=1.0, clock=tick)
    add(batcher, "slow", "old")
    tick.now += 1.5
    released = add(batcher, "busy", "new")
    assert [(b.key, b.items, b.reason) for b in released] == [("slow", ["old"], TIME)]
    assert len(batcher) == 1


@pytest.mark.parametrize("size", [1, 101, 0, True, 2.5])
def test_batch_size_must_be_from_2_to_100(size):
    with pytest.raises(ValueError):
        Batcher(batch_size=size)
    with pytest.raises(ValueError):
        Batcher().add("k", 1, 1, batch_size=size)


@pytest.mark.parametrize("size", [2, 100])
def test_batch_size_limits_are_inclusive(size):
    batcher = Batcher(batch_size=size, clock=Tick())
    released = [b for n in range(size) for b in batcher.add("k", n, 1)]
    assert [len(b.items) for b in released] == [size]


def test_released_batches_arrive_at_a_real_server_as_sent(scripted):
    tick = Tick()
    batcher = Batcher(batch_size=2, max_age=1.0, clock=tick)
    sent = []
    with Sender(timeout=2) as sender:
        def send(batches):
            for batch in batches:
                sent.append(batch.reason)
                sender.send("POST", f"{scripted.url}/batch/{batch.key}", body(batch),
                            {"Content-Type": "application/json"})
        send(add(batcher, "people", {"id": 1}))
        send(add(batcher, "objects", {"id": "o"}))
        send(add(batcher, "people", {"id": 2}))      # count
        tick.now += 2
        send(batcher.flush_due())                     # time: objects
        send(add(batcher, "people", {"id": 3}))
        send(batcher.flush_all())                     # close
    assert [(r["path"], r["body"]) for r in scripted.requests] == [
        ("/batch/people", {"batch": [{"id": 1}, {"id": 2}]}),
        ("/batch/objects", {"batch": [{"id": "o"}]}),
        ("/batch/people", {"batch": [{"id": 3}]}),
    ]
    assert sent == [COUNT, TIME, CLOSE]
