"""Expand ``${VAR}`` and ``${VAR:-default}`` in destination settings.

Settings that came from the environment are secrets by default (API keys, tokens), as are the ones a
catalog marks ``x-secret``: :class:`Settings` remembers which ones, and :class:`Secrets` masks them in
whatever is shown. :func:`mask_url_credentials` masks what URLs carry in reasons and logs.
"""
from __future__ import annotations

import base64
import json
import os
import re
from typing import Iterable, Mapping
from urllib.parse import quote_plus

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
MASK = "********"


class UnsetVariable(Exception):
    """A ``${VAR}`` with no default names a variable that is not set."""

    def __init__(self, name: str, offset: int):
        super().__init__(f"environment variable {name} is not set and has no default")
        self.name = name
        self.offset = offset


def expand(text: str, environ: Mapping[str, str] | None = None) -> tuple[str, bool]:
    """Return ``text`` with references replaced, and whether any value came from the environment.

    A default may hold references of its own, as in the shell: ``${OUT:-out/${NAME:-x}.ndjson}``.
    It is expanded only when used, so an unset variable in an unused default is no error. A
    ``${`` that does not close is kept as written.
    """
    return _expand(text, 0, os.environ if environ is None else environ)


def _expand(text: str, base: int, environ: Mapping[str, str]) -> tuple[str, bool]:
    parts: list[str] = []
    from_environment = False
    position = 0
    while (start := text.find("${", position)) != -1:
        name = _NAME.match(text, start + 2)
        after = name.end() if name else start + 2
        if name and text.startswith("}", after):
            default, end = None, after + 1
        elif name and text.startswith(":-", after) and (close := _closing(text, after + 2)) is not None:
            default, end = text[after + 2:close], close + 1
        else:
            parts.append(text[position:after])
            position = after
            continue
        parts.append(text[position:start])
        if name.group() in environ:
            from_environment = True
            parts.append(environ[name.group()])
        elif default is None:
            raise UnsetVariable(name.group(), base + start)
        else:
            value, inner = _expand(default, base + after + 2, environ)
            from_environment |= inner
            parts.append(value)
        position = end
    parts.append(text[position:])
    return "".join(parts), from_environment


def _closing(text: str, position: int) -> int | None:
    """Where the ``}`` that closes a default starting at ``position`` is, counting nested ``${``."""
    depth = 0
    while position < len(text):
        if text.startswith("${", position):
            depth += 1
            position += 2
            continue
        if text[position] == "}":
            if not depth:
                return position
            depth -= 1
        position += 1
    return None


class Settings(dict):
    """Destination settings after expansion; values read from the environment are never shown.

    ``secret_texts`` are secrets beside the secret settings' values: what a variable read that looks like a
    key (``Bearer ${TOKEN}`` is masked whole, and a server that echoes the token alone must not show it),
    and what is written beside a variable in a secret setting.
    """

    def __init__(self, values: dict, secret_keys: set[str], secret_texts: Iterable[str] = ()):
        super().__init__(values)
        self.secret_keys = frozenset(secret_keys)
        self.secret_texts = frozenset(secret_texts)

    def masked(self) -> dict:
        return {key: (MASK if key in self.secret_keys else value) for key, value in self.items()}

    def __repr__(self) -> str:
        return f"Settings({self.masked()!r})"


def secret_values(settings: Settings) -> list[str]:
    """The texts of ``settings``' secret values (inside objects and lists too), longest first.

    Values shorter than four characters are left out: masking every "1" or "us" would hide more than it protects.
    Inside an object or a list (``headers``, ``oauth``) the bar is eight: its ordinary words (``client_auth: body``,
    ``X-Version: 2024``, ``scope: orders``) masked wherever they appear would break the JSON --dry-run prints,
    and the credentials there (a token, ``Bearer ...``, a client secret) are longer.
    """
    found: set[str] = set()

    def collect(value, shortest: int) -> None:
        if isinstance(value, dict):
            for item in value.values():
                collect(item, 8)
        elif isinstance(value, list):
            for item in value:
                collect(item, 8)
        elif isinstance(value, (str, int, float)) and not isinstance(value, bool) and len(str(value)) >= shortest:
            found.add(str(value))

    for key in settings.secret_keys:
        collect(settings.get(key), 4)
    for value in settings.secret_texts:
        collect(value, 4)
    return sorted(found, key=len, reverse=True)


_NAMES_A_USER = re.compile(r"(?:id|user|username|login|account)$", re.IGNORECASE)


def basic_credentials(user: str, password: str) -> str:
    """What ``Authorization: Basic`` carries for ``user`` and ``password``."""
    return base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


def _as_basic_credentials(settings: Settings, secrets: list[str]) -> list[str]:
    """Each secret as a Basic-auth pair would carry it, after a user name (a setting named like one, secret
    or not: Customer.io's ``site_id:api_key``, OAuth's ``client_id:client_secret``, also form-encoded, as
    RFC 6749 has it), or none: a server that quotes the request's headers back quotes them so. Only names
    are paired, not every text: each form is one more text to look for in everything printed."""
    texts: set[str] = {""}

    def collect(value, key: str = "") -> None:
        if isinstance(value, dict):
            for name, item in value.items():
                collect(item, str(name))
        elif isinstance(value, list):
            for item in value:
                collect(item, key)
        elif isinstance(value, (str, int)) and not isinstance(value, bool) and _NAMES_A_USER.search(key):
            texts.add(str(value))

    collect(dict(settings))
    forms = []
    for secret in secrets:
        forms.append(basic_credentials(secret, ""))
        for user in texts:
            forms.append(basic_credentials(user, secret))
            forms.append(basic_credentials(quote_plus(user, safe=""), quote_plus(secret, safe="")))
    return forms


def referenced(text: str, environ: Mapping[str, str]) -> list[str]:
    """The values of the variables ``text`` names that ``environ`` holds (used or not: a default is rare)."""
    return [environ[name] for name in re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", text) if name in environ]


# A URL's user-info (``user:password@``) and its query values (``?token=abc``): credentials often ride there.
_URL = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^\s/?#@\"'<>]*@)?(?P<rest>[^\s\"'<>]*)")
_QUERY_VALUE = re.compile(r"(?P<key>[?&][^=&#\s]*=)[^&#\s]+")


def mask_url_credentials(text: str) -> str:
    """``text`` with the user-info and the query values of every URL in it masked."""
    if "://" not in text:
        return text

    def masked(match: re.Match) -> str:
        userinfo = f"{MASK}@" if match.group("userinfo") else ""
        rest = match.group("rest")
        if "?" in rest:
            path, _, query = rest.partition("?")
            rest = path + _QUERY_VALUE.sub(lambda m: m.group("key") + MASK, "?" + query)
        return match.group("scheme") + userinfo + rest

    return _URL.sub(masked, text)


class Secrets:
    """The secret settings of a rule set, to mask in anything shown: output, reasons and logs.

    A setting is secret when the catalog marks it ``x-secret`` or its value came from the environment.
    """

    def __init__(self, values: Iterable[str] = ()):
        texts = set(values)
        # As they appear inside JSON output too (quotes escaped, non-ASCII kept or escaped, and "/" written
        # "\/" as PHP's json_encode writes it in an answer that quotes the token).
        texts |= {json.dumps(value)[1:-1] for value in list(texts)}
        texts |= {json.dumps(value, ensure_ascii=False)[1:-1] for value in list(texts)}
        texts |= {value.replace("/", "\\/") for value in list(texts) if "/" in value}
        self.values = sorted(texts, key=len, reverse=True)

    @classmethod
    def of(cls, destinations) -> Secrets:
        values: list[str] = []
        for destination in destinations:
            secrets = secret_values(destination.settings)
            values += secrets
            values += _as_basic_credentials(destination.settings, secrets)
        return cls(values)

    def mask(self, text: str) -> str:
        """``text`` with every secret setting masked."""
        for value in self.values:
            if value in text:
                text = text.replace(value, MASK)
        return text

    def mask_reason(self, text: str) -> str:
        """A reason or a log line: secret settings and URL credentials masked."""
        return mask_url_credentials(self.mask(text))
