"""Durable index commits without an fsync on the reactor thread (group commit).

The account index runs in WAL mode with synchronous=NORMAL: `db.commit()` on the reactor thread
only appends to the WAL file. `IndexSync.durable()` then fsyncs the WAL in the fsync pool and
fires once every transaction committed before the call is on disk. Commits made while an fsync
runs share the next one, so concurrent writers (deliveries, STOREs of many sessions) share
fsyncs. This is as durable as synchronous=FULL: a frame committed before the fsync is either in
the fsynced WAL or was checkpointed into the database file, which SQLite fsyncs before it reuses
the WAL (https://sqlite.org/pragma.html#pragma_synchronous; the queue does the same).

Automatic checkpoints are off on the reactor's connection (they fsync); `IndexSync` runs a
PASSIVE checkpoint from its own connection in the pool after every `CHECKPOINT_EVERY` WAL
fsyncs, so the WAL stays bounded (a few MB) without the reactor waiting for it. Not by WAL file
size: SQLite reuses the file from its start after a checkpoint without shrinking it, so a size
test stays true and made every fsync a checkpoint (which then slowed the reactor's commits
from ~0.2 to ~10 ms).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from mailsrv.pools import Runner

log = Logger()

CHECKPOINT_EVERY = 128  # WAL fsyncs between checkpoints (a STORE commit adds ~40 KB of frames)


class IndexSync:
    def __init__(self, index: Path, run_fsync: Runner) -> None:
        self._index = index
        self._wal = index.with_name(index.name + "-wal")
        self._run = run_fsync
        self._syncing = False
        self._waiters: list[Deferred[None]] = []
        self._held = 0  # inside `held()`: durable() waits for its end to start an fsync
        self._before_next: list[Callable[[], None]] = []
        self.fsyncs = 0  # how many WAL fsyncs ran (group commit shows as fewer fsyncs than commits)
        self.checkpoints = 0

    @property
    def syncing(self) -> bool:
        """True while a WAL fsync runs in the pool."""
        return self._syncing

    def durable(self) -> Deferred[None]:
        """Fires once everything committed so far is durable; errbacks when the fsync fails
        (the transaction is committed but may not survive a power loss)."""
        d: Deferred[None] = Deferred()
        self._waiters.append(d)
        if not self._syncing and not self._held:
            self._start()
        return d

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """No fsync starts inside: the `durable()` calls of a whole group commit share one."""
        self._held += 1
        try:
            yield
        finally:
            self._held -= 1
            if self._waiters and not self._syncing and not self._held:
                self._start()  # also after an error inside: no waiter is left without an fsync

    def before_next(self, commit: Callable[[], None]) -> None:
        """Calls `commit` on the reactor thread when the fsync in flight has finished, before
        the next one starts: rows committed then share the next fsync. An append that
        finds an fsync running waits for it this way instead of committing at once, so
        more appends share each commit (and the pages it rewrites) with the same latency:
        its rows could not have been durable before the next fsync anyway."""
        self._before_next.append(commit)

    def _start(self) -> None:
        waiters, self._waiters = self._waiters, []
        self._syncing = True

        def done(result: object) -> None:
            self._syncing = False
            commits, self._before_next = self._before_next, []
            with self.held():
                for commit in commits:
                    try:
                        commit()
                    except Exception:
                        log.failure("commit waiting for a WAL fsync")
                for d in waiters:
                    if isinstance(result, Failure):
                        d.errback(result)
                    else:
                        d.callback(None)

        self._run(self.sync_now).addBoth(done)

    def sync_now(self) -> None:
        """fsyncs the WAL here and now (a pool thread, or start-up), then checkpoints when the
        WAL has grown."""
        try:
            fd = os.open(self._wal, os.O_RDONLY)
        except FileNotFoundError:
            return  # no WAL: every commit is in the database file, synced by its checkpoint
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        self.fsyncs += 1
        if self.fsyncs % CHECKPOINT_EVERY == 0:
            self._checkpoint()

    def _checkpoint(self) -> None:
        # Its own short-lived connection: the reactor thread's one is never used from a pool thread.
        db = sqlite3.connect(self._index, isolation_level=None)
        try:
            db.execute("PRAGMA wal_checkpoint(PASSIVE)")
        finally:
            db.close()
        self.checkpoints += 1
