"""CONTEXT=SEARCH and CONTEXT=SORT (RFC 5267 §4): PARTIAL, UPDATE with ADDTO/REMOVEFROM,
NOUPDATE, CANCELUPDATE, tag reuse, and contexts ending with the selection."""

from __future__ import annotations

import datetime
import re
from pathlib import Path
from typing import Any

from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from mailsrv.imapserver import contexts
from mailsrv.imapserver.contexts import ordered_set
from tests.imapserver.harness import Client, make_server, settled


def raw(subject: str) -> bytes:
    return f"From: a@example.org\r\nSubject: {subject}\r\nDate: Mon, 2 Nov 2026 10:00:00 +0000\r\n\r\nx\r\n".encode()


class ContextsTest(TestCase):
    def setUp(self) -> None:
        self.server = make_server(Path(self.mktemp()))
        self.addCleanup(self.server.stores.close_all)
        self.store = self.server.stores.open("alice")
        self.box = self.store.mailbox("INBOX")

    async def append(self, subject: str, seen: bool = False) -> int:
        when = datetime.datetime(2026, 12, 1, tzinfo=datetime.UTC)
        r = settled(self.server, self.store.append("INBOX", raw(subject), ["\\Seen"] if seen else [], when))
        return r.uid

    async def client(self) -> Client:
        for subject, seen in (("delta", False), ("alpha", True), ("charlie", False), ("bravo", False)):
            await self.append(subject, seen)  # UIDs 1-4
        c = Client(self.server)
        c.login()
        c.cmd("s SELECT INBOX")
        return c

    async def settle(self, c: Client, pattern: bytes, rounds: int = 300) -> bytes:
        """Output until `pattern` matches; drives the session's fake clock and the reactor."""
        out = b""
        clock: Any = self.server.reactor
        for _ in range(rounds):
            clock.advance(0)
            out += c.take()
            if re.search(pattern, out):
                return out
            await deferLater(reactor, 0.01, lambda: None)
        raise AssertionError(f"{pattern!r} not in {out!r}")

    async def run_command(self, c: Client, line: str) -> bytes:
        tag = line.split(" ", 1)[0]
        c.session.dataReceived(line.encode() + b"\r\n")
        return await self.settle(c, rb"(^|\n)" + re.escape(tag.encode()) + rb" (OK|NO|BAD)[^\r]*\r\n")

    async def quiet(self, c: Client) -> bytes:
        """What the session writes over a few reactor turns (to check that nothing comes)."""
        out = b""
        clock: Any = self.server.reactor
        for _ in range(10):
            clock.advance(0)
            out += c.take()
            await deferLater(reactor, 0.01, lambda: None)
        return out

    async def test_capabilities(self) -> None:
        c = await self.client()
        caps = c.cmd("c CAPABILITY")
        self.assertIn(b" CONTEXT=SEARCH ", caps)
        self.assertIn(b" CONTEXT=SORT ", caps)

    async def test_partial(self) -> None:
        c = await self.client()
        out = await self.run_command(c, "a UID SEARCH RETURN (PARTIAL 2:3 COUNT) ALL")
        self.assertIn(b'* ESEARCH (TAG "a") UID COUNT 4 PARTIAL (2:3 2:3)\r\n', out)
        out = await self.run_command(c, "b UID SORT RETURN (PARTIAL 3:1) (SUBJECT) UTF-8 ALL")
        self.assertIn(b'* ESEARCH (TAG "b") UID PARTIAL (1:3 2,4,3)\r\n', out)  # alpha bravo charlie
        out = await self.run_command(c, "d SEARCH RETURN (PARTIAL 10:20) ALL")
        self.assertIn(b'* ESEARCH (TAG "d") PARTIAL (10:20 NIL)\r\n', out)
        out = await self.run_command(c, "e SEARCH RETURN (CONTEXT COUNT) UNSEEN")  # a hint only
        self.assertIn(b'* ESEARCH (TAG "e") COUNT 3\r\n', out)
        for bad in (
            "SEARCH RETURN (PARTIAL 1:2 ALL) ALL",
            "SEARCH RETURN (PARTIAL 0:2) ALL",
            "SEARCH RETURN (COUNT COUNT) ALL",
        ):
            out = await self.run_command(c, "f " + bad)
            self.assertIn(b"f BAD", out, bad)

    async def test_uid_search_update(self) -> None:
        c = await self.client()
        out = await self.run_command(c, "a UID SEARCH RETURN (UPDATE ALL) UNSEEN")
        self.assertIn(b'* ESEARCH (TAG "a") UID ALL 1,3:4\r\n', out)
        self.assertNotIn(b"NOUPDATE", out)
        uid = await self.append("echo")  # another session's delivery
        out = await self.settle(c, rb"ADDTO")
        self.assertIn(b'* ESEARCH (TAG "a") UID ADDTO (0 %d)\r\n' % uid, out)
        # Own flag change: the message leaves the result.
        out = await self.run_command(c, "b UID STORE 3 +FLAGS (\\Seen)")
        out += await self.settle(c, rb"REMOVEFROM") if b"REMOVEFROM" not in out else b""
        self.assertIn(b'* ESEARCH (TAG "a") UID REMOVEFROM (0 3)\r\n', out)
        # Another session's change back: it returns. A change that keeps it out: nothing.
        await self.store.store_flags(self.box.id, [3], "remove", ["\\Seen"])
        out = await self.settle(c, rb"ADDTO")
        self.assertIn(b'* ESEARCH (TAG "a") UID ADDTO (0 3)\r\n', out)
        await self.store.store_flags(self.box.id, [2], "add", ["\\Flagged"])
        self.assertNotIn(b"ESEARCH", await self.quiet(c))
        # Expunged members are removed.
        await self.store.store_flags(self.box.id, [1, 2], "add", ["\\Deleted"])
        await self.store.expunge(self.box.id)
        out = await self.settle(c, rb"REMOVEFROM")
        self.assertIn(b'* ESEARCH (TAG "a") UID REMOVEFROM (0 1)\r\n', out)
        # CANCELUPDATE stops it.
        out = await self.run_command(c, 'd CANCELUPDATE "a"')
        self.assertIn(b"d OK", out)
        await self.append("foxtrot")
        self.assertNotIn(b"ESEARCH", await self.quiet(c))
        out = await self.run_command(c, 'e CANCELUPDATE "a"')
        self.assertIn(b"e BAD", out)

    async def test_uid_sort_update_positions(self) -> None:
        c = await self.client()
        out = await self.run_command(c, "a UID SORT RETURN (UPDATE ALL) (SUBJECT) UTF-8 ALL")
        self.assertIn(b'* ESEARCH (TAG "a") UID ALL 2,4,3,1\r\n', out)  # alpha bravo charlie delta
        uid = await self.append("bz")  # between bravo and charlie: position 3
        out = await self.settle(c, rb"ADDTO")
        self.assertIn(b'* ESEARCH (TAG "a") UID ADDTO (3 %d)\r\n' % uid, out)
        # Expunge bravo (position 2) and delta (position 5): removed from the end first.
        await self.store.store_flags(self.box.id, [4, 1], "add", ["\\Deleted"])
        await self.store.expunge(self.box.id)
        out = await self.settle(c, rb"REMOVEFROM")
        self.assertIn(b'* ESEARCH (TAG "a") UID REMOVEFROM (5 1 2 4)\r\n', out)
        # Two new ones in one batch: each pair valid after the previous one.
        u1, u2 = await self.append("zulu"), await self.append("aardvark")
        out = await self.settle(c, rb"ADDTO \(1 %d\)|ADDTO \(\d+ %d 1 %d\)" % (u2, u1, u2))
        model = self.apply([2, uid, 3], out)
        self.assertEqual(model, [u2, 2, uid, 3, u1])

    async def test_message_number_search_update(self) -> None:
        c = await self.client()
        out = await self.run_command(c, "a SEARCH RETURN (UPDATE ALL) UNSEEN")
        self.assertIn(b'* ESEARCH (TAG "a") ALL 1,3:4\r\n', out)
        self.assertNotIn(b"NOUPDATE", out)
        # A delivery: the ADDTO comes after the EXISTS that gives the message its number.
        await self.append("echo")
        self.assertNotIn(b"ESEARCH", await self.quiet(c))
        out = c.cmd("n NOOP")
        self.assertIn(b"* 5 EXISTS\r\n", out)
        self.assertIn(b'* ESEARCH (TAG "a") ADDTO (0 5)\r\n', out)
        self.assertLess(out.index(b"* 5 EXISTS"), out.index(b"ADDTO"))
        # Another session expunges message 1: REMOVEFROM while 1 still names it.
        await self.store.store_flags(self.box.id, [1], "add", ["\\Deleted"])
        await self.store.expunge(self.box.id)
        await self.quiet(c)  # the \Deleted flag change is evaluated: still a member (UNSEEN)
        out = c.cmd("n2 NOOP")
        self.assertIn(b'* ESEARCH (TAG "a") REMOVEFROM (0 1)\r\n* 1 EXPUNGE\r\n', out)
        # Its own STORE: message 2 (UID 3) becomes seen and leaves the result.
        out = await self.run_command(c, "b STORE 2 +FLAGS (\\Seen)")
        out += await self.settle(c, rb"REMOVEFROM") if b"REMOVEFROM" not in out else b""
        self.assertIn(b'* ESEARCH (TAG "a") REMOVEFROM (0 2)\r\n', out)

    async def test_message_number_sort_update(self) -> None:
        c = await self.client()
        out = await self.run_command(c, "a SORT RETURN (UPDATE ALL) (SUBJECT) UTF-8 ALL")
        self.assertIn(b'* ESEARCH (TAG "a") ALL 2,4,3,1\r\n', out)  # alpha bravo charlie delta
        # Its own EXPUNGE of bravo (4) and delta (1): each REMOVEFROM right before its EXPUNGE,
        # with the position in sort order and the number the client knows then.
        c.cmd("d STORE 1,4 +FLAGS.SILENT (\\Deleted)")
        await self.quiet(c)
        out = c.cmd("e EXPUNGE")
        self.assertIn(
            b'* ESEARCH (TAG "a") REMOVEFROM (2 4)\r\n* 4 EXPUNGE\r\n'
            b'* ESEARCH (TAG "a") REMOVEFROM (3 1)\r\n* 1 EXPUNGE\r\n',
            out,
        )
        uid = await self.append("bz")  # alpha, bz, charlie: position 2, message 3
        await self.quiet(c)
        out = c.cmd("n NOOP")
        self.assertIn(b"* 3 EXISTS\r\n", out)
        self.assertIn(b'* ESEARCH (TAG "a") ADDTO (2 3)\r\n', out)
        self.assertEqual(uid, 5)

    @staticmethod
    def apply(model: list[int], out: bytes) -> list[int]:
        """The client's side (RFC 5267 §4.3.3/§4.3.4): apply ADDTO/REMOVEFROM pairs in order."""
        for kind, payload in re.findall(rb"(ADDTO|REMOVEFROM) \(([^)]*)\)", out):
            numbers = [int(x) for x in payload.split()]
            for pos, uid in zip(numbers[::2], numbers[1::2], strict=True):
                if kind == b"ADDTO":
                    model.insert(pos - 1, uid)
                else:
                    assert model[pos - 1] == uid, (model, pos, uid)
                    del model[pos - 1]
        return model

    async def test_refusals_and_lifetime(self) -> None:
        c = await self.client()
        self.patch(contexts, "MAX_CONTEXTS", 1)
        out = await self.run_command(c, "b UID SEARCH RETURN (UPDATE) ALL")
        self.assertNotIn(b"NOUPDATE", out)
        self.assertIn(b'* ESEARCH (TAG "b") UID\r\n', out)
        out = await self.run_command(c, "d UID SORT RETURN (UPDATE) (DATE) UTF-8 ALL")
        self.assertIn(b'* NO [NOUPDATE "d"]', out)
        # A tag in use by a live context cannot start another one.
        out = await self.run_command(c, "b UID SEARCH RETURN (UPDATE) ALL")
        self.assertIn(b"b BAD", out)
        # Selecting again ends the contexts.
        c.cmd("s2 SELECT INBOX")
        await self.append("golf")
        self.assertNotIn(b"ESEARCH", await self.quiet(c))
        out = await self.run_command(c, "b UID SEARCH RETURN (UPDATE) ALL")  # the tag is free again
        self.assertIn(b"b OK", out)
        # With QRESYNC, message-number contexts are refused; the other options are answered.
        c.cmd("q ENABLE QRESYNC")
        c.cmd("s3 SELECT INBOX")
        out = await self.run_command(c, "a SEARCH RETURN (UPDATE COUNT) ALL")
        self.assertIn(b'* NO [NOUPDATE "a"]', out)
        self.assertIn(b'* ESEARCH (TAG "a") COUNT 5\r\n', out)
        self.assertIn(b"a OK", out)
        # Nothing after BYE.
        out = c.cmd("z LOGOUT")
        await self.append("hotel")
        self.assertNotIn(b"ESEARCH", await self.quiet(c))


def test_ordered_set() -> None:
    assert ordered_set([2, 3, 4, 1, 7, 6]) == b"2:4,1,7,6"
    assert ordered_set([]) == b""
