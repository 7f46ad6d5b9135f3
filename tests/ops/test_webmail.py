"""mailsrv/ops/webmail.py and webmail_view.py on a real Server (SQLite store, no sockets):
mailbox list, flat and threaded pages, search operators through the one engine, the message
view (text blocks, links, quotes, sanitised HTML, attachments, Authentication-Results), flags,
moves, delete/archive/junk, settings; and hostile messages."""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

from twisted.trial.unittest import TestCase

from mailsrv.ops import webmail as wmops
from mailsrv.ops.errors import InvalidInput, LimitExceeded, NotFound
from mailsrv.ops.webmail_query import parse_query
from mailsrv.ops.webmail_settings import Settings, allow_remote, get_settings, set_settings
from mailsrv.store.interfaces import SortKey
from tests.ops.webmailworld import deliver_to, webmail, webmail_server
from tests.storeguard import guard_test


def message(
    subject: str,
    sender: str = "Carol <carol@elsewhere.example>",
    body: str = "Hello\r\n",
    extra: str = "",
    msgid: str = "",
) -> bytes:
    head = f"From: {sender}\r\nTo: alice@example.org\r\nSubject: {subject}\r\nDate: Mon, 7 Dec 2026 10:00:00 +0000\r\n"
    if msgid:
        head += f"Message-ID: <{msgid}>\r\n"
    return (head + extra + "\r\n" + body).encode()


HTML_MESSAGE = (
    b"From: News <news@lists.example>\r\nTo: alice@example.org\r\nSubject: html\r\n"
    b"Content-Type: multipart/alternative; boundary=b1\r\n\r\n"
    b"--b1\r\nContent-Type: text/plain\r\n\r\nplain version\r\n"
    b"--b1\r\nContent-Type: multipart/related; boundary=b2\r\n\r\n"
    b"--b2\r\nContent-Type: text/html\r\n\r\n"
    b'<p onclick="alert(1)">Hi<script>alert(2)</script><img src="cid:logo@x"><img src="http://t.example/p.gif"></p>\r\n'
    b"--b2\r\nContent-Type: image/png\r\nContent-ID: <logo@x>\r\n"
    b"Content-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n"
    b"--b2--\r\n--b1--\r\n"
)


class WebmailOpsTests(TestCase):
    def setUp(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="mailsrv-webmail-"))
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.server = webmail_server(self.dir)
        guard_test(self)  # no synchronous store read on this path (tests/storeguard.py)
        self.addCleanup(self.server.close)
        self.wm = webmail(self.server)
        self.inbox = self.wm.store.mailbox("INBOX").id

    async def ids(self, mailbox: str = "INBOX") -> list[int]:
        page = await wmops.list_messages(
            self.wm, wmops.ListRequest(mailbox_id=self.wm.store.mailbox(mailbox).id, count=500)
        )
        return [m.id for m in page.messages]

    # --- lists -----------------------------------------------------------------------------

    async def test_mailboxes_inbox_first_with_counts_and_special_use(self) -> None:
        await deliver_to(self.server, message("one"))
        boxes = await wmops.mailboxes(self.wm)
        self.assertEqual(boxes[0].name, "INBOX")
        self.assertEqual((boxes[0].messages, boxes[0].unseen), (1, 1))
        uses = {b.name: b.special_use for b in boxes}
        self.assertEqual(uses["Trash"], "\\Trash")
        self.assertEqual(uses["INBOX"], "")

    async def test_flat_pages_in_each_order_and_errors(self) -> None:
        for i, subject in enumerate(["b", "a", "c"]):
            await deliver_to(self.server, message(subject, body="x" * (10 * i) + "\r\n"))
        req = wmops.ListRequest(mailbox_id=self.inbox, sort=SortKey.SUBJECT, descending=False, count=2)
        first = await wmops.list_messages(self.wm, req)
        self.assertEqual([m.subject for m in first.messages], ["a", "b"])
        self.assertEqual(first.total, 3)
        req.anchor = first.next
        second = await wmops.list_messages(self.wm, req)
        self.assertEqual(([m.subject for m in second.messages], second.next), (["c"], None))
        by_size = await wmops.list_messages(self.wm, wmops.ListRequest(mailbox_id=self.inbox, sort=SortKey.SIZE))
        self.assertEqual([m.subject for m in by_size.messages], ["c", "a", "b"])
        with self.assertRaises(NotFound):
            await wmops.list_messages(self.wm, wmops.ListRequest(mailbox_id=9999))
        with self.assertRaises(InvalidInput):
            await wmops.list_messages(self.wm, wmops.ListRequest(mailbox_id=self.inbox, count=0))
        with self.assertRaises(InvalidInput):
            await wmops.list_messages(self.wm, wmops.ListRequest(mailbox_id=self.inbox, anchor="garbage!"))

    async def test_threaded_list_shows_a_conversation_once_with_counts(self) -> None:
        await deliver_to(self.server, message("plans", msgid="p1@x"))
        await deliver_to(self.server, message("other", msgid="o1@x"))
        await deliver_to(self.server, message("Re: plans", msgid="p2@x", extra="In-Reply-To: <p1@x>\r\n"))
        await deliver_to(self.server, message("Re: plans", msgid="p3@x", extra="References: <p1@x> <p2@x>\r\n"))
        req = wmops.ListRequest(mailbox_id=self.inbox, sort=SortKey.ARRIVAL, threaded=True, count=1)
        first = await wmops.list_messages(self.wm, req)
        self.assertEqual([(m.subject, m.thread_count, m.thread_unread) for m in first.messages], [("Re: plans", 3, 3)])
        req.anchor = first.next
        second = await wmops.list_messages(self.wm, req)
        self.assertEqual([m.subject for m in second.messages], ["other"])
        req.anchor = second.next
        third = await wmops.list_messages(self.wm, req)
        self.assertEqual((third.messages, third.next), ([], None))
        whole = await wmops.thread_messages(self.wm, first.messages[0].thread_id)
        self.assertEqual(len(whole), 3)

    # --- search ----------------------------------------------------------------------------

    async def test_search_operators(self) -> None:
        await deliver_to(self.server, message("Budget 2027", sender="Dave <dave@corp.example>", body="numbers\r\n"))
        await deliver_to(self.server, message("lunch", body="budget talk later\r\n"))
        attached = (
            "Content-Type: multipart/mixed; boundary=z\r\n",
            "--z\r\nContent-Type: text/plain\r\n\r\nsee file\r\n--z\r\nContent-Type: application/pdf\r\n"
            "Content-Disposition: attachment; filename=a.pdf\r\n\r\n%PDF\r\n--z--\r\n",
        )
        await deliver_to(self.server, message("report", extra=attached[0], body=attached[1]))
        page = await wmops.list_messages(self.wm, wmops.ListRequest(mailbox_id=self.inbox))
        report = next(m.id for m in page.messages if m.subject == "report")
        await wmops.change_flags(self.wm, [report], "add", ["\\Seen", "\\Flagged"])

        async def subjects(query: str, mailbox_id: int = 0) -> list[str]:
            found = await wmops.search(self.wm, wmops.SearchRequest(query=query, mailbox_id=mailbox_id))
            return sorted(m.subject for m in found.messages)

        self.assertEqual(await subjects("budget"), ["Budget 2027", "lunch"])
        self.assertEqual(await subjects("from:dave"), ["Budget 2027"])
        self.assertEqual(await subjects("-from:dave budget"), ["lunch"])
        self.assertEqual(await subjects('subject:"budget 2027"'), ["Budget 2027"])
        self.assertEqual(await subjects("has:attachment"), ["report"])
        self.assertEqual(await subjects("is:unread"), ["Budget 2027", "lunch"])
        self.assertEqual(await subjects("is:flagged -is:unread"), ["report"])
        self.assertEqual(await subjects("to:alice in:INBOX larger:1"), ["Budget 2027", "lunch", "report"])
        self.assertEqual(await subjects("after:2026-12-07 before:2026-12-08"), ["Budget 2027", "lunch", "report"])
        self.assertEqual(await subjects("before:2026-12-07"), [])
        self.assertEqual(await subjects("budget in:Trash"), [])
        self.assertEqual(await subjects("budget", self.wm.store.mailbox("Trash").id), [])
        self.assertEqual(await subjects("budget in:all", self.wm.store.mailbox("Trash").id), ["Budget 2027", "lunch"])
        paged = await wmops.search(self.wm, wmops.SearchRequest(query="", count=2))
        self.assertEqual((len(paged.messages), paged.total, paged.next_offset), (2, 3, 2))
        with self.assertRaises(NotFound):
            await wmops.search(self.wm, wmops.SearchRequest(query="in:Nowhere x"))
        with self.assertRaises(InvalidInput):
            await wmops.search(self.wm, wmops.SearchRequest(query="before:yesterday"))
        with self.assertRaises(LimitExceeded):
            await wmops.search(self.wm, wmops.SearchRequest(query="x " * 1001))

    def test_query_parsing(self) -> None:
        parsed = parse_query('from:"Bob S" -is:read 10:30 larger:2M in:Lists/Work')
        self.assertEqual(parsed.mailbox, "Lists/Work")
        keys = parsed.program.keys  # type: ignore[union-attr]
        self.assertEqual(keys[0].text, "Bob S")
        self.assertEqual(keys[1].key.flag, "\\Seen")
        self.assertEqual(keys[2].keys[0].text, "10:30")  # a time, not an operator
        self.assertEqual(keys[3].octets, 2 * 1024 * 1024)
        self.assertTrue(parse_query("in:all x").all_mailboxes)
        with self.assertRaises(LimitExceeded):
            parse_query("a " * 60)
        with self.assertRaises(InvalidInput):
            parse_query("is:purple")

    # --- the view --------------------------------------------------------------------------

    async def test_text_view_with_quotes_links_and_auth_verdict(self) -> None:
        body = "Hi,\r\nsee https://example.net/a_(b). or www.example.com!\r\n> earlier\r\n> > older\r\nbye\r\n"
        await deliver_to(
            self.server,
            message("t", sender="Carol <carol@elsewhere.example>", body=body),
            verified=("elsewhere.example", "dkim.example"),
            dmarc="pass",
        )
        (mid,) = await self.ids()
        view = await wmops.open_message(self.wm, mid)
        self.assertEqual([b.quote for b in view.text], [0, 1, 2, 0])
        self.assertEqual(view.text[1].text, "earlier")
        links = [b.text[link.start : link.end] for link in view.text[0].links for b in view.text[:1]]
        self.assertEqual(links, ["https://example.net/a_(b)", "www.example.com"])
        self.assertEqual(view.text[0].links[1].href, "https://www.example.com")
        self.assertEqual((view.auth.spf, view.auth.dmarc, view.auth.from_verified), ("pass", "pass", True))
        self.assertEqual(view.auth.verified_domains, ["elsewhere.example", "dkim.example"])
        self.assertEqual(view.from_[0].address, "carol@elsewhere.example")
        self.assertNotIn("\\Seen", view.flags)  # opening does not mark read

    async def test_forged_auth_results_are_not_believed(self) -> None:
        forged = "Authentication-Results: mail.example.org; spf=pass smtp.mailfrom=bank.example; dmarc=pass\r\n"
        await deliver_to(self.server, message("f", sender="bank@bank.example", extra=forged))
        (mid,) = await self.ids()
        view = await wmops.open_message(self.wm, mid)
        self.assertEqual((view.auth.spf, view.auth.dmarc, view.auth.from_verified), ("none", "none", False))

    async def test_html_view_sanitised_remote_blocked_until_allowed_cid_mapped(self) -> None:
        await deliver_to(self.server, HTML_MESSAGE)
        (mid,) = await self.ids()
        view = await wmops.open_message(self.wm, mid)
        self.assertTrue(view.has_html)
        self.assertEqual(view.html_blocked, 1)
        self.assertEqual(view.text[0].text, "plain version")
        self.assertEqual([(a.path, a.content_type, a.inline, a.content_id) for a in view.attachments],
                         [("1.1", "image/png", True, "logo@x")])  # fmt: skip
        html, blocked = await wmops.html_document(self.wm, mid, False, lambda path: f"part/{path}")
        self.assertNotIn("alert", html)
        self.assertNotIn("t.example", html)
        self.assertIn('src="part/1.1"', html)
        self.assertEqual(blocked, 1)
        await allow_remote(self.wm.store, "NEWS@lists.example", True)
        view = await wmops.open_message(self.wm, mid)
        self.assertTrue(view.remote_allowed)
        self.assertEqual(view.html_blocked, 0)
        data, content_type, _ = await wmops.part(self.wm, mid, "1.1")
        self.assertEqual((data[:4], content_type), (b"\x89PNG", "image/png"))
        with self.assertRaises(NotFound):
            await wmops.part(self.wm, mid, "7")
        with self.assertRaises(NotFound):
            await wmops.open_message(self.wm, 424242)

    async def test_html_only_message_gets_text_from_html(self) -> None:
        html = "Content-Type: text/html; charset=utf-8\r\n"
        await deliver_to(self.server, message("h", extra=html, body="<p>Caf\u00e9 <b>menu</b></p><script>x()</script>"))
        (mid,) = await self.ids()
        view = await wmops.open_message(self.wm, mid)
        self.assertEqual(view.text[0].text.strip(), "Caf\u00e9 menu")
        self.assertNotIn("x()", view.text[0].text)

    async def test_hostile_messages_degrade(self) -> None:
        broken = (
            b'From: x@y\r\nSubject: broken\r\nContent-Type: multipart/mixed; boundary="never"\r\n'
            b"Content-Transfer-Encoding: base64\r\n\r\n--never\r\nContent-Type: text/html; charset=bogus-charset\r\n"
            b"Content-Transfer-Encoding: quoted-printable\r\n\r\n<p>=ZZ<iframe src=3Dhttp://e.example>=\r\n"
        )
        await deliver_to(self.server, broken)
        nested = (
            b"From: x@y\r\nSubject: deep\r\nContent-Type: multipart/mixed; boundary=a\r\n\r\n"
            + b"--a\r\nContent-Type: multipart/mixed; boundary=a\r\n\r\n" * 60
        )
        await deliver_to(self.server, nested)
        big = b"<p style='background:url(http://t.example/x)'>" + b"<img src=http://t.example/i.gif>x" * 150_000
        await deliver_to(self.server, message("big", extra="Content-Type: text/html\r\n", body=big.decode()))
        for mid in await self.ids():
            start = time.process_time()
            view = await wmops.open_message(self.wm, mid)
            html, _ = await wmops.html_document(self.wm, mid, False, str)
            self.assertLess(time.process_time() - start, 10)
            self.assertNotIn("iframe", html)
            self.assertNotIn("t.example", html)
            self.assertIsNotNone(view.subject)

    # --- changes ---------------------------------------------------------------------------

    async def test_flags_move_copy_delete_archive_junk_empty(self) -> None:
        for subject in "abcd":
            await deliver_to(self.server, message(subject))
        a, b, c, d = await self.ids()
        self.assertEqual(await wmops.change_flags(self.wm, [a, b], "add", ["\\Seen", "$label1"]), 2)
        with self.assertRaises(InvalidInput):
            await wmops.change_flags(self.wm, [a], "add", ["bad flag"])
        self.assertEqual(await wmops.move(self.wm, [a], "Archive"), 1)
        self.assertEqual(await wmops.copy(self.wm, [b], "Archive"), 1)
        self.assertEqual(await wmops.delete(self.wm, [c]), 1)  # to Trash
        self.assertEqual(len(await self.ids("Trash")), 1)
        self.assertEqual(await wmops.delete(self.wm, [c]), 1)  # for good
        self.assertEqual(await self.ids("Trash"), [])
        self.assertEqual(await wmops.archive(self.wm, [d]), 1)
        self.assertEqual(await wmops.mark_junk(self.wm, [d], True), 1)
        found = await self.wm.store.find_message(d)
        assert found is not None
        self.assertIn("$Junk", found.flags)
        self.assertEqual(self.wm.store.mailbox_by_id(found.mailbox_id).name, "Junk")
        await wmops.mark_junk(self.wm, [d], False)
        found = await self.wm.store.find_message(d)
        assert found is not None
        self.assertEqual((found.mailbox_id, "$NotJunk" in found.flags), (self.inbox, True))
        with self.assertRaises(NotFound):
            await wmops.move(self.wm, [d], "Nowhere")
        with self.assertRaises(InvalidInput):
            await wmops.move(self.wm, [], "Archive")
        archive = self.wm.store.mailbox("Archive").id
        self.assertEqual(await wmops.empty_mailbox(self.wm, archive), 2)

    async def test_settings_roundtrip_and_validation(self) -> None:
        self.assertEqual(await get_settings(self.wm.store), Settings())
        await set_settings(self.wm.store, Settings(show="text", page_size=100, signature="-- A", quoting="top"))
        self.assertEqual((await get_settings(self.wm.store)).page_size, 100)
        with self.assertRaises(InvalidInput):
            await set_settings(self.wm.store, Settings(page_size=5))
        with self.assertRaises(InvalidInput):
            await allow_remote(self.wm.store, "not an address", True)


class ChangeFeedTests(TestCase):
    def setUp(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="mailsrv-webmail-"))
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.server = webmail_server(self.dir)
        guard_test(self)  # no synchronous store read on this path (tests/storeguard.py)
        self.addCleanup(self.server.close)
        self.wm = webmail(self.server)

    async def test_changes_carry_list_rows_and_resume_from_a_seq(self) -> None:
        start = await wmops.last_change(self.wm)
        await deliver_to(self.server, message("new"))
        batch = await wmops.changes_after(self.wm, start)
        (delivered,) = batch.changes
        self.assertEqual((delivered.kind, [m.subject for m in delivered.messages]), ("delivered", ["new"]))
        self.assertEqual(delivered.counts[0].unseen, 1)
        mid = delivered.messages[0].id
        await wmops.change_flags(self.wm, [mid], "add", ["\\Flagged"])
        flagged = await wmops.changes_after(self.wm, batch.next_seq)
        self.assertIn("\\Flagged", flagged.changes[0].messages[0].flags)
        await wmops.move(self.wm, [mid], "Archive")
        later = await wmops.changes_after(self.wm, batch.next_seq)
        self.assertEqual([c.kind for c in later.changes], ["flags", "moved"])
        self.assertEqual(later.changes[0].messages, [])  # moved away since: the move says where
        moved = later.changes[1]
        self.assertEqual((moved.messages[0].id, moved.messages[0].mailbox_id), (mid, moved.to_mailbox_id))
        self.assertEqual((await wmops.changes_after(self.wm, later.next_seq)).changes, [])
        self.assertTrue((await wmops.changes_after(self.wm, later.next_seq + 100)).reload)
        with self.assertRaises(InvalidInput):
            await wmops.changes_after(self.wm, 0, limit=0)
