"""Apply a function to chunks of work in forked worker processes, a bounded number of chunks at a time.

This module owns the processes only: what a chunk holds and what becomes of the results is the
caller's (:mod:`engine.run`). The function reaches the workers by fork, so it is never pickled
(a compiled rule set stays in memory as the parent built it); only chunks and results cross.
"""
from __future__ import annotations

import os
import pickle
import select
import signal
import sys
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from concurrent.futures import Future

# multiprocessing and concurrent.futures are imported where they are used: a run with one worker
# imports this module for WorkerError alone and should not pay 30 ms for them at start-up.


# Chunks taken ahead of the results, per worker. With --ordered a chunk that takes long (its worker
# was preempted, say) holds back the results after it; with two per worker the other workers soon ran
# out of work and waited, with four they keep busy. A chunk is about 1 MB of input.
AHEAD = 4

_STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


class WorkerError(Exception):
    """A worker process died (killed, out of memory), so its chunk of work is lost."""


def imap(function, chunks, workers: int, *, ordered: bool):
    """Yield ``function(chunk)`` for every chunk, computed in ``workers`` processes.

    The results come in the order of ``chunks`` when ``ordered``, else as they are done. At most
    ``AHEAD`` x ``workers`` chunks are taken ahead of the results, so memory does not grow with the input
    (``Pool.imap`` would read all of it at once). Close the generator to stop early: the workers
    are then ended at once.
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    for stream in (sys.stdout, sys.stderr):
        if stream is not None:
            stream.flush()  # a forked worker would write out a copy of whatever is still buffered
    executor = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"),
                                   initializer=_start_worker, initargs=(function, os.getpid()))
    pending: deque[Future[Any]] = deque()
    finished = broken = forked = False
    try:
        for chunk in chunks:
            if not forked:  # the first submit forks the workers
                with _stop_signals_held():
                    pending.append(executor.submit(_call, chunk))
                forked = True
            else:
                pending.append(executor.submit(_call, chunk))
            yield from _done(pending, ordered, block=len(pending) >= AHEAD * workers)
        while pending:
            yield from _done(pending, ordered, block=True)
        finished = True
    except BrokenProcessPool:
        broken = True
        raise WorkerError("a worker process died unexpectedly") from None
    finally:
        _end(executor, finished, broken)


#: Levels above Python's usual recursion limit while a value is pickled for another process. Events nest
#: up to about 1,000 levels (deeper ones are unreadable lines, engine.events) and pickling a level takes
#: two of the limit's, so one such payload needs about twice the default of 1,000, and more.
PICKLING_DEPTH = 3_000


def pickled(value: Any) -> bytes:
    """``value`` pickled to cross to another process, however deep an event it holds.

    A payload nested past about 490 levels exceeds the usual recursion limit; it is pickled again
    with the limit raised by :data:`PICKLING_DEPTH` for that moment only (:func:`engine.events.deeper`),
    so deep recursion elsewhere still stops where it always did. Without this, one such event failed
    every call it travelled with.
    """
    try:
        return pickle.dumps(value, pickle.HIGHEST_PROTOCOL)
    except RecursionError:
        from .events import deeper

        with deeper(PICKLING_DEPTH):
            return pickle.dumps(value, pickle.HIGHEST_PROTOCOL)


def usable_cores() -> int:
    """The CPUs this process may keep busy: its affinity (a container's cpuset), and no more than its
    cgroup's CPU quota (a container run with ``--cpus 1`` sees every core of the machine)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cores = os.cpu_count() or 1
    quota = _cgroup_quota()
    return max(1, min(cores, int(quota))) if quota is not None else cores


def _cgroup_quota(root: str = "/sys/fs/cgroup") -> float | None:
    """How many CPUs' worth of time the cgroup allows (quota / period), or None for no limit."""
    try:  # cgroup v2: "max 100000", or "150000 100000" for one and a half CPUs
        quota, period = _read(f"{root}/cpu.max").split()[:2]
    except (OSError, ValueError):
        try:  # cgroup v1
            quota, period = _read(f"{root}/cpu/cpu.cfs_quota_us"), _read(f"{root}/cpu/cpu.cfs_period_us")
        except OSError:
            return None
    try:
        return None if quota in ("max", "-1") else int(quota) / int(period)
    except (ValueError, ZeroDivisionError):
        return None


def _read(path: str) -> str:
    with open(path, encoding="ascii") as stream:
        return stream.read().strip()


#: Seconds a worker stopped early has to finish the chunk in hand before it is killed.
STOP_GRACE = 10.0


def _end(executor: Any, finished: bool, broken: bool) -> None:
    """Shut the workers down. Stopped early (a stop signal, a closed generator), chunks not started
    are dropped and a worker busy with one has ``STOP_GRACE`` seconds to finish it; a worker that
    died (``broken``) means the others are not waited for. Whatever is left is killed: workers ignore
    SIGTERM, and the pool's own clean-up would wait for them for ever."""
    import time

    processes = list((getattr(executor, "_processes", None) or {}).values())
    manager = getattr(executor, "_executor_manager_thread", None)  # shutdown(wait=False) forgets it
    executor.shutdown(wait=False, cancel_futures=not finished)
    deadline = time.monotonic() + (0.0 if broken else STOP_GRACE)
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            process.kill()  # SIGKILL
    if manager is not None:
        # Ended here, not at interpreter exit, where Python 3.11 may race it to a closed pipe.
        manager.join(STOP_GRACE)


@contextmanager
def _stop_signals_held() -> Iterator[None]:
    """SIGINT and SIGTERM held back while the workers are forked: a worker takes them only once it
    ignores them (:func:`_start_worker`), and the parent gets them as soon as the forks are done."""
    held = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)


def _done(pending: deque, ordered: bool, block: bool):
    """Take from ``pending`` the results that can be yielded now, after waiting for one if ``block``."""
    from concurrent.futures import FIRST_COMPLETED, wait

    if block:
        wait([pending[0]] if ordered else pending, return_when=FIRST_COMPLETED)
    if ordered:
        while pending and pending[0].done():
            yield pending.popleft().result()
    else:
        for future in [future for future in pending if future.done()]:
            pending.remove(future)
            yield future.result()


_function = None  # in a worker: the function it applies


def _start_worker(function, parent: int) -> None:
    global _function
    _function = function
    # Ctrl-C (and systemd's SIGTERM to the whole group) reach every process; the parent stops the workers.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)  # held since the fork: one that came is dropped now
    _end_with(parent)  # this process's pid, taken before the fork: a parent that died since is seen


def _end_with(parent: int) -> None:
    """End this worker as soon as ``parent`` has ended. A parent killed with SIGKILL cannot stop its
    workers, and each worker holds the others' end of the pipe they wait on, so none of them would
    ever read the end of its input: they stayed, idle, for ever."""
    import threading

    def watch() -> None:
        _wait_for_end(parent)
        os._exit(1)
    threading.Thread(target=watch, name="parent watch", daemon=True).start()


def _wait_for_end(parent: int) -> None:
    """Return once process ``parent`` has ended: through a pidfd where the system has them (Linux 5.3 and
    later); elsewhere once this process was handed to another parent (``parent`` is this one's own)."""
    try:
        descriptor = os.pidfd_open(parent)
    except ProcessLookupError:  # ended already
        return
    except (AttributeError, OSError):
        while os.getppid() == parent:
            time.sleep(0.2)
        return
    select.select([descriptor], [], [])  # readable once the process has ended


def _call(chunk):
    return _function(chunk)
