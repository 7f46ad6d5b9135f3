"""mailsrv/ops/webmail_compose.py: From: choices (aliases with AllowMsgFrom), replies from the
alias a message was sent to, In-Reply-To/References from the stored original, Sent copies,
\\Answered/$Forwarded, forwarding inline and as attachment, drafts saved and reopened,
uploads, and address completion."""

from __future__ import annotations

import email
import email.policy
import os
import shutil
import stat
import tempfile
import time
from pathlib import Path

from twisted.trial.unittest import TestCase

from mailsrv.ops import webmail as wmops
from mailsrv.ops import webmail_compose as wc
from mailsrv.ops.compose import Mailbox
from mailsrv.ops.errors import InvalidInput, LimitExceeded, NotFound
from mailsrv.ops.webmail_settings import Settings, complete_address, set_settings
from tests.ops.webmailworld import deliver_to, webmail, webmail_server
from tests.storeguard import guard_test

ORIGINAL = (
    b"From: Carol <carol@elsewhere.example>\r\nTo: team@example.org, dan@elsewhere.example\r\n"
    b"Cc: alice@example.org\r\nSubject: Plans\r\nMessage-ID: <orig@elsewhere.example>\r\n"
    b"References: <root@elsewhere.example>\r\nDate: Mon, 7 Dec 2026 10:00:00 +0000\r\n"
    b"Content-Type: multipart/mixed; boundary=m\r\n\r\n"
    b"--m\r\nContent-Type: text/plain\r\n\r\nShall we meet?\r\n"
    b"--m\r\nContent-Type: application/pdf; name=agenda.pdf\r\n"
    b"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--m--\r\n"
)


def parsed(data: bytes) -> email.message.EmailMessage:
    msg = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(msg, email.message.EmailMessage)
    return msg


class ComposeTests(TestCase):
    def setUp(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="mailsrv-wmc-"))
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.server = webmail_server(self.dir)
        guard_test(self)  # no synchronous store read on this path (tests/storeguard.py)
        self.addCleanup(self.server.close)
        self.wm = webmail(self.server)

    async def only(self, mailbox: str, account: str = "alice") -> list[int]:
        wm = webmail(self.server, account)
        box = wm.store.mailbox(mailbox)
        page = await wmops.list_messages(wm, wmops.ListRequest(mailbox_id=box.id))
        return [m.id for m in page.messages]

    def test_from_choices_are_own_addresses_and_allowed_aliases(self) -> None:
        choices = [c.address for c in wc.from_choices(self.server, "alice")]
        self.assertEqual(choices, ["alice@example.org", "a.smith@example.org", "team@example.org"])
        self.assertEqual([c.address for c in wc.from_choices(self.server, "bob")], ["bob@example.org"])

    async def test_reply_all_from_the_alias_with_references_and_answered(self) -> None:
        await deliver_to(self.server, ORIGINAL, to="team@example.org")
        (orig,) = await self.only("INBOX")
        form = await wc.template(self.wm, orig, "all")
        self.assertEqual(form.from_, "team@example.org")  # sent to the alias: answered from it
        self.assertEqual([m.address for m in form.to], ["carol@elsewhere.example"])
        self.assertEqual([m.address for m in form.cc], ["dan@elsewhere.example"])
        self.assertEqual(form.subject, "Re: Plans")
        self.assertIn("> Shall we meet?", form.text)
        form.to = [Mailbox("bob@example.org")]  # keep it local
        form.cc = []
        form.text = "Yes.\n" + form.text
        sent = await wc.send_message(self.wm, form)
        (received,) = await self.only("INBOX", "bob")
        raw = await wmops.raw_message(webmail(self.server, "bob"), received)
        msg = parsed(raw)
        self.assertEqual(msg["In-Reply-To"], "<orig@elsewhere.example>")
        self.assertEqual(str(msg["References"]), "<root@elsewhere.example> <orig@elsewhere.example>")
        self.assertEqual(str(msg["From"]), "team@example.org")
        self.assertEqual(msg["Message-ID"], sent.message_id)
        (copy,) = await self.only("Sent")
        self.assertEqual(copy, sent.sent_copy)
        found = await self.wm.store.find_message(orig)
        assert found is not None
        self.assertIn("\\Answered", found.flags)
        self.assertEqual([c.address for c in await complete_address(self.wm.store, "bo")], ["bob@example.org"])

    async def test_reply_quoting_top_with_signature(self) -> None:
        await set_settings(self.wm.store, Settings(quoting="top", signature="Alice"))
        await deliver_to(self.server, ORIGINAL.replace(b"team@", b"bob@"))
        (orig,) = await self.only("INBOX")
        form = await wc.template(self.wm, orig, "reply")
        self.assertTrue(form.text.startswith("\n\n\n-- \nAlice"))
        self.assertEqual(form.from_, "alice@example.org")

    async def test_forward_inline_keeps_attachments_and_as_attachment_keeps_the_message(self) -> None:
        await deliver_to(self.server, ORIGINAL)
        (orig,) = await self.only("INBOX")
        inline = await wc.template(self.wm, orig, "forward")
        self.assertEqual(inline.subject, "Fwd: Plans")
        self.assertEqual([a.filename for a in inline.attachments], ["agenda.pdf"])
        inline.to = [Mailbox("bob@example.org")]
        await wc.send_message(self.wm, inline)
        attached = await wc.template(self.wm, orig, "forward-attached")
        attached.to = [Mailbox("bob@example.org")]
        await wc.send_message(self.wm, attached)
        bob = webmail(self.server, "bob")
        first, second = sorted(await self.only("INBOX", "bob"))
        msg = parsed(await wmops.raw_message(bob, first))
        pdf = next(p for p in msg.iter_attachments())
        self.assertEqual(pdf.get_content(), b"%PDF-1.4\n")
        raw = await wmops.raw_message(bob, second)
        self.assertIn(b"Content-Type: message/rfc822", raw)
        self.assertIn(b"Message-ID: <orig@elsewhere.example>", raw)
        self.assertNotIn(b'Content-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename="Plans', raw)
        found = await self.wm.store.find_message(orig)
        assert found is not None
        self.assertIn("$Forwarded", found.flags)

    async def test_draft_saved_replaced_reopened_and_removed_when_sent(self) -> None:
        up = await self.wm.in_thread(wc.uploads(self.server).put, "alice", "notes.txt", "text/plain", b"hello\n", 1000)
        form = wc.ComposeForm(
            to=[Mailbox("bob@example.org", "Bob")],
            bcc=[Mailbox("secret@example.org")],
            subject="Draft",
            text="first",
            attachments=[wc.AttachmentRef(upload=up.token)],
        )
        first = await wc.save_draft(self.wm, form)
        form.draft_id, form.text = first, "second"
        second = await wc.save_draft(self.wm, form)
        self.assertEqual(await self.only("Drafts"), [second])
        reopened = await wc.open_draft(self.wm, second)
        self.assertEqual((reopened.subject, reopened.text.strip(), reopened.draft_id), ("Draft", "second", second))
        self.assertEqual([m.address for m in reopened.bcc], ["secret@example.org"])
        self.assertEqual([(a.filename, a.message_id) for a in reopened.attachments], [("notes.txt", second)])
        reopened.bcc = []
        await wc.send_message(self.wm, reopened)
        self.assertEqual(await self.only("Drafts"), [])
        (got,) = await self.only("INBOX", "bob")
        msg = parsed(await wmops.raw_message(webmail(self.server, "bob"), got))
        self.assertEqual(next(msg.iter_attachments()).get_payload(decode=True), b"hello\n")
        # An empty draft (no recipient yet) is fine.
        self.assertTrue(await wc.save_draft(self.wm, wc.ComposeForm(subject="later")))

    async def test_refusals(self) -> None:
        with self.assertRaises(InvalidInput):
            await wc.send_message(self.wm, wc.ComposeForm(from_="bob@example.org", to=[Mailbox("x@example.org")]))
        with self.assertRaises(InvalidInput):
            await wc.send_message(self.wm, wc.ComposeForm(subject="no recipient"))
        with self.assertRaises(NotFound):
            await wc.send_message(
                self.wm,
                wc.ComposeForm(to=[Mailbox("bob@example.org")], attachments=[wc.AttachmentRef(upload="x" * 32)]),
            )
        with self.assertRaises(NotFound):
            await wc.template(self.wm, 9999, "reply")

    async def test_send_later_holds_the_queued_copy_until_then(self) -> None:
        at = int(time.time()) + 3600
        form = wc.ComposeForm(to=[Mailbox("carol@elsewhere.example")], subject="later", text="x", send_at=at)
        sent = await wc.send_message(self.wm, form)
        self.assertTrue(sent.queued)
        rows = self.server.queue.db.execute(  # type: ignore[attr-defined]
            "SELECT r.next_attempt, m.created FROM recipient r JOIN message m ON m.id = r.message_id"
        ).fetchall()
        self.assertEqual([tuple(r) for r in rows], [(at, at)])
        self.assertEqual(await self.only("Sent"), [])  # the Sent copy is stored when it goes out

    async def test_send_later_times_out_of_range_are_refused(self) -> None:
        now = time.time()
        for at in (int(now) - 60, int(now + wc.MAX_RELEASE_DELAY) + 60):
            form = wc.ComposeForm(to=[Mailbox("carol@elsewhere.example")], text="x", send_at=at)
            with self.assertRaises(InvalidInput) as e:
                await wc.send_message(self.wm, form)
            self.assertEqual(e.exception.field, "send_at")
        self.assertEqual(self.server.queue.db.execute("SELECT COUNT(*) FROM message").fetchone()[0], 0)  # type: ignore[attr-defined]
        self.assertIsNone(wc.send_later_time(0))
        self.assertEqual(wc.send_later_time(1000 + 86400, now=1000).timestamp(), 1000 + 86400)  # type: ignore[union-attr]

    def test_uploads_private_bounded_and_expiring(self) -> None:
        store = wc.uploads(self.server)
        up = store.put("alice", "../../etc/passwd", "evil type", b"x", 10)
        self.assertEqual((up.filename, up.content_type), (".._.._etc_passwd", "application/octet-stream"))
        folder = store.root / "alice"
        self.assertEqual(stat.S_IMODE(os.stat(folder / (up.token + ".data")).st_mode), 0o600)
        self.assertEqual(stat.S_IMODE(os.stat(folder).st_mode), 0o700)
        with self.assertRaises(LimitExceeded):
            store.put("alice", "big", "a/b", b"x" * 11, 10)
        with self.assertRaises(NotFound):
            store.get("alice", "../x")
        with self.assertRaises(NotFound):
            store.get("bob", up.token)  # another account's upload
        wc.Uploads.expire(folder, now=os.stat(folder / (up.token + ".data")).st_mtime + wc.UPLOAD_TTL + 1)
        with self.assertRaises(NotFound):
            store.get("alice", up.token)
