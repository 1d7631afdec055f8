"""An adapter in a process of its own: the destination's lane hands calls over a pipe and books the outcomes.

Building request bodies and running SQL for each call is Python work that the GIL keeps on one
core beside the evaluation of events. :class:`RemoteAdapter` is an :class:`~engine.adapters.contract.Adapter`
like any other: ``deliver`` sends the calls to a child process that runs the destination's real
adapter, and returns the outcomes that are back by then; ``poll`` returns those that came back
since; ``close`` closes the real adapter and returns the rest. So the pipeline and its lanes are
unchanged, and on a machine with two cores evaluation and delivery run side by side.

The child is started with ``spawn`` (a fresh interpreter, safe whatever threads this process
has) and opens the adapter from its :class:`~engine.adapters.contract.AdapterContext`: it needs no
rules. A reader thread here takes its answers as they come, so neither side ever waits on a
full pipe. If the child dies, every call it had not answered for is failed with the reason,
never lost from the count; calls are replayable from the dead-letter file as usual.
"""
from __future__ import annotations

import itertools
import queue
import threading
from collections.abc import Sequence
from typing import Any

from ..delivery.outcome import FAILED, Outcome
from ..model import ActionCall
from .contract import Adapter, AdapterContext, factory

# What crosses the pipe: calls as (token, call); outcomes as (token, state, attempts, status, body, message, waited).
Answer = tuple[int, str, int, "int | None", "str | None", str, float]

_IDLE_POLL = 0.05  # seconds between the child's polls of its adapter while it holds calls


class RemoteAdapter:
    """Runs the adapter ``spec`` names in a child process; see the module docstring."""

    def __init__(self, context: AdapterContext, spec: str):
        import multiprocessing

        spawn = multiprocessing.get_context("spawn")
        ours, theirs = spawn.Pipe()
        plain = AdapterContext(context.destination, context.catalog, context.transport, dict(context.settings),
                               context.store, dict(context.options))
        self.name = context.destination
        self._process = spawn.Process(target=_child, args=(theirs, plain, spec), daemon=True,
                                      name=f"switchyard lane {context.destination}")
        self._process.start()
        theirs.close()
        self._connection = ours
        self._tokens = itertools.count()
        self._waiting: dict[int, ActionCall] = {}   # token -> call, until its outcome is handed out
        self._answers: queue.SimpleQueue[list[Answer] | BaseException | None] = queue.SimpleQueue()
        self._gone = ""  # why the child can take no more calls, once it cannot
        self._reader = threading.Thread(target=self._read, name=f"lane {context.destination} answers", daemon=True)
        self._reader.start()

    def deliver(self, calls: Sequence[ActionCall]) -> list[Outcome]:
        batch = []
        for call in calls:
            token = next(self._tokens)
            self._waiting[token] = call
            batch.append((token, call))
        if not self._gone:
            try:
                self._connection.send(batch)
            except (OSError, ValueError) as error:
                self._gone = f"the delivery process of '{self.name}' is gone ({error})"
        return self._collect()

    def poll(self) -> list[Outcome]:
        return self._collect()

    def close(self) -> list[Outcome]:
        if not self._gone:
            try:
                self._connection.send(None)
            except (OSError, ValueError) as error:
                self._gone = f"the delivery process of '{self.name}' is gone ({error})"
        self._reader.join()
        self._process.join(timeout=10)
        if self._process.is_alive():
            self._process.kill()
        self._connection.close()
        outcomes = self._collect()
        reason = self._gone or f"the delivery process of '{self.name}' ended without answering for this call"
        outcomes += [Outcome(FAILED, 0, message=reason, call=call) for call in self._waiting.values()]
        self._waiting.clear()
        return outcomes

    # -- answers -----------------------------------------------------------------------------------

    def _read(self) -> None:
        """The reader thread: everything the child says, as it says it, until it closes."""
        while True:
            try:
                message = self._connection.recv()
            except (EOFError, OSError) as error:
                self._answers.put(error)
                return
            if message is None:  # the child closed its adapter: nothing more will come
                return
            self._answers.put(message)

    def _collect(self) -> list[Outcome]:
        outcomes: list[Outcome] = []
        while True:
            try:
                answers = self._answers.get_nowait()
            except queue.Empty:
                return outcomes
            if isinstance(answers, BaseException):
                code = self._process.exitcode
                self._gone = (f"the delivery process of '{self.name}' stopped"
                              + (f" (exit code {code})" if code is not None else ""))
                continue
            assert answers is not None
            for token, state, attempts, status, body, message, waited in answers:
                call = self._waiting.pop(token, None)
                if call is not None:
                    outcomes.append(Outcome(state, attempts, status, body, message, waited, call))


def _child(connection: Any, context: AdapterContext, spec: str) -> None:
    """The child process: open the real adapter, then feed it what comes in and send back what comes out."""
    import signal

    # The parent decides when delivery stops (it closes the pipe); a signal to the whole group must not cut
    # a transaction or a request in half here.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    tokens: dict[int, int] = {}  # id(call) -> token, while the adapter holds the call
    try:
        adapter: Adapter = factory(context.catalog, context.transport, spec)(context)
    except Exception as error:  # noqa: BLE001 - the parent opened it a moment ago; say why it failed now
        _fail_everything(connection, f"the adapter of '{context.destination}' could not open: {error}")
        return

    def send(outcomes: list[Outcome]) -> None:
        answers = []
        for outcome in outcomes:
            token = tokens.pop(id(outcome.call), None)
            if token is not None:
                answers.append((token, outcome.state, outcome.attempts, outcome.status, outcome.body,
                                outcome.message, outcome.waited))
        if answers:
            connection.send(answers)

    while True:
        if not connection.poll(_IDLE_POLL if tokens else None):
            send(_guarded(adapter.poll, context))
            continue
        try:
            batch = connection.recv()
        except (EOFError, OSError):
            batch = None  # the parent is gone: close what we have
        if batch is None:
            send(_guarded(adapter.close, context))
            connection.send(None)
            connection.close()
            return
        calls = []
        for token, call in batch:
            tokens[id(call)] = token
            calls.append(call)
        try:
            outcomes = adapter.deliver(calls)
        except Exception as error:  # noqa: BLE001 - one adapter's bug fails its own calls, as in a lane
            reason = f"the adapter of '{context.destination}' failed: {type(error).__name__}: {error}"
            outcomes = [Outcome(FAILED, 0, message=reason, call=call) for call in calls]
        send(outcomes)


def _guarded(step: Any, context: AdapterContext) -> list[Outcome]:
    try:
        return list(step())
    except Exception:  # noqa: BLE001 - the calls stay unanswered and are failed at close
        return []


def _fail_everything(connection: Any, reason: str) -> None:
    """Answer every call that comes with a failure, until the parent closes."""
    while True:
        try:
            batch = connection.recv()
        except (EOFError, OSError):
            return
        if batch is None:
            connection.send(None)
            return
        connection.send([(token, FAILED, 0, None, None, reason, 0.0) for token, _ in batch])
