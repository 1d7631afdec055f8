"""``switchyard serve``: Segment's Tracking API in front of a durable spool and the delivery pipeline.

Modules, bottom up: :mod:`.ingest` (what a request means, pure), :mod:`.spool` (SQLite, group
commit, dedupe, progress), :mod:`.delivery` (a pipeline per destination, reading the spool),
:mod:`.metrics`, :mod:`.service` (the parts together, back-pressure, reload), :mod:`.app` (ASGI)
and :mod:`.cli` (arguments, signals, logs). See docs/serve.md.
"""
from .cli import add_serve_command, run_serve

__all__ = ["add_serve_command", "run_serve"]
