"""The dead-letter file: one JSON record per event, payload or call that could not be delivered.

Records are appended as NDJSON and flushed after every write, so a record counted as
dead-lettered is in the file even if the process is killed right after; :meth:`DeadLetter.sync`
(at the end of a run and of every flush of the pipeline) also asks the disk to keep it. Any
thread may write: a lock keeps records whole. The file is opened on the first record, so a
clean run leaves none; :meth:`DeadLetter.check` finds an unwritable path before the first event.
"""
from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import IO, Any

from .events import to_line


class DeadLetterError(Exception):
    """The dead-letter file cannot be written: the run must stop, saying what was not kept."""


class DeadLetter:
    def __init__(self, path: str | None):
        """``path`` None keeps nothing but still counts (a dry run that was not asked for a file)."""
        self.path = path
        self.count = 0
        self._stream: IO[bytes] | None = None
        self._lock = threading.Lock()

    def check(self) -> None:
        """Raise DeadLetterError now if records could not be written to ``path``."""
        if self.path is None:
            return
        path = Path(self.path)
        if path.is_dir():
            raise DeadLetterError(f"the dead-letter path {path} is a directory")
        parent = path.parent if str(path.parent) else Path(".")
        if not parent.is_dir():
            raise DeadLetterError(f"the folder of the dead-letter file {path} does not exist")
        if not os.access(parent if not path.exists() else path, os.W_OK):
            raise DeadLetterError(f"cannot write the dead-letter file {path}: permission denied")

    def write(self, record: dict[str, Any]) -> None:
        self.write_lines(to_line(record) if self.path is not None else b"", 1)

    def write_lines(self, lines: bytes, count: int) -> None:
        """Append ``count`` records already written as NDJSON lines."""
        with self._lock:
            self.count += count
            if self.path is None or not lines:
                return
            try:
                if self._stream is None:
                    self._stream = open(self.path, "ab")
                self._stream.write(lines)
                self._stream.flush()
            except OSError as error:
                self.count -= count
                raise DeadLetterError(f"cannot write the dead-letter file {self.path}: "
                                      f"{error.strerror or error}") from None

    def sync(self) -> None:
        """Ask the disk to keep what was written (fsync)."""
        with self._lock:
            if self._stream is not None:
                try:
                    os.fsync(self._stream.fileno())
                except OSError as error:
                    raise DeadLetterError(f"cannot sync the dead-letter file {self.path}: "
                                          f"{error.strerror or error}") from None

    def close(self) -> None:
        with self._lock:
            if self._stream is not None:
                try:
                    self._stream.flush()
                    os.fsync(self._stream.fileno())
                except OSError:
                    pass  # every write already flushed, and reported its own failure
                self._stream.close()
                self._stream = None
