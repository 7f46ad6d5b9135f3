"""SQLiteOutgoingQueue.commit: the WAL fsync runs in a pool thread; commits made while one runs
share the next; a failed fsync fails every commit it covered, and so the enqueue."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from twisted.internet.defer import Deferred, ensureDeferred, gatherResults
from twisted.python import threadable
from twisted.trial import unittest

from mailsrv.address import Address
from mailsrv.queue.store import SQLiteOutgoingQueue


class Commit(unittest.TestCase):
    def setUp(self) -> None:
        self.queue = SQLiteOutgoingQueue(Path(self.mktemp()))
        self.addCleanup(self.queue.close)

    def test_index_is_wal_with_normal_sync(self) -> None:
        assert self.queue.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert self.queue.db.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL

    def test_commits_during_an_fsync_share_the_next_one(self) -> Deferred[None]:
        syncs: list[int] = []
        real = self.queue._index_sync.sync_now

        def counting() -> None:
            syncs.append(1)
            real()

        self.queue._index_sync.sync_now = counting  # type: ignore[method-assign]

        async def go() -> None:
            db = self.queue.db
            db.execute("CREATE TABLE t (x INTEGER)")
            first = self.queue.commit()  # starts an fsync at once
            waiting = []
            for i in range(5):  # all while the first fsync runs: one more fsync for the five
                db.execute("INSERT INTO t VALUES (?)", (i,))
                waiting.append(self.queue.commit())
            await gatherResults([first, *waiting])
            assert len(syncs) == 2
            # Each commit was already atomic and visible to another connection.
            other = sqlite3.connect(self.queue.root / "index.db")
            try:
                assert other.execute("SELECT COUNT(*) FROM t").fetchone()[0] == 5
            finally:
                other.close()

        return ensureDeferred(go())

    def test_failed_fsync_fails_the_enqueue(self) -> Deferred[None]:
        def broken() -> None:
            raise OSError(5, "Input/output error")

        self.queue._index_sync.sync_now = broken  # type: ignore[method-assign]
        queued: list[int] = []
        self.queue.on_enqueued.append(queued.append)

        async def go() -> None:
            d = self.queue.enqueue(Address.parse("a@x.example"), [Address.parse("b@y.example")], b"x\r\n", "a", False)
            try:
                await d
            except OSError:
                pass
            else:
                raise AssertionError("enqueue succeeded without a durable commit")
            assert queued == []  # the runner is never told about it
            # The next commit whose fsync works goes through.
            self.queue._index_sync.sync_now = lambda: None  # type: ignore[method-assign]
            await self.queue.commit()

        return ensureDeferred(go())

    def test_fsync_is_in_a_pool_thread(self) -> Deferred[None]:
        where: list[bool] = []
        real = self.queue._index_sync.sync_now

        def recording() -> None:
            where.append(threadable.isInIOThread())
            real()

        self.queue._index_sync.sync_now = recording  # type: ignore[method-assign]

        async def go() -> None:
            await self.queue.commit()
            assert where == [False]

        return ensureDeferred(go())
