"""A real webhook receiver on 127.0.0.1 for tests: it answers, is down, hangs, or is slow, as a test says."""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Hook:
    """Answers every POST ``200 {}`` and keeps its JSON body in ``received``, in the order answered.

    ``down``: answer 503 instead (counted in ``refused``, body not kept). ``held=True``: hold each
    request until :meth:`release`. ``delay``: seconds before each answer. ``base`` is the server's
    URL, ``url`` its ``/hook`` path. HTTP/1.1, kept alive, as real receivers are.
    """

    def __init__(self, *, down: bool = False, held: bool = False, delay: float = 0.0):
        self.received: list = []
        self.refused = 0
        self.down, self.delay = down, delay
        self._released = threading.Event()
        if not held:
            self._released.set()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body at once: no delayed-ACK stall per request

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if not hook._released.wait(60):
                    return
                if hook.delay:
                    time.sleep(hook.delay)
                down = hook.down
                try:
                    self.send_response(503 if down else 200)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"{}")
                except OSError:
                    return  # the sender is gone (stopped or killed): it never saw this answer
                if down:
                    hook.refused += 1
                else:
                    hook.received.append(json.loads(body))

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.url = f"{self.base}/hook"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def release(self) -> None:
        """Answer the held requests, and every one after."""
        self._released.set()

    def close(self) -> None:
        self._released.set()
        self.server.shutdown()
        self.server.server_close()
