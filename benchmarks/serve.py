"""The ``serve`` benchmark's parts: the floor server, and the load and latency clients.

- ``floor``: the least an ASGI app on the same stack (uvicorn) can do with a batch: read the body,
  parse the JSON, append it to a file, answer 200. ``switchyard serve`` is measured against it.
- ``python benchmarks/serve.py load URL SECONDS [RATE]``: 4 threads, each on its own keep-alive
  connection, send batches of 100 distinct track events for SECONDS, as fast as they are answered or
  RATE events a second in all; prints JSON ``{"events", "seconds", "refused"}`` (events acknowledged
  with 200).
- ``python benchmarks/serve.py latency URL SECONDS RATE``: single-event requests at RATE a second
  (open loop, 4 threads); prints JSON ``{"requests", "p50_ms", "p99_ms"}``.

The clients are one process of their own, so their CPU is not the server's.
"""
from __future__ import annotations

import http.client
import json
import os
import sys
import threading
import time
from urllib.parse import urlsplit

import orjson

CLIENTS, BATCH = 4, 100
STEADY_RATE = 20_000  # events a second, for the row on delivery keeping up


async def floor(scope, receive, send):
    """Parse each request's JSON and append it to $SWITCHYARD_FLOOR_FILE; answer 200."""
    if scope["type"] != "http":
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
        return
    parts = []
    while True:
        message = await receive()
        parts.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    if scope["method"] == "POST":
        data = orjson.loads(b"".join(parts))
        _floor_file().write(orjson.dumps(data) + b"\n")
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"16")]})
    await send({"type": "http.response.body", "body": b'{"success":true}'})


_file = None


def _floor_file():
    global _file
    if _file is None:
        _file = open(os.environ["SWITCHYARD_FLOOR_FILE"], "ab")
    return _file


def _event(client: int, number: int) -> dict:
    return {"type": "track", "userId": f"user-{number % 1000}", "event": "Order Completed",
            "messageId": f"c{client}-{number}", "timestamp": "2026-01-01T00:00:00.000Z",
            "properties": {"order_id": f"o-{number}", "total": number % 500, "currency": "EUR"},
            "context": {"ip": "1.2.3.4", "library": {"name": "bench"}}}


def load(url: str, seconds: float, rate: float | None = None) -> dict:
    """As fast as the server takes them, or, with ``rate``, that many events a second in all (open loop:
    a batch is due at its time whether or not the one before has been answered late)."""
    parts = urlsplit(url)
    totals = {"events": 0, "refused": 0}
    lock = threading.Lock()
    started = time.monotonic()
    end = started + seconds
    interval = CLIENTS * BATCH / rate if rate else 0.0

    def client(number: int) -> None:
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        sent = refused = 0
        batch_number = 0
        due = started + number * interval / CLIENTS
        while time.monotonic() < end:
            if interval:
                if (pause := due - time.monotonic()) > 0:
                    time.sleep(pause)
                due += interval
            first = batch_number * BATCH
            body = orjson.dumps({"batch": [_event(number, first + n) for n in range(BATCH)], "writeKey": "bench",
                                 "sentAt": "2026-01-01T00:00:00.000Z"})
            connection.request("POST", "/v1/batch", body, {"Content-Type": "application/json"})
            response = connection.getresponse()
            response.read()
            if response.status == 200:
                sent += BATCH
                batch_number += 1
            else:
                refused += 1
                time.sleep(0.05)
        with lock:
            totals["events"] += sent
            totals["refused"] += refused

    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {**totals, "seconds": time.monotonic() - started}


def latency(url: str, seconds: float, rate: float) -> dict:
    parts = urlsplit(url)
    samples: list[float] = []
    lock = threading.Lock()
    interval = CLIENTS / rate
    start = time.monotonic() + 0.1

    def client(number: int) -> None:
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        mine, sent = [], 0
        due = start + number * interval / CLIENTS
        while due < start + seconds:
            pause = due - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            body = orjson.dumps({**_event(100 + number, sent), "writeKey": "bench"})
            began = time.monotonic()
            connection.request("POST", "/v1/track", body, {"Content-Type": "application/json"})
            connection.getresponse().read()
            mine.append(time.monotonic() - max(began, due))  # open loop: lateness counts as latency
            sent += 1
            due += interval
        with lock:
            samples.extend(mine)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    samples.sort()
    return {"requests": len(samples), "p50_ms": 1000 * samples[len(samples) // 2],
            "p99_ms": 1000 * samples[min(len(samples) - 1, int(len(samples) * 0.99))]}


if __name__ == "__main__":
    command, url, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
    if command == "load":
        result = load(url, seconds, float(sys.argv[4]) if len(sys.argv) > 4 else None)
    else:
        result = latency(url, seconds, float(sys.argv[4]))
    print(json.dumps(result))


# --- the section of benchmarks/run.py ------------------------------------------------------------

def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(url: str) -> tuple[int, bytes]:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def _wait_up(url: str, process, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}")
        try:
            if _get(url)[0] < 500:
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"the server at {url} did not answer within {timeout:g} s")


def metrics(url: str) -> dict[str, float]:
    """``/metrics`` of a switchyard server: each sample's line name (with labels) -> value."""
    text = _get(url + "/metrics")[1].decode()
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
            for line in text.splitlines() if line and not line.startswith("#")}


def _delivered(sample: dict[str, float]) -> float:
    return sum(value for name, value in sample.items() if name.startswith("switchyard_calls_total"))


class _Started:
    def __init__(self, argv: list[str], cwd, env: dict, ready_path: str):
        import subprocess

        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen([*argv, "--port", str(self.port)], cwd=cwd, env=env,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            _wait_up(self.url + ready_path, self.process)
        except BaseException:
            self.process.kill()  # never leave a server behind
            self.process.wait()
            raise

    def stop(self) -> None:
        import signal

        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(60)
        except Exception:  # noqa: BLE001 - a stop that hangs is ended
            self.process.kill()
            self.process.wait()


def _client(command: str, url: str, *args: float, env: dict) -> dict:
    import subprocess

    output = subprocess.run([sys.executable, __file__, command, url, *map(str, args)], env=env, check=True,
                            capture_output=True, text=True).stdout
    return json.loads(output.splitlines()[-1])


def measure(root, work, env: dict, *, seconds: float, latency_seconds: float, rate: float = 1000) -> dict:
    """The floor's and ``switchyard serve``'s accepted events a second, delivery during the run, p99 latency."""
    python = sys.executable
    floor_env = {**env, "SWITCHYARD_FLOOR_FILE": str(work / "floor.ndjson")}
    floor_server = _Started([python, "-m", "uvicorn", "benchmarks.serve:floor", "--log-level", "warning"],
                            root, floor_env, "/")
    try:
        floor_load = _client("load", floor_server.url, seconds, env=env)
    finally:
        floor_server.stop()

    def serve(name: str) -> _Started:
        return _Started([python, "-m", "engine.serve", str(root / "rules" / "customerio.yaml"),
                         "--spool", str(work / f"{name}-spool"), "--workspace", str(work / f"{name}.db"),
                         "--dead-letter", str(work / f"{name}-dead.ndjson")], root, env, "/ready")

    served = _under_load(serve("serve"), seconds, env)
    # Delivery keeping up with 20,000 events a second is measured with clients sending at that rate: sending
    # as fast as the server takes them, ingest takes the core delivery needs, and the depth must grow.
    steady = _under_load(serve("steady"), seconds, env, rate=STEADY_RATE)
    latency_server = serve("latency")
    try:
        latencies = _client("latency", latency_server.url, latency_seconds, rate, env=env)
    finally:
        latency_server.stop()
    return {"floor": floor_load["events"] / floor_load["seconds"], **served,
            "steady": steady, "latency": latencies}


def _under_load(server: _Started, seconds: float, env: dict, rate: float | None = None) -> dict:
    """Events accepted and delivered a second while clients send for ``seconds`` (as fast as they can, or
    ``rate`` events a second), and the spool's depth at each sixth of that time; the server is stopped after."""
    import threading

    samples: list[tuple[float, dict]] = []
    done = threading.Event()

    def sample() -> None:
        while not done.wait(seconds / 6):
            samples.append((time.monotonic(), metrics(server.url)))

    try:
        before = (time.monotonic(), metrics(server.url))
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        sent = _client("load", server.url, seconds, *([rate] if rate else []), env=env)
        done.set()
        sampler.join()
        after = (time.monotonic(), metrics(server.url))
    finally:
        server.stop()
    return {"accepted": sent["events"] / sent["seconds"], "refused": sent["refused"],
            "delivered": (_delivered(after[1]) - _delivered(before[1])) / (after[0] - before[0]),
            "depths": [s["switchyard_spool_depth"] for _, s in samples]}
