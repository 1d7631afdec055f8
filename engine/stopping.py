"""Stop a run cleanly on SIGTERM or SIGINT: stop reading, deliver what was read, print the summary.

systemd, Docker and Kubernetes stop a process with SIGTERM, a terminal with SIGINT (Ctrl-C). Either
one asks the run to stop reading input; the events already read are evaluated and their calls
delivered (lanes finish their queues, batches are sent), the dead-letter file is synced, and the
summary says that the run was stopped. A second signal ends the process at once.

The signal is acted on only between two parts of input, or while the run waits for input, never
in the middle of counting a part, so the summary always adds up.
"""
from __future__ import annotations

import signal
import threading
from collections.abc import Iterable, Iterator
from types import FrameType
from typing import TypeVar

T = TypeVar("T")

EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}  # 128 + the signal's number, as shells report it


class Stopped(Exception):
    """Raised into the read when a stop signal arrives while the run waits for input."""


class Stop:
    """Whether a stop was asked for, and by which signal; installs and removes the handlers."""

    def __init__(self) -> None:
        self.signal: signal.Signals | None = None
        self._reading = False
        self._previous: dict[signal.Signals, object] = {}

    @property
    def requested(self) -> bool:
        return self.signal is not None

    @property
    def exit_code(self) -> int | None:
        return EXIT_CODES.get(self.signal) if self.signal is not None else None

    def install(self) -> Stop:
        """Handle SIGTERM and SIGINT from now on (main thread only; elsewhere this does nothing)."""
        if threading.current_thread() is threading.main_thread():
            for number in EXIT_CODES:
                self._previous[number] = signal.signal(number, self._handle)
        return self

    def uninstall(self) -> None:
        for number, previous in self._previous.items():
            signal.signal(number, previous)  # type: ignore[arg-type]
        self._previous.clear()

    def guard(self, items: Iterable[T]) -> Iterator[T]:
        """``items`` until a stop is asked for; a stop that comes while waiting for the next one ends it at once."""
        iterator = iter(items)
        while not self.requested:
            self._reading = True
            try:
                item = next(iterator)
            except (StopIteration, Stopped):
                return
            finally:
                self._reading = False
            yield item

    def _handle(self, number: int, frame: FrameType | None) -> None:
        if self.signal is not None:  # the second signal: no more waiting
            signal.signal(number, signal.SIG_DFL)
            signal.raise_signal(number)
            return
        self.signal = signal.Signals(number)
        if self._reading:
            raise Stopped()
