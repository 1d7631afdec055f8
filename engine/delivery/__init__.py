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

from .batcher import Batch, Batcher
from .http import Response, Sender, SendError
from .oauth import ClientCredentials, TokenError
from .outcome import DELIVERED, FAILED, RETRIED, Outcome
from .retry import Clock, ManualClock, Retrier, RetryPolicy

__all__ = ["Batch", "Batcher", "ClientCredentials", "Clock", "DELIVERED", "FAILED", "ManualClock", "Outcome",
           "RETRIED", "Response", "Retrier", "RetryPolicy", "SendError", "Sender", "TokenError"]
