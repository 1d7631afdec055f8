"""The retry policy, run by the real loop and the real HTTP client against scripted servers.

A ``ManualClock`` stands in for time: the loop's waits are recorded instead of slept, so every
rule is checked exactly and fast.
"""
from __future__ import annotations

import threading
import time
from email.utils import formatdate

import pytest

from engine.delivery import (
    DELIVERED,
    FAILED,
    RETRIED,
    ManualClock,
    Retrier,
    RetryPolicy,
    Sender,
)
from engine.delivery.retry import SYSTEM_CLOCK, retry_after
from scripted_server import Reply, refused_url

RETRIED_STATUSES = [408, 429, 500, 502, 503, 504, 599]
FINAL_STATUSES = [400, 401, 403, 404, 409, 410, 413, 422, 501, 301]


def deliver(url: str, retrier: Retrier, timeout: float = 2.0):
    with Sender(timeout=timeout) as sender:
        return retrier.run(lambda: sender.send("POST", url, b'{"n": 1}', {"Content-Type": "application/json"}))


def manual(**policy) -> Retrier:
    return Retrier(RetryPolicy(**policy), clock=ManualClock(), random=lambda: 1.0)


@pytest.mark.parametrize("status", RETRIED_STATUSES)
def test_retried_statuses_are_sent_again(scripted, status):
    scripted.script(Reply(status, b"try later"), Reply(200, b"fine"))
    outcome = deliver(scripted.url + "/e", manual())
    assert (outcome.state, outcome.attempts, outcome.status, outcome.body) == (RETRIED, 2, 200, "fine")
    assert len(scripted.requests) == 2


@pytest.mark.parametrize("status", FINAL_STATUSES)
def test_other_statuses_fail_at_once(scripted, status):
    scripted.script(Reply(status, b"no"), Reply(200))
    retrier = manual()
    outcome = deliver(scripted.url + "/e", retrier)
    assert (outcome.state, outcome.attempts, outcome.status) == (FAILED, 1, status)
    assert outcome.message == f"HTTP {status} from {scripted.url}/e"
    assert len(scripted.requests) == 1 and retrier.clock.sleeps == []


def test_the_first_success_is_delivered_without_waiting(scripted):
    retrier = manual()
    outcome = deliver(scripted.url + "/e", retrier)
    assert (outcome.state, outcome.attempts, outcome.waited) == (DELIVERED, 1, 0.0)
    assert retrier.clock.sleeps == []


def test_attempts_are_bounded_and_the_last_answer_is_kept(scripted):
    scripted.script(*[Reply(500, f"error {n}") for n in range(1, 10)])
    outcome = deliver(scripted.url + "/e", manual(max_attempts=4))
    assert (outcome.state, outcome.attempts, outcome.status, outcome.body) == (FAILED, 4, 500, "error 4")
    assert outcome.message == f"HTTP 500 from {scripted.url}/e (gave up after 4 attempts)"
    assert len(scripted.requests) == 4


def test_backoff_doubles_from_the_base_up_to_the_cap(scripted):
    scripted.default = Reply(503)
    retrier = manual(max_attempts=6, base_delay=0.5, max_delay=3.0, max_total_wait=100)
    deliver(scripted.url + "/e", retrier)
    assert retrier.clock.sleeps == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_backoff_is_full_jitter(scripted):
    scripted.default = Reply(503)
    draws = iter([0.0, 0.25, 0.5, 0.75])
    retrier = Retrier(RetryPolicy(max_attempts=5, base_delay=1.0, max_delay=100), clock=ManualClock(),
                      random=lambda: next(draws))
    deliver(scripted.url + "/e", retrier)
    assert retrier.clock.sleeps == [0.0, 0.5, 2.0, 6.0]


def test_the_total_wait_is_capped(scripted):
    scripted.default = Reply(503)
    retrier = manual(max_attempts=10, base_delay=4.0, max_delay=100, max_total_wait=10)
    outcome = deliver(scripted.url + "/e", retrier)
    assert sum(retrier.clock.sleeps) <= 10 and outcome.waited == pytest.approx(sum(retrier.clock.sleeps))
    assert outcome.state == FAILED and outcome.attempts == 10


def test_retry_after_seconds_is_honoured(scripted):
    scripted.script(Reply(429, headers={"Retry-After": "7"}), Reply(200))
    retrier = manual(base_delay=0.01)
    outcome = deliver(scripted.url + "/e", retrier)
    assert retrier.clock.sleeps == [7.0] and outcome.state == RETRIED


def test_retry_after_http_date_is_honoured(scripted):
    clock = ManualClock(start=1_700_000_000.0)
    scripted.script(Reply(503, headers={"Retry-After": formatdate(clock.now + 12, usegmt=True)}), Reply(200))
    retrier = Retrier(RetryPolicy(base_delay=0.01), clock=clock)
    assert deliver(scripted.url + "/e", retrier).state == RETRIED
    assert clock.sleeps == [12.0]


def test_a_retry_after_date_in_the_past_means_now(scripted):
    clock = ManualClock(start=1_700_000_000.0)
    scripted.script(Reply(429, headers={"Retry-After": formatdate(clock.now - 30, usegmt=True)}), Reply(200))
    deliver(scripted.url + "/e", Retrier(RetryPolicy(), clock=clock))
    assert clock.sleeps == [0.0]


@pytest.mark.parametrize("value", ["soon", "\u00b2", "-5"], ids=["a word", "a superscript digit", "negative"])
def test_an_unreadable_retry_after_falls_back_to_backoff(scripted, value):
    scripted.script(Reply(429, headers={"Retry-After": value}), Reply(200))
    retrier = manual(base_delay=0.25)
    deliver(scripted.url + "/e", retrier)
    assert retrier.clock.sleeps == [0.25]


def test_a_retry_after_past_the_wait_limit_fails_now_to_be_replayed_later(scripted):
    scripted.script(Reply(429, b'{"error": "slow down"}', {"Retry-After": "3600"}), Reply(200))
    retrier = manual(max_total_wait=60)
    outcome = deliver(scripted.url + "/e", retrier)
    assert (outcome.state, outcome.attempts, outcome.status) == (FAILED, 1, 429)
    assert outcome.body == '{"error": "slow down"}'
    assert "Retry-After 3600s is more than the 60s left" in outcome.message
    assert len(scripted.requests) == 1 and retrier.clock.sleeps == []


def test_a_retry_after_on_a_final_status_is_ignored(scripted):
    scripted.script(Reply(400, headers={"Retry-After": "1"}), Reply(200))
    outcome = deliver(scripted.url + "/e", manual())
    assert (outcome.state, outcome.attempts) == (FAILED, 1)


def test_connection_errors_are_retried_up_to_the_limit():
    url = refused_url()
    retrier = manual(max_attempts=3)
    outcome = deliver(url, retrier)
    assert (outcome.state, outcome.attempts, outcome.status, outcome.body) == (FAILED, 3, None, None)
    assert outcome.message.startswith(f"cannot reach {url}: ") and len(retrier.clock.sleeps) == 2


def test_timeouts_are_retried(scripted):
    scripted.script(Reply(delay=0.3), Reply(201, b"late but fine"))
    outcome = deliver(scripted.url + "/e", manual(), timeout=0.1)
    assert (outcome.state, outcome.attempts, outcome.status) == (RETRIED, 2, 201)


def test_a_closed_connection_is_retried(scripted):
    scripted.script(Reply(hang_up=True), Reply())
    assert deliver(scripted.url + "/e", manual()).attempts == 2


def test_a_bad_url_is_not_retried():
    retrier = manual()
    outcome = deliver("gopher://127.0.0.1/x", retrier)
    assert (outcome.state, outcome.attempts) == (FAILED, 1) and retrier.clock.sleeps == []


def test_the_default_clock_really_waits(scripted):
    scripted.script(Reply(503), Reply(503), Reply(200))
    started = time.monotonic()
    outcome = deliver(scripted.url + "/e", Retrier(RetryPolicy(base_delay=0.02), random=lambda: 1.0))
    assert outcome.state == RETRIED and time.monotonic() - started >= 0.06


@pytest.mark.parametrize("value, seconds", [("0", 0.0), ("120", 120.0), (" 5 ", 5.0), ("-3", None), ("1.5", None),
                                            ("Wed, 21 Oct 2015 07:28:00 GMT", 60.0), ("", None)])
def test_retry_after_values(value, seconds):
    from engine.delivery import Response

    now = 1445412420.0  # 2015-10-21 07:27:00 UTC
    assert retry_after(Response(429, {"retry-after": value}), now) == seconds


def test_a_policy_needs_at_least_one_attempt():
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)



def test_lanes_sharing_the_real_clock_wait_side_by_side():
    """Each delivery lane sleeps in its own thread; one lane's backoff must not hold up another's."""
    lanes = [threading.Thread(target=SYSTEM_CLOCK.sleep, args=(0.3,)) for _ in range(4)]
    started = time.monotonic()
    for lane in lanes:
        lane.start()
    for lane in lanes:
        lane.join()
    assert time.monotonic() - started < 0.6
