"""Delivery over HTTP, independent of any destination's API.

- :mod:`.http`: ``Sender.send(method, url, body, headers) -> Response``, kept-alive connections.
- :mod:`.retry`: ``RetryPolicy`` (what is retried, backoff, limits) and ``Retrier.run(attempt)``.
- :mod:`.oauth`: OAuth2 client-credentials tokens, refreshed once on a 401.
- :mod:`.batcher`: batches per key, released by count, encoded size and age.
- :mod:`.outcome`: ``Outcome``, what happened to one call (and its dead-letter record).

Adapters (``engine.adapters``) build requests from calls and sit on top of this package;
nothing here imports them, the model or the run loop.
"""
from __future__ import annotations

from engine.lazy import attributes

# Imported when first used: a dry run needs Outcome, not an HTTP client.
_EXPORTS = {
    **{name: "engine.delivery.batcher" for name in ("Batch", "Batcher")},
    **{name: "engine.delivery.http" for name in ("Response", "Sender", "SendError")},
    **{name: "engine.delivery.oauth" for name in ("ClientCredentials", "TokenError")},
    **{name: "engine.delivery.outcome" for name in ("DELIVERED", "FAILED", "RETRIED", "Outcome")},
    **{name: "engine.delivery.retry" for name in ("Clock", "ManualClock", "Retrier", "RetryPolicy")},
}

__all__ = sorted(_EXPORTS)

__getattr__ = attributes(globals(), _EXPORTS)
