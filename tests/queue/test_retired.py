"""Finishing queued messages: a delivery committed before QUIT, retired messages kept for
the account's period and purged after it (injected clock), removal at once without a
period, `tidy` finishing what a crash or a failed DSN left, the schema migration of an
existing queue database and queue ids that are never reused."""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

from twisted.internet import defer, reactor
from twisted.trial.unittest import TestCase

from mailsrv.address import Address
from mailsrv.dns.resolver import Resolver
from mailsrv.queue.admin import QueueFilter, list_queue, list_retired, purge_retired
from mailsrv.queue.runner import QueueRunner, RunnerOptions
from mailsrv.queue.store import SQLiteOutgoingQueue
from mailsrv.smtpclient import Timeouts
from tests.dnsserver import DNSServer
from tests.queue.runner_setup import make_runner
from tests.queue.sink import RecordingSink

R: Any = reactor
MESSAGE = b"From: a@a.example\r\nTo: x@b.example\r\nMessage-ID: <m1@a.example>\r\nSubject: q\r\n\r\nhello\r\n"
FAST = Timeouts(connect=2, greeting=2, command=2, data_start=2, data_end=2, tls_handshake=2)

# The queue schema before retired_until and the sequence table (as released).
OLD_SCHEMA = """
CREATE TABLE message (id INTEGER PRIMARY KEY, mail_from TEXT NOT NULL, account TEXT NOT NULL,
    size INTEGER NOT NULL, smtputf8 INTEGER NOT NULL, created REAL NOT NULL, hold INTEGER NOT NULL DEFAULT 0);
CREATE TABLE recipient (id INTEGER PRIMARY KEY, message_id INTEGER NOT NULL REFERENCES message(id),
    address TEXT NOT NULL, domain TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'queued',
    attempts INTEGER NOT NULL DEFAULT 0, next_attempt REAL NOT NULL, last_error TEXT NOT NULL DEFAULT '');
CREATE INDEX recipient_next ON recipient (status, next_attempt);
INSERT INTO message VALUES (7, 'a@a.example', 'alice', 10, 0, 1000, 0);
INSERT INTO recipient VALUES (1, 7, 'x@b.example', 'b.example', 'delivered', 1, 1000, '');
INSERT INTO message VALUES (8, 'a@a.example', 'alice', 10, 0, 1000, 0);
INSERT INTO recipient VALUES (2, 8, 'y@b.example', 'b.example', 'queued', 0, 1e12, '');
"""


class Finishing(TestCase):
    def setUp(self) -> None:
        self.dir = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.dns = DNSServer()
        self.addCleanup(self.dns.close)
        self.dns.set("b.example", "A", "127.0.0.1")
        self.dns.set("nomail.example", "MX", "0 .")  # null MX: a permanent failure at once
        self.sink = RecordingSink()
        self.addCleanup(self.sink.close)
        self.now = [time.time() + 60]
        self.dsns: list[bytes] = []
        self.dsn_fails = False
        self.keep: dict[str, float] = {"keeper": 100.0}
        self.queue = self.open_queue()

    def open_queue(self) -> SQLiteOutgoingQueue:
        queue = SQLiteOutgoingQueue(self.dir / "data")
        self.addCleanup(queue.close)
        return queue

    async def notify(self, mail_from: str, dsn: bytes) -> None:
        if self.dsn_fails:
            raise OSError("sender's store is unavailable")
        self.dsns.append(dsn)

    def runner(self) -> QueueRunner:
        return make_runner(
            self.queue,
            self.dns,
            self.sink.port,
            self.now,
            self.notify,
            lambda account: self.keep.get(account, 0.0),
            FAST,
        )

    def enqueue(self, account: str, *rcpts: str) -> defer.Deferred[int]:
        return self.queue.enqueue(
            Address.parse("a@a.example"), [Address.parse(r) for r in rcpts], MESSAGE, account, False
        )

    def test_delivery_is_committed_before_quit(self) -> defer.Deferred[None]:
        seen: list[tuple[str, int]] = []
        db_path = self.queue.root / "index.db"

        def on_quit() -> None:
            # Another connection sees only committed rows: what a crash right now would leave.
            other = sqlite3.connect(db_path)
            try:
                seen.extend(
                    other.execute(
                        "SELECT r.status, COUNT(a.id) FROM recipient r JOIN attempt a ON a.recipient_id = r.id"
                    )
                )
            finally:
                other.close()

        self.sink.on_quit = on_quit
        runner = self.runner()

        async def go() -> None:
            await self.enqueue("keeper", "x@b.example")
            await runner.run_once()
            assert seen == [("delivered", 1)]
            [record] = self.sink.records()
            assert record.message_id == "<m1@a.example>" and record.quit_after

        return defer.ensureDeferred(go())

    def test_a_message_delivered_whole_is_finished_by_the_commit_that_records_it(self) -> defer.Deferred[None]:
        """All its recipients accepted in one session and no DSN owed: the delivery, the
        retiring (or removal) and the event are one transaction, committed before QUIT, and the
        message costs the queue one commit (it took three)."""
        seen: list[object] = []
        db_path = self.queue.root / "index.db"
        commits: list[int] = []
        real_commit = self.queue.commit

        def counting_commit() -> defer.Deferred[None]:
            commits.append(1)
            return real_commit()

        self.queue.commit = counting_commit  # type: ignore[method-assign]

        def on_quit() -> None:
            other = sqlite3.connect(db_path)
            try:
                seen.append(other.execute("SELECT id, retired_until FROM message ORDER BY id").fetchall())
                seen.append(other.execute("SELECT kind, recipient FROM outbox ORDER BY seq").fetchall())
            finally:
                other.close()

        self.sink.on_quit = on_quit
        runner = self.runner()

        async def go() -> None:
            kept = await self.enqueue("keeper", "x@b.example", "y@b.example")
            await runner.run_once()
            assert seen == [
                [(kept, self.now[0] + 100)],
                [("delivered", "x@b.example"), ("delivered", "y@b.example")],
            ]
            assert not self.queue.path(kept).exists()
            seen.clear()
            commits.clear()
            gone = await self.enqueue("nokeep", "x@b.example")
            commits.clear()
            await runner.run_once()
            assert seen[0] == [(kept, self.now[0] + 100)]  # the second message's rows went with its delivery
            assert seen[1][-1] == ("delivered", "x@b.example")  # ... and its event came with them
            assert len(commits) == 1
            assert not self.queue.path(gone).exists()
            for table in ("recipient", "attempt"):
                assert (
                    self.queue.db.execute(f"SELECT COUNT(*) FROM {table} WHERE message_id = ?", (gone,)).fetchone()[0]
                    == 0
                )

        return defer.ensureDeferred(go())

    def test_without_keep_period_the_message_is_removed_when_finished(self) -> defer.Deferred[None]:
        runner = self.runner()

        async def go() -> None:
            mid = await self.enqueue("nokeep", "x@b.example", "u@nomail.example")
            await runner.run_once()
            assert len(self.sink.records()) == 1 and len(self.dsns) == 1  # delivered one, DSN for the other
            for table in ("message", "recipient", "attempt", "dsn_sent"):
                assert self.queue.db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] == 0, table
            assert not self.queue.path(mid).exists()

        return defer.ensureDeferred(go())

    def test_retired_for_the_keep_period_then_purged(self) -> defer.Deferred[None]:
        runner = self.runner()

        async def go() -> None:
            mid = await self.enqueue("keeper", "x@b.example")
            await runner.run_once()
            [retired] = list_retired(self.queue.db)
            assert retired.id == mid and retired.retired_until == self.now[0] + 100
            assert [(r.address, r.status, r.attempts) for r in retired.recipients] == [("x@b.example", "delivered", 1)]
            assert [h[3] for h in runner.history(mid)] == [250]
            assert list_queue(self.queue.db) == [] and not self.queue.path(mid).exists()
            self.now[0] += 99
            assert await runner.tidy() == (0, 0)
            self.now[0] += 1
            assert await runner.tidy() == (0, 1)
            assert list_retired(self.queue.db) == [] and runner.history(mid) == []

        return defer.ensureDeferred(go())

    def test_purge_in_batches(self) -> defer.Deferred[None]:
        import mailsrv.queue.runner as runner_module

        self.patch(runner_module, "PURGE_BATCH", 3)
        runner = self.runner()

        async def go() -> None:
            for _ in range(7):
                await self.enqueue("keeper", "x@b.example")
            while list_queue(self.queue.db):  # two at a time per destination domain
                await runner.run_once()
            assert len(list_retired(self.queue.db)) == 7
            self.now[0] += 100
            assert await runner.tidy() == (0, 7)
            assert list_retired(self.queue.db) == []

        return defer.ensureDeferred(go())

    def test_tidy_finishes_a_message_whose_dsn_failed(self) -> defer.Deferred[None]:
        runner = self.runner()

        async def go() -> None:
            self.dsn_fails = True
            mid = await self.enqueue("keeper", "u@nomail.example")
            await runner.run_once()
            # Failed, but the DSN is owed: still in the queue list with its content.
            [queued] = list_queue(self.queue.db)
            assert queued.recipients[0].status == "failed" and self.queue.path(mid).exists()
            assert await runner.tidy() == (0, 0)  # the DSN still cannot be handed over
            assert len(self.flushLoggedErrors(OSError)) == 2  # logged each time
            self.dsn_fails = False
            assert await runner.tidy() == (1, 0)
            assert len(self.dsns) == 1 and b"u@nomail.example" in self.dsns[0]
            assert [m.id for m in list_retired(self.queue.db)] == [mid] and not self.queue.path(mid).exists()
            assert await runner.tidy() == (0, 0) and len(self.dsns) == 1  # reported once

        return defer.ensureDeferred(go())

    def test_admin_purge_with_a_filter_ignores_the_period(self) -> defer.Deferred[None]:
        runner = self.runner()

        async def go() -> None:
            mid = await self.enqueue("keeper", "x@b.example")
            await runner.run_once()
            assert purge_retired(self.queue.db, self.queue.msg_dir, self.now[0]) == 0  # not expired
            assert purge_retired(self.queue.db, self.queue.msg_dir, self.now[0], QueueFilter(ids=(mid,))) == 1

        return defer.ensureDeferred(go())


class ExistingDatabase(TestCase):
    def setUp(self) -> None:
        self.dir = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, self.dir, True)

    def test_old_schema_is_migrated_and_finished_rows_are_tidied(self) -> defer.Deferred[None]:
        root = self.dir / "queue"
        (root / "msg").mkdir(parents=True)
        (root / "msg" / "8").write_bytes(MESSAGE)
        old = sqlite3.connect(root / "index.db")
        old.executescript(OLD_SCHEMA)
        old.commit()
        old.close()
        queue = SQLiteOutgoingQueue(self.dir)
        self.addCleanup(queue.close)
        columns = [r[1] for r in queue.db.execute("PRAGMA table_info(message)")]
        assert "retired_until" in columns
        # Before tidy the old finished message counts as queued (not retired yet).
        assert [m.id for m in list_queue(queue.db)] == [7, 8]
        runner = QueueRunner(R, queue, Resolver(R, [("127.0.0.1", 9)], timeout=1), RunnerOptions(helo_name="h"))

        async def go() -> None:
            assert await runner.tidy() == (1, 0)  # no file, no DSN owed: removed (no keep period)
            assert [m.id for m in list_queue(queue.db)] == [8] and list_retired(queue.db) == []
            assert (root / "msg" / "8").exists()
            mid = await queue.enqueue(Address.parse("a@a.example"), [Address.parse("z@b.example")], MESSAGE, "a", False)
            assert mid == 9

        return defer.ensureDeferred(go())

    def test_queue_ids_are_not_reused_after_removal(self) -> defer.Deferred[None]:
        async def go() -> None:
            queue = SQLiteOutgoingQueue(self.dir)
            rcpt = [Address.parse("z@b.example")]
            first = await queue.enqueue(None, rcpt, MESSAGE, "", False)
            second = await queue.enqueue(None, rcpt, MESSAGE, "", False)
            queue.db.execute("DELETE FROM recipient")
            queue.db.execute("DELETE FROM message")
            queue.db.commit()
            queue.close()
            queue = SQLiteOutgoingQueue(self.dir)
            try:
                assert await queue.enqueue(None, rcpt, MESSAGE, "", False) == second + 1 == first + 2
            finally:
                queue.close()

        return defer.ensureDeferred(go())
