"""The ``webhook`` catalog over HTTP: one request per ``send`` call, JSON body."""
from __future__ import annotations

import json
import urllib.error
import urllib.request

from . import DeliveryError

USER_AGENT = "switchyard/0.1"


class WebhookAdapter:
    def __init__(self, settings):
        self.timeout = float(settings.get("timeout", 10))
        self.headers = dict(settings.get("headers") or {})

    def deliver(self, call) -> None:
        payload = call.payload
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT, **self.headers,
                   **(payload.get("headers") or {})}
        body = None if "data" not in payload else json.dumps(payload["data"], ensure_ascii=False).encode()
        request = urllib.request.Request(payload["url"], data=body, headers=headers,
                                         method=payload.get("method", "POST"))
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                response.read()
        except urllib.error.HTTPError as error:
            text = error.read()[:2000].decode("utf-8", "replace")
            raise DeliveryError(f"HTTP {error.code} from {payload['url']}", error.code, text) from None
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise DeliveryError(f"cannot reach {payload['url']}: {reason}") from None

    def close(self) -> None:
        pass
