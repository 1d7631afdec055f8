"""A small HTTP/1.1 client on ``http.client``: one request in, one :class:`Response` out.

This module owns the wire: connections (kept alive and reused per scheme, host and port),
timeouts, the ``http_proxy``/``https_proxy``/``no_proxy`` settings urllib also honours, and
turning socket failures into :class:`SendError`. It does not retry, follow redirects,
authenticate or know any destination's API; those live above it.
"""
from __future__ import annotations

import base64
import http.client
import select
import socket
import urllib.request
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

USER_AGENT = "switchyard/0.1"


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

    ``retryable`` is False only for requests that can never succeed as written (a bad URL).
    ``response`` is set by subclasses that failed on an answer from another server (a token endpoint).
    """

    def __init__(self, message: str, *, retryable: bool = True, response: Response | None = None):
        super().__init__(message)
        self.retryable = retryable
        self.response = response


class Sender:
    """Sends requests, reusing one keep-alive connection per (scheme, host, port).

    Not thread-safe: an adapter that flushes from a timer thread must hold its own lock.
    ``timeout`` is the seconds to wait for a connection and then for each read.
    """

    def __init__(self, timeout: float = 10.0, *, user_agent: str = USER_AGENT, ssl_context=None):
        self.timeout = timeout
        self.user_agent = user_agent
        self.ssl_context = ssl_context
        self._connections: dict[tuple, http.client.HTTPConnection] = {}
        self._proxies = urllib.request.getproxies()

    def send(self, method: str, url: str, body: bytes | None = None, headers: dict | None = None) -> Response:
        """Send one request and read the whole answer; any status is a :class:`Response`."""
        key, target = _route(url)
        all_headers = {"User-Agent": self.user_agent, **(headers or {})}
        proxy = self._proxy(key[0], key[1]) if self._proxies else None
        if proxy is not None and key[0] == "http":
            target = url.split("#")[0]  # a plain-HTTP proxy takes the absolute URL (RFC 9112 section 3.2.2)
            all_headers.update(proxy[2])
        connection = self._connection(key, proxy)
        try:
            connection.request(method, target, body=body, headers=all_headers)
            answer = connection.getresponse()
            data = answer.read()
        except (socket.timeout, TimeoutError):
            self._drop(key)
            raise SendError(f"cannot reach {url}: no answer within {self.timeout:g}s") from None
        except (OSError, http.client.HTTPException) as error:
            self._drop(key)
            raise SendError(f"cannot reach {url}: {_reason(error)}") from None
        if answer.will_close:
            self._drop(key)
        response_headers: dict[str, str] = {}
        for name, value in answer.getheaders():
            name = name.lower()
            response_headers[name] = f"{response_headers[name]}, {value}" if name in response_headers else value
        return Response(answer.status, response_headers, data, url)

    def close(self) -> None:
        for key in list(self._connections):
            self._drop(key)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _connection(self, key, proxy=None) -> http.client.HTTPConnection:
        connection = self._connections.get(key)
        if connection is not None and _dropped(connection):
            # The server closed an idle keep-alive connection; open a fresh one before sending,
            # so the request is not written into a dead socket (and then maybe sent twice).
            self._drop(key)
            connection = None
        if connection is None:
            scheme, host, port = key
            via_host, via_port = (proxy[0], proxy[1]) if proxy is not None else (host, port)
            if scheme == "https":
                connection = http.client.HTTPSConnection(via_host, via_port, timeout=self.timeout,
                                                         context=self.ssl_context)
                if proxy is not None:
                    connection.set_tunnel(host, port, headers=proxy[2])
            else:
                connection = http.client.HTTPConnection(via_host, via_port, timeout=self.timeout)
            self._connections[key] = connection
        return connection

    def _drop(self, key) -> None:
        connection = self._connections.pop(key, None)
        if connection is not None:
            connection.close()

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
        return parts.hostname, parts.port or 80, headers


def _route(url: str) -> tuple[tuple, str]:
    """((scheme, host, port), request target) for ``url``, or a non-retryable SendError."""
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
    return str(error) or type(error).__name__
