"""The webhook queue (mailsrv/webhooks/store.py) and sender (sender.py) in-process, against a
stdlib HTTP receiver: outbox events become webhooks for the accounts that want them (the
outbox cursor moves with them in one transaction), a newer event supersedes a queued older
one about the same recipient, only 200 completes a webhook, other answers back off, headers
and signatures are right, retired webhooks are kept per account, private targets are refused
unless allowed, and everything survives reopening the databases."""

from __future__ import annotations

import itertools
import shutil
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from standardwebhooks.webhooks import Webhook
from twisted.internet import reactor, task
from twisted.trial.unittest import TestCase

from mailsrv.address import Address
from mailsrv.queue.interfaces import MessageMeta, QueueEvent
from mailsrv.queue.store import SQLiteOutgoingQueue
from mailsrv.webhooks.sender import SenderOptions, WebhookSender
from mailsrv.webhooks.store import NewHook, WebhookStore
from tests.webhooks.receiver import Receiver

R: Any = reactor


async def _wait(condition: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await task.deferLater(R, 0.02, lambda: None)


def _all_attempted(hooks: list[Any], n: int, attempts: int) -> bool:
    """All n hooks are there (the sender's first pull happens once the reactor turns) and tried."""
    return len(hooks) == n and all(h.attempts >= attempts for h in hooks)


def _event(kind: str, message_id: int, recipient: str, account: str = "alice", **kw: Any) -> QueueEvent:
    return QueueEvent(0, time.time(), kind, message_id, account, "alice@a.example", recipient, "", 0, "", **kw)  # type: ignore[arg-type]


class Queue(TestCase):
    def setUp(self) -> None:
        self.dir = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.queue = SQLiteOutgoingQueue(self.dir)
        self.store = WebhookStore(self.dir)
        self.receiver = Receiver()
        self.addCleanup(self.receiver.stop)
        self.senders: list[WebhookSender] = []

    async def tearDown(self) -> None:  # type: ignore[override]
        for s in self.senders:
            if s.running:
                await s.stopService()
        self.queue.close()
        self.store.close()

    def _sender(self, **options: Any) -> WebhookSender:
        server = SimpleNamespace(
            webhooks=self.store,
            queue=self.queue,
            reactor=R,
            resolver=SimpleNamespace(addresses=None),
        )
        opts = dict(first_retry=0.2, max_retry=0.8, max_attempts=5, timeout=5, interval=0.05, allow_private=True)
        opts.update(options)
        sender = WebhookSender(server, SenderOptions(**opts))  # type: ignore[arg-type]
        self.senders.append(sender)
        return sender

    async def _enqueue(self, *rcpts: str, account: str = "alice") -> int:
        return await self.queue.enqueue(
            Address.parse("alice@a.example"),
            [Address.parse(r) for r in rcpts],
            b"Subject: hi\r\n\r\nx\r\n",
            account,
            False,
            meta=MessageMeta(header_message_id="<m@a.example>", subject="hi", extra={"K": "v"}),
        )

    def test_store_settings_file_mode(self) -> None:
        assert (self.dir / "webhooks.db").stat().st_mode & 0o777 == 0o600

    async def test_events_become_webhooks_with_headers_and_signatures(self) -> None:
        await self.store.save_outgoing("alice", self.receiver.url, "Bearer t0ken", ["delivered", "failed"])
        secret = await self.store.rotate_secret("alice")
        qid = await self._enqueue("x@b.example")
        for kind in ("delivered", "delayed", "failed"):  # delayed is not wanted
            await self.queue.record_event(_event(kind, qid, f"{kind}@b.example"))
        await self.queue.record_event(_event("delivered", qid, "y@b.example", account="bob"))  # bob: no webhook
        sender = self._sender()
        sender.startService()
        requests = await _wait_for(self.receiver, 2)
        events = sorted(r.json()["Event"] for r in requests)
        assert events == ["delivered", "failed"]
        for r in requests:
            assert r.headers["authorization"] == "Bearer t0ken"
            assert r.headers["content-type"] == "application/json"
            assert r.headers["x-mox-webhook-attempt"] == "1"
            assert r.headers["x-mox-webhook-id"] == r.headers["webhook-id"]
            Webhook(secret).verify(
                r.body, {k: r.headers[k] for k in ("webhook-id", "webhook-timestamp", "webhook-signature")}
            )
            body = r.json()
            assert (body["QueueMsgID"], body["MessageID"], body["Subject"], body["Extra"]) == (
                qid,
                "<m@a.example>",
                "hi",
                {"K": "v"},
            )
        # The outbox is read and acknowledged; the cursor is stored with the webhooks.
        await _wait(lambda: self.store.next_due() is None)
        assert await self.queue.events_after(0, 10) == [] and self.store.cursor() > 0

    async def test_non_200_backs_off_then_gives_up_and_retired_are_kept(self) -> None:
        self.receiver.status = 500
        await self.store.save_outgoing("alice", self.receiver.url, "", [])
        await self.store.set_retired_keep("alice", 3600)
        await self.queue.record_event(_event("failed", 1, "x@b.example"))
        sender = self._sender()
        sender.startService()
        requests = await _wait_for(self.receiver, 5, timeout=30)
        assert [r.headers["x-mox-webhook-attempt"] for r in requests] == ["1", "2", "3", "4", "5"]
        gaps = [b.time - a.time for a, b in itertools.pairwise(requests)]
        assert gaps[0] >= 0.15 and gaps[1] >= 0.35 and gaps[2] >= 0.7, gaps  # 0.2, 0.4, 0.8 s
        await _wait(lambda: self.store.next_due() is None)
        [hook] = self.store.page(True, "alice", 0, 10).hooks
        assert (hook.outcome, hook.attempts, hook.last_result) == ("failed", 5, "HTTP 500")

    async def test_receiver_down_then_back_gets_everything(self) -> None:
        self.receiver.stop()
        await self.store.save_outgoing("alice", self.receiver.url, "", [])
        for i in range(5):
            await self.queue.record_event(_event("delivered", 100 + i, "x@b.example"))
        sender = self._sender(first_retry=0.1, max_retry=0.2, max_attempts=100)
        sender.startService()
        await _wait(lambda: _all_attempted(self.store.page(False, None, 0, 10).hooks, 5, 2))
        self.receiver.start()
        requests = await _wait_for(self.receiver, 5)
        assert sorted(r.json()["QueueMsgID"] for r in requests) == [100, 101, 102, 103, 104]
        assert all(int(r.headers["x-mox-webhook-attempt"]) >= 3 for r in requests)

    async def test_newer_event_supersedes_a_queued_older_one(self) -> None:
        await self.store.save_outgoing("alice", self.receiver.url, "", [])
        await self.store.set_retired_keep("alice", 3600)
        payloads = [b'{"Event":"delayed"}', b'{"Event":"delayed"}', b'{"Event":"failed"}']
        for p in payloads:
            await self.store.add(
                [NewHook(account="alice", kind="outgoing", event="x", payload=p, queue_id=7, recipient="r@b.example")],
                0,
            )
        await self.store.add(
            [NewHook(account="alice", kind="outgoing", event="x", payload=b"{}", queue_id=7, recipient="s@b.example")],
            0,
        )
        queued = self.store.page(False, None, 0, 10).hooks
        assert [h.payload for h in queued] == ['{"Event":"failed"}', "{}"]
        assert [h.outcome for h in self.store.page(True, None, 0, 10).hooks] == ["superseded", "superseded"]
        # One being sent is not superseded under the sender.
        [sending] = [h for h in self.store.due(time.time(), 1)]
        await self.store.add(
            [
                NewHook(
                    account="alice", kind="outgoing", event="x", payload=b"[]", queue_id=7, recipient=sending.recipient
                )
            ],
            0,
        )
        assert len(self.store.page(False, None, 0, 10).hooks) == 3

    async def test_survives_reopening_and_admin_retry_drop(self) -> None:
        await self.store.save_outgoing("alice", "http://127.0.0.1:9/nothing", "", [])
        await self.store.add(
            [NewHook(account="alice", kind="outgoing", event="delivered", payload=b"{}", queue_id=1)], 5
        )
        await self.store.add([NewHook(account="alice", kind="outgoing", event="failed", payload=b"{}", queue_id=2)], 6)
        self.store.close()
        self.store = WebhookStore(self.dir)
        assert self.store.cursor() == 6 and self.store.has_outgoing("alice")
        hooks = self.store.page(False, "alice", 0, 1)
        assert len(hooks.hooks) == 1 and hooks.next is not None
        assert [h.queue_id for h in self.store.page(False, "alice", hooks.next, 10).hooks] == [2]
        assert await self.store.retry(None, [hooks.hooks[0].id], time.time()) == 1
        assert await self.store.drop("alice", [], time.time()) == 2
        assert self.store.page(False, None, 0, 10).hooks == []

    async def test_private_targets_refused_unless_allowed(self) -> None:
        await self.store.save_outgoing("alice", self.receiver.url, "", [])
        await self.store.set_retired_keep("alice", 60)
        await self.queue.record_event(_event("delivered", 1, "x@b.example"))
        sender = self._sender(allow_private=False, max_attempts=1)
        sender.startService()
        await _wait(lambda: bool(self.store.page(True, None, 0, 10).hooks))
        assert self.receiver.snapshot() == []
        [hook] = self.store.page(True, None, 0, 10).hooks
        assert hook.outcome == "failed" and "no address webhooks may be sent to (127.0.0.1)" in hook.last_result

    async def test_removed_url_disables_queued_webhooks(self) -> None:
        await self.store.save_outgoing("alice", self.receiver.url, "", [])
        await self.store.set_retired_keep("alice", 60)
        await self.store.add(
            [NewHook(account="alice", kind="outgoing", event="delivered", payload=b"{}", queue_id=1)], 0
        )
        await self.store.save_outgoing("alice", "", "", [])
        sender = self._sender()
        sender.startService()
        await _wait(lambda: self.store.next_due() is None)
        [hook] = self.store.page(True, None, 0, 10).hooks
        assert hook.outcome == "disabled" and self.receiver.snapshot() == []


async def _wait_for(receiver: Receiver, n: int, timeout: float = 20.0) -> list[Any]:
    await _wait(lambda: len(receiver.snapshot()) >= n, timeout)
    await task.deferLater(R, 0.2, lambda: None)  # nothing more arrives
    requests = receiver.snapshot()
    assert len(requests) == n, [r.body for r in requests]
    return requests


class OutboxBatches(TestCase):
    def setUp(self) -> None:
        self.dir = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.queue = SQLiteOutgoingQueue(self.dir)
        self.addCleanup(self.queue.close)

    async def test_a_read_stops_at_the_payload_byte_limit_but_returns_one(self) -> None:
        from mailsrv.queue import outbox

        self.patch(outbox, "MAX_BATCH_BYTES", 100)
        for size in (60, 60, 60, 500, 10, 500, 500):
            await self.queue.record_event(_event("incoming", 0, "alice@a.example", payload=b"x" * size))
        # A read goes on while the bytes before an event are under the limit: at most the limit
        # plus one event, and always at least one.
        cursor, batches = 0, []
        while events := await self.queue.events_after(cursor, 500):
            batches.append([len(e.payload) for e in events])
            cursor = events[-1].seq
        assert batches == [[60, 60], [60, 500], [10, 500], [500]]

    async def test_listings_show_the_start_of_big_bodies(self) -> None:
        store = WebhookStore(self.dir)
        self.addCleanup(store.close)
        await store.add([NewHook(account="a", kind="incoming", event="incoming", payload=b"y" * 100_000)], 0)
        [hook] = store.page(False, None, 0, 10).hooks
        assert len(hook.payload) == 4096
        [due] = store.due(time.time() + 1, 10)
        assert len(due.payload) == 100_000
