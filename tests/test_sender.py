"""Sender against real servers on 127.0.0.1: the attempt deadline, input it refuses, sharing between threads.

The Sender basics (exact request, keep-alive, proxies) are in test_http_delivery.py.
"""
from __future__ import annotations

import socket
import threading
import time

import pytest

from engine.delivery import Sender, SendError
from scripted_server import Reply


class DrippingServer:
    """Reads a request, then answers ``answer`` one byte every ``every`` seconds after ``head_start`` bytes."""

    def __init__(self, answer: bytes, every: float, head_start: int = 0):
        self.answer, self.every, self.head_start = answer, every, head_start
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}/drip"
        self.sent = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        connection, _ = self._listener.accept()
        with connection:
            received = b""
            while b"\r\n\r\n" not in received:
                received += connection.recv(4096)
            try:
                connection.sendall(self.answer[:self.head_start])
                for at in range(self.head_start, len(self.answer)):
                    time.sleep(self.every)
                    connection.sendall(self.answer[at:at + 1])
                    self.sent = at + 1
            except OSError:
                pass  # the client gave up: what the tests expect

    def close(self) -> None:
        self._listener.close()


ANSWER = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 40\r\n\r\n" + b"x" * 40


@pytest.mark.parametrize("where, head_start", [("status line and headers", 0),
                                               ("body", ANSWER.index(b"\r\n\r\n") + 4)])
def test_a_server_dripping_its_answer_cannot_hold_an_attempt_past_the_timeout(where, head_start):
    server = DrippingServer(ANSWER, every=0.1, head_start=head_start)  # all of it would take 4 s or more
    started = time.monotonic()
    with Sender(timeout=1) as sender, pytest.raises(SendError) as error:
        sender.send("POST", server.url, b"{}")
    took = time.monotonic() - started
    server.close()
    assert 0.9 <= took < 1.5, f"dripping {where}: the attempt took {took:.2f}s"
    assert str(error.value) == f"cannot reach {server.url}: no answer within 1s"
    assert error.value.retryable
    assert server.sent < len(ANSWER)


def test_an_answer_arriving_within_the_deadline_is_read_whole():
    server = DrippingServer(ANSWER, every=0.005)  # about 0.6 s in all
    with Sender(timeout=3) as sender:
        response = sender.send("POST", server.url, b"{}")
    server.close()
    assert (response.status, response.body) == (200, b"x" * 40)


@pytest.mark.parametrize("url, says", [
    ("http://127.0.0.1/caf\u00e9", "'\u00e9'"),
    ("http://b\u00fccher.example/x", "'\u00fc'"),
    ("http://127.0.0.1/a b", "' '"),
    ("http://127.0.0.1/a\r\nX-Injected: 1", "'\\r'"),
    ("http://127.0.0.1/\x00", "'\\x00'"),
])
def test_a_url_that_cannot_be_written_is_refused_without_sending(scripted, url, says):
    url = url.replace("http://127.0.0.1", scripted.url)
    with Sender(timeout=2) as sender, pytest.raises(SendError) as error:
        sender.send("POST", url, b"{}")
    assert not error.value.retryable
    assert str(error.value).startswith("not a valid URL: ") and says in str(error.value)
    assert "percent-encoded" in str(error.value)
    assert scripted.requests == []


@pytest.mark.parametrize("headers, says", [
    ({"X-Id": "a\r\nX-Injected: 1"}, "header X-Id"),
    ({"X-Id": "a\nb"}, "header X-Id"),
    ({"X-Id": "nul\x00"}, "header X-Id"),
    ({"X-Id": "del\x7f"}, "header X-Id"),
    ({"X-Price": "10 \u20ac"}, "header X-Price"),
    ({"X Id": "a"}, "header 'X Id'"),
    ({"X-Id:": "a"}, "header 'X-Id:'"),
    ({"": "a"}, "header ''"),
])
def test_a_header_that_cannot_be_written_is_refused_without_sending(scripted, headers, says):
    with Sender(timeout=2) as sender, pytest.raises(SendError) as error:
        sender.send("POST", scripted.url + "/x", b"{}", headers)
    assert not error.value.retryable
    assert says in str(error.value)
    assert scripted.requests == []


def test_header_values_that_can_be_written_are_sent_as_given(scripted):
    with Sender(timeout=2) as sender:
        sender.send("POST", scripted.url + "/x", b"{}", {"X-Tab": "a\tb", "X-Name": "Zo\u00eb", "X-Count": 3})
    (request,) = scripted.requests
    assert request["headers"]["X-Tab"] == "a\tb"
    assert request["headers"]["X-Name"] == "Zo\u00eb"  # latin-1 on the wire, as http.client writes it
    assert request["headers"]["X-Count"] == "3"


def test_redirects_and_failures_come_back_as_they_are_for_the_retrier_to_judge(scripted):
    # The redirect closes its connection: a hang-up on a kept-alive one would be sent again, once.
    scripted.script(Reply(302, b"", {"Location": "/elsewhere"}, close_after=True), Reply(hang_up=True))
    with Sender(timeout=2) as sender:
        response = sender.send("POST", scripted.url + "/moved", b"{}")
        assert (response.status, response.headers["location"]) == (302, "/elsewhere")
        with pytest.raises(SendError):
            sender.send("POST", scripted.url + "/moved", b"{}")
    assert [r["path"] for r in scripted.requests] == ["/moved", "/moved"]  # no redirect followed, no retry


def test_threads_share_one_sender(scripted):
    threads, each = 8, 25
    failures: list[BaseException] = []

    def run(worker: int) -> None:
        try:
            for n in range(each):
                body = f'{{"worker": {worker}, "n": {n}}}'.encode()
                assert sender.send("POST", scripted.url + "/shared", body).status == 200
        except BaseException as error:  # noqa: BLE001 - reported by the main thread
            failures.append(error)

    with Sender(timeout=5) as sender:
        workers = [threading.Thread(target=run, args=(w,)) for w in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    assert failures == []
    sent = sorted((r["body"]["worker"], r["body"]["n"]) for r in scripted.requests)
    assert sent == [(w, n) for w in range(threads) for n in range(each)]  # each request whole, and once
    assert len({r["port"] for r in scripted.requests}) <= threads  # connections are reused, not one per request


def test_a_closed_sender_opens_new_connections_when_used_again(scripted):
    sender = Sender(timeout=2)
    assert sender.send("POST", scripted.url + "/a", b"1").ok
    sender.close()
    assert sender.send("POST", scripted.url + "/a", b"2").ok
    sender.close()
    assert len({r["port"] for r in scripted.requests}) == 2
