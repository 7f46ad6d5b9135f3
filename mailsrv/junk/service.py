"""Every account's junk filter, opened on first use, with its blocking work in a thread pool.

``data/junk/<account>.db`` holds an account's word database (0600 in a 0700 directory). Changes to an account's
filter (`call`) are made by one thread at a time (its lock), in the order they were requested (a ``DeferredLock``
per account), so "train as junk" followed by "train as ham" ends as ham. Classifications at delivery (`read`)
only read: they run in parallel, beside each other and beside a change (each thread reads through its own
connection), so ten sessions delivering to one account do not queue behind each other; one requested after a
change started may see the filter from before it. Classifications go to the runner given (the daemon's `files`
pool, mailsrv/pools.py: reading and tokenising a message), whose hand-off costs the reactor about half of what
Twisted's pool does (~30 against ~65 us per delivered copy, with a trained filter); changes stay in the reactor's
pool.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from twisted.internet.defer import Deferred, DeferredLock
from twisted.internet.threads import deferToThreadPool

from mailsrv.junk.filter import JunkFilter
from mailsrv.junk.settings import JunkSettings
from mailsrv.pools import Runner

_T = TypeVar("_T")


class _Account:
    def __init__(self, junk: JunkFilter) -> None:
        self.filter = junk
        self.thread_lock = threading.Lock()
        self.order = DeferredLock()
        # Background jobs (training after moves and flag changes) run one at a time, in event order.
        self.jobs = DeferredLock()


class JunkFilters:
    def __init__(
        self, data_dir: Path, reactor: Any, defaults: JunkSettings | None = None, run_read: Runner | None = None
    ) -> None:
        self.dir = Path(data_dir) / "junk"
        self.reactor = reactor
        self.defaults = defaults or JunkSettings()
        self._run_read = run_read
        self._accounts: dict[str, _Account] = {}
        self._open_lock = threading.Lock()
        # Background work (training after a move) still running: drained at shutdown and by tests.
        self.pending: set[Deferred[Any]] = set()

    def run_job(self, account: str, job: Callable[[], Deferred[_T]]) -> Deferred[_T]:
        """Starts `job` after the account's earlier jobs finished; tracked in `pending`."""
        return self.track(self._account(account).jobs.run(job))

    def track(self, d: Deferred[_T]) -> Deferred[_T]:
        """Remembers `d` in `pending` until it fires."""
        self.pending.add(d)

        def done(result: Any) -> Any:
            self.pending.discard(d)
            return result

        return d.addBoth(done)

    def drain(self) -> Deferred[Any]:
        """Fires when the background work running now has finished."""
        from twisted.internet.defer import DeferredList

        return DeferredList(list(self.pending), consumeErrors=True)

    def _path(self, account: str) -> Path:
        return self.dir / (account.replace(os.sep, "_") + ".db")

    def exists(self, account: str) -> bool:
        """Whether the account's filter was ever opened (its database exists)."""
        return account in self._accounts or self._path(account).exists()

    def _account(self, account: str) -> _Account:
        with self._open_lock:
            entry = self._accounts.get(account)
            if entry is None:
                self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
                entry = _Account(JunkFilter(self._path(account), self.defaults))
                self._accounts[account] = entry
            return entry

    def call_sync(self, account: str, fn: Callable[[JunkFilter], _T]) -> _T:
        """Runs fn with the account's filter in this thread (the CLI without a daemon, tests)."""
        entry = self._account(account)
        with entry.thread_lock:
            return fn(entry.filter)

    def untrained(self, account: str) -> bool:
        """Whether the account's filter is known (from memory, without a query) to have nothing trained: then it
        gives no verdict and knows no sender, and a delivery need not ask it. False when not known yet."""
        entry = self._accounts.get(account)
        return entry is not None and entry.filter.db.cached_totals == (0, 0)

    def read(self, account: str, fn: Callable[[JunkFilter], _T]) -> Deferred[_T]:
        """Runs fn, which only reads the filter (classification), in the thread pool at once: in parallel with
        other reads and with a change of the account's filter."""
        if self._run_read is not None:
            read: Deferred[_T] = self._run_read(self._read, account, fn)
            return read
        return deferToThreadPool(self.reactor, self.reactor.getThreadPool(), self._read, account, fn)

    def _read(self, account: str, fn: Callable[[JunkFilter], _T]) -> _T:
        return fn(self._account(account).filter)

    def call(self, account: str, fn: Callable[[JunkFilter], _T]) -> Deferred[_T]:
        """Runs fn with the account's filter in the thread pool, after the account's earlier calls."""
        entry = self._account(account)

        def in_thread() -> _T:
            with entry.thread_lock:
                return fn(entry.filter)

        def locked(_: object) -> Deferred[_T]:
            d: Deferred[_T] = deferToThreadPool(self.reactor, self.reactor.getThreadPool(), in_thread)

            def release(result: Any) -> Any:
                entry.order.release()
                return result

            return d.addBoth(release)

        return entry.order.acquire().addCallback(locked)

    def close(self) -> None:
        with self._open_lock:
            for entry in self._accounts.values():
                with entry.thread_lock:
                    entry.filter.close()
            self._accounts.clear()
