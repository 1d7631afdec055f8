"""Requests per second of ``Sender.send``: the urllib3 client against the ``http.client`` one it replaced.

    python benchmarks/http_client.py [--requests 20000] [--rounds 3] [--threads 4]

A keep-alive sink on 127.0.0.1 answers every request with ``200`` at once. It runs in its own
process (asyncio, no HTTP library), so the client's process holds the GIL alone and the figure is
the client's cost per request: building the request, the syscalls, parsing the answer. The bodies
are small JSON documents with the headers a webhook sends. The old client is read from the commit
before the switch to urllib3 (``git show``), so the comparison needs a git checkout.
"""
from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

OLD_CLIENT = "733e081:engine/delivery/http.py"  # the last commit with the http.client implementation
ANSWER = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"ok\":true}"
BODY = json.dumps({"id": "o-1042", "email": "ada@example.com", "total": 129.5, "currency": "EUR",
                   "items": [{"sku": "A-1", "qty": 2}, {"sku": "B-7", "qty": 1}]}).encode()
HEADERS = {"Content-Type": "application/json", "Authorization": "Bearer 0123456789abcdef", "X-Source": "switchyard"}


class _Sink(asyncio.Protocol):
    """Answers each complete request (headers and Content-Length body) with ``ANSWER``."""

    def connection_made(self, transport):
        self.transport, self.pending = transport, b""

    def data_received(self, data: bytes) -> None:
        pending = self.pending + data
        while True:
            end = pending.find(b"\r\n\r\n")
            if end < 0:
                break
            head, length = pending[:end].lower(), 0
            at = head.find(b"\r\ncontent-length:")
            if at >= 0:
                length = int(head[at + 17:].split(b"\r\n", 1)[0])
            if len(pending) < end + 4 + length:
                break
            pending = pending[end + 4 + length:]
            self.transport.write(ANSWER)
        self.pending = pending


async def _serve() -> None:
    server = await asyncio.get_running_loop().create_server(_Sink, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until the parent closes stdin


def old_client() -> ModuleType:
    """The http.client implementation as it was, loaded from git as a module of its own."""
    source = subprocess.run(["git", "show", OLD_CLIENT], cwd=ROOT, capture_output=True, check=True).stdout
    path = Path(tempfile.mkdtemp(prefix="switchyard-bench-")) / "old_http.py"
    path.write_bytes(source)
    spec = importlib.util.spec_from_file_location("old_http", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def requests_per_second(sender, url: str, count: int, threads: int = 1) -> float:
    """Send ``count`` requests (split over ``threads`` sharing ``sender``); every answer must be 200."""
    def run(n: int) -> None:
        for _ in range(n):
            if sender.send("POST", url, BODY, HEADERS).status != 200:
                raise RuntimeError("the sink did not answer 200")

    sender.send("POST", url, BODY, HEADERS)  # connect before the clock starts
    started = time.perf_counter()
    if threads == 1:
        run(count)
    else:
        workers = [threading.Thread(target=run, args=(count // threads,)) for _ in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    return count // threads * threads / (time.perf_counter() - started)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=3, help="the best round counts")
    parser.add_argument("--threads", type=int, default=4, help="threads sharing one new Sender (0: skip)")
    parser.add_argument("--sink", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.sink:
        asyncio.run(_serve())
        return

    from engine.delivery import http as new

    old = old_client()
    sink = subprocess.Popen([sys.executable, __file__, "--sink"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert sink.stdout is not None
        url = f"http://127.0.0.1:{int(sink.stdout.readline())}/hooks/orders"
        contenders = [("http.client (old)", old.Sender, 1), ("urllib3 (new)", new.Sender, 1)]
        if args.threads > 1:
            contenders.append((f"urllib3 (new), {args.threads} threads", new.Sender, args.threads))
        best: dict[str, float] = {}
        for _ in range(args.rounds):  # interleaved, so drift in machine load hits each contender alike
            for name, make, threads in contenders:
                with make(timeout=5) as sender:
                    rate = requests_per_second(sender, url, args.requests, threads)
                best[name] = max(best.get(name, 0.0), rate)
        base = best[contenders[0][0]]
        print(f"{args.requests} POSTs of {len(BODY)} bytes, best of {args.rounds} rounds")
        for name, rate in best.items():
            print(f"  {name:32} {rate:9,.0f} requests/s  {rate / base:6.2f}x  {1e6 / rate:6.1f} us/request")
    finally:
        sink.communicate(b"")


if __name__ == "__main__":
    main()
