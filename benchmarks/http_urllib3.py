"""The Sender on urllib3's connection pools: the contender engine/delivery/http.py was measured against.

Same API and behaviour as engine/delivery/http.py (the attempt deadline, refusing URLs and
headers that cannot be written, thread safety), with urllib3 (>= 2) doing pooling, proxies and
TLS, told never to retry or redirect. It passed the same Sender tests. benchmarks/http_client.py
measures it; it costs more CPU per request than the http.client version, more than the 10% end
to end that would have been worth urllib3's connection handling, so it is kept here, not used.
"""
from __future__ import annotations

import base64
import http.client
import io
import math
import re
import socket
import threading
import time
import urllib.request
from dataclasses import dataclass
from typing import Any, Self
from urllib.parse import unquote, urlsplit

import urllib3
import urllib3.connection
from urllib3.exceptions import (
    ClosedPoolError,
    HTTPError,
    NewConnectionError,
    ProtocolError,
    ProxyError,
    SSLError,
)
from urllib3.exceptions import TimeoutError as PoolTimeout

from engine.delivery.http import Response, SendError

USER_AGENT = "switchyard/0.1"
POOLED_PER_ORIGIN = 16  # idle connections kept per origin: one per thread sending there at once
MAX_ORIGINS = 64        # origins with a pool; beyond, the oldest pool is closed (URLs taken from events)


# The same answer and error types as engine.delivery.http, so the Retrier and adapters take either client.
class Sender:
    """Sends requests over kept-alive connections, pooled per (scheme, host, port).

    Thread-safe: threads may share one Sender (urllib3's pools hand each request its own
    connection; the table of pools is guarded by a lock). ``timeout`` bounds each attempt as a
    whole, connecting, sending and reading the answer, however slowly a server drips its bytes;
    only the name lookup and a TLS handshake are bounded per read instead.
    """

    def __init__(self, timeout: float = 10.0, *, user_agent: str = USER_AGENT, ssl_context=None):
        self.timeout = timeout
        self.user_agent = user_agent
        self.ssl_context = ssl_context
        self._proxies = urllib.request.getproxies()
        self._routes: dict[tuple[str, str, int], _Route] = {}
        self._proxy_managers: dict[str, urllib3.ProxyManager] = {}
        self._lock = threading.Lock()
        self._limits = urllib3.Timeout(total=timeout)

    def send(self, method: str, url: str, body: bytes | None = None, headers: dict | None = None) -> Response:
        """Send one request and read the whole answer; any status is a :class:`Response`."""
        origin, target = _route(url)
        request_headers = _request_headers(self.user_agent, headers)
        route = self._routes.get(origin) or self._open(origin)
        _attempt.deadline = time.monotonic() + self.timeout
        try:
            if route.proxy is None:
                answer = route.pool.urlopen(method, target, body=body, headers=request_headers, retries=_NEVER,
                                            redirect=False, assert_same_host=False, timeout=self._limits,
                                            preload_content=True, decode_content=False)
            else:
                answer = route.proxy.urlopen(method, url.split("#")[0], body=body, headers=request_headers,
                                             retries=_NEVER, redirect=False, timeout=self._limits,
                                             preload_content=True, decode_content=False)
        except (HTTPError, OSError, http.client.HTTPException) as error:
            timed_out = time.monotonic() >= _attempt.deadline
            raise SendError(f"cannot reach {url}: {self._reason(error, timed_out)}") from None
        finally:
            _attempt.deadline = math.inf
        return Response(answer.status, {name.lower(): value for name, value in answer.headers.itermerged()},
                        answer.data, url)

    def close(self) -> None:
        """Close every kept-alive connection; a later ``send`` opens new ones."""
        with self._lock:
            routes, self._routes = self._routes, {}
            managers, self._proxy_managers = self._proxy_managers, {}
        for route in routes.values():
            route.pool.close()
        for manager in managers.values():
            manager.clear()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _open(self, origin: tuple[str, str, int]) -> _Route:
        """The pool (and proxy) for ``origin``, made once; proxies chosen as urllib would choose them."""
        scheme, host, port = origin
        with self._lock:
            route = self._routes.get(origin)
            if route is not None:
                return route
            proxy_url = self._proxies.get(scheme)
            proxy = None
            if proxy_url and not urllib.request.proxy_bypass(host):
                proxy = self._proxy_managers.get(proxy_url) or self._proxy_manager(proxy_url)
            pool_class = _HTTPSPool if scheme == "https" else _HTTPPool
            extra: dict[str, Any] = {"ssl_context": self.ssl_context} if scheme == "https" else {}
            route = _Route(pool_class(host, port, maxsize=POOLED_PER_ORIGIN, **extra), proxy)
            if len(self._routes) >= MAX_ORIGINS:
                oldest = next(iter(self._routes))
                self._routes.pop(oldest).pool.close()
            self._routes[origin] = route
            return route

    def _proxy_manager(self, proxy_url: str) -> urllib3.ProxyManager:
        parts = urlsplit(proxy_url if "://" in proxy_url else f"http://{proxy_url}")
        headers = {}
        if parts.username:
            pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
            headers["Proxy-Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
        address = f"{parts.scheme}://{parts.hostname}:{parts.port or 80}"  # credentials go in the header only
        manager = urllib3.ProxyManager(address, proxy_headers=headers, num_pools=MAX_ORIGINS,
                                       maxsize=POOLED_PER_ORIGIN, ssl_context=self.ssl_context)
        manager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}  # the deadline, as for direct
        self._proxy_managers[proxy_url] = manager
        return manager

    def _reason(self, error: BaseException, timed_out: bool) -> str:
        """What went wrong, in words a dead-letter reader needs: the cause, without urllib3's wrapping."""
        if isinstance(error, ProtocolError) and len(error.args) > 1 and isinstance(error.args[1], BaseException):
            error = error.args[1]
        if timed_out or (isinstance(error, (PoolTimeout, TimeoutError)) and not isinstance(error, NewConnectionError)):
            return f"no answer within {self.timeout:g}s"
        if isinstance(error, ProxyError):
            return f"the proxy failed ({_reason(error.original_error)})"
        if isinstance(error, NewConnectionError) and error.__cause__ is not None:
            return _reason(error.__cause__)
        if isinstance(error, SSLError) and error.args and isinstance(error.args[0], BaseException):
            return f"TLS failed ({_reason(error.args[0])})"
        if isinstance(error, ClosedPoolError):
            return "the sender was closed while sending"
        return _reason(error)


@dataclass(frozen=True)
class _Route:
    pool: urllib3.HTTPConnectionPool
    proxy: urllib3.ProxyManager | None  # when set, requests go through it instead of ``pool``


_NEVER = urllib3.Retry(total=False, redirect=False)  # errors and 3xx come back as they are

# The deadline of the attempt this thread is making: Sender.send sets it, the connections below
# urllib3 read it before each send and each receive, so a server dripping bytes cannot stretch it.
class _Attempt(threading.local):
    deadline = math.inf


_attempt = _Attempt()


def _time_left() -> float | None:
    """Seconds left to the deadline (None outside an attempt), or TimeoutError when none are."""
    left = _attempt.deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("the attempt's deadline passed")
    return None if left == math.inf else left


def _keep_to_deadline(sock: socket.socket) -> None:
    """Make ``sock`` wait no longer than the attempt's deadline (each settimeout is a syscall: only when needed)."""
    left, now = _time_left(), sock.gettimeout()
    if left is not None and (now is None or now > left + 0.005):
        sock.settimeout(left)


class _Deadlined(io.RawIOBase):
    """A socket's receiving side that gives up at the attempt's deadline, not after a quiet spell.

    It stands in for the ``makefile()`` http.client made, and closes that file with itself, so
    the socket's own reference count (which delays closing it until readers are done) holds.
    """

    def __init__(self, sock: socket.socket, replaced: io.BufferedIOBase):
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
    """http.client's response, reading through :class:`_Deadlined`."""

    def __init__(self, sock: socket.socket, debuglevel: int = 0, method: str | None = None, url: str | None = None):
        super().__init__(sock, debuglevel, method, url)
        if _attempt.deadline != math.inf:
            self.fp = io.BufferedReader(_Deadlined(sock, self.fp))  # type: ignore[arg-type]


class _HTTPConnection(urllib3.connection.HTTPConnection):
    """A connection that keeps to the attempt's deadline and writes a small request in one piece."""

    response_class = _Answer
    _body: bytes | None = None

    def connect(self) -> None:
        self.timeout = _time_left()
        super().connect()

    def request(self, method: str, url: str, body: Any = None, headers: Any = None, **options: Any) -> None:
        if isinstance(body, bytes) and body and not any(name.lower() == "content-length" for name in headers):
            # urllib3 writes the headers, then the body: two writes and two packets. One write is
            # what http.client's own _send_output intends; it saves a syscall and a wake-up.
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

    def putheader(self, header: Any, *values: Any) -> None:
        # urllib3's putheader only adds a scan for its SKIP_HEADER marker, which we never pass.
        http.client.HTTPConnection.putheader(self, header, *values)


class _HTTPSConnection(_HTTPConnection, urllib3.connection.HTTPSConnection):
    pass


class _HTTPPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


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
        if _BAD_VALUE.search(value):
            raise SendError(f"cannot send header {name}: its value {value!r} holds a line break, a control "
                            f"character or a character outside latin-1", retryable=False)
        result[name] = value
    return result


def _route(url: str) -> tuple[tuple[str, str, int], str]:
    """((scheme, host, port), request target) for ``url``, or a non-retryable SendError."""
    bad = _BAD_URL.search(url)
    if bad:
        raise SendError(f"not a valid URL: {url!r} (it holds {bad.group()!r}; spaces, control and non-ASCII "
                        f"characters must be percent-encoded)", retryable=False)
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


def _reason(error: BaseException) -> str:
    if isinstance(error, http.client.RemoteDisconnected):
        return "the server closed the connection without answering"
    if isinstance(error, ConnectionResetError):
        return "the connection was reset"
    return str(error) or type(error).__name__
