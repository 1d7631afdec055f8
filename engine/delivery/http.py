"""A small HTTP/1.1 client on ``http.client``: one request in, one :class:`Response` out.

This module owns the wire: kept-alive connections pooled per origin (scheme, host and port),
the deadline of an attempt, the ``http_proxy``/``https_proxy``/``no_proxy`` settings urllib also
honours, checking that a request can be written at all, and turning failures into
:class:`SendError`. It does not retry, follow redirects, authenticate or know any destination's
API; those live above it.

Why not urllib3: the same client on urllib3's pools (benchmarks/http_urllib3.py) took 70 us more
CPU per request and a third of ``switchyard run``'s throughput to a local server
(benchmarks/http_client.py, docs/delivery.md).
"""
from __future__ import annotations

import base64
import http.client
import io
import math
import re
import select
import socket
import ssl
import threading
import time
import urllib.request
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Self
from urllib.parse import unquote, urlsplit

USER_AGENT = "switchyard/0.1"
POOLED_PER_ORIGIN = 16  # idle connections kept per origin: one per thread sending there at once
#: Idle connections kept in all: past it, one of the origin sent to longest ago is closed, so a webhook
#: whose URL names a host per customer does not hold a descriptor open for every host it reached, and
#: one sending to many hosts in turn still reuses a connection to each.
POOLED_IDLE = 128
#: The most of an answer's body read: reasons keep 2,000 characters and APIs answer in kilobytes; a URL
#: that names a download must not fill the memory. The rest is not read and its connection is closed.
LARGEST_ANSWER = 4 << 20


@dataclass(frozen=True)
class Response:
    """An HTTP answer: ``headers`` has lower-case names; ``url`` is where the request went."""

    status: int
    headers: dict = field(default_factory=dict)
    body: bytes = b""
    url: str = ""

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def text(self, limit: int = 2000) -> str:
        """The body as text, cut to ``limit`` characters (enough for a dead-letter record)."""
        return self.body.decode("utf-8", "replace")[:limit]


class SendError(Exception):
    """No usable HTTP answer: the connection failed, dropped, or stayed silent past the timeout.

    ``retryable`` is False only for requests that can never succeed as written (a bad URL or header).
    ``response`` is set by subclasses that failed on an answer from another server (a token endpoint).
    """

    def __init__(self, message: str, *, retryable: bool = True, response: Response | None = None):
        super().__init__(message)
        self.retryable = retryable
        self.response = response


Origin = tuple[str, str, int]  # scheme, host, port


class Sender:
    """Sends requests over kept-alive connections, pooled per (scheme, host, port).

    Thread-safe: threads may share one Sender; each request has a connection to itself, taken
    from and given back to its origin's pool under a lock. ``timeout`` bounds each attempt as a
    whole, connecting, sending and reading the answer, however slowly a server drips its bytes;
    only the name lookup and a TLS handshake are bounded per read instead.
    """

    def __init__(self, timeout: float = 10.0, *, user_agent: str = USER_AGENT, ssl_context=None):
        self.timeout = timeout
        self.user_agent = user_agent
        self.ssl_context = ssl_context
        self._proxies = urllib.request.getproxies()
        self._idle: OrderedDict[Origin, list[_HTTPConnection]] = OrderedDict()  # the origin sent to last, last
        self._idle_count = 0
        self._lock = threading.Lock()

    def send(self, method: str, url: str, body: bytes | None = None, headers: dict | None = None) -> Response:
        """Send one request and read the whole answer; any status is a :class:`Response`."""
        origin, target = _route(url)
        request_headers = _request_headers(self.user_agent, headers)
        proxy = self._proxy(origin[0], origin[1]) if self._proxies else None
        if proxy is not None and origin[0] == "http":
            target = url.split("#")[0]  # a plain-HTTP proxy takes the absolute URL (RFC 9112 section 3.2.2)
            request_headers.update(proxy[2])
        _attempt.deadline = time.monotonic() + self.timeout
        connection = self._take(origin, proxy)
        try:
            try:
                answer = _exchange(connection, method, target, body, request_headers)
            except _CLOSED_UNANSWERED:
                if not connection.reused:
                    raise
                # A kept-alive connection the server closed as this request went out (its close
                # had not reached us when the connection was taken): the request goes once more on
                # a new connection, within the same deadline, as browsers and Go's client do. Not
                # an attempt of its own: the call was not answered, and delivery is at least once.
                connection.close()
                connection = self._new(origin, proxy)
                answer = _exchange(connection, method, target, body, request_headers)
            data = answer.read(LARGEST_ANSWER)
            whole = not data or answer.isclosed() or answer.length == 0 or not answer.read(1)
        except (OSError, http.client.HTTPException, UnicodeError) as error:
            connection.close()
            if isinstance(error, TimeoutError) or time.monotonic() >= _attempt.deadline:
                raise SendError(f"cannot reach {url}: no answer within {self.timeout:g}s") from None
            raise SendError(f"cannot reach {url}: {_reason(error)}", retryable=_may_pass(error)) from None
        finally:
            _attempt.deadline = math.inf
        if answer.will_close or not whole:
            connection.close()
        else:
            self._give_back(origin, connection)
        response_headers: dict[str, str] = {}
        for name, value in answer.getheaders():
            name = name.lower()
            response_headers[name] = f"{response_headers[name]}, {value}" if name in response_headers else value
        return Response(answer.status, response_headers, data, url)

    def close(self) -> None:
        """Close every idle connection; a later ``send`` opens new ones."""
        with self._lock:
            idle, self._idle, self._idle_count = self._idle, OrderedDict(), 0
        for connections in idle.values():
            for connection in connections:
                connection.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _take(self, origin: Origin, proxy: tuple[str, int, dict] | None) -> _HTTPConnection:
        """An idle connection to ``origin`` still open, or a new one (connected on first send)."""
        while True:
            with self._lock:
                idle = self._idle.get(origin)
                connection = idle.pop() if idle else None
                self._idle_count -= connection is not None
                if idle is not None and not idle:
                    del self._idle[origin]
            if connection is None:
                return self._new(origin, proxy)
            if not _dropped(connection):
                connection.reused = True
                connection.sock.settimeout(self.timeout)  # type: ignore[union-attr]  # not what the last attempt had left
                return connection
            # The server closed an idle keep-alive connection; never write a request into it
            # (it would fail, or worse be sent twice).
            connection.close()

    def _new(self, origin: Origin, proxy: tuple[str, int, dict] | None) -> _HTTPConnection:
        """A new connection to ``origin`` (through ``proxy``), connected on its first send."""
        scheme, host, port = origin
        via_host, via_port = (proxy[0], proxy[1]) if proxy is not None else (host, port)
        if scheme == "https":
            secure = _HTTPSConnection(via_host, via_port, context=self.ssl_context)
            if proxy is not None:
                secure.set_tunnel(host, port, headers=proxy[2])
            return secure
        return _HTTPConnection(via_host, via_port)

    def _give_back(self, origin: Origin, connection: _HTTPConnection) -> None:
        closing = [connection]
        with self._lock:
            idle = self._idle.setdefault(origin, [])
            self._idle.move_to_end(origin)
            if len(idle) < POOLED_PER_ORIGIN:
                idle.append(connection)
                closing.pop()
                self._idle_count += 1
            while self._idle_count > POOLED_IDLE:
                oldest, connections = next(iter(self._idle.items()))
                if connections:
                    closing.append(connections.pop(0))
                    self._idle_count -= 1
                if not connections:
                    del self._idle[oldest]
        for stale in closing:
            stale.close()

    def _proxy(self, scheme: str, host: str) -> tuple[str, int, dict] | None:
        """(host, port, headers) of the proxy for this origin, as urllib would choose it."""
        proxy = self._proxies.get(scheme)
        if not proxy or urllib.request.proxy_bypass(host):
            return None
        parts = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        headers = {}
        if parts.username:
            pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
            headers["Proxy-Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
        return parts.hostname or "", parts.port or 80, headers


class _Attempt(threading.local):
    """The deadline of the attempt this thread is making: Sender.send sets it, the connections
    read it before each send and each receive, so a server dripping bytes cannot stretch it."""

    deadline = math.inf


_attempt = _Attempt()


def _time_left() -> float | None:
    """Seconds left to the deadline (None outside an attempt), or TimeoutError when none are."""
    left = _attempt.deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("the attempt's deadline passed")
    return None if left == math.inf else left


def _keep_to_deadline(sock: socket.socket) -> None:
    """Make ``sock`` wait no longer than the attempt's deadline (settimeout is a syscall: only when needed)."""
    left, now = _time_left(), sock.gettimeout()
    if left is not None and (now is None or now > left + 0.005):
        sock.settimeout(left)


class _Deadlined(io.RawIOBase):
    """A socket's receiving side that gives up at the attempt's deadline, not after a quiet spell.

    It stands in for the ``makefile()`` http.client made, and closes that file with itself, so
    the socket's own reference count (which delays closing it until readers are done) holds.
    """

    def __init__(self, sock: socket.socket, replaced: Any):
        super().__init__()
        self._sock, self._replaced = sock, replaced

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        _keep_to_deadline(self._sock)
        return self._sock.recv_into(buffer)

    def close(self) -> None:
        if not self.closed:
            self._replaced.close()
        super().close()


class _Answer(http.client.HTTPResponse):
    """http.client's response, reading through :class:`_Deadlined`, and past interim answers."""

    def __init__(self, sock: socket.socket, debuglevel: int = 0, method: str | None = None, url: str | None = None):
        super().__init__(sock, debuglevel, method, url)
        if _attempt.deadline != math.inf:
            self.fp = io.BufferedReader(_Deadlined(sock, self.fp))

    def _read_status(self) -> tuple[str, int, str]:
        # http.client passes over 100 Continue only. 102 Processing and 103 Early Hints come before the
        # answer too (RFC 9110 section 15.2): taken as the answer, they failed a call the server went on
        # to accept, and left that answer on the connection for the next request to read as its own.
        while True:
            version, status, reason = super()._read_status()  # type: ignore[misc]
            if not (102 <= status < 200):
                return version, status, reason
            http.client.parse_headers(self.fp)  # type: ignore[arg-type]  # the interim answer's own headers


class _HTTPConnection(http.client.HTTPConnection):
    """A connection that keeps to the attempt's deadline and writes a small request in one piece."""

    response_class = _Answer
    _body: bytes | None = None
    reused = False  # taken from the pool of idle kept-alive connections

    def connect(self) -> None:
        self.timeout = _time_left()
        super().connect()

    def request(self, method: str, url: str, body: Any = None, headers: Any = None, **options: Any) -> None:
        headers = headers or {}
        if isinstance(body, bytes) and body and not any(name.lower() == "content-length" for name in headers):
            # http.client writes the headers, then the body: two writes, two packets, and the
            # server wakes twice. Written together they are one.
            headers = {**headers, "Content-Length": str(len(body))}
            self._body, body = body, None
        try:
            super().request(method, url, body, headers, **options)
        finally:
            self._body = None

    def send(self, data: Any) -> None:
        if self._body is not None:
            data, self._body = data + self._body, None
        if self.sock is None:
            self.connect()
        _keep_to_deadline(self.sock)
        super().send(data)


class _HTTPSConnection(_HTTPConnection, http.client.HTTPSConnection):
    pass


# RFC 9110 section 5.6.2 (token) and 5.5 (field values: no CR, LF or NUL; we refuse every control
# character but tab). Values are written as latin-1, like http.client does.
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_BAD_VALUE = re.compile(r"[^\t\x20-\x7e\x80-\xff]")
_BAD_URL = re.compile(r"[^\x21-\x7e]")


def _request_headers(user_agent: str, headers: dict | None) -> dict[str, str]:
    """The headers to send, or a non-retryable SendError naming the first that cannot be written."""
    result = {"User-Agent": user_agent}
    for name, value in (headers or {}).items():
        if not isinstance(value, str):
            value = value.decode("latin-1") if isinstance(value, bytes) else str(value)
        if not isinstance(name, str) or not _HEADER_NAME.fullmatch(name):
            raise SendError(f"cannot send header {name!r}: not a valid header name", retryable=False)
        if bad := _BAD_VALUE.search(value):  # the value itself is not shown: headers carry secrets
            raise SendError(f"cannot send header {name}: its value holds {bad.group()!r} at character "
                            f"{bad.start() + 1} (a line break, a control character or a character outside "
                            "latin-1)", retryable=False)
        result[name] = value
    return result


def _route(url: str) -> tuple[Origin, str]:
    """((scheme, host, port), request target) for ``url``, or a non-retryable SendError."""
    bad = _BAD_URL.search(url)
    if bad:
        # Not the URL itself: its query may carry a secret, which a control character in it would hide from
        # the masking of dead-letter reasons.
        raise SendError(f"not a valid URL: it holds {bad.group()!r} at character {bad.start() + 1} (spaces, "
                        "control and non-ASCII characters must be percent-encoded)", retryable=False)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise SendError(f"not a valid URL: {url} ({error})", retryable=False) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SendError(f"not an http(s) URL: {url}", retryable=False)
    port = port or (443 if parts.scheme == "https" else 80)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return (parts.scheme, parts.hostname, port), target


def _exchange(connection: http.client.HTTPConnection, method: str, target: str, body: bytes | None,
              headers: dict[str, str]) -> http.client.HTTPResponse:
    """Write one request on ``connection`` and read the head of its answer."""
    connection.request(method, target, body=body, headers=headers)
    return connection.getresponse()


#: What a kept-alive connection closed by its server gives before any byte of an answer.
_CLOSED_UNANSWERED = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError, ConnectionAbortedError)


def _dropped(connection: http.client.HTTPConnection) -> bool:
    """Whether an idle kept-alive connection was closed by the server (readable means EOF or junk)."""
    sock = connection.sock
    if sock is None:
        return False
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


def _reason(error: Exception) -> str:
    if isinstance(error, http.client.RemoteDisconnected):
        return "the server closed the connection without answering"
    if isinstance(error, ConnectionResetError):
        return "the connection was reset"
    if isinstance(error, UnicodeError):  # the host name, encoded for the lookup
        return f"not a valid host name ({error})"
    return str(error) or type(error).__name__


def _may_pass(error: Exception) -> bool:
    """Whether trying again may help: not for a host name that cannot be written, a certificate that does
    not verify, TLS to a port that does not speak it, or a proxy that refuses the tunnel: each fails the
    same way until someone changes the settings or the server (replay then). A proxy's 408 and 429 pass."""
    if isinstance(error, (UnicodeError, ssl.SSLCertVerificationError)):
        return False
    if isinstance(error, ssl.SSLError):
        return error.reason not in ("WRONG_VERSION_NUMBER", "UNSUPPORTED_PROTOCOL", "TLSV1_ALERT_PROTOCOL_VERSION")
    refused = re.match(r"Tunnel connection failed: (4[0-9][0-9])", str(error))
    return refused is None or refused.group(1) in ("408", "429")  # the proxy is busy or slow: try again
