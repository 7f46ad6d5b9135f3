"""mailsrv/ops/messages.py on a real store: the parsed view (envelope, text, HTML, structure,
delivery facts from our trace fields only), raw and part reads, and changes by stable id."""

from __future__ import annotations

import base64
import shutil
import tempfile
from pathlib import Path

from twisted.trial.unittest import TestCase

from mailsrv.ops import messages
from mailsrv.ops.errors import InvalidInput, NotFound
from mailsrv.ops.mail import MailContext, MailHooks
from mailsrv.store.registry import SQLiteStoreRegistry
from tests.storeguard import guard_test

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(200))
MESSAGE = (
    b"Delivered-To: alice@example.org\r\n"
    b"Received: from client.example.net ([192.0.2.9])\r\n\tby mail.example.org (mailsrv) with ESMTPS id 1a2b;"
    b" Mon, 07 Dec 2026 10:00:00 +0000\r\n"
    b"Authentication-Results: mail.example.org; spf=pass smtp.mailfrom=example.net;\r\n"
    b"\tdkim=pass header.d=example.net header.s=s1; dkim=fail header.d=evil.example;\r\n"
    b"\tdmarc=pass header.from=example.net\r\n"
    b"Authentication-Results: mail.example.org; dkim=pass header.d=forged.example\r\n"
    b"From: =?utf-8?q?B=C3=B8b?= <bob@example.net>\r\n"
    b"To: Alice <alice@example.org>, team: carol@example.org;\r\n"
    b"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n"
    b"Date: Mon, 07 Dec 2026 10:59:00 +0100\r\n"
    b"Message-ID: <m1@example.net>\r\n"
    b"In-Reply-To: <p0@example.org>\r\n"
    b"References: <r1@example.org>\r\n"
    b"List-Id: <news.example.net>\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n'
    b'--b1\r\nContent-Type: multipart/alternative; boundary="b2"\r\n\r\n'
    b"--b2\r\nContent-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
    b"Gr=FC=DFe\r\nline two\r\n"
    b"--b2\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>hi</p>\r\n--b2--\r\n"
    b'--b1\r\nContent-Type: image/png\r\nContent-Disposition: attachment; filename="pic.png"\r\n'
    b"Content-ID: <pic>\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    + base64.encodebytes(PNG).replace(b"\n", b"\r\n")
    + b"--b1--\r\n"
)


class MessagesTests(TestCase):
    def setUp(self) -> None:
        directory = Path(tempfile.mkdtemp(prefix="mailsrv-ops-"))
        self.addCleanup(shutil.rmtree, directory, True)
        self.registry = SQLiteStoreRegistry(directory, lambda account: None)
        guard_test(self)  # no synchronous store read on this path (tests/storeguard.py)
        self.addCleanup(self.registry.close_all)
        self.store = self.registry.open("alice")
        self.ctx = MailContext(self.store, MailHooks())

    async def deliver(self, data: bytes = MESSAGE) -> int:
        appended = await self.store.append("INBOX", data, delivery=True)
        info = self.store.message(appended.mailbox_id, appended.uid)
        assert info is not None
        return info.message_id

    async def test_view(self) -> None:
        msgid = await self.deliver()
        view = await messages.message_view(self.store, msgid)
        assert view.mailbox == "INBOX" and view.subject == "Grüße"
        assert [(a.name, a.address) for a in view.from_] == [("Bøb", "bob@example.net")]
        assert [a.address for a in view.to] == ["alice@example.org", "carol@example.org"]  # no group markers
        assert view.reply_to == [] and view.message_id == "<m1@example.net>"
        assert view.references == ["<p0@example.org>", "<r1@example.org>"]
        assert view.date is not None and view.date.isoformat() == "2026-12-07T10:59:00+01:00"
        assert view.text == "Grüße\nline two" and view.html == "<p>hi</p>"
        s = view.structure
        assert s.content_type == "multipart/mixed" and s.content_type_params["boundary"] == "b1"
        alternative, picture = s.parts
        assert [p.content_type for p in alternative.parts] == ["text/plain", "text/html"]
        assert picture.decoded_size == len(PNG) and picture.filename == "pic.png" and picture.content_id == "<pic>"
        assert picture.content_disposition == "attachment"
        meta = view.meta
        assert meta.rcpt_to == "alice@example.org" and meta.remote_ip == "192.0.2.9"
        # Only the first (ours, on top) Authentication-Results counts, and only passes.
        assert meta.mail_from_validated and meta.msg_from_validated and meta.dkim_verified_domains == ["example.net"]
        assert meta.msg_from == "bob@example.net" and meta.automated and not meta.dsn
        assert "list-id" in view.headers and "delivered-to" not in view.headers

    async def test_view_of_a_message_without_trace_fields(self) -> None:
        msgid = await self.deliver(
            b"From: a@example.org\r\nX-A: 1\r\nAuthentication-Results: mail.example.org; dmarc=pass\r\n\r\nx"
        )
        meta = (await messages.message_view(self.store, msgid)).meta
        # An Authentication-Results below the message's own fields is the sender's, not ours.
        assert meta.rcpt_to == "" and not meta.msg_from_validated and not meta.automated

    async def test_text_is_cut_at_the_limit(self) -> None:
        msgid = await self.deliver(b"Content-Type: text/plain; charset=utf-8\r\n\r\n" + "é".encode() * 1000)
        view = await messages.message_view(self.store, msgid, text_limit=101)
        assert view.text.startswith("é" * 50) and len(view.text) == 51  # the cut half character is replaced

    async def test_raw_and_parts(self) -> None:
        msgid = await self.deliver()
        assert await messages.message_raw(self.store, msgid) == MESSAGE
        part, data = await messages.message_part(self.store, msgid, [1])
        assert part.media_subtype == "png" and data == PNG
        _, text = await messages.message_part(self.store, msgid, [0, 0])
        assert text == "Grüße\r\nline two".encode("iso-8859-1")  # the CRLF before a boundary is the boundary's
        for path in ([2], [0, 2], [1, 0], [-1]):
            with self.assertRaises(NotFound):
                await messages.message_part(self.store, msgid, path)
        with self.assertRaises(NotFound):
            await messages.message_raw(self.store, 99999)

    async def test_changes_keep_the_id_until_deleted(self) -> None:
        msgid = await self.deliver()
        await messages.flags_add(self.ctx, msgid, ["\\seen", "Custom"])
        assert set((await messages.find(self.store, msgid)).flags) == {"\\Seen", "Custom"}
        await messages.flags_remove(self.ctx, msgid, ["custom"])
        assert (await messages.find(self.store, msgid)).flags == ("\\Seen",)
        await messages.move(self.ctx, msgid, "Archive")
        assert (await messages.message_view(self.store, msgid)).mailbox == "Archive"
        with self.assertRaises(InvalidInput):
            await messages.move(self.ctx, msgid, "Archive")
        with self.assertRaises(NotFound):
            await messages.move(self.ctx, msgid, "Nowhere")
        await messages.delete(self.ctx, msgid)
        with self.assertRaises(NotFound):
            await messages.find(self.store, msgid)
        with self.assertRaises(NotFound):
            await messages.flags_add(self.ctx, msgid, ["\\Seen"])

    async def test_dsn_is_recognised(self) -> None:
        msgid = await self.deliver(
            b'Content-Type: multipart/report; report-type=delivery-status; boundary="x"\r\n\r\n'
            b"--x\r\nContent-Type: text/plain\r\n\r\nfailed\r\n--x--\r\n",
        )
        assert (await messages.message_view(self.store, msgid)).meta.dsn
