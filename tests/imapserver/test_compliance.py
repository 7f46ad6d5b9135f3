"""Base-protocol answers an external compliance suite found wrong (issue 11 defects), in
process over StringTransport with the real reactor."""

from __future__ import annotations

import re
from pathlib import Path

from twisted.trial.unittest import TestCase

from tests.imapserver.harness import Client, make_server, settled, tagged
from tests.imapserver.test_updates import MESSAGE


class ComplianceTest(TestCase):
    def setUp(self) -> None:
        self.server = make_server(Path(self.mktemp()))
        self.addCleanup(self.server.stores.close_all)
        self.store = self.server.stores.open("alice")

    def client(self) -> Client:
        c = Client(self.server)
        c.login()
        return c

    async def fill(self, n: int, mailbox: str = "INBOX") -> None:
        for i in range(n):
            settled(self.server, self.store.append(mailbox, MESSAGE.replace(b"hi", b"hi %d" % i)))

    # --- defect 3 -------------------------------------------------------------------------
    def test_tilde_is_an_atom_char(self) -> None:
        c = self.client()
        self.assertEqual(tagged(c.cmd("a SELECT ~foo"), "a"), b"a NO [NONEXISTENT] no such mailbox: ~foo")
        self.assertIn(b"c OK", c.cmd("c CREATE ~bob/mail"))
        self.assertIn(b"s OK [READ-WRITE]", c.cmd("s SELECT ~bob/mail"))
        self.assertIn(b'"~bob/mail"', c.cmd('l LIST "" ~bob*'))

    def test_connection_usable_after_bad(self) -> None:
        c = self.client()
        self.assertIn(b"b BAD", c.cmd("b SELECT ~{3}x"))
        self.assertIn(b"n OK", c.cmd("n NOOP"))
        self.assertIn(b"s OK", c.cmd("s SELECT INBOX"))

    # --- defect 6 -------------------------------------------------------------------------
    async def test_move_into_the_selected_mailbox(self) -> None:
        await self.fill(3)
        c = self.client()
        c.cmd("s SELECT INBOX")
        out = c.cmd("m MOVE 1:2 INBOX")
        self.assertRegex(out, rb"\* OK \[COPYUID \d+ 1:2 4:5\]")
        self.assertIn(b"* 2 EXPUNGE\r\n* 1 EXPUNGE\r\n", out)
        self.assertIn(b"* 3 EXISTS\r\n", out)
        self.assertIn(b"m OK", out)
        uids = re.findall(rb"UID (\d+)", c.cmd("f FETCH 1:* UID"))
        self.assertEqual(uids, [b"3", b"4", b"5"])
        self.assertEqual(self.store.mailbox("INBOX").messages, 3)
        out = c.cmd("u UID MOVE 3 INBOX")
        self.assertRegex(out, rb"\* OK \[COPYUID \d+ 3 6\]")

    # --- defect 11 ------------------------------------------------------------------------
    async def test_nothing_but_the_tagged_ok_after_bye(self) -> None:
        await self.fill(3)
        a = self.client()
        a.cmd("s SELECT INBOX")
        b = self.client()
        b.cmd("s SELECT INBOX")
        b.cmd("st STORE 1:2 +FLAGS (\\Deleted $New)")
        b.cmd("e EXPUNGE")
        settled(self.server, self.store.append("INBOX", MESSAGE))
        out = a.cmd("l LOGOUT")
        self.assertRegex(out, rb"\A\* BYE [^\r]*\r\nl OK [^\r]*\r\n\Z")

    # --- defect 7 -------------------------------------------------------------------------
    async def test_esearch_min_max_modseq_is_that_of_the_returned_messages(self) -> None:
        await self.fill(3)
        c = self.client()
        c.cmd("s SELECT INBOX")
        c.cmd("1 STORE 1 +FLAGS (\\Flagged)")
        c.cmd("2 STORE 3 +FLAGS (\\Flagged)")
        c.cmd("3 STORE 2 +FLAGS (\\Flagged)")  # message 2 now has the highest modseq
        modseqs = {
            int(m.group(1)): int(m.group(2))
            for m in re.finditer(rb"\* (\d+) FETCH \(MODSEQ \((\d+)\)\)", c.cmd("f FETCH 1:3 (MODSEQ)"))
        }
        self.assertEqual(len(modseqs), 3)

        def esearch(options: str) -> bytes:
            out = c.cmd(f"t SEARCH RETURN ({options}) MODSEQ 1")
            m = re.search(rb"\* ESEARCH \(TAG \"t\"\)([^\r]*)", out)
            assert m, out
            return m.group(1)

        self.assertEqual(esearch("MIN"), b" MIN 1 MODSEQ %d" % modseqs[1])
        self.assertEqual(esearch("MAX"), b" MAX 3 MODSEQ %d" % modseqs[3])
        self.assertEqual(esearch("MIN MAX"), b" MIN 1 MAX 3 MODSEQ %d" % max(modseqs[1], modseqs[3]))
        self.assertEqual(esearch("MIN COUNT"), b" MIN 1 COUNT 3 MODSEQ %d" % max(modseqs.values()))
        self.assertEqual(esearch("ALL"), b" ALL 1:3 MODSEQ %d" % max(modseqs.values()))

    # --- defect 8 -------------------------------------------------------------------------
    def test_recursivematch_childinfo_only_for_children_not_listed(self) -> None:
        c = self.client()
        for name in ("Lists", "Lists/a", "Lists/b", "Other", "Other/x"):
            c.cmd(f"c CREATE {name}")
        c.cmd("s1 SUBSCRIBE Lists/a")
        c.cmd("s2 SUBSCRIBE Other/x")
        out = c.cmd('l LIST (SUBSCRIBED RECURSIVEMATCH) "" (Lists Lists/a Other)')
        lines = [line for line in out.split(b"\r\n") if line.startswith(b"* LIST")]
        # Lists/a is listed itself: Lists gets no CHILDINFO and, not subscribed, no line.
        self.assertEqual(
            lines,
            [
                b'* LIST (\\HasNoChildren \\Subscribed) "/" "Lists/a"',
                b'* LIST (\\HasChildren) "/" "Other" ("CHILDINFO" ("SUBSCRIBED"))',
            ],
            out,
        )
