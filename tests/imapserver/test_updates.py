"""Mailbox updates between sessions (EXISTS, EXPUNGE, VANISHED, FETCH FLAGS), IDLE pushes
and APPEND, in-process over StringTransport; the store runs on the harness's fake clock with
inline pools, so nothing waits in real time."""

from __future__ import annotations

from pathlib import Path

from twisted.trial.unittest import TestCase

from tests.imapserver.harness import Client, make_server


async def wait_for(c: Client, needle: bytes) -> bytes:
    """Output once the store's work has run on the harness clock; `needle` must be in it."""
    c.settle()
    out = c.take()
    if needle not in out:
        raise AssertionError(f"{needle!r} not in {out!r}")
    return out


MESSAGE = b"From: a@example.org\r\nSubject: hi\r\n\r\nhello\r\n"


class UpdatesTest(TestCase):
    def setUp(self) -> None:
        self.server = make_server(Path(self.mktemp()))
        self.addCleanup(self.server.stores.close_all)

    def client(self) -> Client:
        c = Client(self.server)
        c.login()
        return c

    async def append(self, c: Client, tag: str, mailbox: str = "INBOX", extra: bytes = b"") -> bytes:
        c.session.dataReceived(
            f"{tag} APPEND {mailbox} ".encode() + extra + b"{%d+}\r\n" % len(MESSAGE) + MESSAGE + b"\r\n"
        )
        return await wait_for(c, f"{tag} ".encode())

    async def test_append_appenduid_and_exists(self) -> None:
        a = self.client()
        b = self.client()
        a.cmd("s SELECT INBOX")
        out = await self.append(b, "x1", extra=b'(\\Seen $Work) " 1-Jan-2024 10:00:00 +0100" ')
        self.assertIn(b"x1 OK [APPENDUID ", out)
        # The other session learns of it at its next command.
        out = a.cmd("n NOOP")
        self.assertIn(b"* 1 EXISTS", out)
        # Own APPEND into the selected mailbox: EXISTS before the tagged OK.
        out = await self.append(a, "x2")
        self.assertIn(b"* 2 EXISTS", out)
        self.assertLess(out.index(b"* 2 EXISTS"), out.index(b"x2 OK"))

    async def test_idle_sees_other_append_and_expunge(self) -> None:
        a = self.client()
        b = self.client()
        await self.append(b, "x1")
        a.cmd("s SELECT INBOX")
        self.assertEqual(a.cmd("i IDLE"), b"+ idling\r\n")
        await self.append(b, "x2")
        out = await wait_for(a, b"* 2 EXISTS")
        self.assertNotIn(b"i OK", out)
        store = self.server.stores.open("alice")
        box = store.mailbox("INBOX")
        await store.store_flags(box.id, [1], "add", ["\\Deleted"])
        # Appended while no session had INBOX selected: recent for a, the first to select it.
        self.assertIn(b"* 1 FETCH (UID 1 FLAGS (\\Deleted \\Recent))", a.take())
        await store.expunge(box.id)
        self.assertIn(b"* 1 EXPUNGE", a.take())
        self.assertIn(b"i OK", a.cmd("DONE"))

    async def test_no_expunge_during_fetch_like_commands(self) -> None:
        a = self.client()
        b = self.client()
        await self.append(b, "x1")
        await self.append(b, "x2")
        a.cmd("e ENABLE QRESYNC")
        a.cmd("s SELECT INBOX")
        store = self.server.stores.open("alice")
        box = store.mailbox("INBOX")
        await store.store_flags(box.id, [1], "add", ["\\Deleted"])
        await store.expunge(box.id)
        await self.append(b, "x3")
        # CAPABILITY flushes additions but a held-back expunge would show here too: it may,
        # CAPABILITY is not FETCH/STORE/SEARCH. Use the session API directly for the rule.
        a.session.flush_updates(allow_expunge=False)
        out = a.take()
        self.assertIn(b"* 3 EXISTS", out)
        self.assertNotIn(b"VANISHED", out)
        out = a.cmd("n NOOP")
        self.assertIn(b"* VANISHED 1", out)
        self.assertEqual(a.session.selected.uids if a.session.selected else None, [2, 3])

    async def test_qresync_select(self) -> None:
        a = self.client()
        await self.append(a, "x1")
        await self.append(a, "x2")
        store = self.server.stores.open("alice")
        box = store.mailbox("INBOX")
        a.cmd("e ENABLE QRESYNC")
        out = a.cmd("s SELECT INBOX")
        self.assertIn(b"HIGHESTMODSEQ", out)
        modseq = store.mailbox("INBOX").highest_modseq
        await store.store_flags(box.id, [2], "add", ["\\Flagged"])
        await store.store_flags(box.id, [1], "add", ["\\Deleted"])
        await store.expunge(box.id)
        a.cmd("u UNSELECT")
        out = a.cmd(f"s SELECT INBOX (QRESYNC ({box.uidvalidity} {modseq}))")
        self.assertIn(b"* VANISHED (EARLIER) 1", out)
        self.assertIn(b"* 1 FETCH (UID 2 FLAGS (\\Flagged) MODSEQ (", out)

    async def test_over_quota_append(self) -> None:
        server = make_server(Path(self.mktemp()), quota=10)
        self.addCleanup(server.stores.close_all)
        c = Client(server)
        c.login()
        out = await self.append(c, "q")
        self.assertIn(b"q NO [OVERQUOTA]", out)

    async def test_append_trycreate_and_utf8(self) -> None:
        c = self.client()
        out = await self.append(c, "t", mailbox="Nope")
        self.assertIn(b"t NO [TRYCREATE]", out)
        c.session.dataReceived(b"u APPEND INBOX UTF8 (~{%d+}\r\n" % len(MESSAGE) + MESSAGE + b")\r\n")
        out = await wait_for(c, b"u ")
        self.assertIn(b"u OK [APPENDUID", out)
