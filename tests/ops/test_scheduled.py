"""Send later for every recipient (mailsrv/ops/scheduled.py, webmail_scheduled.py): a message
sent later reaches nobody before its time, recipients on this server neither; the queue
delivers them at the time through ops.delivery; the Sent copy is stored then; the Scheduled
view lists, moves and cancels (back to Drafts with its options); drafts keep their options."""

from __future__ import annotations

import datetime
import email
import email.policy
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from mailsrv.address import Address
from mailsrv.ops import accounts
from mailsrv.ops import compose as composeops
from mailsrv.ops import webmail as wmops
from mailsrv.ops import webmail_compose as wc
from mailsrv.ops import webmail_scheduled as wsched
from mailsrv.ops.compose import Draft, Mailbox, SendOptions
from mailsrv.ops.errors import NotFound
from mailsrv.ops.scheduled import as_written, deliver_released, save_sent_copy
from mailsrv.queue.remote import DomainDelivery
from mailsrv.queue.runner import GroupToDeliver, QueueRunner, RunnerOptions
from mailsrv.smtpclient import Envelope, Reply
from tests.ops.webmailworld import webmail, webmail_server
from tests.storeguard import guard_test

HOUR = 3600


class SendLaterTests(TestCase):
    def setUp(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="mailsrv-later-"))
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.server = webmail_server(self.dir)
        guard_test(self)  # no synchronous store read on these paths (tests/storeguard.py)
        self.addCleanup(self.server.close)
        self.wm = webmail(self.server)
        self.remote_groups: list[GroupToDeliver] = []
        self.offset = 0.0  # the runner's clock: real time plus this

    def runner(self) -> QueueRunner:
        async def remote(group: GroupToDeliver) -> DomainDelivery:
            self.remote_groups.append(group)
            return DomainDelivery({r: Reply(250, ("2.0.0 ok",)) for r in group.envelope.recipients})

        async def local(group: GroupToDeliver) -> DomainDelivery:
            return await deliver_released(self.server, group)

        async def sent(queue_id: int, account: str, message: bytes, recipients: Any) -> None:
            await save_sent_copy(self.server, queue_id, account, message, recipients)

        return QueueRunner(
            reactor,
            self.server.queue,  # type: ignore[arg-type]
            self.server.resolver,
            RunnerOptions(helo_name="mail.example.org"),
            clock=lambda: time.time() + self.offset,
            deliverer=remote,
            local_deliverer=local,
            save_sent=sent,
        )

    async def subjects(self, mailbox: str, account: str = "alice") -> list[str]:
        wm = webmail(self.server, account)
        box = await wm.store.mailbox_async(mailbox)
        page = await wmops.list_messages(wm, wmops.ListRequest(mailbox_id=box.id))
        return [m.subject for m in page.messages]

    async def raw(self, mailbox: str, account: str = "alice") -> bytes:
        wm = webmail(self.server, account)
        box = await wm.store.mailbox_async(mailbox)
        page = await wmops.list_messages(wm, wmops.ListRequest(mailbox_id=box.id))
        return await wm.store.read_async(page.messages[0].id)

    def queue_rows(self) -> list[tuple[str, int, str]]:
        db = self.server.queue.db  # type: ignore[attr-defined]
        rows = db.execute("SELECT address, transport = '(local)' AND transport_fixed, status FROM recipient")
        return [(str(r[0]), int(r[1]), str(r[2])) for r in rows]

    async def send_later(self, subject: str, at: int, **fields: Any) -> wc.Sent:
        form = wc.ComposeForm(
            to=[Mailbox("bob@example.org"), Mailbox("carol@elsewhere.example")],
            bcc=[Mailbox("dan@elsewhere.example")],
            subject=subject,
            text="see you",
            send_at=at,
            **fields,
        )
        return await wc.send_message(self.wm, form)

    async def test_nobody_gets_it_before_its_time_everybody_after(self) -> None:
        at = int(time.time()) + HOUR
        sent = await self.send_later("later for all", at)
        self.assertTrue(sent.queued)
        self.assertEqual(sent.sent_copy, 0)
        self.assertEqual(await self.subjects("INBOX", "bob"), [])  # the local recipient waits too
        self.assertEqual(await self.subjects("Sent"), [])  # the Sent copy comes when it is sent
        self.assertEqual(
            sorted(self.queue_rows()),
            [
                ("bob@example.org", 1, "queued"),
                ("carol@elsewhere.example", 0, "queued"),
                ("dan@elsewhere.example", 0, "queued"),
            ],
        )
        runner = self.runner()
        await runner.run_once()  # not due yet
        self.assertEqual((await self.subjects("INBOX", "bob"), self.remote_groups), ([], []))
        self.offset = HOUR + 60
        await runner.run_once()
        self.assertEqual(await self.subjects("INBOX", "bob"), ["later for all"])
        self.assertEqual(sorted(g.domain for g in self.remote_groups), ["elsewhere.example"])
        delivered = await self.raw("INBOX", "bob")
        self.assertTrue(delivered.startswith(b"Delivered-To: bob@example.org\r\n"))
        self.assertNotIn(b"dan@elsewhere.example", delivered)  # Bcc stays hidden
        # The Sent copy, as written, with its Bcc:, stored now and only once.
        self.assertEqual(await self.subjects("Sent"), ["later for all"])
        copy = email.message_from_bytes(await self.raw("Sent"), policy=email.policy.default)
        self.assertEqual(copy["Bcc"], "dan@elsewhere.example")
        self.assertIsNone(copy["Received"])
        # Every recipient finished: the message left the queue; events say delivered.
        self.assertEqual(self.queue_rows(), [])
        events = await self.server.queue.events_after(0, 100)
        self.assertEqual(
            sorted((e.kind, e.recipient) for e in events if e.kind == "delivered"),
            [
                ("delivered", "bob@example.org"),
                ("delivered", "carol@elsewhere.example"),
                ("delivered", "dan@elsewhere.example"),
            ],
        )

    async def test_a_release_retried_stores_nothing_twice(self) -> None:
        at = int(time.time()) + HOUR
        await self.send_later("twice", at)
        db = self.server.queue.db  # type: ignore[attr-defined]
        (queue_id,) = db.execute("SELECT id FROM message").fetchone()
        content = await self.server.queue.read_content(int(queue_id))
        assert content is not None
        group = GroupToDeliver(
            int(queue_id), "alice", "example.org", Envelope("alice@example.org", ("bob@example.org",)), content, [0]
        )
        first = await deliver_released(self.server, group)
        again = await deliver_released(self.server, group)  # a crash before the outcome was committed
        self.assertTrue(first.replies["bob@example.org"].positive and again.replies["bob@example.org"].positive)
        self.assertEqual(await self.subjects("INBOX", "bob"), ["twice"])
        await save_sent_copy(self.server, int(queue_id), "alice", content, ["bob@example.org"])
        await save_sent_copy(self.server, int(queue_id), "alice", content, ["bob@example.org"])
        self.assertEqual(await self.subjects("Sent"), ["twice"])

    async def test_a_recipient_gone_meanwhile_fails_and_a_full_mailbox_waits(self) -> None:
        await self.send_later("gone", int(time.time()) + HOUR)
        db = self.server.queue.db  # type: ignore[attr-defined]
        (queue_id,) = db.execute("SELECT id FROM message").fetchone()
        content = await self.server.queue.read_content(int(queue_id))
        assert content is not None
        envelope = Envelope("alice@example.org", ("nobody@example.org",))
        group = GroupToDeliver(int(queue_id), "alice", "example.org", envelope, content, [0])
        self.assertEqual((await deliver_released(self.server, group)).replies["nobody@example.org"].code, 550)
        # A full mailbox at the time: temporary (the queue retries), then delivered once there is room.
        accounts.set_quota(self.server, accounts.SetQuota(account="bob", quota=10))
        bob = GroupToDeliver(
            int(queue_id), "alice", "example.org", Envelope("alice@example.org", ("bob@example.org",)), content, [0]
        )
        self.assertEqual((await deliver_released(self.server, bob)).replies["bob@example.org"].code, 452)
        self.assertEqual(await self.subjects("INBOX", "bob"), [])
        accounts.set_quota(self.server, accounts.SetQuota(account="bob", quota=0))
        self.assertTrue((await deliver_released(self.server, bob)).replies["bob@example.org"].positive)
        self.assertEqual(await self.subjects("INBOX", "bob"), ["gone"])

    async def test_webapi_style_send_holds_local_recipients_and_the_sent_copy(self) -> None:
        draft = Draft(from_=Mailbox("alice@example.org"), to=[Mailbox("bob@example.org")], subject="api", text="x")
        release = datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1)
        options = SendOptions(release_at=release, save_sent=True)
        sent = await composeops.send_message(self.server, "alice", Address.parse("alice@example.org"), draft, options)
        self.assertFalse(sent.saved)
        self.assertEqual(sent.delivery.delivered, [])
        self.assertEqual([q.address for q in sent.delivery.queued_recipients], ["bob@example.org"])
        self.assertEqual(await self.subjects("INBOX", "bob"), [])
        self.offset = HOUR + 60
        await self.runner().run_once()
        self.assertEqual(await self.subjects("INBOX", "bob"), ["api"])
        self.assertEqual(await self.subjects("Sent"), ["api"])

    async def test_scheduled_view_moves_and_cancels_back_to_drafts(self) -> None:
        at = int(time.time()) + HOUR
        await self.send_later("plans", at, requiretls=True, from_="team@example.org")
        (item,) = await wsched.scheduled_messages(self.wm)
        self.assertEqual((item.send_at, item.subject, item.requiretls), (at, "plans", True))
        self.assertEqual(
            sorted(item.recipients), ["bob@example.org", "carol@elsewhere.example", "dan@elsewhere.example"]
        )
        self.assertEqual(await wsched.scheduled_messages(webmail(self.server, "bob")), [])  # only the sender's
        with self.assertRaises(NotFound):
            await wsched.cancel(webmail(self.server, "bob"), item.id)
        await wsched.reschedule(self.wm, item.id, at + HOUR)
        (moved,) = await wsched.scheduled_messages(self.wm)
        self.assertEqual(moved.send_at, at + HOUR)
        draft_id = await wsched.cancel(self.wm, item.id)
        self.assertEqual(await wsched.scheduled_messages(self.wm), [])
        self.assertEqual(self.queue_rows(), [])
        form = await wc.open_draft(self.wm, draft_id)
        self.assertEqual(form.subject, "plans")
        self.assertEqual(form.from_, "team@example.org")
        self.assertEqual([m.address for m in form.bcc], ["dan@elsewhere.example"])
        self.assertEqual((form.send_at, form.requiretls), (at + HOUR, True))
        self.assertEqual(form.draft_id, draft_id)
        events = await self.server.queue.events_after(0, 100)
        self.assertEqual({e.kind for e in events}, {"canceled"})
        with self.assertRaises(NotFound):
            await wsched.cancel(self.wm, item.id)  # gone
        # Sent from the draft later: the draft goes, the message is scheduled again.
        await wc.send_message(self.wm, form)
        self.assertEqual(len(await wsched.scheduled_messages(self.wm)), 1)
        self.assertEqual(await self.subjects("Drafts"), [])

    async def test_a_message_being_sent_cannot_be_cancelled(self) -> None:
        await self.send_later("due", int(time.time()) + HOUR)
        (item,) = await wsched.scheduled_messages(self.wm)
        db = self.server.queue.db  # type: ignore[attr-defined]
        db.execute("UPDATE recipient SET next_attempt = ?", (time.time() - 1,))
        with self.assertRaises(NotFound):
            await wsched.cancel(self.wm, item.id)
        self.assertEqual(await self.subjects("Drafts"), [])

    async def test_a_saved_draft_keeps_its_options(self) -> None:
        at = int(time.time()) + 2 * HOUR
        form = wc.ComposeForm(
            from_="a.smith@example.org", to=[Mailbox("bob@example.org")], subject="d", send_at=at, requiretls=True
        )
        draft_id = await wc.save_draft(self.wm, form)
        stored = await self.raw("Drafts")
        self.assertIn(f"X-Mailsrv-Send-At: {at}".encode(), stored)
        reopened = await wc.open_draft(self.wm, draft_id)
        self.assertEqual((reopened.send_at, reopened.requiretls, reopened.from_), (at, True, "a.smith@example.org"))
        # Sent: composed afresh, the private fields do not go out.
        reopened.send_at = 0
        await wc.send_message(self.wm, reopened)
        self.assertNotIn(b"X-Mailsrv", await self.raw("INBOX", "bob"))
        # A send time that has passed is not kept (the draft is then sent when sent).
        plain = wc.ComposeForm(to=[Mailbox("bob@example.org")], subject="old")
        old_id = await wc.save_draft(self.wm, plain)
        self.assertEqual((await wc.open_draft(self.wm, old_id)).send_at, 0)


def test_as_written_drops_our_trace_and_signature_and_names_bcc() -> None:
    queued = (
        b"Received: from webmail ([192.0.2.1])\r\n\tby mail.example.org (mailsrv) with HTTP id 1; x\r\n"
        b"DKIM-Signature: v=1; a=ed25519-sha256;\r\n\tb=abc\r\n"
        b"From: alice@example.org\r\nTo: Bob <bob@example.org>\r\nCc: carol@elsewhere.example\r\n"
        b"Received: kept, it is below the user's fields\r\nSubject: s\r\n\r\nbody\r\n"
    )
    out = as_written(queued, ["bob@example.org", "CAROL@elsewhere.example", "dan@elsewhere.example"])
    assert out == (
        b"Bcc: dan@elsewhere.example\r\nFrom: alice@example.org\r\nTo: Bob <bob@example.org>\r\n"
        b"Cc: carol@elsewhere.example\r\nReceived: kept, it is below the user's fields\r\nSubject: s\r\n\r\nbody\r\n"
    )
