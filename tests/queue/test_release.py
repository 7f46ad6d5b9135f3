"""A message queued with a release time (webapi FutureRelease): its recipients are due then,
not before, and its retry period starts then."""

from __future__ import annotations

import time
from pathlib import Path

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.trial import unittest

from mailsrv.address import Address
from mailsrv.queue.interfaces import MessageMeta
from mailsrv.queue.store import SQLiteOutgoingQueue


class Release(unittest.TestCase):
    def test_recipients_are_due_at_the_release_time(self) -> Deferred[None]:
        queue = SQLiteOutgoingQueue(Path(self.mktemp()))
        self.addCleanup(queue.close)

        async def go() -> None:
            sender, rcpt = Address.parse("a@x.example"), Address.parse("b@y.example")
            release = time.time() + 3600
            later = await queue.enqueue(sender, [rcpt], b"x\r\n", "a", False, meta=MessageMeta(release_at=release))
            now = await queue.enqueue(sender, [rcpt], b"x\r\n", "a", False)
            due = {
                int(r[0])
                for r in queue.db.execute(
                    "SELECT message_id FROM recipient WHERE status = 'queued' AND next_attempt <= ?", (time.time(),)
                )
            }
            assert due == {now}
            [(next_attempt, created)] = queue.db.execute(
                "SELECT r.next_attempt, m.created FROM recipient r JOIN message m ON m.id = r.message_id"
                " WHERE m.id = ?",
                (later,),
            ).fetchall()
            assert next_attempt == release and created == release

        return ensureDeferred(go())
