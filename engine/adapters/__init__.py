"""Backend adapters: deliver :class:`~engine.model.ActionCall` values to where they go.

- :mod:`.contract`: the :class:`Adapter` protocol every transport implements (calls in, one
  outcome per call out) and :class:`SetupError`, the only exception an adapter raises.
- :mod:`.registry`: :func:`open_adapter`, which finds a destination's adapter through its catalog.
- one module per transport: :mod:`.webhook`, :mod:`.customerio_http`, :mod:`.workspace`,
  :mod:`.file`.
"""
from __future__ import annotations

from .contract import Adapter, AdapterContext, SetupError
from .registry import open_adapter

__all__ = ["Adapter", "AdapterContext", "SetupError", "open_adapter"]
