"""``transport: file``: append each call as one NDJSON line, for local runs and audits."""
from __future__ import annotations

import json
from pathlib import Path


class FileAdapter:
    def __init__(self, destination: str, settings):
        self.path = Path(settings.get("path") or f"out/{destination}.ndjson")
        self._stream = None

    def deliver(self, call) -> None:
        if self._stream is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._stream = self.path.open("a", encoding="utf-8")
        self._stream.write(json.dumps(call.to_dict(), ensure_ascii=False) + "\n")

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None
