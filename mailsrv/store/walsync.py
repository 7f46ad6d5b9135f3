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

import os
import sqlite3
from pathlib import Path

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from mailsrv.pools import Runner

CHECKPOINT_EVERY = 128  # WAL fsyncs between checkpoints (a STORE commit adds ~40 KB of frames)


class IndexSync:
    def __init__(self, index: Path, run_fsync: Runner) -> None:
        self._index = index
        self._wal = index.with_name(index.name + "-wal")
        self._run = run_fsync
        self._syncing = False
        self._waiters: list[Deferred[None]] = []
        self.fsyncs = 0  # how many WAL fsyncs ran (group commit shows as fewer fsyncs than commits)
        self.checkpoints = 0

    def durable(self) -> Deferred[None]:
        """Fires once everything committed so far is durable; errbacks when the fsync fails
        (the transaction is committed but may not survive a power loss)."""
        d: Deferred[None] = Deferred()
        self._waiters.append(d)
        if not self._syncing:
            self._start()
        return d

    def _start(self) -> None:
        waiters, self._waiters = self._waiters, []
        self._syncing = True

        def done(result: object) -> None:
            self._syncing = False
            for d in waiters:
                if isinstance(result, Failure):
                    d.errback(result)
                else:
                    d.callback(None)
            if self._waiters and not self._syncing:
                self._start()

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
