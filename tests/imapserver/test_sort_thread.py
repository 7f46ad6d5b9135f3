"""SORT / UID SORT with ESORT return options (RFC 5256, 5957, 5267) and THREAD (RFC 5256)
through the IMAP session, over StringTransport, with messages in a real store."""

from __future__ import annotations

import datetime
import re
from pathlib import Path
from typing import Any

from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from mailsrv.ops.sort import SORT_KEYS
from tests.imapserver.harness import Client, make_server, settled


def raw(sender: str, subject: str, date: str, extra: str = "") -> bytes:
    return (
        f"From: {sender}\r\nTo: team@example.org\r\nSubject: {subject}\r\nDate: {date}\r\n{extra}\r\nbody\r\n".encode()
    )


MESSAGES = [  # uid 1..5
    raw('"Zed" <zed@example.org>', "lunch", "Mon, 2 Nov 2026 10:00:00 +0000", "Message-ID: <1@x>\r\n"),
    raw(
        "alice@example.org", "Re: lunch", "Mon, 2 Nov 2026 12:00:00 +0000", "Message-ID: <2@x>\r\nReferences: <1@x>\r\n"
    ),
    raw(
        "=?utf-8?q?=C3=89mile?= <bob@example.org>",
        "[team] beer",
        "Sun, 1 Nov 2026 09:00:00 +0000",
        "Message-ID: <3@x>\r\n",
    ),
    raw(
        "carol@example.org",
        "Re: Re: lunch",
        "Tue, 3 Nov 2026 10:00:00 +0000",
        "Message-ID: <4@x>\r\nIn-Reply-To: <2@x>\r\n",
    ),
    raw("dave@example.org", "Fwd: beer", "garbage", "Message-ID: <5@x>\r\nReferences: <9@x> <3@x>\r\n"),
]


class SortThreadTest(TestCase):
    def setUp(self) -> None:
        self.server = make_server(Path(self.mktemp()))
        self.addCleanup(self.server.stores.close_all)

    async def client(self) -> Client:
        store = self.server.stores.open("alice")
        for i, data in enumerate(MESSAGES):
            when = datetime.datetime(2026, 12, 1 + i, tzinfo=datetime.UTC)
            settled(self.server, store.append("INBOX", data, ["\\Seen"] if i % 2 else [], when))
        c = Client(self.server)
        c.login()
        c.cmd("s SELECT INBOX")
        return c

    async def run_command(self, c: Client, line: str) -> bytes:
        """Runs one command; the engine pauses on the session's fake clock and reads files in
        the real reactor's threads, so both are driven until the tagged reply is out."""
        tag = line.split(" ", 1)[0]
        c.session.dataReceived(line.encode() + b"\r\n")
        out = b""
        clock: Any = self.server.reactor
        for _ in range(500):
            clock.advance(0)
            out += c.take()
            if re.search(rb"(^|\r\n)" + re.escape(tag.encode()) + rb" (OK|NO|BAD)[^\r]*\r\n", out):
                return out
            await deferLater(reactor, 0.01, lambda: None)
        raise AssertionError(out)

    async def sorted_numbers(self, c: Client, line: str) -> list[int]:
        out = await self.run_command(c, line)
        m = re.search(rb"\* SORT([ 0-9]*)\r\n", out)
        assert m, out
        return [int(n) for n in m.group(1).split()]

    async def test_capabilities(self) -> None:
        c = await self.client()
        caps = c.cmd("c CAPABILITY")
        for cap in (b"SORT", b"SORT=DISPLAY", b"ESORT", b"THREAD=ORDEREDSUBJECT", b"THREAD=REFERENCES"):
            self.assertIn(b" " + cap + b" ", caps)

    async def test_sort_criteria(self) -> None:
        c = await self.client()
        self.assertEqual(await self.sorted_numbers(c, "a SORT (SUBJECT) UTF-8 ALL"), [3, 5, 1, 2, 4])
        self.assertEqual(await self.sorted_numbers(c, "a SORT (SUBJECT REVERSE DATE) UTF-8 ALL"), [5, 3, 4, 2, 1])
        # DATE: 5's Date: is garbage, so its internal date (5 Dec, the latest) is used.
        self.assertEqual(await self.sorted_numbers(c, "a SORT (DATE) US-ASCII ALL"), [3, 1, 2, 4, 5])
        self.assertEqual(await self.sorted_numbers(c, "a SORT (REVERSE ARRIVAL) UTF-8 ALL"), [5, 4, 3, 2, 1])
        self.assertEqual(await self.sorted_numbers(c, "a SORT (FROM) UTF-8 ALL"), [2, 3, 4, 5, 1])
        # DISPLAYFROM: "Émile" and "Zed" are display names; the others sort by address.
        self.assertEqual(await self.sorted_numbers(c, "a SORT (DISPLAYFROM) UTF-8 ALL"), [2, 4, 5, 3, 1])
        sizes = [len(m) for m in MESSAGES]
        by_size = sorted(range(1, 6), key=lambda n: sizes[n - 1])
        self.assertEqual(await self.sorted_numbers(c, "a SORT (SIZE) UTF-8 ALL"), by_size)
        self.assertEqual(await self.sorted_numbers(c, "a UID SORT (SUBJECT) UTF-8 UNSEEN"), [3, 5, 1])
        self.assertEqual(await self.sorted_numbers(c, "a SORT (TO CC) UTF-8 ALL"), [1, 2, 3, 4, 5])  # all ties
        self.assertEqual(await self.sorted_numbers(c, "a SORT (SUBJECT) UTF-8 SUBJECT nothing"), [])

    async def test_sort_is_a_permutation_of_search_for_every_criterion(self) -> None:
        c = await self.client()
        out = await self.run_command(c, "s UID SEARCH UNSEEN")
        m = re.search(rb"\* SEARCH([ 0-9]*)\r\n", out)
        assert m, out
        expected = sorted(int(n) for n in m.group(1).split())
        for key in sorted(SORT_KEYS):
            for reverse in ("", "REVERSE "):
                got = await self.sorted_numbers(c, f"a UID SORT ({reverse}{key.upper()}) UTF-8 UNSEEN")
                self.assertEqual(sorted(got), expected, key)

    async def test_esort_return_options(self) -> None:
        c = await self.client()
        out = await self.run_command(c, "a SORT RETURN (MIN MAX COUNT ALL) (SUBJECT) UTF-8 ALL")
        # MIN and MAX are the first and last in sort order (RFC 5267 §3.1); ALL keeps the order.
        self.assertIn(b'* ESEARCH (TAG "a") MIN 3 MAX 4 ALL 3,5,1:2,4 COUNT 5\r\n', out)
        out = await self.run_command(c, "b UID SORT RETURN () (REVERSE ARRIVAL) UTF-8 ALL")
        self.assertIn(b'* ESEARCH (TAG "b") UID ALL 5,4,3,2,1\r\n', out)
        out = await self.run_command(c, "d SORT RETURN (COUNT) (DATE) UTF-8 SUBJECT nothing")
        self.assertIn(b'* ESEARCH (TAG "d") COUNT 0\r\n', out)
        # SAVE (RFC 5182) with MAX alone saves the last message in sort order.
        out = await self.run_command(c, "e SORT RETURN (SAVE MAX) (REVERSE SUBJECT) UTF-8 ALL")
        self.assertIn(b'* ESEARCH (TAG "e") MAX 5\r\n', out)
        out = await self.run_command(c, "f UID SEARCH $")
        self.assertIn(b"* SEARCH 5\r\n", out)
        out = await self.run_command(c, "g SORT RETURN (SAVE) (SUBJECT) UTF-8 SEEN")
        self.assertNotIn(b"ESEARCH", out)
        out = await self.run_command(c, "h SEARCH $")
        self.assertIn(b"* SEARCH 2 4\r\n", out)

    async def test_errors(self) -> None:
        c = await self.client()
        out = await self.run_command(c, "a SORT (DATE) KOI8-R ALL")
        self.assertIn(b"a NO [BADCHARSET (UTF-8 US-ASCII)]", out)
        for bad in (
            "SORT (BOGUS) UTF-8 ALL",
            "SORT () UTF-8 ALL",
            "SORT (DATE) ALL",
            "SORT DATE UTF-8 ALL",
            "SORT RETURN (PARTIAL 1:5 ALL) (DATE) UTF-8 ALL",
            "SORT RETURN (PARTIAL 1:*) (DATE) UTF-8 ALL",
            "SORT (REVERSE) UTF-8 ALL",
            "THREAD BOGUS UTF-8 ALL",
            "THREAD REFERENCES UTF-8",
            "SORT (DATE) UTF-8 FROB",
        ):
            out = await self.run_command(c, "b " + bad)
            self.assertIn(b"b BAD", out, bad)
        self.assertIn(b"n OK", c.cmd("n NOOP"))
        c2 = Client(self.server)
        c2.login()
        self.assertIn(b"x BAD", c2.cmd("x SORT (DATE) UTF-8 ALL"))  # not selected

    async def test_thread(self) -> None:
        c = await self.client()
        out = await self.run_command(c, "a THREAD REFERENCES UTF-8 ALL")
        # 1 <- 2 <- 4 by References/In-Reply-To; 5 answers 3 through the absent <9@x>.
        self.assertIn(b"* THREAD (3 5)(1 2 4)\r\n", out)
        out = await self.run_command(c, "b UID THREAD REFERENCES US-ASCII UNSEEN")
        self.assertIn(b"* THREAD (3 5)(1)\r\n", out)
        out = await self.run_command(c, "d THREAD ORDEREDSUBJECT UTF-8 ALL")
        self.assertIn(b"* THREAD (3 5)(1 (2)(4))\r\n", out)
        out = await self.run_command(c, "e THREAD ORDEREDSUBJECT UTF-8 SUBJECT nothing")
        self.assertIn(b"* THREAD\r\n", out)
