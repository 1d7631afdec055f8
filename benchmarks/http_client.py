"""Requests per second of ``Sender.send``: this client, the one before it, and the same client on urllib3.

    python benchmarks/http_client.py [--requests 20000] [--events 5000] [--rounds 3] [--threads 4]

A keep-alive sink on 127.0.0.1 answers every request with ``200`` at once. It runs in its own
process (asyncio, no HTTP library), so the client's process holds the GIL alone and the figure is
the client's cost per request: building the request, the syscalls, parsing the answer. The bodies
are small JSON documents with the headers a webhook sends. The same Senders then serve ``switchyard
run`` delivering events to the sink, one request each: the end-to-end figure. Contenders: the
client before the rewrite (read from git with ``git show``, so this needs a git checkout), the
rewrite on urllib3's pools (benchmarks/http_urllib3.py) and the rewrite on http.client in use.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import io
import json
import shutil
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

OLD_CLIENT = "733e081:engine/delivery/http.py"  # the client before the rewrite: one connection per origin
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


def requests_per_second(sender, url: str, count: int, threads: int = 1) -> tuple[float, float]:
    """(requests/s, client CPU us per request) for ``count`` requests over ``threads`` sharing ``sender``."""
    def run(n: int) -> None:
        for _ in range(n):
            if sender.send("POST", url, BODY, HEADERS).status != 200:
                raise RuntimeError("the sink did not answer 200")

    sender.send("POST", url, BODY, HEADERS)  # connect before the clock starts
    count = count // threads * threads
    started, cpu = time.perf_counter(), time.process_time()
    workers = [threading.Thread(target=run, args=(count // threads,)) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return count / (time.perf_counter() - started), (time.process_time() - cpu) / count * 1e6


RULES = """\
version: 1
destination: {name: hooks, catalog: webhook, settings: {url: "$URL", timeout: 5}}
mappings:
  - name: Orders
    trigger: event = "Order Completed"
    action: send
    fields:
      data: {id: properties.order_id, total: properties.total, email: context.traits.email}
"""


def events_per_second(sender_class, url: str, count: int, folder: Path) -> tuple[float, float]:
    """(events/s, CPU us per event) of ``switchyard run`` delivering ``count`` events to ``url`` one request each.

    The webhook adapter is given ``sender_class``; the run fails loudly if it used another.
    """
    from engine.adapters import webhook
    from engine.cli import main as switchyard

    rules, events = folder / "rules.yaml", folder / "events.ndjson"
    rules.write_text(RULES.replace("$URL", url))
    with events.open("w") as out:
        for n in range(count):
            out.write(json.dumps({"type": "track", "event": "Order Completed", "messageId": f"m{n}", "userId": f"u{n}",
                                  "properties": {"order_id": f"o{n}", "total": 12.5},
                                  "context": {"traits": {"email": "ada@example.com"}}}) + "\n")
    made: list = []

    def counted(*args, **kwargs):
        made.append(sender_class(*args, **kwargs))
        return made[-1]

    original = webhook.Sender
    vars(webhook)["Sender"] = counted  # what WebhookAdapter builds its Sender with
    try:
        started, cpu = time.perf_counter(), time.process_time()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            status = switchyard(["run", str(rules), str(events)])
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    finally:
        vars(webhook)["Sender"] = original
    if status != 0 or len(made) != 1:
        raise RuntimeError(f"switchyard run exited {status} with {len(made)} senders of the benchmarked kind")
    return count / elapsed, cpu / count * 1e6


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--events", type=int, default=5000, help="events for the switchyard run figure (0: skip)")
    parser.add_argument("--rounds", type=int, default=3, help="the best round counts")
    parser.add_argument("--threads", type=int, default=4, help="threads sharing one Sender (0: skip)")
    parser.add_argument("--sink", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.sink:
        asyncio.run(_serve())
        return

    from benchmarks import http_urllib3
    from engine.delivery import http as new

    old = old_client()
    sink = subprocess.Popen([sys.executable, __file__, "--sink"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    folder = Path(tempfile.mkdtemp(prefix="switchyard-bench-"))
    try:
        assert sink.stdout is not None
        url = f"http://127.0.0.1:{int(sink.stdout.readline())}/hooks/orders"
        contenders = [("before", old.Sender, 1), ("urllib3", http_urllib3.Sender, 1),
                      ("http.client (in use)", new.Sender, 1)]
        if args.threads > 1:
            contenders += [(f"urllib3, {args.threads} threads", http_urllib3.Sender, args.threads),
                           (f"http.client (in use), {args.threads} threads", new.Sender, args.threads)]
        best: dict[str, tuple[float, float]] = {}
        for _ in range(args.rounds):  # interleaved, so drift in machine load hits each contender alike
            for name, make, threads in contenders:
                with make(timeout=5) as sender:
                    rate, cpu = requests_per_second(sender, url, args.requests, threads)
                if name not in best or rate > best[name][0]:
                    best[name] = (rate, min(cpu, best.get(name, (0, cpu))[1]))
                if args.events and threads == 1:
                    rate, cpu = events_per_second(make, url, args.events, folder)
                    name = f"switchyard run, {name}"
                    if name not in best or rate > best[name][0]:
                        best[name] = (rate, min(cpu, best.get(name, (0, cpu))[1]))
        print(f"{args.requests} POSTs of {len(BODY)} bytes, {args.events} events; best of {args.rounds} rounds")
        print(f"  {'':44} {'per second':>10}  {'wall us':>8}  {'CPU us':>7}")
        for name, (rate, cpu) in sorted(best.items(), key=lambda item: item[0].startswith("switchyard")):
            print(f"  {name:44} {rate:10,.0f}  {1e6 / rate:8.1f}  {cpu:7.1f}")
    finally:
        sink.communicate(b"")
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
