"""Sender against real servers on 127.0.0.1: the attempt deadline, input it refuses, sharing between threads.

The Sender basics (exact request, keep-alive, proxies) are in test_http_delivery.py.
"""
from __future__ import annotations

import os
import socket
import ssl
import subprocess
import threading
import time

import pytest

from engine.delivery import Sender, SendError, http
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


class ScriptedSocketServer:
    """Answers the requests of one kept-alive connection with raw bytes: for request n, after ``waits[n]``
    seconds, each piece of ``answers[n]`` in turn, 50 ms apart (so the client reads each on its own)."""

    def __init__(self, answers: list[list[bytes]], waits: list[float] | None = None):
        self.answers, self.waits = answers, waits or [0.0] * len(answers)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}/x"
        self.connections = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        answered = 0
        while answered < len(self.answers):
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            with connection:
                received = b""
                while answered < len(self.answers):
                    while b"\r\n\r\n" not in received:
                        piece = connection.recv(65536)
                        if not piece:
                            break
                        received += piece
                    if b"\r\n\r\n" not in received:
                        break
                    head, _, received = received.partition(b"\r\n\r\n")
                    length = int(next((line.split(b":")[1] for line in head.split(b"\r\n")
                                       if line.lower().startswith(b"content-length:")), b"0"))
                    while len(received) < length:
                        received += connection.recv(65536)
                    received = received[length:]
                    time.sleep(self.waits[answered])
                    for at, piece in enumerate(self.answers[answered]):
                        if at:
                            time.sleep(0.05)
                        connection.sendall(piece)
                    answered += 1

    def close(self) -> None:
        self._listener.close()


def _answer(status: str, body: bytes, headers: bytes = b"") -> bytes:
    return b"HTTP/1.1 " + status.encode() + b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n" + headers \
        + b"\r\n" + body


def test_each_request_on_a_kept_alive_connection_gets_the_whole_timeout():
    # The first answer comes late, its body in a second packet: the connection's last read had 0.3 s left.
    # The second answer takes 0.6 s, well within its own 1 s: it is read, not timed out (nor sent twice).
    first = _answer("200 OK", b"first")
    server = ScriptedSocketServer([[first[:-5], first[-5:]], [_answer("200 OK", b"second")]], waits=[0.65, 0.6])
    with Sender(timeout=1) as sender:
        assert sender.send("POST", server.url, b"1").body == b"first"
        assert sender.send("POST", server.url, b"2").body == b"second"
    server.close()
    assert server.connections == 1


def test_interim_answers_are_passed_over_for_the_answer_of_their_own_request():
    server = ScriptedSocketServer([
        [b"HTTP/1.1 102 Processing\r\n\r\n", _answer("200 OK", b"accepted")],
        [b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n" + _answer("422 Unprocessable", b"no")],
    ])
    with Sender(timeout=2) as sender:
        first = sender.send("POST", server.url, b"1")
        second = sender.send("POST", server.url, b"2")
    server.close()
    assert (first.status, first.body) == (200, b"accepted")
    assert (second.status, second.body) == (422, b"no")


def test_an_answer_larger_than_any_api_sends_is_cut_and_its_connection_not_kept(scripted, monkeypatch):
    monkeypatch.setattr("engine.delivery.http.LARGEST_ANSWER", 1024)
    scripted.script(Reply(500, b"x" * 100_000), Reply(200, b"small"))
    with Sender(timeout=2) as sender:
        large = sender.send("POST", scripted.url + "/a", b"1")
        small = sender.send("POST", scripted.url + "/a", b"2")
    assert (large.status, len(large.body)) == (500, 1024)
    assert (small.status, small.body) == (200, b"small")
    assert len({request["port"] for request in scripted.requests}) == 2  # the rest of the large one was not read


def _open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_idle_connections_are_kept_for_a_bounded_number_of_hosts():
    # A webhook whose URL names a host per customer: one idle connection per host reached would run the
    # process out of descriptors after some thousand customers.
    servers = [ScriptedSocketServer([[_answer("200 OK", b"ok")]]) for _ in range(http.POOLED_IDLE + 20)]
    before = _open_descriptors()
    with Sender(timeout=2) as sender:
        for server in servers:
            assert sender.send("POST", server.url, b"{}").status == 200
        # The servers' own ends of the connections (this process's too) close in their threads, soon after
        # answering; the Sender's idle ones stay. Without a bound, 148 stay for as long as the Sender lives.
        deadline = time.monotonic() + 5
        while (kept := _open_descriptors() - before) > http.POOLED_IDLE and time.monotonic() < deadline:
            time.sleep(0.05)
    for server in servers:
        server.close()
    assert kept <= http.POOLED_IDLE


@pytest.mark.parametrize("url", ["http://a..b/hook", "http://" + "a" * 64 + ".example/hook"])
def test_a_host_name_that_cannot_be_looked_up_as_written_is_not_retryable(url):
    with Sender(timeout=2) as sender, pytest.raises(SendError) as error:
        sender.send("POST", url, b"{}")
    assert not error.value.retryable
    assert "not a valid host name" in str(error.value)


def test_tls_to_a_port_that_does_not_speak_it_is_not_retryable(scripted):
    with Sender(timeout=2) as sender, pytest.raises(SendError) as error:
        sender.send("POST", scripted.url.replace("http://", "https://") + "/x", b"{}")
    assert not error.value.retryable


def test_a_certificate_that_does_not_verify_is_not_retryable(tmp_path):
    key, certificate = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(certificate), "-days", "1", "-subj", "/CN=127.0.0.1"], check=True, capture_output=True)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificate, key)
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        connection, _ = listener.accept()
        try:
            context.wrap_socket(connection, server_side=True).close()
        except (ssl.SSLError, OSError):
            pass  # the client refused the certificate: what the test expects

    threading.Thread(target=serve, daemon=True).start()
    with Sender(timeout=2) as sender, pytest.raises(SendError) as error:
        sender.send("POST", f"https://127.0.0.1:{listener.getsockname()[1]}/x", b"{}")
    listener.close()
    assert not error.value.retryable
    assert "CERTIFICATE_VERIFY_FAILED" in str(error.value)


@pytest.mark.parametrize("status, retryable", [("407 Proxy Authentication Required", False),
                                               ("403 Forbidden", False),
                                               ("429 Too Many Requests", True),
                                               ("408 Request Timeout", True),
                                               ("502 Bad Gateway", True)])
def test_a_proxy_refusing_the_tunnel_fails_at_once_unless_it_is_busy(monkeypatch, status, retryable):
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        connection, _ = listener.accept()
        with connection:
            received = b""
            while b"\r\n\r\n" not in received:
                received += connection.recv(4096)
            connection.sendall(f"HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n".encode())

    threading.Thread(target=serve, daemon=True).start()
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{listener.getsockname()[1]}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    with Sender(timeout=2) as sender, pytest.raises(SendError) as error:
        sender.send("POST", "https://hooks.example.test/hook", b"{}")
    listener.close()
    assert "Tunnel connection failed: " + status.split()[0] in str(error.value)
    assert error.value.retryable is retryable


def test_a_connection_to_each_of_many_hosts_sent_to_in_turn_is_kept_and_used_again():
    servers = [ScriptedSocketServer([[_answer("200 OK", b"ok")], [_answer("200 OK", b"again")]]) for _ in range(40)]
    with Sender(timeout=2) as sender:
        for server in servers:
            assert sender.send("POST", server.url, b"{}").body == b"ok"
        for server in servers:
            assert sender.send("POST", server.url, b"{}").body == b"again"
    for server in servers:
        server.close()
    assert [server.connections for server in servers] == [1] * 40
