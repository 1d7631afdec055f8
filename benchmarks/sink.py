"""A local HTTP/1.1 endpoint for the delivery benchmarks: every request is answered at once with 200 ``{}``.

    python benchmarks/sink.py --port 0     # prints its URL on the first line, then serves until stopped

It stands in for Customer.io's Track API (``/api/v2/batch``, ``/api/v2/entity``, ``/api/v1/metrics``)
and for a webhook endpoint (any other path), so that a delivery benchmark measures the client and not
the server. It must be much faster than the client: one asyncio process of its own, requests framed by
their ``Content-Length``, kept-alive and pipelined requests answered in order (all the answers to one
read in one write), and nothing kept but counts. ``GET /_sink/stats`` answers the counts so far as JSON
(requests, bytes received, requests per Track API path or first path segment) and is not counted itself.

It is not a general server: a chunked request is answered 411, a malformed ``Content-Length`` 400 and a
header block over 64 KB 431, each closing its connection.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

STATS_PATH = b"/_sink/stats"
TRACK_API = frozenset({b"/api/v2/batch", b"/api/v2/entity", b"/api/v1/metrics"})
MAX_HEAD = 64 * 1024
OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"


def _refusal(status: bytes) -> bytes:
    return b"HTTP/1.1 " + status + b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


def _first_segment(path: bytes) -> bytes:
    """``/contacts/u42`` -> ``/contacts``: webhook URLs carry ids, and the counts must stay small."""
    return b"/" + path[1:].split(b"/")[0]


@dataclass
class Counts:
    requests: int = 0
    received: int = 0  # bytes: request lines, headers and bodies
    paths: Counter = field(default_factory=Counter)

    def to_json(self) -> bytes:
        paths = {path.decode("latin-1"): count for path, count in self.paths.items()}
        return json.dumps({"requests": self.requests, "bytes": self.received, "paths": paths}).encode()


class _Connection(asyncio.Protocol):
    """One client connection: frames requests out of the bytes received and answers each in order."""

    def __init__(self, counts: Counts):
        self.counts = counts
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        answers: list[bytes] = []
        closing = False
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buffer) > MAX_HEAD:
                    answers.append(_refusal(b"431 Request Header Fields Too Large"))
                    closing = True
                break
            head = bytes(self.buffer[:end]).split(b"\r\n")
            length, keep_alive, framed = 0, not head[0].endswith(b"HTTP/1.0"), True
            for line in head[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value) if value.strip().isdigit() else -1
                elif name == b"transfer-encoding":
                    framed = False
                elif name == b"connection":
                    keep_alive = value.strip().lower() != b"close"
            if not framed or length < 0:
                answers.append(_refusal(b"411 Length Required" if not framed else b"400 Bad Request"))
                closing = True
                break
            size = end + 4 + length
            if len(self.buffer) < size:
                break  # the body is still on its way
            del self.buffer[:size]
            parts = head[0].split(b" ")
            path = parts[1].split(b"?")[0] if len(parts) > 1 else b""
            if path == STATS_PATH:
                body = self.counts.to_json()
                answers.append(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                               + str(len(body)).encode() + b"\r\n\r\n" + body)
            else:
                self.counts.requests += 1
                self.counts.received += size
                self.counts.paths[path if path in TRACK_API else _first_segment(path)] += 1
                answers.append(OK)
            if not keep_alive:
                closing = True
                break
        assert self.transport is not None
        if answers:
            self.transport.write(b"".join(answers))
        if closing:
            self.transport.close()


async def serve(host: str, port: int, announce) -> None:
    """Serve until cancelled; ``announce(url)`` is called once the socket listens."""
    counts = Counts()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Connection(counts), host, port, backlog=128)
    bound = server.sockets[0].getsockname()
    announce(f"http://{bound[0]}:{bound[1]}")
    async with server:
        await server.serve_forever()


# --- from another process ----------------------------------------------------------------------


@dataclass
class Sink:
    """A running sink process, seen from the process that started it."""

    url: str
    process: subprocess.Popen

    def stats(self) -> dict:
        """The sink's counts so far: ``{"requests": n, "bytes": n, "paths": {path: n}}``."""
        # http.client, not urllib: a proxy set in the environment must not come between us and 127.0.0.1.
        host, _, port = self.url.removeprefix("http://").partition(":")
        connection = http.client.HTTPConnection(host, int(port), timeout=10)
        try:
            connection.request("GET", STATS_PATH.decode())
            return json.loads(connection.getresponse().read())
        finally:
            connection.close()


@contextlib.contextmanager
def running(python: str = sys.executable) -> Iterator[Sink]:
    """Start a sink in its own process on a free port of 127.0.0.1; stop it on the way out."""
    process = subprocess.Popen([python, str(Path(__file__).resolve()), "--port", "0"],
                               stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        if not url.startswith("http://"):
            raise RuntimeError(f"the sink did not start (exit status {process.wait(5)})")
        yield Sink(url, process)
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="Answer every HTTP request with 200 {} and count them.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: any free port (the URL printed says which)")
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.host, args.port, lambda url: print(url, flush=True)))


if __name__ == "__main__":
    main()
