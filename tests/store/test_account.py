"""Semantics of the embedded account store: UIDs, modseqs, flags, expunge, rename, quota."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from twisted.trial.unittest import TestCase

from mailsrv.store import SQLiteStoreRegistry
from mailsrv.store.interfaces import (
    Change,
    FlagMode,
    FlagsChanged,
    MailboxExists,
    MailboxNotFound,
    MessageAdded,
    MessagesExpunged,
    OverQuota,
)

MSG = b"From: a@example.org\r\nTo: b@example.org\r\nSubject: hi\r\n\r\nbody\r\n"


class AccountStoreTests(TestCase):
    def setUp(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="mailsrv-store-"))
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.quota: int | None = None
        self.registry = SQLiteStoreRegistry(self.dir, lambda account: self.quota)
        self.store = self.registry.open("alice")
        self.addCleanup(self.registry.close_all)

    def test_default_mailboxes(self) -> None:
        names = {m.name: m.special_use for m in self.store.mailboxes()}
        self.assertEqual(
            names,
            {
                "INBOX": None,
                "Sent": "\\Sent",
                "Archive": "\\Archive",
                "Trash": "\\Trash",
                "Drafts": "\\Drafts",
                "Junk": "\\Junk",
            },
        )
        self.assertIn("INBOX", self.store.subscriptions())

    async def test_append_assigns_increasing_uids_and_modseqs(self) -> None:
        r1 = await self.store.append("INBOX", MSG)
        r2 = await self.store.append("inbox", MSG, flags=["\\seen", "$Label"])
        self.assertEqual((r1.uid, r2.uid), (1, 2))
        self.assertLess(r1.modseq, r2.modseq)
        box = self.store.mailbox("INBOX")
        self.assertEqual((box.messages, box.unseen, box.uidnext, box.size), (2, 1, 3, 2 * len(MSG)))
        self.assertEqual(box.highest_modseq, r2.modseq)
        m = self.store.message(box.id, 2)
        assert m is not None
        self.assertEqual(m.flags, frozenset({"\\Seen", "$Label"}))
        self.assertEqual(self.store.read(m.message_id), MSG)
        self.assertEqual(self.store.read(m.message_id, 6, 13), b"a@example.org")
        self.assertEqual(self.store.part_tree(m.message_id).envelope.subject, "hi")  # type: ignore[union-attr]

    async def test_append_with_the_callers_header_fields(self) -> None:
        # A caller that parsed the header (delivery) hands its fields over; the stored tree
        # and summary are what the store's own parse gives.
        from mailsrv.message.headerfields import header_fields

        raw = b"Subject: given\r\nFrom: Ann <ann@example.org>\r\nContent-Type: text/html\r\n\r\n<p>hello</p>"
        r1 = await self.store.append("INBOX", raw, delivery=True, header_fields=header_fields(raw))
        r2 = await self.store.append("INBOX", raw)
        box = self.store.mailbox("INBOX")
        first, second = (self.store.message(box.id, r.uid) for r in (r1, r2))
        assert first is not None and second is not None
        self.assertEqual(self.store.part_tree(first.message_id), self.store.part_tree(second.message_id))
        self.assertEqual(self.store.part_tree(first.message_id).media_subtype, "html")  # type: ignore[union-attr]
        summaries = await self.store.summaries(box.id)
        self.assertEqual(summaries[0].summary, summaries[1].summary)
        self.assertEqual(summaries[0].summary.preview, "hello")

    async def test_flags_modseq_and_unchangedsince(self) -> None:
        await self.store.append("INBOX", MSG)
        await self.store.append("INBOX", MSG)
        box = self.store.mailbox("INBOX")
        result = await self.store.store_flags(box.id, [1, 2], FlagMode.ADD, ["\\Deleted"])
        self.assertEqual(len(result.changed), 2)
        modseq = result.changed[0].modseq
        # No change, no new modseq.
        again = await self.store.store_flags(box.id, [1], FlagMode.ADD, ["\\Deleted"])
        self.assertEqual(again.changed, ())
        failed = await self.store.store_flags(box.id, [1], FlagMode.REMOVE, ["\\Deleted"], unchanged_since=modseq - 1)
        self.assertEqual(failed.modified, (1,))
        box = self.store.mailbox("INBOX")
        self.assertEqual((box.deleted, box.deleted_size, box.highest_modseq), (2, 2 * len(MSG), modseq))

    async def test_expunge_records_vanished(self) -> None:
        for _ in range(3):
            await self.store.append("INBOX", MSG)
        box = self.store.mailbox("INBOX")
        before = box.highest_modseq
        await self.store.store_flags(box.id, [1, 3], FlagMode.ADD, ["\\Deleted"])
        self.assertEqual(await self.store.expunge(box.id, uids=[3]), (3,))
        self.assertEqual(await self.store.expunge(box.id), (1,))
        changes = self.store.changes_since(box.id, before)
        self.assertEqual(changes.vanished, (1, 3))
        self.assertEqual([m.uid for m in changes.changed], [])
        box = self.store.mailbox("INBOX")
        self.assertEqual((box.messages, box.deleted, box.size), (1, 0, len(MSG)))

    async def test_copy_and_move(self) -> None:
        await self.store.append("INBOX", MSG)
        await self.store.append("INBOX", MSG)
        inbox = self.store.mailbox("INBOX")
        copied = await self.store.copy(inbox.id, [2, 1, 99], "Archive")
        self.assertEqual((copied.source_uids, copied.dest_uids), ((1, 2), (1, 2)))
        moved = await self.store.move(inbox.id, [1], "Trash")
        self.assertEqual((moved.source_uids, moved.dest_uids), ((1,), (1,)))
        self.assertEqual([m.uid for m in self.store.messages(inbox.id)], [2])
        self.assertEqual(self.store.mailbox("Archive").messages, 2)
        self.assertEqual(self.store.changes_since(inbox.id, 0).vanished, (1,))
        self.assertEqual(self.store.usage(), 4 * len(MSG))

    async def test_message_list_follows_every_change(self) -> None:
        """`messages` keeps a snapshot per mailbox and catches it up by modseq: after each
        kind of change it must equal a list read afresh."""

        def check(name: str) -> None:
            box = self.store.mailbox(name)
            kept = self.store.messages(box.id)
            self.store._snapshots.clear()
            self.assertEqual(kept, self.store.messages(box.id))

        for _ in range(4):
            await self.store.append("INBOX", MSG)
        inbox = self.store.mailbox("INBOX")
        check("INBOX")
        await self.store.append("INBOX", MSG, flags=["$Label"])
        check("INBOX")
        await self.store.store_flags(inbox.id, [2, 5], FlagMode.ADD, ["\\Deleted"])
        check("INBOX")
        await self.store.expunge(inbox.id, uids=[2])
        check("INBOX")
        self.store.messages(self.store.mailbox("Archive").id)
        await self.store.copy(inbox.id, [1, 3], "Archive")
        check("Archive")
        await self.store.move(inbox.id, [4], "Archive")
        check("INBOX")
        check("Archive")
        self.assertEqual([m.uid for m in self.store.messages(inbox.id)], [1, 3, 5])
        # A mailbox deleted and created again may get the same id: its old list must not come back.
        await self.store.create_mailbox("Box")
        box = self.store.mailbox("Box")
        await self.store.copy(inbox.id, [1, 3], "Box")
        self.assertEqual(len(self.store.messages(box.id)), 2)
        await self.store.delete_mailbox("Box")
        await self.store.create_mailbox("Box")
        self.assertEqual(self.store.messages(self.store.mailbox("Box").id), [])

    async def test_quota(self) -> None:
        self.quota = len(MSG) + 10
        await self.store.append("INBOX", MSG)
        with self.assertRaises(OverQuota):
            await self.store.append("INBOX", MSG)
        inbox = self.store.mailbox("INBOX")
        with self.assertRaises(OverQuota):
            await self.store.copy(inbox.id, [1], "Archive")
        self.assertEqual(self.store.quota_limit(), len(MSG) + 10)

    async def test_mailbox_create_rename_delete(self) -> None:
        await self.store.create_mailbox("Projects/2026/Q4")
        self.assertEqual(self.store.mailbox("Projects/2026").name, "Projects/2026")
        with self.assertRaises(MailboxExists):
            await self.store.create_mailbox("Projects")
        await self.store.rename_mailbox("Projects", "Work")
        names = [m.name for m in self.store.mailboxes()]
        self.assertIn("Work/2026/Q4", names)
        self.assertNotIn("Projects", names)
        await self.store.delete_mailbox("Work/2026/Q4")
        with self.assertRaises(MailboxNotFound):
            self.store.mailbox("Work/2026/Q4")
        await self.store.create_mailbox("Caf\u0065\u0301")
        self.assertEqual(self.store.mailbox("Caf\u00e9").name, "Caf\u00e9")

    async def test_rename_inbox_moves_messages(self) -> None:
        await self.store.append("INBOX", MSG)
        await self.store.rename_mailbox("INBOX", "Old")
        self.assertEqual(self.store.mailbox("INBOX").messages, 0)
        self.assertEqual(self.store.mailbox("Old").messages, 1)

    async def test_change_feed_with_origin(self) -> None:
        seen: list[tuple[Change, object | None]] = []
        remove = self.store.add_listener(lambda c, o: seen.append((c, o)))
        me = object()
        await self.store.append("INBOX", MSG, origin=me)
        box = self.store.mailbox("INBOX")
        await self.store.store_flags(box.id, [1], FlagMode.ADD, ["\\Deleted"])
        await self.store.expunge(box.id, origin=me)
        kinds = [(type(c), o) for c, o in seen]
        self.assertEqual(kinds, [(MessageAdded, me), (FlagsChanged, None), (MessagesExpunged, me)])
        remove()
        await self.store.append("INBOX", MSG)
        self.assertEqual(len(seen), 3)

    async def test_reopen_keeps_everything_and_removes_orphans(self) -> None:
        await self.store.append("INBOX", MSG)
        orphan = self.store.files.path(999)
        orphan.parent.mkdir(exist_ok=True)
        orphan.write_bytes(b"half")
        self.registry.close_all()
        store = self.registry.open("alice")
        self.assertFalse(orphan.exists())
        box = store.mailbox("INBOX")
        self.assertEqual(box.messages, 1)
        r = await store.append("INBOX", MSG)
        self.assertEqual(r.uid, 2)


class DrainTests(TestCase):
    """`drain()` lets a stopping daemon wait for deliveries that are writing mail."""

    async def test_drain_waits_for_running_appends_then_close_is_clean(self) -> None:
        directory = Path(tempfile.mkdtemp(prefix="mailsrv-drain-"))
        self.addCleanup(shutil.rmtree, directory, True)
        registry = SQLiteStoreRegistry(directory)
        store = registry.open("alice")
        appends = [store.append("INBOX", MSG) for _ in range(5)]
        self.assertEqual(len(store.appends_in_flight()), 5)
        await registry.drain()
        self.assertTrue(all(d.called for d in appends))
        self.assertEqual(store.appends_in_flight(), [])
        registry.close_all()
        reopened = SQLiteStoreRegistry(directory).open("alice")
        self.assertEqual(reopened.mailbox("INBOX").messages, 5)
        reopened.close()
        await registry.drain()  # nothing running: fires at once
