"""``switchyard run``: evaluate a stream of events and deliver the calls, losing nothing.

A thin driver of :class:`engine.pipeline.Pipeline`: it reads the input, hands it to the
pipeline (or, with several workers, has other processes evaluate it, :mod:`engine.parallel`,
and hands the pipeline their parts), and returns the pipeline's summary. Every event read ends
in exactly one bucket of the summary and every call in exactly one outcome; everything not
delivered is in the dead-letter file with its reason.
"""
from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import closing, contextmanager
from functools import partial
from typing import IO, Any

from .adapters import Adapter, open_adapter
from .adapters.contract import Prepare
from .adapters.registry import preparer
from .collector import for_streams
from .deadletter import DeadLetter
from .events import InputChanged, Lines, LinesInFile
from .parallel import pickled, usable_cores
from .pipeline import Part, Pipeline, account, writer
from .resume import ProgressJournal
from .ruleset import RuleSet
from .stopping import Stop
from .summary import Summary, per_mapping

__all__ = ["DeadLetter", "Progress", "Summary", "open_adapters", "per_mapping", "run"]

CHUNK_BYTES = 1 << 20  # the lines a worker is given at a time: about a thousand events
EVENT_BYTES = 1000     # what one event already read counts for in a chunk: about its line's worth

Input = Lines | tuple[str, Any]
Sent = Lines | LinesInFile | tuple[str, Any]  # an input as a worker is sent it


class Progress:
    """A one-line counter on stderr for long runs, only when stderr is a terminal."""

    def __init__(self, stream: IO[str] | None = None, every: float = 0.5):
        stream = sys.stderr if stream is None else stream  # read at call time: tests swap sys.stderr
        self.enabled = stream.isatty()
        self.stream, self.every = stream, every
        self.started = self.last = time.monotonic()
        self._next = 256

    def tick(self, count: int) -> None:
        """Note that ``count`` events have been read so far; looks at the clock every 256 events."""
        if not self.enabled or count < self._next:
            return
        self._next = count + 256
        now = time.monotonic()
        if now - self.last >= self.every:
            self.last = now
            rate = count / max(now - self.started, 1e-9)
            self.stream.write(f"\r  {count:,} events  ({rate:,.0f}/s)")
            self.stream.flush()

    def done(self) -> None:
        if self.enabled and self.last != self.started:
            self.stream.write("\r" + " " * 60 + "\r")


#: Input from which ``--lanes auto`` (the default) gives each destination's adapter a process of its own,
#: where a core is free for it: starting one costs about 0.2 s, and then each event costs a quarter to a
#: third less wall time (docs/performance.md), so it pays from some 10,000 events of about 1 KB.
PROCESS_LANES_FROM = 16 << 20


def lanes_for(requested: str, *, dry_run: bool, workers: int, input_bytes: int) -> str:
    """Where a run's lanes go, ``thread`` or ``process``, for ``--lanes requested``.

    ``auto`` picks processes for an input of at least :data:`PROCESS_LANES_FROM` bytes (``input_bytes``:
    what is known of it; a pipe counts nothing) when this process may use a core more than the
    ``workers`` that evaluate: there the adapters' Python work (request bodies, SQL) runs beside the
    evaluation instead of taking turns with it under one GIL.
    """
    if requested != "auto":
        return requested
    if dry_run or input_bytes < PROCESS_LANES_FROM or usable_cores() <= workers:
        return "thread"
    return "process"


def open_adapters(rules: RuleSet, *, store: str | None = None, processes: bool = False) -> dict[str, Adapter]:
    """An adapter for every destination, opened before the first event (a SetupError stops the run
    then); those opened before a failing one are closed again. With ``processes``, each runs in a
    process of its own (:mod:`engine.adapters.remote`)."""
    adapters: dict[str, Adapter] = {}
    try:
        for destination in rules.destinations:
            adapters[destination.name] = open_adapter(destination, store=store, process=processes)
    except BaseException:
        for adapter in adapters.values():
            adapter.close()
        raise
    return adapters


def run(rules: RuleSet, inputs: Iterable[Input], *, dry_run: bool, out: IO[Any], dead_letter: DeadLetter,
        progress: Progress, workspace: str | None = None, workers: int = 1, ordered: bool = False,
        stop: Stop | None = None, lanes: str = "thread", journal: ProgressJournal | None = None) -> Summary:
    """Evaluate every event from ``inputs`` (``(source, event)`` pairs) and deliver or print the calls.

    ``inputs`` may also hold :class:`~engine.events.Lines` (from :func:`engine.events.read_parts`),
    parsed where they are evaluated. With ``workers`` above 1, that many processes evaluate the
    events (see :mod:`engine.parallel`); a dry run prints their calls a chunk at a time in the order
    the chunks are done unless ``ordered``; deliveries always follow input order, so each person's
    calls reach each destination in event order. A ``stop`` (SIGTERM, SIGINT) ends the reading; what
    was read is still delivered and counted. ``lanes="process"`` runs each destination's adapter in a
    process of its own, beside the evaluation (docs/delivery.md, "Lanes").


    ``journal`` keeps each destination's progress, so that the same command after a crash goes on
    where it stopped (:mod:`engine.resume`); it is removed once the input is read to the end.
    """
    stop = stop or Stop()
    adapters = None if dry_run else open_adapters(rules, store=workspace, processes=lanes == "process")
    with for_streams():
        return _run(rules, inputs, dry_run=dry_run, out=out, dead_letter=dead_letter, progress=progress,
                    adapters=adapters, workers=workers, ordered=ordered, stop=stop, journal=journal)


def _run(rules: RuleSet, inputs: Iterable[Input], *, dry_run: bool, out: IO[Any], dead_letter: DeadLetter,
         progress: Progress, adapters: dict[str, Adapter] | None, workers: int, ordered: bool,
         stop: Stop, journal: ProgressJournal | None = None) -> Summary:
    pipeline = Pipeline(rules, dead_letter=dead_letter, adapters=adapters, output=_binary_writer(out),
                        journal=journal)
    finished = False
    try:
        if workers == 1:
            for item in stop.guard(inputs):
                if isinstance(item, Lines):
                    pipeline.submit_lines(item)
                else:
                    pipeline.submit_many((item,))
                progress.tick(pipeline.summary.events)  # a part is at most about 1 MB of input
                if pipeline.problem:
                    break
        else:
            from .parallel import imap  # only here: multiprocessing and concurrent.futures take a while to import

            kept: dict[int, list[Input]] = {}  # each chunk in the workers' hands, as read here
            evaluate = partial(_evaluate_sent, rules, dry_run)
            with closing(imap(evaluate, _sendable(_chunks(inputs), kept), workers,
                              ordered=ordered or not dry_run)) as parts:
                for number, part in stop.guard(parts):
                    chunk = kept.pop(number)
                    # None: the worker found other bytes where the chunk's lines were (the file was
                    # rewritten); the lines read here are evaluated here, as one process would.
                    pipeline.submit_part(part if part is not None else _evaluate_chunk(rules, dry_run, chunk))
                    progress.tick(pipeline.summary.events)
                    if pipeline.problem:
                        break
        finished = stop.signal is None and not pipeline.problem
    finally:
        summary = pipeline.close()
        progress.done()
    if stop.signal is not None:
        summary.stopped_by = stop.signal.name
    if finished and journal is not None and not summary.lost:
        journal.finish()  # everything read was booked: the same command again starts from the beginning
    return summary


def _events(item: Input) -> Iterator[tuple[str, Any]]:
    """The ``(source, event)`` pairs of one of the inputs: the pair itself, or those of some Lines."""
    return item.events() if isinstance(item, Lines) else iter((item,))


def _evaluate_sent(rules: RuleSet, dry_run: bool, numbered: tuple[int, list[Sent]]) -> tuple[int, Part | None]:
    """In a worker: a chunk's lines read where they lie in their file, then evaluated; None for the part
    when the file no longer holds them there, for the main process to evaluate the lines it read."""
    number, chunk = numbered
    try:
        lines = [item.lines() if isinstance(item, LinesInFile) else item for item in chunk]
    except InputChanged:
        return number, None
    return number, _evaluate_chunk(rules, dry_run, lines)


def _evaluate_chunk(rules: RuleSet, dry_run: bool, chunk: list[Input]) -> Part:
    """Parse and evaluate a chunk of inputs (in a worker process, or in the main one)."""
    summary, dead_letters, calls, written = Summary(dry_run_calls=dry_run), [], [], []  # type: ignore[var-annotated]
    emit = writer(written) if dry_run else calls.append
    source = None
    for item in chunk:
        for source, event in _events(item):
            account(rules.evaluate, source, event, summary, dead_letters.append, emit)
    if dry_run:
        return Part(summary, b"".join(written), b"".join(dead_letters), len(dead_letters), b"", source)
    preparers = _preparers(rules)
    ready = []
    for call, source in calls:
        prepare = preparers.get(call.destination)
        ready.append((call.with_prepared(prepare(call)) if prepare is not None else call, source))
    # Pickled here: one event nested deeper than the pool's own pickling allows would fail the chunk.
    return Part(summary, b"", b"".join(dead_letters), len(dead_letters), pickled(ready) if ready else b"", source)


_PREPARERS: dict[int, dict[str, Prepare | None]] = {}


def _preparers(rules: RuleSet) -> dict[str, Prepare | None]:
    """Each destination's ``prepare`` (engine.adapters.contract), looked up once per worker: the request
    bodies are built where the events were evaluated, so the main process only delivers them."""
    found = _PREPARERS.get(id(rules))
    if found is None:
        found = _PREPARERS[id(rules)] = {d.name: preparer(d) for d in rules.destinations}
    return found


def _sendable(chunks: Iterable[list[Input]], kept: dict[int, list[Input]]) -> Iterator[tuple[int, list[Sent]]]:
    """Each chunk numbered, as a worker is sent it (:meth:`~engine.events.Lines.sendable`); the chunk as
    read is kept in ``kept`` under its number until the caller takes it."""
    for number, chunk in enumerate(chunks):
        kept[number] = chunk
        yield number, [item.sendable() if isinstance(item, Lines) else item for item in chunk]


def _chunks(inputs: Iterable[Input]) -> Iterator[list[Input]]:
    """Group ``inputs`` into lists of about CHUNK_BYTES, for the workers."""
    chunk: list[Input] = []
    size = 0
    for item in inputs:
        chunk.append(item)
        size += len(item.data) if isinstance(item, Lines) else EVENT_BYTES
        if size >= CHUNK_BYTES:
            yield chunk
            chunk, size = [], 0
    if chunk:
        yield chunk


class OutputError(Exception):
    """The calls could not be written to the output (a full disk, say): a dry run cannot go on."""


@contextmanager
def output_errors() -> Iterator[None]:
    """A failure to write the output as :class:`OutputError`; BrokenPipeError stays: the reader left."""
    try:
        yield
    except BrokenPipeError:
        raise
    except OSError as error:
        raise OutputError(f"cannot write the calls to the output: {error.strerror or error}") from None


def _binary_writer(out: IO[Any]) -> Callable[[bytes], None]:
    """A function writing bytes to ``out``, straight to its binary buffer when it has one; it raises
    :class:`OutputError` when the output cannot take them."""
    buffer = getattr(out, "buffer", None)
    if buffer is None:
        def write(data: bytes) -> Any:
            return out.write(data.decode("utf-8"))
    else:
        out.flush()  # whatever was written as text goes first
        write = buffer.write

    def checked(data: bytes) -> None:
        with output_errors():
            write(data)
    return checked
