"""``switchyard serve`` when things around it go wrong: the disk, the spool's folder, clients that hang up,
requests that could be read two ways, a reload just before a stop."""
from __future__ import annotations

import json
import shutil
import signal
import socket
import time
from pathlib import Path

import pytest

from conftest import ROOT
from engine.serve.spool import Spool
from serving import Served, no_server_left_running, track, wait, workspace_event_ids  # noqa: F401  (an autouse fixture)

PACK = (ROOT / "rules" / "customerio.yaml").read_text()


@pytest.fixture
def server(tmp_path):
    rules = tmp_path / "customerio.yaml"
    rules.write_text(PACK)
    served = Served(rules, tmp_path).start()
    yield served
    served.stop()


def _raw(server: Served, request: bytes, *, close_after: bool = False) -> bytes:
    """Send ``request`` as it is on a connection of its own; what comes back until the server closes it."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as connection:
        connection.sendall(request)
        if close_after:
            return b""
        answer = b""
        while piece := connection.recv(65536):
            answer += piece
        return answer


def test_a_body_its_client_cut_short_is_not_taken(server):
    """The Content-Length not reached, or the last chunk never sent, and the client gone: the events were
    spooled and delivered, though the client was never answered and will send them again."""
    body = json.dumps({"batch": [track(1)]}).encode()
    _raw(server, b"POST /v1/batch HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\n"
                 b"Content-Length: %d\r\n\r\n" % (len(body) + 100) + body, close_after=True)
    chunked = json.dumps({"batch": [track(2)]}).encode()
    _raw(server, b"POST /v1/batch HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\n"
                 b"Transfer-Encoding: chunked\r\n\r\n%x\r\n" % len(chunked) + chunked + b"\r\n", close_after=True)
    time.sleep(0.5)
    assert server.post("/v1/batch", {"batch": [track(3)]})[0] == 200
    wait(lambda: workspace_event_ids(server.workspace) == ["m-3"])
    time.sleep(0.3)
    assert workspace_event_ids(server.workspace) == ["m-3"]
    assert server.metric('switchyard_requests_total{status="499"}') == 2


def test_a_request_with_both_content_length_and_chunked_is_refused_and_its_connection_closed(server):
    """Read as chunked here and by Content-Length at a proxy in front, it could carry a second request."""
    body = json.dumps({"batch": [track(1)]}).encode()
    answer = _raw(server, b"POST /v1/batch HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\n"
                          b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n" % len(body) + body
                          + b"\r\n0\r\n\r\nGET /health HTTP/1.1\r\nHost: a\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400 ") and b'"code":"invalid_request"' in answer
    assert answer.count(b"HTTP/1.1 ") == 1  # the request after it was not read
    assert server.metric("switchyard_spool_depth") == 0


def test_a_request_that_is_not_http_is_answered_400_in_json_and_counted(server):
    """uvicorn answered it in plain text, and /metrics never saw it."""
    answer = _raw(server, b"GARBAGE\r\n\r\n")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 Bad Request") and b"content-type: application/json" in head.lower()
    assert json.loads(body) == {"code": "invalid_http", "message": "the request is not valid HTTP/1.1"}
    assert server.metric('switchyard_requests_total{status="400"}') == 1


def test_a_body_that_turns_out_not_to_be_http_is_counted_once_as_the_400_it_got(server):
    """A chunk that is not one, while the app reads the body: the client gets 400 invalid_http, and /metrics
    counted both a 400 and a 499 (the app saw its client go)."""
    answer = _raw(server, b"POST /v1/track HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\n"
                          b"Transfer-Encoding: chunked\r\n\r\n5\r\n{\"a\":\r\nZZZ\r\n")
    assert answer.startswith(b"HTTP/1.1 400 ") and b'"code":"invalid_http"' in answer
    wait(lambda: server.metric('switchyard_requests_total{status="400"}') == 1)
    assert server.metric('switchyard_requests_total{status="499"}') == 0


def test_the_next_requests_head_that_came_with_the_last_one_is_under_the_deadline_too(tmp_path):
    """Its first bytes came in the same packet as the request before: the deadline was not set, and the
    connection was closed only by the keep-alive timer, without a word. With 0 there is no deadline."""
    rules = tmp_path / "customerio.yaml"
    rules.write_text(PACK)
    served = Served(rules, tmp_path, "--head-timeout", "1s").start()
    try:
        with socket.create_connection(("127.0.0.1", served.port), timeout=10) as pipelined:
            pipelined.sendall(b"GET /health HTTP/1.1\r\nHost: a\r\n\r\nGET /hea")
            began, answer = time.monotonic(), b""
            while piece := pipelined.recv(65536):
                answer += piece
            assert answer.count(b"HTTP/1.1 ") == 2 and b"HTTP/1.1 408 " in answer and time.monotonic() - began < 3
    finally:
        served.stop()
    (tmp_path / "off").mkdir()
    off = Served(rules, tmp_path / "off", "--head-timeout", "0").start()
    try:
        assert [off.get("/ready")[0] for _ in range(5)] == [200] * 5
        with socket.create_connection(("127.0.0.1", off.port), timeout=10) as slow:
            slow.sendall(b"GET /health HTTP/1.1\r\n")
            time.sleep(1.5)
            slow.sendall(b"Host: a\r\n\r\n")
            assert slow.recv(65536).startswith(b"HTTP/1.1 200 ")
    finally:
        off.stop()


def test_a_request_head_that_does_not_come_whole_in_time_gets_408_and_its_connection_is_closed(tmp_path):
    """A connection that sends nothing, or its head a byte at a time, held a descriptor for as long as it liked:
    enough of them used up the server's. The body is not under this deadline."""
    rules = tmp_path / "customerio.yaml"
    rules.write_text(PACK)
    served = Served(rules, tmp_path, "--head-timeout", "1s").start()
    try:
        def connection() -> socket.socket:
            return socket.create_connection(("127.0.0.1", served.port), timeout=10)

        def until_closed(sock: socket.socket) -> tuple[bytes, float]:
            began, answer = time.monotonic(), b""
            while piece := sock.recv(65536):
                answer += piece
            return answer, time.monotonic() - began

        with connection() as idle:
            answer, waited = until_closed(idle)
            assert answer == b"" and 0.8 < waited < 5
        with connection() as slow:
            slow.sendall(b"POST /v1/track HTTP/1.1\r\nHost: a\r\n")
            time.sleep(0.5)
            slow.sendall(b"Content-Type: application/json\r\n")
            answer, waited = until_closed(slow)
            assert answer.startswith(b"HTTP/1.1 408 Request Timeout") and b'"code":"request_timeout"' in answer
        with connection() as kept:  # a kept-alive connection's next head is under the deadline too
            kept.sendall(b"GET /health HTTP/1.1\r\nHost: a\r\n\r\n")
            first = b""
            while not first.endswith(b'{"status":"ok"}'):
                first += kept.recv(65536)
            kept.sendall(b"GET /hea")
            answer, waited = until_closed(kept)
            assert answer.startswith(b"HTTP/1.1 408 ") and waited < 5
        body = json.dumps(track(1)).encode()
        with connection() as slow_body:
            slow_body.sendall(b"POST /v1/track HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\n"
                              b"Content-Length: %d\r\n\r\n" % len(body) + body[:10])
            time.sleep(1.5)
            slow_body.sendall(body[10:])
            assert slow_body.recv(65536).startswith(b"HTTP/1.1 200 OK")
        assert served.metric('switchyard_requests_total{status="408"}') == 2
    finally:
        served.stop()


def test_a_spool_folder_removed_under_the_server_answers_503_not_200_and_the_server_is_not_ready(server, tmp_path):
    """Events committed to a removed file were answered 200 and lost at the next start."""
    shutil.rmtree(tmp_path / "spool")
    status, _, answer = server.post("/v1/batch", {"batch": [track(1)]})
    assert (status, answer.get("code")) == (503, "spool_unavailable")
    status, body = server.get("/ready")
    assert status == 503 and b"was removed or replaced" in body


def test_a_spool_that_failed_a_write_is_ready_again_once_it_takes_one(tmp_path):
    """Cleared only by a request's commit, the problem kept /ready at 503 once a disk was freed, and a load
    balancer that had stopped sending requests never sent another."""
    spool = Spool(tmp_path / "spool")
    try:
        spool.problem = "cannot write the spool: database or disk is full"
        assert not spool.writable()
        wait(spool.writable, timeout=5)
    finally:
        spool.close()


def test_dead_letters_that_cannot_be_written_keep_their_events_in_the_spool(tmp_path):
    """Refused calls whose records could not be written were counted as settled: their events left the spool
    and were in no file. Now the destination stops there, /ready says why, and a reload delivers them."""
    rules = tmp_path / "customerio.yaml"
    rules.write_text(PACK)
    server = Served(rules, tmp_path).start()
    dead = tmp_path / "deadletter.ndjson"
    dead.mkdir()  # the file cannot be opened: as a full disk, a lost mount
    refused = b'{"batch": [{"type": "track", "userId": "u1", "event": "\\udfff", "messageId": "lone"}]}'
    assert server.post("/v1/batch", refused)[0] == 200
    wait(lambda: server.get("/ready")[0] == 503)
    assert b"record(s) not written" in server.get("/ready")[1]
    assert server.metric("switchyard_spool_depth") == 1
    dead.rmdir()
    done = server.log.read_text().count("reload: rules loaded")
    server.process.send_signal(signal.SIGHUP)
    wait(lambda: server.log.read_text().count("reload: rules loaded") > done)
    wait(lambda: server.metric("switchyard_spool_depth") == 0)
    (record,) = [json.loads(line) for line in dead.read_text().splitlines()]
    assert record["outcome"] == "refused" and record["call"]["messageId"] == "lone"
    assert server.get("/ready")[0] == 200
    assert server.stop() == 0


def test_a_reload_just_before_a_stop_neither_hangs_nor_crashes_the_stop(tmp_path):
    """systemctl reload, then restart: the stop did not wait for the reloads, which went on to swap in
    workers the stop had not seen (the process never exited) or not yet started (a RuntimeError, exit 1)."""
    rules = tmp_path / "rules"
    rules.mkdir()
    for name in ("customerio.yaml", "userengage.yaml"):
        (rules / name).write_text((ROOT / "rules" / name).read_text())
    for _ in range(3):
        server = Served(rules, tmp_path).start()
        for _ in range(5):
            server.process.send_signal(signal.SIGHUP)
            time.sleep(0.02)
        time.sleep(0.3)
        assert server.stop(timeout=40) == 0, server.log.read_text()[-3000:]
        log = server.log.read_text()
        server.log.unlink()
        assert "RuntimeError" not in log and "Exception ignored" not in log, log[-3000:]
        assert "reload: rules loaded" not in log.rpartition("stopped; ")[2]  # nothing swapped in after the stop


@pytest.mark.parametrize("second", [signal.SIGINT, signal.SIGTERM])
def test_a_second_signal_while_deliveries_stop_exits_at_once_and_says_so(tmp_path, second):
    """A second Ctrl-C printed a KeyboardInterrupt traceback; a second SIGTERM killed the process unseen."""
    from hooks import Hook

    from serving import hook_rules

    hook = Hook(held=True)  # answers nothing: the stop waits for its deadline
    try:
        server = Served(hook_rules(tmp_path, hook.url, timeout=30), tmp_path, "--stop-deadline", "30").start()
        assert server.post("/v1/batch", {"batch": [track(n) for n in range(5)]})[0] == 200
        time.sleep(1)  # the hook holds the first call: the stop will wait for it
        server.process.send_signal(signal.SIGTERM)
        time.sleep(1.5)  # requests in flight drained, deliveries stopping
        server.process.send_signal(second)
        assert server.process.wait(10) == 128 + second
        log = server.log.read_text()
        assert "a second signal: exiting at once" in log and "Traceback" not in log, log[-2000:]
    finally:
        hook.close()


def test_a_destination_goes_on_by_itself_once_a_full_disk_has_room_again(tmp_path):
    """Its delivery thread met the full disk in its own SQLite connection and stopped for good: events were
    answered 200 and waited undelivered until a reload. The disk here is a file size limit set on the server
    (RLIMIT_FSIZE, as `ulimit -f` or systemd's LimitFSIZE): writes past it fail as on a full disk."""
    import resource

    rules = tmp_path / "customerio.yaml"
    rules.write_text(PACK)
    server = Served(rules, tmp_path, "--min-free-bytes", "0", "--lanes", "thread").start()
    assert server.post("/v1/batch", {"batch": [track(0)]})[0] == 200
    wait(lambda: workspace_event_ids(server.workspace) == ["m-0"])
    spool = tmp_path / "spool"
    largest = max(path.stat().st_size for path in [*spool.iterdir(), server.workspace])
    resource.prlimit(server.process.pid, resource.RLIMIT_FSIZE, (largest, resource.RLIM_INFINITY))
    batch = {"batch": [{**track(n), "properties": {"n": n, "pad": "x" * 20_000}} for n in range(1, 11)]}
    for _ in range(20):
        if server.post("/v1/batch", batch)[0] == 503:
            break
    wait(lambda: server.get("/ready")[0] == 503)
    resource.prlimit(server.process.pid, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    wait(lambda: server.get("/ready")[0] == 200, timeout=20)
    assert server.post("/v1/batch", {"batch": [track(99)]})[0] == 200
    wait(lambda: "m-99" in workspace_event_ids(server.workspace), timeout=20)
    wait(lambda: server.metric("switchyard_spool_depth") == 0)
    assert server.stop() == 0


def test_a_program_that_runs_serve_in_its_main_thread_gets_its_signal_handlers_back(tmp_path):
    """The handlers that end the process at a second signal stayed after serve returned: the program calling it
    was killed by its next Ctrl-C instead of handling it."""
    import subprocess
    import sys

    rules = tmp_path / "customerio.yaml"
    rules.write_text(PACK)
    program = f"""
import signal, socket
from engine.cli import main
taken = socket.create_server(("127.0.0.1", 0))  # serve cannot listen: it returns after its stop
try:
    main(["serve", {str(rules)!r}, "--port", str(taken.getsockname()[1]), "--spool", {str(tmp_path / "spool")!r},
          "--workspace", {str(tmp_path / "w.db")!r}, "--dead-letter", {str(tmp_path / "dead.ndjson")!r}])
except SystemExit:
    pass
print(signal.getsignal(signal.SIGINT) is signal.default_int_handler,
      signal.getsignal(signal.SIGTERM) is signal.SIG_DFL)
"""
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert result.stdout.split()[-2:] == ["True", "True"], result.stdout + result.stderr


def test_a_body_that_does_not_come_whole_in_time_is_cut_off_without_an_answer(tmp_path):
    """A body sent a byte at a time held its connection (and a task) for as long as it liked. Past
    --body-timeout it is closed without an answer, so that a client library sends the batch again (they take
    a 408 as final), nothing of it is taken, and /metrics counts it as 408."""
    rules = tmp_path / "customerio.yaml"
    rules.write_text(PACK)
    served = Served(rules, tmp_path, "--body-timeout", "1s").start()
    try:
        body = json.dumps({"batch": [track(1)]}).encode()
        head = (b"POST /v1/batch HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n" % len(body))
        with socket.create_connection(("127.0.0.1", served.port), timeout=10) as trickle:
            trickle.sendall(head)
            began, answer = time.monotonic(), b""
            try:
                for byte in body:  # a byte every 0.25 s: a deadline between two reads would never pass
                    trickle.sendall(bytes([byte]))
                    time.sleep(0.25)
                while piece := trickle.recv(65536):
                    answer += piece
            except (BrokenPipeError, ConnectionResetError):
                pass
            assert answer == b"" and 0.8 < time.monotonic() - began < 4
        with socket.create_connection(("127.0.0.1", served.port), timeout=10) as slow:  # slow, but in time
            slow.sendall(head + body[:10])
            time.sleep(0.5)
            slow.sendall(body[10:])
            assert slow.recv(65536).startswith(b"HTTP/1.1 200 OK")
        wait(lambda: workspace_event_ids(served.workspace) == ["m-1"])
        assert served.metric('switchyard_requests_total{status="408"}') == 1
        assert served.metric('switchyard_requests_total{status="499"}') == 0
    finally:
        served.stop()


def test_a_connection_whose_answers_are_not_read_is_cut_off(tmp_path):
    """A client that sends requests and never reads the answers: once the server's buffer for it was full,
    the connection and its request's task waited for ever. Past --send-timeout it is cut off; others are
    answered all along."""
    rules = tmp_path / "customerio.yaml"
    rules.write_text(PACK)
    served = Served(rules, tmp_path, "--send-timeout", "1s").start()
    try:
        deaf = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        deaf.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connecting: a small window
        deaf.settimeout(10)
        deaf.connect(("127.0.0.1", served.port))
        requests = _LONG_404 * 600  # 7 MB of answers: more than the buffers hold
        sent, began = 0, time.monotonic()
        with deaf:
            deaf.setblocking(False)
            while sent < len(requests) and time.monotonic() - began < 8:  # as much as the server takes
                try:
                    sent += deaf.send(requests[sent:sent + 65536])
                except BlockingIOError:
                    time.sleep(0.05)
                except OSError:  # cut off while sending
                    break
            assert served.get("/health")[0] == 200  # the server answers others meanwhile
            time.sleep(2.5)
            deaf.setblocking(True)
            answered, cut_off = 0, False
            try:
                while piece := deaf.recv(65536):
                    answered += piece.count(b"HTTP/1.1 404 ")
            except ConnectionResetError:
                cut_off = True
        assert cut_off and answered < 600 and time.monotonic() - began < 15
    finally:
        served.stop()


# A request whose answer is 12 KB (its path, quoted back in a 404) and cheap to make: a few hundred fill the
# kernel's buffers for a connection.
_LONG_404 = b"GET /" + b"x" * 12_000 + b" HTTP/1.1\r\nHost: a\r\n\r\n"


def _server_side(port: int, client_port: int) -> tuple[str, int] | None:
    """The server's end of one connection on 127.0.0.1, as Linux lists it in /proc/net/tcp: its state
    (``01`` established, ``04`` closed by the server with data still queued) and the bytes queued to send."""
    local, remote = f"0100007F:{port:04X}", f"0100007F:{client_port:04X}"
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == local and fields[2] == remote:
            return fields[3], int(fields[4].split(":")[0], 16)
    return None


def test_a_connection_closed_with_answers_its_client_never_reads_lets_go_of_its_descriptor(tmp_path):
    """Answers waiting unread, too few to fill the server's buffer (so --send-timeout never starts): when the
    keep-alive timer closed the connection, the server waited for its client to read them, and kept the
    descriptor for as long as the client liked. Now it lets go CLOSING_GRACE seconds after the close."""
    rules = tmp_path / "customerio.yaml"
    rules.write_text(PACK)
    served = Served(rules, tmp_path).start()
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as deaf:
            deaf.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            deaf.connect(("127.0.0.1", served.port))
            client_port = deaf.getsockname()[1]

            def queued() -> int:
                side = _server_side(served.port, client_port)
                assert side is not None and side[0] == "01"
                return side[1]

            # One answer at a time, until the kernel takes no more of them: the last waits in the server's own
            # buffer, well under what starts --send-timeout.
            before, full = queued(), False
            while not full:
                deaf.sendall(_LONG_404)
                waited = time.monotonic()
                while (now := queued()) == before and time.monotonic() - waited < 0.5:
                    time.sleep(0.002)
                full, before = now == before, now
            # The keep-alive timer (5 s) closes it; the server lets go of it (CLOSING_GRACE, 5 s) without the
            # client reading anything.
            deadline = time.monotonic() + 20
            while (side := _server_side(served.port, client_port)) is not None and side[0] == "01":
                assert time.monotonic() < deadline, "the server still holds the connection"
                time.sleep(0.2)
    finally:
        served.stop()


def test_a_request_gets_its_own_body_deadline_after_one_answered_before_its_body_came(tmp_path):
    """A request answered at once (404) before its body came whole, the end of that body and the next request's
    head in one read: the next request inherited the first one's deadline and was cut off early."""
    rules = tmp_path / "customerio.yaml"
    rules.write_text(PACK)
    served = Served(rules, tmp_path, "--body-timeout", "2s").start()
    first = json.dumps({"batch": [track(1)]}).encode()
    second = json.dumps({"batch": [track(2)]}).encode()
    try:
        with socket.create_connection(("127.0.0.1", served.port), timeout=10) as kept:
            kept.sendall(b"POST /v1/nope HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % len(first) + first[:10])
            answer = b""
            while not answer.endswith(b"}"):  # the whole answer, its JSON body included
                answer += kept.recv(65536)
            assert answer.startswith(b"HTTP/1.1 404 ")
            time.sleep(1.5)
            kept.sendall(first[10:] + b"POST /v1/batch HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\n"
                         b"Content-Length: %d\r\n\r\n" % len(second) + second[:10])
            time.sleep(1.2)  # past the first request's deadline, well within the second's
            kept.sendall(second[10:])
            answer = b""
            while b"\r\n\r\n" not in answer and (piece := kept.recv(65536)):
                answer += piece
            assert answer.startswith(b"HTTP/1.1 200 "), answer
        wait(lambda: workspace_event_ids(served.workspace) == ["m-2"])
        assert served.metric('switchyard_requests_total{status="408"}') == 0
    finally:
        served.stop()

