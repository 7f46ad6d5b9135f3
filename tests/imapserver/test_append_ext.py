"""MULTIAPPEND (RFC 3502) and CATENATE (RFC 4469) with raw IMAP commands, in-process over
StringTransport; the store runs on the harness's fake clock with inline pools."""

from __future__ import annotations

import re
from pathlib import Path

from twisted.trial.unittest import TestCase

from mailsrv.config.types import LimitsConfig
from mailsrv.imapserver import imapurl
from tests.imapserver.harness import Client, make_server

M1 = b"From: a@example.org\r\nSubject: one\r\n\r\nfirst\r\n"
M2 = b"From: b@example.org\r\nSubject: two\r\n\r\nsecond\r\n"
MIXED = (
    b"From: c@example.org\r\nSubject: parts\r\nMIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
    b"--b\r\nContent-Type: text/plain\r\n\r\nbody text\r\n"
    b"--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\nQUJD\r\n"
    b"--b--\r\n"
)


def lit(data: bytes) -> bytes:
    return b"{%d+}\r\n" % len(data) + data


async def wait_for(c: Client, needle: bytes) -> bytes:
    """Output up to the tagged reply that starts with `needle` ("tag OK"), once the store's
    work has run on the harness clock (nothing to wait for in real time)."""
    c.settle()
    out = c.take()
    done = re.compile(rb"(?:^|\r\n)" + re.escape(needle) + rb"[^\r]*\r\n")
    if not done.search(out):
        raise AssertionError(f"{needle!r} not in {out!r}")
    return out


class AppendExtensionsTest(TestCase):
    def setUp(self) -> None:
        self.server = make_server(Path(self.mktemp()), limits=LimitsConfig(max_message_size=4000))
        self.addCleanup(self.server.stores.close_all)

    def client(self) -> Client:
        c = Client(self.server)
        c.login()
        return c

    async def command(self, c: Client, tag: str, command: bytes) -> bytes:
        c.session.dataReceived(tag.encode() + b" " + command + b"\r\n")
        return await wait_for(c, f"{tag} ".encode())

    def inbox(self) -> list[bytes]:
        store = self.server.stores.open("alice")
        box = store.mailbox("INBOX")
        return [store.read(m.message_id) for m in store.messages(box.id)]

    # --- MULTIAPPEND ---------------------------------------------------------------------

    async def test_capabilities(self) -> None:
        c = self.client()
        out = c.cmd("c CAPABILITY")
        self.assertIn(b" MULTIAPPEND", out)
        self.assertIn(b" CATENATE", out)

    async def test_multiappend_is_one_appenduid_with_a_uid_set(self) -> None:
        c = self.client()
        watcher = self.client()
        watcher.cmd("s SELECT INBOX")
        out = await self.command(
            c, "a", b"APPEND INBOX (\\Seen) " + lit(M1) + b' (\\Flagged) "01-Feb-2024 10:00:00 +0000" ' + lit(M2)
        )
        m = re.search(rb"a OK \[APPENDUID (\d+) 1:2\]", out)
        self.assertIsNotNone(m, out)
        self.assertEqual(self.inbox(), [M1, M2])
        self.assertIn(b"* 2 EXISTS", watcher.cmd("n NOOP"))
        out = watcher.cmd("f FETCH 1:2 (FLAGS INTERNALDATE)")
        self.assertRegex(out, rb"\* 1 FETCH \(INTERNALDATE \"[^\"]+\" FLAGS \((\\Recent )?\\Seen\)\)")
        date = rb'INTERNALDATE "01-Feb-2024 10:00:00 \+0000"'
        self.assertRegex(out, rb"\* 2 FETCH \(" + date + rb" FLAGS \(\\Flagged( \\Recent)?\)\)")

    async def test_multiappend_as_imapclient_sends_it(self) -> None:
        # imapclient's multiappend puts two spaces between consecutive literals.
        c = self.client()
        out = await self.command(c, "a", b"APPEND INBOX " + lit(M1) + b"  " + lit(M2))
        self.assertIn(b"a OK [APPENDUID ", out)
        self.assertEqual(self.inbox(), [M1, M2])

    async def test_multiappend_with_synchronising_literals(self) -> None:
        c = self.client()
        self.assertEqual(c.send(b"a APPEND INBOX {%d}\r\n" % len(M1)), b"+ Ready for literal data\r\n")
        self.assertEqual(c.send(M1 + b" {%d}\r\n" % len(M2)), b"+ Ready for literal data\r\n")
        c.session.dataReceived(M2 + b"\r\n")
        out = await wait_for(c, b"a OK")
        self.assertIn(b"[APPENDUID ", out)
        self.assertEqual(self.inbox(), [M1, M2])

    async def test_failure_in_the_batch_appends_nothing(self) -> None:
        c = self.client()
        # The second message is refused (bad CATENATE URL): the first is not kept either.
        out = await self.command(c, "a", b"APPEND INBOX " + lit(M1) + b' CATENATE (URL "/INBOX/;UID=99")')
        self.assertIn(b"a NO [BADURL /INBOX/;UID=99]", out)
        self.assertEqual(self.inbox(), [])
        # Over the APPENDLIMIT together (each one alone is fine): nothing appended.
        big = b"Subject: big\r\n\r\n" + b"x" * 2500 + b"\r\n"
        out = await self.command(c, "b", b"APPEND INBOX " + lit(big) + b" CATENATE (TEXT " + lit(big) + b")")
        self.assertIn(b"b NO [TOOBIG]", out)
        self.assertEqual(self.inbox(), [])
        # A missing mailbox: TRYCREATE, nothing anywhere.
        out = await self.command(c, "d", b"APPEND Nowhere " + lit(M1) + b" " + lit(M2))
        self.assertIn(b"d NO [TRYCREATE]", out)
        # Syntax errors are BAD and the connection stays usable.
        out = await self.command(c, "e", b"APPEND INBOX " + lit(M1) + b" (\\Seen)")
        self.assertIn(b"e BAD", out)
        self.assertIn(b"f OK", c.cmd("f NOOP"))
        self.assertEqual(self.inbox(), [])

    async def test_message_count_is_bounded(self) -> None:
        from mailsrv.imapserver import cmd_append

        self.patch(cmd_append, "MAX_MESSAGES", 3)
        c = self.client()
        out = await self.command(c, "a", b"APPEND INBOX " + b" ".join([lit(b"x\r\n")] * 4))
        self.assertIn(b"a NO [LIMIT]", out)
        out = await self.command(c, "b", b"APPEND INBOX " + b" ".join([lit(b"x\r\n")] * 3))
        self.assertIn(b"b OK [APPENDUID ", out)

    # --- CATENATE ------------------------------------------------------------------------

    async def seed(self, c: Client) -> int:
        out = await self.command(c, "s", b"APPEND INBOX " + lit(MIXED))
        m = re.search(rb"APPENDUID (\d+) 1\]", out)
        assert m, out
        return int(m.group(1))

    async def test_catenate_text_and_urls(self) -> None:
        c = self.client()
        validity = await self.seed(c)
        url_part = b"/INBOX;UIDVALIDITY=%d/;UID=1/;SECTION=1" % validity
        out = await self.command(
            c,
            "a",
            b'APPEND Drafts (\\Draft) CATENATE (TEXT {10+}\r\nSubject: x URL "'
            + url_part
            + b'" TEXT {2+}\r\n\r\n URL "/INBOX/;UID=1/;SECTION=1.MIME" URL "/INBOX/;UID=1/;PARTIAL=0.4")',
        )
        self.assertIn(b"a OK [APPENDUID ", out)
        store = self.server.stores.open("alice")
        drafts = store.mailbox("Drafts")
        (m,) = store.messages(drafts.id)
        self.assertEqual(store.read(m.message_id), b"Subject: xbody text\r\nContent-Type: text/plain\r\n\r\nFrom")
        self.assertEqual(m.flags, frozenset({"\\Draft"}))

    async def test_catenate_full_urls_and_relative_urls(self) -> None:
        c = self.client()
        await self.seed(c)
        out = await self.command(c, "a", b'APPEND INBOX CATENATE (URL "imap://alice@mail.example.org/INBOX/;UID=1")')
        self.assertIn(b"a OK [APPENDUID ", out)
        # Relative to the selected mailbox (RFC 5092 irelative-path).
        out = await self.command(c, "b", b'APPEND INBOX CATENATE (URL ";UID=1/;SECTION=HEADER")')
        self.assertIn(b"b NO [BADURL ;UID=1/;SECTION=HEADER]", out)
        c.cmd("s SELECT INBOX")
        out = await self.command(c, "d", b'APPEND INBOX CATENATE (URL ";UID=1/;SECTION=HEADER" TEXT {6+}\r\nhello!)')
        self.assertIn(b"d OK [APPENDUID ", out)
        self.assertIn(b"* 3 EXISTS", out)
        messages = self.inbox()
        self.assertEqual(messages[1], MIXED)
        header = MIXED[: MIXED.index(b"\r\n\r\n") + 4]
        self.assertEqual(messages[2], header + b"hello!")

    async def test_catenate_bad_urls(self) -> None:
        c = self.client()
        validity = await self.seed(c)
        bad = [
            b"/INBOX;UIDVALIDITY=%d/;UID=1" % (validity + 1),  # another UIDVALIDITY
            b"/INBOX/;UID=2",  # no such message
            b"/Nowhere/;UID=1",  # no such mailbox
            b"/INBOX/;UID=1/;SECTION=7",  # no such part
            b"/INBOX/;UID=1/;SECTION=BOGUS",  # no such section kind
            b"imap://bob@mail.example.org/INBOX/;UID=1",  # another account
            b"imap://alice@elsewhere.example/INBOX/;UID=1",  # another server
            b"/INBOX/;UID=1;EXPIRE=2030-01-01T00:00:00Z;URLAUTH=anonymous:internal:abc",  # URLAUTH
            b"http://example.org/",
            b"/INBOX?SUBJECT%20x",
        ]
        for i, url in enumerate(bad):
            tag = f"t{i}"
            out = await self.command(c, tag, b"APPEND INBOX CATENATE (URL " + lit(url) + b")")
            self.assertIn(f"{tag} NO [BADURL ".encode(), out, url)
        self.assertEqual(len(self.inbox()), 1)

    async def test_catenate_too_big(self) -> None:
        c = self.client()
        await self.seed(c)
        urls = b" ".join([b'URL "/INBOX/;UID=1"'] * 20)  # 20 x ~300 octets > 4000
        out = await self.command(c, "a", b"APPEND INBOX CATENATE (" + urls + b")")
        self.assertIn(b"a NO [TOOBIG]", out)
        self.assertEqual(len(self.inbox()), 1)


def test_url_parser() -> None:
    u = imapurl.parse("imap://alice;AUTH=*@Mail.Example.org:143/Sent%20Items;UIDVALIDITY=7/;UID=20/;SECTION=1.2")
    assert (u.user, u.host, u.mailbox, u.uidvalidity, u.uid, u.section) == (
        "alice",
        "mail.example.org",
        "Sent Items",
        7,
        20,
        "1.2",
    )
    u = imapurl.parse("/%C3%84rger/;uid=3/;section=header.fields%20(subject)/;partial=5.10")
    assert (u.mailbox, u.uid, u.section, u.partial) == ("Ärger", 3, "HEADER.FIELDS (SUBJECT)", (5, 10))
    u = imapurl.parse(";UID=5/;PARTIAL=7")
    assert (u.mailbox, u.uid, u.partial) == (None, 5, (7, None))
    for bad in (
        "",
        "/INBOX",
        "/INBOX/;UID=0",
        "/INBOX/;UID=x",
        "/;UID=1",
        "/INBOX/;UID=1/;PARTIAL=1.0",
        "/INBOX/;UID=1/;SECTION=1/;SECTION=2",
        "/INBOX;FOO=1/;UID=1",
        "/%FF/;UID=1",
        "imap://host",
        "imap://host/INBOX/;UID=1 x",
    ):
        try:
            imapurl.parse(bad)
        except imapurl.BadURL:
            continue
        raise AssertionError(f"accepted {bad!r}")
    assert imapurl.display("a]b\r\nc") == "abc"
