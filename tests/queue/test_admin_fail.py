"""An administrator's "drop with a DSN" (`OutgoingQueue.fail`): the queued recipients fail with
the admin's reply, recorded as an attempt; the runner then sends the sender one failure DSN
(only for recipients whose NOTIFY asks for it) and retires the message with that outcome."""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from twisted.internet import defer, reactor, task
from twisted.trial.unittest import TestCase

from mailsrv.address import Address
from mailsrv.dsnparams import RecipientDSN
from mailsrv.queue.interfaces import QueueFilter
from mailsrv.queue.store import SQLiteOutgoingQueue
from tests.dnsserver import DNSServer
from tests.ports import free_port
from tests.queue.runner_setup import make_runner

R: Any = reactor
MESSAGE = b"From: a@a.example\r\nTo: x@b.example\r\nSubject: q\r\n\r\nhello\r\n"


class Fail(TestCase):
    def setUp(self) -> None:
        self.dir = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.dns = DNSServer()
        self.addCleanup(self.dns.close)
        self.queue = SQLiteOutgoingQueue(self.dir / "data")
        self.addCleanup(self.queue.close)
        self.dsns: list[tuple[str, bytes]] = []
        self.now = [time.time() + 60]

    async def notify(self, mail_from: str, dsn: bytes) -> None:
        self.dsns.append((mail_from, dsn))

    def test_fail_sends_one_dsn_and_retires(self) -> defer.Deferred[None]:
        runner = make_runner(self.queue, self.dns, free_port(), self.now, self.notify, lambda account: 3600)
        self.queue.on_finish_wanted.append(runner.finish_soon)

        async def go() -> None:
            rcpts = [Address.parse("x@b.example"), Address.parse("y@b.example"), Address.parse("z@b.example")]
            never = RecipientDSN.stored("NEVER", "")
            default = RecipientDSN.stored("", "")
            mid = await self.queue.enqueue(
                Address.parse("a@a.example"), rcpts, MESSAGE, "alice", False, recipient_dsn=[default, default, never]
            )
            other = await self.queue.enqueue(Address.parse("a@a.example"), rcpts[:1], MESSAGE, "alice", False)
            count = await self.queue.fail(QueueFilter(ids=(mid,)), "550 5.3.0 spam run stopped")
            assert count == 1
            for _ in range(50):
                if self.dsns:
                    break
                await task.deferLater(R, 0.02, lambda: None)
            await task.deferLater(R, 0.05, lambda: None)
            [(to, dsn)] = self.dsns
            assert to == "a@a.example"
            assert b"spam run stopped" in dsn and b"x@b.example" in dsn and b"y@b.example" in dsn
            assert b"z@b.example" not in dsn  # NOTIFY=NEVER
            row = self.queue.db.execute("SELECT retired_until FROM message WHERE id = ?", (mid,)).fetchone()
            assert row[0] is not None  # retired, with its history
            history = runner.history(mid)
            assert [(h[0], h[3]) for h in history] == [("x@b.example", 550), ("y@b.example", 550), ("z@b.example", 550)]
            assert not self.queue.path(mid).exists()
            # The other message is untouched and a second fail finds nothing queued to fail.
            assert [r.status for r in self.queue.recipients() if r.message_id == other] == ["queued"]
            assert await self.queue.fail(QueueFilter(ids=(mid,)), "550 5.3.0 again") == 0

        return defer.ensureDeferred(go())
