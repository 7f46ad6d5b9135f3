"""What sessions sharing a mailbox are told (issue 11): \\Recent for exactly one session
(defect 2), RECENT consistent with the EXISTS before it (12), never older flags after
newer ones (13), FLAGS before a FETCH that shows a new keyword (10). In-process over
StringTransport with the real reactor (APPEND fsyncs in the thread pool)."""

from __future__ import annotations

import re
from pathlib import Path

from twisted.trial.unittest import TestCase

from tests.imapserver.harness import Client, make_server
from tests.imapserver.test_updates import MESSAGE, wait_for


def fetch_flags(out: bytes) -> list[tuple[int, set[bytes]]]:
    """(msn, flags) of every FETCH with FLAGS in `out`, in order."""
    return [
        (int(m.group(1)), set(m.group(2).split()))
        for m in re.finditer(rb"^\* (\d+) FETCH \(.*?FLAGS \(([^)]*)\)", out, re.M)
    ]


class RecentAndFlagsTest(TestCase):
    def setUp(self) -> None:
        self.server = make_server(Path(self.mktemp()))
        self.addCleanup(self.server.stores.close_all)

    def client(self) -> Client:
        c = Client(self.server)
        c.login()
        return c

    async def append(self, c: Client, tag: str, flags: bytes = b"") -> bytes:
        c.session.dataReceived(
            f"{tag} APPEND INBOX ".encode() + flags + b"{%d+}\r\n" % len(MESSAGE) + MESSAGE + b"\r\n"
        )
        out = await wait_for(c, f"{tag} ".encode())
        assert f"{tag} OK".encode() in out, out
        return out

    # --- defect 2 -------------------------------------------------------------------------
    async def test_messages_arrived_unselected_are_recent_for_the_next_select_only(self) -> None:
        b = self.client()
        await self.append(b, "x1")
        await self.append(b, "x2")
        a = self.client()
        # EXAMINE shows them recent without taking \Recent away (RFC 3501 §6.3.2).
        out = a.cmd("e EXAMINE INBOX")
        self.assertIn(b"* 2 RECENT\r\n", out)
        self.assertIn(b"* SEARCH 1 2\r\n", a.cmd("r SEARCH RECENT"))
        self.assertIn(b"* SEARCH 1 2\r\n", a.cmd("n SEARCH NEW"))
        c = self.client()
        self.assertIn(b"(RECENT 2)", c.cmd("st STATUS INBOX (RECENT)"))
        out = a.cmd("s SELECT INBOX")
        self.assertIn(b"* 2 RECENT\r\n", out)
        self.assertIn(b"\\Recent", a.cmd("f FETCH 1 FLAGS"))
        # Now a has them: nobody else sees them as recent.
        self.assertIn(b"* 0 RECENT\r\n", c.cmd("s SELECT INBOX"))
        self.assertIn(b"* SEARCH\r\n", c.cmd("r SEARCH RECENT"))
        self.assertIn(b"(RECENT 0)", b.cmd("st STATUS INBOX (RECENT)"))

    async def test_arrival_while_two_sessions_select_is_recent_for_one(self) -> None:
        a = self.client()
        c = self.client()
        b = self.client()
        a.cmd("s SELECT INBOX")
        c.cmd("s SELECT INBOX")
        await self.append(b, "x1")
        out_a = a.cmd("n NOOP") + a.cmd("f FETCH 1 FLAGS")
        out_c = c.cmd("n NOOP") + c.cmd("f FETCH 1 FLAGS")
        recent = [out.count(b"\\Recent") for out in (out_a, out_c)]
        self.assertEqual(sorted(recent), [0, 1], (out_a, out_c))
        self.assertIn(b"* 1 RECENT", out_a if recent[0] else out_c)

    async def test_rev2_session_does_not_take_recent(self) -> None:
        b = self.client()
        await self.append(b, "x1")
        a = self.client()
        a.cmd("e ENABLE IMAP4rev2")
        a.cmd("s SELECT INBOX")
        c = self.client()
        self.assertIn(b"* 1 RECENT\r\n", c.cmd("s SELECT INBOX"))

    # --- defect 12 ------------------------------------------------------------------------
    async def test_recent_matches_the_exists_before_it(self) -> None:
        b = self.client()
        await self.append(b, "x1")
        c = self.client()
        c.cmd("s SELECT INBOX")  # takes message 1 as recent
        a = self.client()
        self.assertIn(b"* 0 RECENT", a.cmd("s SELECT INBOX"))
        await self.append(b, "x2")
        store = self.server.stores.open("alice")
        box = store.mailbox("INBOX")
        await store.store_flags(box.id, [1], "add", ["\\Deleted"])
        await store.expunge(box.id)
        await self.append(b, "x3")
        out = a.cmd("n NOOP")
        counts = re.findall(rb"^\* (\d+) (EXISTS|RECENT|EXPUNGE)\r\n", out, re.M)
        # uid 2 arrives (2 messages, 1 recent), uid 1 goes, uid 3 arrives (2 messages, both recent).
        self.assertEqual(
            counts,
            [(b"2", b"EXISTS"), (b"1", b"RECENT"), (b"1", b"EXPUNGE"), (b"2", b"EXISTS"), (b"2", b"RECENT")],
            out,
        )

    # --- defect 13 ------------------------------------------------------------------------
    async def test_queued_older_flags_never_follow_own_newer_store(self) -> None:
        b = self.client()
        await self.append(b, "x1")
        a = self.client()
        a.cmd("s SELECT INBOX")
        b.cmd("s SELECT INBOX")
        b.cmd("st STORE 1 +FLAGS (\\Seen)")  # queued for a: FLAGS (\Seen)
        out = a.cmd("st STORE 1 +FLAGS (\\Deleted)")
        flags = fetch_flags(out)
        self.assertTrue(flags, out)
        self.assertIn(b"\\Deleted", flags[-1][1], out)
        self.assertIn(b"\\Seen", flags[-1][1], out)
        self.assertEqual(fetch_flags(a.cmd("n NOOP")), [])

    async def test_several_queued_changes_end_with_the_newest(self) -> None:
        b = self.client()
        await self.append(b, "x1")
        a = self.client()
        a.cmd("s SELECT INBOX")
        b.cmd("s SELECT INBOX")
        b.cmd("1 STORE 1 +FLAGS (\\Seen)")
        b.cmd("2 STORE 1 +FLAGS (\\Flagged)")
        b.cmd("3 STORE 1 -FLAGS (\\Seen)")
        flags = fetch_flags(a.cmd("n NOOP"))
        self.assertEqual([(1, {b"\\Flagged", b"\\Recent"})], flags)

    # --- defect 10 ------------------------------------------------------------------------
    async def test_flags_announced_before_fetch_with_new_keyword(self) -> None:
        b = self.client()
        await self.append(b, "x1")
        a = self.client()
        out = a.cmd("s SELECT INBOX")
        self.assertNotIn(b"$Work", out)
        b.cmd("s SELECT INBOX")
        b.cmd("st STORE 1 +FLAGS ($Work)")
        out = a.cmd("n NOOP")
        self.assertRegex(out, rb"\* FLAGS \([^)]*\$Work")
        self.assertRegex(out, rb"\* OK \[PERMANENTFLAGS \([^)]*\$Work[^)]*\\\*\)\]")
        self.assertLess(out.index(b"* FLAGS"), out.index(b"FETCH"))
        # Told once.
        b.cmd("st2 STORE 1 -FLAGS ($Work)")
        b.cmd("st3 STORE 1 +FLAGS ($work)")
        self.assertNotIn(b"* FLAGS", a.cmd("n2 NOOP"))

    async def test_own_store_of_new_keyword_announces_flags_first(self) -> None:
        b = self.client()
        await self.append(b, "x1")
        a = self.client()
        a.cmd("s SELECT INBOX")
        out = a.cmd("st STORE 1 +FLAGS ($Later)")
        self.assertRegex(out, rb"\* FLAGS \([^)]*\$Later")
        self.assertLess(out.index(b"* FLAGS"), out.index(b"FETCH"))

    async def test_fetch_of_appended_message_with_new_keyword_announces_flags_first(self) -> None:
        a = self.client()
        a.cmd("s SELECT INBOX")
        b = self.client()
        await self.append(b, "x1", flags=b"($Pending) ")
        self.assertIn(b"* 1 EXISTS", a.cmd("n NOOP"))
        out = a.cmd("f FETCH 1 FLAGS")
        self.assertRegex(out, rb"\* FLAGS \([^)]*\$Pending")
        self.assertLess(out.index(b"* FLAGS"), out.index(b"FETCH"))
        # EXAMINE: PERMANENTFLAGS stays empty.
        e = self.client()
        e.cmd("e EXAMINE INBOX")
        b.cmd("s SELECT INBOX")
        b.cmd("st STORE 1 +FLAGS ($Other)")
        out = e.cmd("n NOOP")
        self.assertIn(b"* OK [PERMANENTFLAGS ()]", out)
