"""`append_many` (RFC 3502 MULTIAPPEND in the store): all messages or none, consecutive UIDs."""

from __future__ import annotations

import datetime
import shutil
import tempfile
from pathlib import Path

from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from mailsrv.store import SQLiteStoreRegistry
from mailsrv.store.interfaces import Change, MailboxNotFound, MessageAdded, NewMessage, OverQuota

MSG = b"From: a@example.org\r\nSubject: hi\r\n\r\nbody\r\n"


class AppendManyTests(TestCase):
    def setUp(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="mailsrv-store-"))
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.quota: int | None = None
        self.registry = SQLiteStoreRegistry(self.dir, lambda account: self.quota)
        self.store = self.registry.open("alice")
        self.addCleanup(self.registry.close_all)

    def files(self) -> list[Path]:
        ahead = {str(i) for i in self.store.files.made_ahead()}  # empty files for later messages
        return [p for p in self.store.files.root.rglob("*") if p.is_file() and p.name not in ahead]

    async def test_batch_gets_consecutive_uids_one_modseq_and_is_told_after_commit(self) -> None:
        await self.store.append("INBOX", MSG)
        seen: list[Change] = []
        self.store.add_listener(lambda change, origin: seen.append(change))
        when = datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.timezone(datetime.timedelta(hours=1)))
        results = await self.store.append_many(
            "INBOX",
            [NewMessage(MSG, ("\\Seen",), when), NewMessage(MSG + b"two\r\n"), NewMessage(MSG, ("$Work",))],
        )
        self.assertEqual([r.uid for r in results], [2, 3, 4])
        self.assertEqual(len({r.modseq for r in results}), 1)
        box = self.store.mailbox("INBOX")
        self.assertEqual((box.messages, box.unseen, box.uidnext), (4, 3, 5))
        self.assertEqual(box.highest_modseq, results[0].modseq)
        first = self.store.message(box.id, 2)
        assert first is not None
        self.assertEqual((first.flags, first.internal_date), (frozenset({"\\Seen"}), when))
        self.assertEqual([c.message.uid for c in seen if isinstance(c, MessageAdded)], [2, 3, 4])

    async def test_over_quota_adds_nothing(self) -> None:
        self.quota = 2 * len(MSG) + 10
        with self.assertRaises(OverQuota):
            await self.store.append_many("INBOX", [NewMessage(MSG)] * 3)
        self.assertEqual(self.store.mailbox("INBOX").messages, 0)
        self.assertEqual(self.files(), [])

    async def test_mailbox_deleted_while_files_are_written_adds_nothing(self) -> None:
        await self.store.create_mailbox("Box")
        d = self.store.append_many("Box", [NewMessage(MSG)] * 3)
        await self.store.delete_mailbox("Box")
        with self.assertRaises(MailboxNotFound):
            await d
        for _ in range(200):  # the files are removed in the thread pool
            if not self.files():
                break
            await deferLater(reactor, 0.01, lambda: None)
        self.assertEqual(self.files(), [])
        self.assertEqual(self.store.usage(), 0)

    async def test_single_append_still_works_and_drains(self) -> None:
        d = self.store.append_many("INBOX", [NewMessage(MSG)] * 2)
        self.assertEqual(len(self.store.appends_in_flight()), 1)
        await self.registry.drain()
        self.assertTrue(d.called)
        r = await self.store.append("INBOX", MSG)
        self.assertEqual(r.uid, 3)
