"""Request signals on every core.

The text signals are Python work per distinct prompt (fastText, the template masks, the capability
product) that holds the GIL, so in one process they use one core however many the machine has.
`SignalWorkers` runs them (`signals.prompt_signals` on batches of distinct prompts, then
`signals.event_signals` on event batches) in worker processes, results in the order the batches
came, with a bounded number of batches in flight so memory stays that of a few batches.

Workers are spawned, never forked: the parent holds DuckDB's and Arrow's threads, whose locks a
forked child could inherit held. A spawned worker loads its models first (about 3 s: scikit-learn's
import, fastText, numba's cache), so a caller starts the workers before it has work for them:
`pipeline.prepare` starts them before ingest, and they convert log lines during it (`apply`).
"""

from __future__ import annotations

import os
import pickle
import tempfile
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from types import TracebackType
from typing import Any, Generic, TypeVar

from distillguard.signals import warm_up_signals

WORKERS_ENV = "DISTILLGUARD_SIGNAL_WORKERS"
T = TypeVar("T")


def default_workers() -> int:
    """`DISTILLGUARD_SIGNAL_WORKERS` if set, else the cores this process may run on."""
    value = os.environ.get(WORKERS_ENV)
    if value is None:
        return len(os.sched_getaffinity(0))
    try:
        workers = int(value)
    except ValueError:
        raise ValueError(f"{WORKERS_ENV}={value!r}: expected a whole number of worker processes") from None
    if workers < 1:
        raise ValueError(f"{WORKERS_ENV}={value!r}: at least 1 (1 computes in this process)")
    return workers


class SignalWorkers:
    """`apply(fn, calls)`: `fn` of each call's arguments, results in order, computed by `workers`
    processes: this one and `workers - 1` others, whose models are loaded as they start. A context
    manager: leaving it stops the other processes."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None
        self._spill: tempfile.TemporaryDirectory[str] | None = None
        if workers > 1:
            self._spill = tempfile.TemporaryDirectory(prefix="distillguard-workers-")
            self._pool = ProcessPoolExecutor(
                workers - 1, mp_context=get_context("spawn"), initializer=warm_up_signals
            )
            # The pool spawns a process per task it cannot hand to an idle one: one small task each
            # starts them all now, so they load their models while the caller does something else.
            for _ in range(workers - 1):
                self._pool.submit(int)

    def apply(self, fn: Callable[..., T], calls: Iterable[tuple[Any, ...]]) -> Iterator[T]:
        """`fn(*args)` for each of `calls`, results in order. `fn` and its arguments must pickle
        (a module-level function): the pipeline computes signals here, and converts blocks of log
        lines during ingest."""
        if self._pool is None:
            for args in calls:
                yield fn(*args)
            return
        # Each other process has one call running and one queued; a call that finds them all
        # busy (or still loading their models) is computed here, so this process works too.
        queue_limit = 2 * (self.workers - 1)
        pending: deque[Future[str] | _Done[T]] = deque()
        for args in calls:
            if sum(isinstance(p, Future) and not p.done() for p in pending) < queue_limit:
                pending.append(self._pool.submit(_via_files, fn, _spilled(args, self._spill_dir())))
            else:
                pending.append(_Done(fn(*args)))
            while pending and (not isinstance(pending[0], Future) or pending[0].done()):
                yield _result(pending.popleft())
        while pending:
            yield _result(pending.popleft())

    def _spill_dir(self) -> str:
        assert self._spill is not None
        return self._spill.name

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None
        if self._spill is not None:
            self._spill.cleanup()
            self._spill = None

    def __enter__(self) -> SignalWorkers:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()


@dataclass(frozen=True)
class _Done(Generic[T]):
    """A result computed in this process (wrapped: a result may itself be any value, a tuple say)."""

    value: T


# Arguments and results cross to and from the other processes as files, and only their paths
# through the pool's pipes. A process receiving megabytes through a pipe needs its GIL back for every
# 64 KiB, and this one, computing calls itself meanwhile, gives it back only every few milliseconds:
# a worker's 20 MB result reached it 2.5 s after it was ready, and the worker waited as long for work.


def _spilled(value: Any, folder: str) -> str:
    path = os.path.join(folder, f"{uuid.uuid4().hex}.pickle")
    with open(path, "wb") as fh:
        pickle.dump(value, fh, protocol=pickle.HIGHEST_PROTOCOL)
    return path


def _unspilled(path: str) -> Any:
    with open(path, "rb") as fh:
        value = pickle.load(fh)
    os.unlink(path)
    return value


def _via_files(fn: Callable[..., Any], args_path: str) -> str:
    """In a worker: `fn` of the arguments pickled at `args_path`; returns where its result is."""
    return _spilled(fn(*_unspilled(args_path)), os.path.dirname(args_path))


def _result(item: Future[str] | _Done[T]) -> T:
    return _unspilled(item.result()) if isinstance(item, Future) else item.value
