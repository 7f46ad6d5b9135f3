"""The queue's event outbox (mailsrv/queue/outbox.py) read through mailsrv/ops/events.py: every
outcome the runner commits has its event and no event exists without its change (one
transaction), events survive a restart until acknowledged, the cursor only grows, and an
admin's drop reports "canceled" for the recipients it removes."""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from mailsrv.address import Address
from mailsrv.dns.resolver import Resolver
from mailsrv.ops import events
from mailsrv.ops import queue as ops_queue
from mailsrv.queue.remote import DomainDelivery
from mailsrv.queue.runner import GroupToDeliver, QueueRunner, RunnerOptions
from mailsrv.queue.store import SQLiteOutgoingQueue
from mailsrv.smtpclient import Reply

R: Any = reactor

REPLIES = {
    "ok@remote.example": Reply(250, ("2.0.0 ok",)),
    "later@remote.example": Reply(451, ("4.3.0 try again",)),
    "gone@remote.example": Reply(550, ("5.1.1 no such user",)),
}


async def _deliverer(group: GroupToDeliver) -> DomainDelivery:
    return DomainDelivery({rcpt: REPLIES[rcpt] for rcpt in group.envelope.recipients})


class Outbox(TestCase):
    def setUp(self) -> None:
        self.dir = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.queue = SQLiteOutgoingQueue(self.dir)
        self.now = [time.time() + 60]

    def tearDown(self) -> None:
        self.queue.close()

    def _runner(self) -> QueueRunner:
        return QueueRunner(
            R,
            self.queue,
            Resolver(R, [("127.0.0.1", 9)], timeout=1),
            RunnerOptions(helo_name="mx.a.example"),
            clock=lambda: self.now[0],
            deliverer=_deliverer,
        )

    def _server(self) -> Any:
        return SimpleNamespace(queue=self.queue)

    async def _read(self, after: int = 0) -> events.EventBatch:
        return await events.read_events(self._server(), events.ReadEvents(after=after))

    def _statuses(self) -> dict[str, str]:
        return {r.address: r.status for r in self.queue.recipients()}

    async def _enqueue(self, *rcpts: str) -> int:
        return await self.queue.enqueue(
            Address.parse("alice@a.example"),
            [Address.parse(r) for r in rcpts],
            b"Subject: x\r\n\r\nx\r\n",
            "alice",
            False,
        )

    async def test_every_outcome_has_its_event_and_they_survive_a_restart(self) -> None:
        qid = await self._enqueue(*REPLIES)
        await self._runner().run_once()
        assert self._statuses() == {
            "ok@remote.example": "delivered",
            "later@remote.example": "queued",
            "gone@remote.example": "failed",
        }
        batch = await self._read()
        kinds = {(e.recipient, type(e).__name__) for e in batch.events}
        assert kinds == {
            ("ok@remote.example", "OutgoingDelivered"),
            ("later@remote.example", "OutgoingDelayed"),
            ("gone@remote.example", "OutgoingFailed"),
        }
        first = batch.events[0]
        assert (first.queue_id, first.account, first.mail_from) == (qid, "alice", "alice@a.example")
        assert [e.cursor for e in batch.events] == sorted(e.cursor for e in batch.events)
        assert batch.cursor == batch.events[-1].cursor
        failed = next(e for e in batch.events if isinstance(e, events.OutgoingFailed))
        assert failed.code == 550 and "no such user" in failed.reply
        # A restart (the database reopened from disk) keeps them, and the cursor.
        self.queue.close()
        self.queue = SQLiteOutgoingQueue(self.dir)
        again = await self._read()
        assert again.events == batch.events
        # Acknowledged events are gone; later ones get higher cursors than any before.
        ack = await events.acknowledge(self._server(), events.Acknowledge(upto=batch.events[0].cursor))
        assert ack.count == 1
        assert [e.cursor for e in (await self._read()).events] == [e.cursor for e in batch.events[1:]]
        await events.acknowledge(self._server(), events.Acknowledge(upto=batch.cursor))
        self.queue.close()
        self.queue = SQLiteOutgoingQueue(self.dir)
        assert (await self._read()).events == []
        self.now[0] += 10_000
        await self._runner().run_once()  # "later" is retried: delayed again
        [later] = (await self._read(batch.cursor)).events
        assert later.cursor > batch.cursor and isinstance(later, events.OutgoingDelayed)

    async def test_no_event_without_its_change_and_no_change_without_its_event(self) -> None:
        qid = await self._enqueue("ok@remote.example")
        runner = self._runner()
        [rid] = [r[0] for r in self.queue.db.execute("SELECT id FROM recipient")]
        # A crash before the commit: the outcome and its event are lost together.
        runner._record(
            rid, qid, "ok@remote.example", 1000.0, "mx [192.0.2.1]", Reply(250, ("2.0.0 ok",)), "delivered", 1000.0
        )
        self.queue.db.rollback()
        assert self._statuses() == {"ok@remote.example": "queued"} and (await self._read()).events == []
        # Committed: both.
        runner._record(
            rid, qid, "ok@remote.example", 1000.0, "mx [192.0.2.1]", Reply(250, ("2.0.0 ok",)), "delivered", 1000.0
        )
        await self.queue.commit()
        self.queue.close()
        self.queue = SQLiteOutgoingQueue(self.dir)
        assert self._statuses() == {"ok@remote.example": "delivered"}
        [event] = (await self._read()).events
        assert isinstance(event, events.OutgoingDelivered) and event.remote_host == "mx [192.0.2.1]"

    async def test_drop_reports_canceled_recipients(self) -> None:
        qid = await self._enqueue("a@remote.example", "b@remote.example")
        result = await ops_queue.drop(self._server(), ops_queue.Drop(ids=[qid]))
        assert result.count == 1
        batch = await self._read()
        assert [(type(e).__name__, e.recipient, e.queue_id) for e in batch.events] == [
            ("OutgoingCanceled", "a@remote.example", qid),
            ("OutgoingCanceled", "b@remote.example", qid),
        ]

    async def test_refusals(self) -> None:
        from mailsrv.ops.errors import InvalidInput

        for limit in (0, events.MAX_BATCH + 1):
            with self.assertRaises(InvalidInput):
                await events.read_events(self._server(), events.ReadEvents(limit=limit))
