"""SQLiteOutgoingQueue.on_enqueued: called after the message is durably queued; a failing hook
does not fail the enqueue."""

from __future__ import annotations

from pathlib import Path

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.trial import unittest

from mailsrv.address import Address
from mailsrv.queue.store import SQLiteOutgoingQueue


class EnqueueHook(unittest.TestCase):
    def test_hooks_run_after_commit(self) -> Deferred[None]:
        queue = SQLiteOutgoingQueue(Path(self.mktemp()))
        self.addCleanup(queue.close)
        seen: list[tuple[int, int]] = []

        def hook(message_id: int) -> None:
            rows = queue.db.execute("SELECT COUNT(*) FROM recipient WHERE message_id = ?", (message_id,)).fetchone()
            seen.append((message_id, int(rows[0])))

        def broken(message_id: int) -> None:
            raise RuntimeError("boom")

        queue.on_enqueued += [broken, hook]

        async def go() -> None:
            qid = await queue.enqueue(
                Address.parse("a@x.example"), [Address.parse("b@y.example")], b"x\r\n", "a", False
            )
            assert seen == [(qid, 1)]
            assert queue.path(qid).read_bytes() == b"x\r\n"
            self.flushLoggedErrors(RuntimeError)

        return ensureDeferred(go())
