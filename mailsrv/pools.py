"""The process's thread pools, sized in one place (DESIGN.md "Concurrency").

Blocking work runs in one of these pools, by kind, so that one kind cannot starve another: a
login flood fills the hashing pool, not the one delivery fsyncs wait for; slow DNS fills the
DNS pool, not the one message files are read in.

- `fsync`: what makes mail durable: message file writes with their fsyncs, index WAL fsyncs
  and checkpoints. Several at once, because concurrent fsyncs on one file system merge into
  fewer journal commits.
- `files`: other file I/O: ranged reads of message bodies, unlinks of expunged messages,
  parsing large messages.
- `dns`: resolver queries (each may wait up to its timeout on the network).
- `hashing`: password hashing (argon2 takes a core and 64 MiB per call).
- The reactor's own pool (`reactor.getThreadPool()`) is left for everything else (config
  reloads, admin operations, DKIM signing, LDAP).

A `Runner` runs a function in a pool and returns a Deferred of its result; tests pass
`inline_pools()`, whose runners call the function at once, so that a store on a `task.Clock`
is deterministic.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from twisted.internet.defer import Deferred, fail, maybeDeferred
from twisted.internet.threads import deferToThreadPool
from twisted.python.failure import Failure


class Runner(Protocol):
    """Runs `f(*args, **kwargs)` somewhere else and fires with its result."""

    def __call__(self, f: Any, /, *args: Any, **kwargs: Any) -> Deferred[Any]: ...


@dataclass(frozen=True)
class PoolSizes:
    """Maximum threads per pool. The default hashing size is the core count (argon2 is
    CPU-bound); the others wait on the disk or the network more than they compute."""

    fsync: int = 6
    files: int = 4
    dns: int = 8
    hashing: int = 2


@dataclass(frozen=True)
class Pools:
    """One runner per kind of blocking work (see the module docstring)."""

    fsync: Runner
    files: Runner
    dns: Runner
    hashing: Runner
    # Stops the threads (idempotent); a no-op for pools that own no threads.
    stop: Callable[[], None] = field(default=lambda: None, compare=False)


class WorkerPool:
    """Up to `size` threads, made on demand, taking calls from one `queue.SimpleQueue`; each
    result goes back to the reactor thread with `callFromThread`. Twisted's `ThreadPool`
    spends ~40 us of the reactor's Python per call in its coordinator (a `Team` of workers,
    a `Condition` per hand-over); this costs ~10, and a delivery makes several such calls
    (its file, the index fsync, DNS checks)."""

    def __init__(self, reactor: Any, size: int, name: str) -> None:
        self._reactor = reactor
        self._size = size
        self._name = name
        self._calls: queue.SimpleQueue[tuple[Deferred[Any], Any, tuple[Any, ...], dict[str, Any]] | None]
        self._calls = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._waiting = 0  # threads blocked waiting for a call
        self._stopped = False

    def run(self, f: Any, /, *args: Any, **kwargs: Any) -> Deferred[Any]:
        if self._stopped:
            return fail(RuntimeError(f"the {self._name} pool is stopped"))
        d: Deferred[Any] = Deferred()
        self._calls.put((d, f, args, kwargs))
        with self._lock:
            if self._waiting < self._calls.qsize() and len(self._threads) < self._size:
                thread = threading.Thread(
                    target=self._work, name=f"PoolThread-{self._name}-{len(self._threads)}", daemon=True
                )
                self._threads.append(thread)
                thread.start()
        return d

    def _work(self) -> None:
        call_from_thread = self._reactor.callFromThread
        while True:
            with self._lock:
                self._waiting += 1
            item = self._calls.get()
            with self._lock:
                self._waiting -= 1
            if item is None:
                return
            d, f, args, kwargs = item
            try:
                result = f(*args, **kwargs)
            except BaseException:
                call_from_thread(d.errback, Failure())  # type: ignore[no-untyped-call]
            else:
                call_from_thread(d.callback, result)
            del d, f, args, kwargs, item  # nothing of a finished call is kept while waiting

    def stop(self) -> None:
        """Lets the threads finish the calls queued so far, then ends them (idempotent)."""
        if self._stopped:
            return
        self._stopped = True
        with self._lock:
            threads = list(self._threads)
        for _ in threads:
            self._calls.put(None)
        for thread in threads:
            thread.join()


def thread_pools(reactor: Any, sizes: PoolSizes | None = None) -> Pools:
    """Starts one thread pool per kind (threads are made on demand) and stops them when the
    reactor shuts down, after the services have stopped (so drains still have their pools)."""
    import os

    sizes = sizes or PoolSizes(hashing=max(1, os.cpu_count() or 1))
    runners: dict[str, Runner] = {}
    pools: list[WorkerPool] = []
    for name in ("fsync", "files", "dns", "hashing"):
        pool = WorkerPool(reactor, getattr(sizes, name), f"mailsrv-{name}")
        pools.append(pool)
        runners[name] = pool.run

    def stop() -> None:
        for pool in pools:
            pool.stop()

    reactor.addSystemEventTrigger("after", "shutdown", stop)
    return Pools(**runners, stop=stop)


def reactor_pools(reactor: Any) -> Pools:
    """Every kind in the reactor's one thread pool: what code that was given no `Pools`
    uses (tests and tools that build a store on its own)."""

    def run(f: Any, /, *args: Any, **kwargs: Any) -> Deferred[Any]:
        return deferToThreadPool(reactor, reactor.getThreadPool(), f, *args, **kwargs)

    return Pools(fsync=run, files=run, dns=run, hashing=run)


def _inline(f: Any, /, *args: Any, **kwargs: Any) -> Deferred[Any]:
    return maybeDeferred(f, *args, **kwargs)


def inline_pools() -> Pools:
    """Runners that call the function at once in the calling thread (tests on a fake clock)."""
    return Pools(fsync=_inline, files=_inline, dns=_inline, hashing=_inline)
