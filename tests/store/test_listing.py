"""Sorted, paged listing of a mailbox (`list_messages`): every order in both directions over
10,000 messages, page by page, neither repeating nor skipping a message, also while messages
arrive and leave between pages; anchors of another order are refused."""

from __future__ import annotations

import datetime
import random
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase

from mailsrv.pools import inline_pools
from mailsrv.store import SQLiteStoreRegistry, files
from mailsrv.store.interfaces import InvalidRequest, MessageSummary, SortKey
from mailsrv.store.summary import base_subject

N = 10_000
PAGE = 137  # not a divisor of N: the last page is short

NAMES = ["Alice", "bob", "Émile", "", "zoë", "Carol", "dave"]
SUBJECTS = ["hello", "Re: hello", "[list] news", "Fwd: plans", "AW: x", "", "zebra", "Über"]


def message(rng: random.Random, n: int) -> bytes:
    name = rng.choice(NAMES)
    sender = f'"{name}" <u{rng.randrange(50)}@example.org>' if name else f"u{rng.randrange(50)}@example.org"
    # Many equal dates, senders, subjects and sizes: the ties test the UID tie-break.
    day = rng.randrange(1, 29)
    return (
        f"From: {sender}\r\nTo: b@example.org\r\nSubject: {rng.choice(SUBJECTS)}\r\n"
        f"Date: {day} Mar 2024 10:00:00 +0000\r\nMessage-ID: <m{n}@example.org>\r\n\r\n"
        + "x" * rng.randrange(0, 40)
        + "\r\n"
    ).encode()


KEYS: dict[SortKey, Callable[[MessageSummary], object]] = {
    SortKey.DATE: lambda m: m.summary.date,
    SortKey.ARRIVAL: lambda m: m.internal_date,
    SortKey.FROM: lambda m: (m.summary.from_[0].name or m.summary.from_[0].addr).casefold(),
    SortKey.SUBJECT: lambda m: base_subject(m.summary.subject)[0].casefold(),
    SortKey.SIZE: lambda m: m.size,
}


class ListingTests(TestCase):
    timeout = 300

    def setUp(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="mailsrv-list-"))
        self.addCleanup(shutil.rmtree, self.dir, True)
        # A fake clock and inline pools: the fill runs in this thread without thread hops.
        self.clock = Clock()
        self.registry = SQLiteStoreRegistry(self.dir, reactor=self.clock, pools=inline_pools())
        self.store = self.registry.open("alice")
        self.addCleanup(self.registry.close_all)

    async def fill(self, n: int) -> None:
        # Durability is not the subject here: fsyncs would make the fill take minutes on a
        # loaded machine (transactions still commit as always).
        self.patch(files.os, "fsync", lambda fd: None)
        rng = random.Random(5256)
        start = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
        batch = 500  # concurrent appends share their directory and index fsyncs
        for first in range(0, n, batch):
            appended = defer.gatherResults(
                [
                    self.store.append(
                        "INBOX",
                        message(rng, i),
                        internal_date=start + datetime.timedelta(minutes=rng.randrange(0, 2000)),
                    )
                    for i in range(first, min(n, first + batch))
                ],
                consumeErrors=True,
            )
            self.clock.advance(0)  # the batch's file writes, then its one commit
            self.successResultOf(appended)

    async def walk(self, box: int, sort: SortKey, descending: bool) -> list[MessageSummary]:
        seen: list[MessageSummary] = []
        anchor: str | None = None
        while True:
            page = await self.store.list_messages(box, sort, descending, PAGE, anchor)
            seen.extend(page.messages)
            self.assertLessEqual(len(page.messages), PAGE)
            if page.next is None:
                return seen
            self.assertEqual(len(page.messages), PAGE)
            anchor = page.next

    async def test_every_order_page_by_page(self) -> None:
        began = time.monotonic()
        await self.fill(N)
        filled = time.monotonic()
        box = self.store.mailbox("INBOX").id
        everything = await self.store.summaries(box)
        self.assertEqual(len(everything), N)
        for sort, key in KEYS.items():
            expected = sorted(everything, key=lambda m: (key(m), m.uid))
            for descending in (False, True):
                want = [m.uid for m in (reversed(expected) if descending else expected)]
                got = [m.uid for m in await self.walk(box, sort, descending)]
                self.assertEqual(len(got), len(set(got)), f"{sort} desc={descending}: a message repeats")
                self.assertEqual(got, want, f"{sort} desc={descending}")
        print(f"filled {N} in {filled - began:.1f} s, listed 10 orders in {time.monotonic() - filled:.1f} s")

    async def test_pages_stable_while_messages_come_and_go(self) -> None:
        await self.fill(1000)
        box = self.store.mailbox("INBOX").id
        original = {m.uid for m in await self.store.summaries(box)}
        rng = random.Random(1)
        for sort in SortKey:
            for descending in (False, True):
                seen: list[int] = []
                anchor: str | None = None
                while True:
                    page = await self.store.list_messages(box, sort, descending, 50, anchor)
                    seen.extend(m.uid for m in page.messages)
                    if page.next is None:
                        break
                    anchor = page.next
                    # Between pages: a delivery, and a flag change on a message not yet seen.
                    appended = self.store.append("INBOX", message(rng, 10**6 + len(seen)))
                    self.clock.advance(0)
                    self.successResultOf(appended)
                    later = sorted(original - set(seen))
                    if later:
                        await self.store.store_flags(box, [later[0]], "add", ["\\Seen"])
                self.assertEqual(len(seen), len(set(seen)), f"{sort} desc={descending}")
                self.assertLessEqual(original, set(seen), f"{sort} desc={descending}: skipped")

    async def test_bad_requests(self) -> None:
        await self.fill(3)
        box = self.store.mailbox("INBOX").id
        page = await self.store.list_messages(box, SortKey.SUBJECT, False, 1)
        assert page.next is not None
        self.assertEqual(page.total, 3)
        for sort, descending in ((SortKey.SUBJECT, True), (SortKey.SIZE, False)):
            with self.assertRaises(InvalidRequest):
                await self.store.list_messages(box, sort, descending, 1, page.next)
        for bad in ("", "!!!", "eyJ4Ijox"):
            with self.assertRaises(InvalidRequest):
                await self.store.list_messages(box, SortKey.SUBJECT, False, 1, bad)
        for count in (0, 1001):
            with self.assertRaises(InvalidRequest):
                await self.store.list_messages(box, SortKey.SUBJECT, False, count)
        empty = await self.store.list_messages(self.store.mailbox("Trash").id)
        self.assertEqual((empty.messages, empty.next, empty.total), ((), None, 0))

    def test_every_order_uses_an_index(self) -> None:
        from mailsrv.store.listing import _SORT_COLUMNS

        for column in _SORT_COLUMNS.values():
            plan = " ".join(
                str(r[-1])
                for r in self.store.db.execute(
                    f"EXPLAIN QUERY PLAN SELECT summary FROM message WHERE mailbox_id = ? AND ({column}, uid) > (?, ?)"
                    f" ORDER BY {column}, uid LIMIT 10",
                    (1, 0, 0),
                )
            )
            self.assertIn("INDEX message_by_", plan, column)
            self.assertNotIn("TEMP B-TREE", plan, column)
