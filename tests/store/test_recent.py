"""The store's IMAP4rev1 \\Recent bookkeeping (`claim_recent`, RFC 3501 §2.3.2)."""

from __future__ import annotations

from pathlib import Path

from twisted.trial.unittest import TestCase

from mailsrv.store import SQLiteStoreRegistry

MSG = b"From: a@example.org\r\nSubject: hi\r\n\r\nbody\r\n"


class ClaimRecentTests(TestCase):
    def setUp(self) -> None:
        self.dir = Path(self.mktemp())
        self.registry = SQLiteStoreRegistry(self.dir)
        self.store = self.registry.open("alice")
        self.addCleanup(self.registry.close_all)

    async def test_arrivals_are_claimed_once(self) -> None:
        box = self.store.mailbox("INBOX").id
        await self.store.append("INBOX", MSG)
        await self.store.append("INBOX", MSG)
        self.assertEqual(self.store.claim_recent(box, 2, claim=False), 0)  # a peek (EXAMINE)
        self.assertEqual(self.store.claim_recent(box, 2), 0)  # 1 and 2 are the caller's
        self.assertEqual(self.store.claim_recent(box, 2), 2)  # nobody else's
        await self.store.append("INBOX", MSG)
        self.assertEqual(self.store.claim_recent(box, 3), 2)

    async def test_what_was_given_out_survives_reopening(self) -> None:
        # Issue 11: kept in the mailbox row, not only in memory (a restart made every
        # unclaimed message non-recent).
        await self.store.append("INBOX", MSG)
        await self.store.append("INBOX", MSG)
        box = self.store.mailbox("INBOX").id
        self.assertEqual(self.store.claim_recent(box, 1), 0)  # 1 given out, 2 not
        self.registry.close_all()
        store = self.registry.open("alice")
        self.assertEqual(store.claim_recent(box, 2), 1)  # 2 is still recent, for this caller
        self.registry.close_all()
        store = self.registry.open("alice")
        self.assertEqual(store.claim_recent(box, 2), 2)

    async def test_an_index_without_a_stored_floor_counts_nothing_before_as_recent(self) -> None:
        await self.store.append("INBOX", MSG)
        box = self.store.mailbox("INBOX").id
        self.store.db.execute("UPDATE mailbox SET recent_floor = NULL")
        self.store.db.commit()
        self.registry.close_all()
        store = self.registry.open("alice")
        self.assertEqual(store.claim_recent(box, 1), 1)
        await store.append("INBOX", MSG)
        self.assertEqual(store.claim_recent(box, 2), 1)

    async def test_a_deleted_mailbox_forgets(self) -> None:
        await self.store.create_mailbox("Box")
        box = self.store.mailbox("Box").id
        await self.store.append("Box", MSG)
        await self.store.append("Box", MSG)
        self.assertEqual(self.store.claim_recent(box, 2), 0)
        await self.store.delete_mailbox("Box")
        await self.store.create_mailbox("Box")
        new = self.store.mailbox("Box").id
        # Whether or not SQLite reuses the id, the new mailbox starts with nothing recent.
        self.assertEqual(self.store.claim_recent(new, 0, claim=False), 0)
