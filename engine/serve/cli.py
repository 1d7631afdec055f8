"""``switchyard serve``: the command line, the process's signals and logs around :class:`Service`.

The only module of the package that prints or picks exit codes. SIGTERM and SIGINT stop the server:
new requests get 503 while the requests in flight finish (up to 5 s), then the listener closes, each
destination settles its chunk in hand up to ``--stop-deadline``, and the process exits 0 (what is
left stays in the spool for the next start).
SIGHUP, and a change to a rule file with ``--reload``, load the rules again.
"""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from .limits import BODY_TIMEOUT, DURABILITY, HEAD_TIMEOUT, SEND_TIMEOUT, Limits

if TYPE_CHECKING:
    from .service import Service

EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE = 0, 1, 2
#: Seconds the listener stays open after SIGTERM/SIGINT while requests are in flight (new ones get 503).
DRAIN = 5.0


def add_serve_command(subparsers) -> argparse.ArgumentParser:
    serve = subparsers.add_parser("serve", help="take events from Segment's client libraries over HTTP, spool "
                                                "them durably and deliver them")
    serve.add_argument("rules", nargs="+", metavar="PATH", help="rule files or folders of them, as for `run`")
    serve.add_argument("--host", default="127.0.0.1", help="the address to listen on (default: %(default)s; "
                                                           "0.0.0.0 for every interface)")
    serve.add_argument("--port", type=int, default=8088, help="default: %(default)s")
    serve.add_argument("--spool", metavar="DIR", default="spool",
                       help="the folder of the spool, where acknowledged events wait (default: %(default)s)")
    serve.add_argument("--workspace", metavar="DB", help="the SQLite workspace for destinations with "
                                                         "transport: workspace, as for `run`")
    serve.add_argument("--dead-letter", metavar="FILE", default="deadletter.ndjson",
                       help="where calls that were not delivered go, as for `run` (default: %(default)s)")
    serve.add_argument("--write-key", metavar="KEY", action="append", default=[],
                       help="a write key to accept (repeat for more); without any, every key is accepted")
    serve.add_argument("--durability", choices=sorted(DURABILITY), default="power",
                       help="power: each commit is synced to disk (survives a power cut); process: survives "
                            "the server being killed, not the machine (faster). Default: %(default)s")
    serve.add_argument("--dedupe-window", metavar="SECONDS", type=float, default=24 * 3600,
                       help="a messageId seen this recently is dropped as a retry (default: 24 h)")
    serve.add_argument("--max-spool-events", metavar="N", type=int, default=Limits.max_events,
                       help="answer 429 while this many events wait for a destination (default: %(default)s)")
    serve.add_argument("--max-spool-bytes", metavar="N", type=int, default=Limits.max_bytes,
                       help="answer 429 while the spool's files are this big (default: %(default)s)")
    serve.add_argument("--min-free-bytes", metavar="N", type=int, default=Limits.min_free_bytes,
                       help="answer 429 while less disk than this is free (default: %(default)s)")
    serve.add_argument("--retry-after", metavar="SECONDS", type=int, default=Limits.retry_after,
                       help="the Retry-After of a 429 (default: %(default)s)")
    serve.add_argument("--stop-deadline", metavar="SECONDS", type=float, default=10.0,
                       help="how long deliveries may take to settle at a stop (default: %(default)s)")
    serve.add_argument("--head-timeout", metavar="DURATION", type=duration, default=f"{HEAD_TIMEOUT:g}s",
                       help="close a connection whose request line and headers have not come whole this long "
                            "after it opened, or after a kept-alive one's next request began (408; 0: no "
                            "deadline; default: %(default)s)")
    serve.add_argument("--body-timeout", metavar="DURATION", type=duration, default=f"{BODY_TIMEOUT:g}s",
                       help="close, without an answer, a connection whose request body has not come whole this "
                            "long after its head (the client sends it again; 0: no deadline; default: %(default)s)")
    serve.add_argument("--send-timeout", metavar="DURATION", type=duration, default=f"{SEND_TIMEOUT:g}s",
                       help="cut off a connection whose answers have filled the server's buffer for it and not "
                            "drained from it this long (0: never; default: %(default)s)")
    serve.add_argument("--give-up-after", metavar="DURATION", type=duration, default="24h",
                       help="a call that failed is held and delivered again until this long after its event "
                            "was received, then dead-lettered (30s, 15m, 24h; 0: at the first failure; "
                            "default: 24h)")
    serve.add_argument("--max-delivery-attempts", metavar="N", type=int, default=0,
                       help="dead-letter a failed call after this many deliveries, each with the destination's "
                            "own retries (default: 0, no limit but --give-up-after)")
    serve.add_argument("--backoff-first", metavar="DURATION", type=duration, default="1s",
                       help="the wait before held calls are delivered again (default: 1s)")
    serve.add_argument("--backoff-max", metavar="DURATION", type=duration, default="5m",
                       help="the longest wait, doubling from --backoff-first, with jitter (default: 5m)")
    serve.add_argument("--lanes", choices=("auto", "thread", "process"), default="auto",
                       help="where an embedded store (the workspace) applies its calls: a thread of the server, or "
                            "a process of its own; auto: a process when there are 2 cores or more (default: "
                            "%(default)s). HTTP destinations always deliver from a thread")
    serve.add_argument("--reload", action="store_true", help="load the rules again when a rule file changes")
    serve.add_argument("--log-format", choices=("text", "json"), default="text",
                       help="json: one JSON object a line (default: %(default)s)")
    return serve


_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def duration(text: str) -> float:
    """Seconds from ``30s``, ``15m``, ``24h``, ``2d``, ``500ms`` or a plain number of seconds."""
    value = text.strip().lower()
    unit = next((unit for unit in ("ms", "s", "m", "h", "d") if value.endswith(unit)), "")
    try:
        seconds = float(value[:len(value) - len(unit)]) * _UNITS.get(unit, 1.0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (say 30s, 15m, 24h)") from None
    if not seconds >= 0:
        raise argparse.ArgumentTypeError(f"a duration cannot be negative: {text!r}")
    return seconds


def _logging(form: str):
    """Log lines to stderr, as text or one JSON object each; returns the server's logger."""
    import json
    import logging

    class JsonLines(logging.Formatter):
        def format(self, record: logging.LogRecord) -> str:
            entry = {"time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"), "level": record.levelname.lower(),
                     "logger": record.name, "message": record.getMessage()}
            if record.exc_info:
                entry["error"] = self.formatException(record.exc_info)
            return json.dumps(entry)

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLines() if form == "json" else logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    for name in ("switchyard.serve", "uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(logging.INFO)
        logger.propagate = False
    return logging.getLogger("switchyard.serve")


def run_serve(args) -> int:
    """Serve until SIGTERM or SIGINT; 0 after a clean stop, 1 when the rules or the spool cannot be used."""
    # Imported here: `switchyard --help` and the other commands do not pay for the server's modules.
    from ..adapters.patient import Patience
    from ..collector import for_streams
    from ..deadletter import DeadLetterError
    from .service import Options, RulesError, Service, load_rules
    from .spool import SpoolError

    log = _logging(args.log_format)
    try:
        rules = load_rules(args.rules)
    except RulesError as error:
        for problem in error.problems:
            print(problem, file=sys.stderr)
        return EXIT_PROBLEMS
    except FileNotFoundError as error:
        print(f"switchyard serve: {error}", file=sys.stderr)
        return EXIT_USAGE
    options = Options(paths=args.rules, spool=args.spool, workspace=args.workspace, dead_letter=args.dead_letter,
                      write_keys=frozenset(args.write_key), durability=args.durability,
                      dedupe_window=args.dedupe_window, stop_deadline=args.stop_deadline,
                      limits=Limits(args.max_spool_events, args.max_spool_bytes, args.min_free_bytes,
                                    args.retry_after),
                      patience=Patience(args.give_up_after, max(0, args.max_delivery_attempts),
                                        args.backoff_first, max(args.backoff_first, args.backoff_max)),
                      lanes=args.lanes)
    try:
        service = Service(options, rules).start()
    except (SpoolError, DeadLetterError) as error:
        print(f"switchyard serve: {error}", file=sys.stderr)
        return EXIT_PROBLEMS
    except Exception as error:  # noqa: BLE001 - an adapter cannot open (SetupError and the like)
        print(f"switchyard serve: {error}", file=sys.stderr)
        return EXIT_PROBLEMS
    if not options.write_keys:
        log.warning("no --write-key given: every write key is accepted")
    try:
        with for_streams():  # each request's and event's objects die young: collections seldom walk the rules
            serve(service, args.host, args.port, watch=args.reload,
                  timeouts=(args.head_timeout, args.body_timeout, args.send_timeout))
    finally:  # uvicorn may end without a signal (the port is taken): deliveries still stop in order
        previous = _second_signal_exits_at_once()
        try:
            settled = service.stop()
        finally:
            for sig, handler in previous.items():  # a program that called this in its main thread gets its own back
                signal.signal(sig, handler)
        log.info("stopped; %s", "every delivery in hand settled" if settled else
                 "deliveries not settled by the deadline stay in the spool")
    return EXIT_OK


def _second_signal_exits_at_once() -> dict[int, Any]:
    """While deliveries stop, SIGINT or SIGTERM ends the process at once, as the docs say: uvicorn has put back
    Python's own handlers, under which a second Ctrl-C printed a KeyboardInterrupt traceback and a second
    SIGTERM killed the process with no word. The spool is safe: each commit is whole (WAL), as after kill -9.
    Returns the handlers it replaced, to be put back once the stop is done."""
    if threading.current_thread() is not threading.main_thread():
        return {}

    def at_once(sig: int, _frame: FrameType | None) -> None:
        logging.getLogger("switchyard.serve").warning("a second signal: exiting at once; what was not delivered "
                                                      "stays in the spool")
        logging.shutdown()
        os._exit(128 + sig)

    return {sig: signal.signal(sig, at_once) for sig in (signal.SIGINT, signal.SIGTERM)}


def serve(service: Service, host: str, port: int, *, watch: bool = False,
          timeouts: tuple[float, float, float] = (HEAD_TIMEOUT, BODY_TIMEOUT, SEND_TIMEOUT)) -> None:
    """Answer HTTP on ``host:port`` until SIGTERM or SIGINT (uvicorn, with :mod:`engine.serve.protocol`);
    ``timeouts``: the head's, the body's and the unread answers' (seconds, 0 for none)."""
    import uvicorn

    from .app import App
    from .protocol import protocol_counting

    app = App(service)

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            if service.draining:  # a second signal: close now (a second SIGINT does not wait at all)
                self.force_exit = self.force_exit or sig == signal.SIGINT
                self.should_exit = True
                return
            # New requests get 503 "stopping" from now on; the listener stays open until the requests in
            # flight are answered (DRAIN seconds at most), then uvicorn closes it and finishes.
            service.draining = True
            threading.Thread(target=self._drain, name="drain", daemon=True).start()

        def _drain(self) -> None:
            deadline = time.monotonic() + DRAIN
            while app.in_flight and time.monotonic() < deadline:
                time.sleep(0.02)
            self.should_exit = True  # not re-raised at the end: the process exits 0 after the stop

    requests = service.metrics.requests
    config = uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False,
                            lifespan="on", timeout_graceful_shutdown=5, server_header=False,
                            http=protocol_counting(lambda status: requests.labels(str(status)).inc(), *timeouts))
    server = Server(config)
    stopped = threading.Event()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGHUP, lambda *_: threading.Thread(target=service.reload, daemon=True).start())
    if watch:
        threading.Thread(target=_watch, args=(service, stopped), daemon=True, name="rule watcher").start()
    log = logging.getLogger("switchyard.serve")
    log.info("listening on http://%s:%d (spool %s, durability %s)", host, port, service.options.spool,
             service.options.durability)
    try:
        server.run()
    finally:
        stopped.set()


def _watch(service: Service, stopped: threading.Event, every: float = 1.0) -> None:
    """Reload when a rule file's modification time or the set of rule files changes."""
    def snapshot() -> dict[str, float]:
        times = {}
        for root in service.options.paths:
            path = Path(root)
            for file in ([path] if path.is_file() else sorted(path.rglob("*.y*ml"))):
                try:
                    times[str(file)] = file.stat().st_mtime
                except OSError:
                    pass
        return times

    seen = snapshot()
    while not stopped.wait(every):
        now = snapshot()
        if now != seen:
            seen = now
            time.sleep(0.1)  # an editor's save may come in two writes
            service.reload()


def main(argv: list[str] | None = None) -> int:
    """``python -m engine.serve``: the command alone (``switchyard serve`` is the same)."""
    parser = argparse.ArgumentParser(prog="switchyard")
    add_serve_command(parser.add_subparsers(dest="command", required=True))
    return run_serve(parser.parse_args(["serve", *(sys.argv[1:] if argv is None else argv)]))
