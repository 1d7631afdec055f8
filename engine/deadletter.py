"""The dead-letter file: one JSON record per event, payload or call that could not be delivered.

Records are appended as NDJSON, a batch at a time, and each batch is flushed and synced to disk
(fsync) before it is counted, so a record counted as dead-lettered is in the file even if the process
is killed, or the machine loses power, right after. Any
thread may write: a lock keeps records whole. The file is opened on the first record, so a
clean run leaves none; :meth:`DeadLetter.check` finds an unwritable path before the first event.

Each record's ``reason`` and ``body`` (the destination's answer, which may echo the key it was sent)
are masked (credentials in URLs, and the secret settings the CLI passes in ``mask``); the line,
event or call it keeps is written as it was, so ``replay`` can send it.
"""
from __future__ import annotations

import contextlib
import errno
import os
import threading
from pathlib import Path
from typing import IO, Any, Callable

import orjson

from .env import mask_url_credentials
from .events import loads_exact, to_line


def sync(descriptor: int) -> None:
    """fsync, for files that can be synced: a pipe or a terminal (``/dev/stderr``) has nothing to keep."""
    try:
        os.fsync(descriptor)
    except OSError as error:
        if error.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EROFS):
            raise


class DeadLetterError(Exception):
    """The dead-letter file cannot be written: the run must stop, saying what was not kept."""


class DeadLetter:
    def __init__(self, path: str | None, mask: Callable[[str], str] = mask_url_credentials):
        """``path`` None keeps nothing but still counts (a dry run that was not asked for a file);
        ``mask`` hides what a record's reason and body must not show."""
        self.path = path
        self.mask = mask
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
        target = path.resolve() if path.is_symlink() else path  # a link to a file not made yet: the file
        if target.exists() and not target.is_file():
            # A pipe or a device: opening it to see would block, or hand a reader its end.
            if not os.access(target, os.W_OK):
                raise DeadLetterError(f"cannot write the dead-letter file {path}: permission denied")
            return
        # Opened for real: os.access answers yes to root (a container's user) and knows nothing of a file
        # system that refuses new files (/proc, a read-only mount).
        existed = target.exists()
        try:
            os.close(os.open(target, os.O_WRONLY | os.O_APPEND | (0 if existed else os.O_CREAT | os.O_EXCL), 0o644))
        except OSError as error:
            raise DeadLetterError(f"cannot write the dead-letter file {path}: {error.strerror or error}") from None
        if not existed:
            target.unlink(missing_ok=True)

    def write(self, record: dict[str, Any]) -> None:
        self.write_lines(to_line(record) if self.path is not None else b"", 1)

    def write_lines(self, lines: bytes, count: int) -> None:
        """Append ``count`` records already written as NDJSON lines."""
        with self._lock:
            if self.path is None or not lines:
                self.count += count
                return
            lines = _masked(lines, self.mask)
            try:
                if self._stream is None:
                    self._stream = open(self.path, "ab", buffering=0)  # unbuffered: written when write returns
                _append_whole(self._stream, lines)
                sync(self._stream.fileno())
            except OSError as error:
                raise DeadLetterError(f"cannot write the dead-letter file {self.path}: "
                                      f"{error.strerror or error}") from None
            self.count += count

    def sync(self) -> None:
        """Ask the disk to keep what was written (fsync)."""
        with self._lock:
            if self._stream is not None:
                try:
                    sync(self._stream.fileno())
                except OSError as error:
                    raise DeadLetterError(f"cannot sync the dead-letter file {self.path}: "
                                          f"{error.strerror or error}") from None

    def close(self) -> None:
        with self._lock:
            if self._stream is not None:
                self._stream.close()  # every write was already synced, or reported its own failure
                self._stream = None


def _append_whole(stream: Any, data: bytes) -> None:
    """Append all of ``data`` or none of it. A disk that is nearly full takes part of a write and says how
    much (no error): the rest was lost, counted as written, and the cut line spoiled the next record. What
    a failed batch wrote is cut off again, so the file holds whole records only."""
    try:
        start: int | None = os.lseek(stream.fileno(), 0, os.SEEK_END)
    except OSError:  # a pipe: nothing to cut off
        start = None
    done = 0
    try:
        while done < len(data):
            written = stream.write(memoryview(data)[done:])
            if not written:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            done += written
    except OSError:
        # Cut off only when the file ends with this batch's bytes: another process appending to the same file
        # meanwhile (serve beside a replay) must not lose its records to the cut.
        if done and start is not None:
            with contextlib.suppress(OSError):
                if os.fstat(stream.fileno()).st_size == start + done:
                    os.ftruncate(stream.fileno(), start)
        raise


#: The texts of a record that are masked: why it was not delivered, and the answer that said so.
MASKED = ("reason", "body")


def _masked(lines: bytes, mask: Callable[[str], str]) -> bytes:
    """NDJSON records with each of :data:`MASKED` masked; a record where they show nothing is kept byte for byte.

    orjson reads each record for its reason (a record of an invalid payload holds its whole event: json
    took twice as long); one it cannot read, and one to write again, is read exactly.
    """
    out = []
    for line in lines.splitlines(keepends=True):
        try:
            out.append(_masked_record(line, mask))
        except Exception:  # noqa: BLE001 - never lose a record, never show a secret: the line is masked as text
            out.append(mask(line.decode("utf-8", "surrogatepass")).encode("utf-8", "surrogatepass"))
    return b"".join(out)


def _masked_record(line: bytes, mask: Callable[[str], str]) -> bytes:
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError:  # a lone surrogate, deep nesting, an integer beyond 64 bits: read exactly
        record = loads_exact(line, ours=True)[0]
    texts = {name: record.get(name) for name in MASKED} if isinstance(record, dict) else {}
    masked = {name: shown for name, text in texts.items() if isinstance(text, str) and (shown := mask(text)) != text}
    if not masked:
        return line
    record = loads_exact(line, ours=True)[0]  # orjson reads an integer beyond 64 bits as a float
    record.update(masked)
    return to_line(record)
