"""Store semantics beyond the basics: counters after every kind of change, keyword case,
CONDSTORE/QRESYNC data, mailbox hierarchy operations, UIDVALIDITY, group commit, reads."""

from __future__ import annotations

import random
import shutil
import tempfile
import time
from pathlib import Path
from unittest import mock

from twisted.internet import defer, reactor, task
from twisted.trial.unittest import TestCase

from mailsrv.store import SQLiteAccountStore, SQLiteStoreRegistry
from mailsrv.store.files import fsync_dir
from mailsrv.store.interfaces import (
    Change,
    FlagMode,
    MailboxesChanged,
    MailboxExists,
    MailboxNameInvalid,
    MailboxNotFound,
    MessageAdded,
    MessagesExpunged,
    OverQuota,
    StoreError,
)


def message(n: int, size: int = 0) -> bytes:
    return f"From: a@example.org\r\nSubject: m{n}\r\n\r\nbody {n}\r\n".encode() + b"z" * size


def assert_counters_agree(store: SQLiteAccountStore) -> None:
    """Every mailbox row's counters equal what its message rows say; usage is their sum."""
    total = 0
    for box in store.mailboxes():
        rows = store.messages(box.id)
        expected = (
            len(rows),
            sum(1 for m in rows if "\\Seen" not in m.flags),
            sum(1 for m in rows if "\\Deleted" in m.flags),
            sum(m.size for m in rows),
            sum(m.size for m in rows if "\\Deleted" in m.flags),
        )
        assert (box.messages, box.unseen, box.deleted, box.size, box.deleted_size) == expected, box
        assert all(m.uid < box.uidnext and m.modseq <= box.highest_modseq for m in rows), box
        total += box.size
    assert store.usage() == total


class StoreSemanticsTests(TestCase):
    def setUp(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="mailsrv-store-"))
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.quota: int | None = None
        self.registry = SQLiteStoreRegistry(self.dir, lambda account: self.quota)
        self.store = self.registry.open("bob")
        self.addCleanup(self.registry.close_all)

    async def test_counters_after_every_kind_of_change(self) -> None:
        s = self.store
        for n in range(6):
            await s.append("INBOX", message(n, n * 10), flags=["\\Seen"] if n % 2 else [])
        assert_counters_agree(s)
        inbox = s.mailbox("INBOX").id
        await s.store_flags(inbox, [1, 2, 3], FlagMode.ADD, ["\\Deleted", "\\Seen"])
        assert_counters_agree(s)
        await s.store_flags(inbox, [2], FlagMode.REMOVE, ["\\Seen"])
        assert_counters_agree(s)
        await s.store_flags(inbox, [4, 5], FlagMode.REPLACE, ["\\Deleted"])
        assert_counters_agree(s)
        await s.copy(inbox, [1, 4, 6], "Archive")
        assert_counters_agree(s)
        await s.move(inbox, [2, 6], "Trash")
        assert_counters_agree(s)
        await s.expunge(inbox, uids=[1])
        assert_counters_agree(s)
        await s.expunge(inbox)
        assert_counters_agree(s)
        await s.rename_mailbox("INBOX", "Old")
        assert_counters_agree(s)
        await s.delete_mailbox("Archive")
        assert_counters_agree(s)
        self.assertEqual(s.usage(), s.mailbox("Trash").size + s.mailbox("Old").size)

    async def test_random_operations_keep_counters_exact(self) -> None:
        rng = random.Random(7)
        s = self.store
        names = ["INBOX", "Archive", "Trash"]
        for _ in range(120):
            box = s.mailbox(rng.choice(names))
            uids = [m.uid for m in s.messages(box.id)]
            pick = rng.sample(uids, min(len(uids), rng.randint(1, 3))) if uids else []
            op = rng.randrange(6)
            if op == 0 or not uids:
                await s.append(
                    box.name, message(rng.randrange(1000), rng.randrange(50)), flags=["\\Seen"] * rng.randint(0, 1)
                )
            elif op == 1:
                mode = rng.choice([FlagMode.ADD, FlagMode.REMOVE, FlagMode.REPLACE])
                await s.store_flags(box.id, pick, mode, rng.sample(["\\Seen", "\\Deleted", "$X", "\\Flagged"], 2))
            elif op == 2:
                await s.expunge(box.id, pick if rng.random() < 0.5 else None)
            elif op == 3:
                await s.copy(box.id, pick, rng.choice(names))
            elif op == 4:
                dest = rng.choice([n for n in names if n != box.name])
                await s.move(box.id, pick, dest)
            else:
                changes = s.changes_since(box.id, max(0, box.highest_modseq - 2))
                self.assertTrue(all(m.modseq > box.highest_modseq - 2 for m in changes.changed))
        assert_counters_agree(s)

    async def test_keywords_compare_case_insensitively(self) -> None:
        s = self.store
        await s.append("INBOX", message(1), flags=["$Label1", "$label1", "\\SEEN"])
        inbox = s.mailbox("INBOX").id
        m = s.message(inbox, 1)
        assert m is not None
        self.assertEqual(m.flags, frozenset({"$Label1", "\\Seen"}))
        self.assertEqual((await s.store_flags(inbox, [1], FlagMode.ADD, ["$LABEL1"])).changed, ())
        result = await s.store_flags(inbox, [1], FlagMode.REMOVE, ["$LABEL1", "\\seen"])
        self.assertEqual(result.changed[0].flags, frozenset())
        self.assertEqual(s.mailbox("INBOX").unseen, 1)

    async def test_changes_since_lists_changed_and_vanished(self) -> None:
        s = self.store
        for n in range(4):
            await s.append("INBOX", message(n))
        box = s.mailbox("INBOX")
        since = box.highest_modseq
        flagged = (await s.store_flags(box.id, [2], FlagMode.ADD, ["\\Flagged"])).changed[0]
        await s.store_flags(box.id, [3], FlagMode.ADD, ["\\Deleted"])
        await s.expunge(box.id)
        added = await s.append("INBOX", message(9))
        changes = s.changes_since(box.id, since)
        self.assertEqual([m.uid for m in changes.changed], [2, added.uid])
        self.assertEqual(changes.vanished, (3,))
        self.assertEqual(s.changes_since(box.id, flagged.modseq).changed[-1].uid, added.uid)
        self.assertEqual(s.mailbox("INBOX").highest_modseq, added.modseq)
        # Modseqs strictly increase per operation.
        self.assertGreater(added.modseq, flagged.modseq)

    async def test_concurrent_appends_get_distinct_increasing_uids(self) -> None:
        s = self.store
        results = await defer.gatherResults([s.append("INBOX", message(n)) for n in range(25)])
        self.assertEqual(sorted(r.uid for r in results), list(range(1, 26)))
        self.assertEqual(len({r.modseq for r in results}), 25)
        box = s.mailbox("INBOX")
        self.assertEqual((box.messages, box.uidnext), (25, 26))
        for r in results:
            m = s.message(box.id, r.uid)
            assert m is not None
            self.assertEqual(s.read(m.message_id), message(int(s.part_tree(m.message_id).envelope.subject[1:])))  # type: ignore[union-attr]

    async def test_rename_with_children_carries_subscriptions(self) -> None:
        s = self.store
        await s.create_mailbox("Lists/python")
        await s.create_mailbox("Lists/twisted/dev")
        await s.set_subscribed("Lists/python", True)
        before = s.mailbox("Lists/twisted/dev").uidvalidity
        await s.rename_mailbox("Lists", "Mail/Lists")
        names = {m.name for m in s.mailboxes()}
        self.assertTrue({"Mail", "Mail/Lists", "Mail/Lists/python", "Mail/Lists/twisted/dev"} <= names)
        self.assertFalse(any(n.startswith("Lists") for n in names))
        self.assertIn("Mail/Lists/python", s.subscriptions())
        self.assertNotIn("Lists/python", s.subscriptions())
        self.assertEqual(s.mailbox("Mail/Lists/twisted/dev").uidvalidity, before)

    async def test_rename_failures_change_nothing(self) -> None:
        s = self.store
        await s.create_mailbox("A/x")
        await s.create_mailbox("B/x")
        with self.assertRaises(MailboxExists):
            await s.rename_mailbox("A", "B")
        await s.delete_mailbox("B")  # B/x stays
        with self.assertRaises(MailboxExists):
            await s.rename_mailbox("A", "B")
        self.assertEqual(s.mailbox("A/x").name, "A/x")
        with self.assertRaises(MailboxNameInvalid):
            await s.rename_mailbox("A", "A/y")
        with self.assertRaises(MailboxNotFound):
            await s.rename_mailbox("Nope", "Other")
        with self.assertRaises(MailboxExists):
            await s.rename_mailbox("A", "Trash")
        self.assertNotIn("B", {m.name for m in s.mailboxes()})

    async def test_rename_inbox_into_its_child(self) -> None:
        s = self.store
        await s.append("INBOX", message(1))
        await s.rename_mailbox("inbox", "INBOX/2025")
        self.assertEqual(s.mailbox("INBOX").messages, 0)
        self.assertEqual(s.mailbox("INBOX/2025").messages, 1)
        self.assertEqual(s.mailbox("INBOX").uidnext, 2)  # UIDs are never reused

    async def test_delete_and_recreate_gets_new_uidvalidity(self) -> None:
        s = self.store
        await s.create_mailbox("Tmp")
        await s.append("Tmp", message(1))
        old = s.mailbox("Tmp")
        path = s.files.path(s.messages(old.id)[0].message_id)
        await s.delete_mailbox("Tmp")
        with self.assertRaises(MailboxNotFound):
            s.mailbox_by_id(old.id)
        new = await s.create_mailbox("Tmp")
        self.assertNotEqual(new.uidvalidity, old.uidvalidity)
        self.assertEqual((new.uidnext, new.messages), (1, 0))
        with self.assertRaises(StoreError):
            await s.delete_mailbox("INBOX")
        uidvalidities = [m.uidvalidity for m in s.mailboxes()]
        self.assertEqual(len(set(uidvalidities)), len(uidvalidities))
        # The file goes in the thread pool; wait for it.
        for _ in range(100):
            if not path.exists():
                break
            await task.deferLater(reactor, 0.01)
        self.assertFalse(path.exists())

    async def test_subscriptions_may_name_missing_mailboxes(self) -> None:
        s = self.store
        await s.set_subscribed("Ghost", True)
        self.assertIn("Ghost", s.subscriptions())
        await s.set_subscribed("Ghost", False)
        self.assertNotIn("Ghost", s.subscriptions())
        self.assertTrue(s.mailbox("INBOX").subscribed)

    async def test_invalid_names(self) -> None:
        for bad in ("", "/a", "a/", "a//b", "a*", "a%b", "a\x01"):
            with self.assertRaises(MailboxNameInvalid):
                await self.store.create_mailbox(bad)
        with self.assertRaises(MailboxExists):
            await self.store.create_mailbox("inbox")

    async def test_quota_boundary_and_move_is_free(self) -> None:
        s = self.store
        self.quota = 2 * len(message(1))
        await s.append("INBOX", message(1))
        await s.append("INBOX", message(2))  # exactly at the limit
        with self.assertRaises(OverQuota):
            await s.append("INBOX", message(3))
        moved = await s.move(s.mailbox("INBOX").id, [1], "Archive")
        self.assertEqual(moved.dest_uids, (1,))
        self.assertEqual(s.usage(), self.quota)

    async def test_reads_and_caches(self) -> None:
        s = self.store
        raw = message(5, 100)
        await s.append("INBOX", raw)
        m = s.messages(s.mailbox("INBOX").id)[0]
        self.assertEqual(s.read(m.message_id, 10), raw[10:])
        self.assertEqual(await s.read_async(m.message_id, 3, 4), raw[3:7])
        self.assertIs(s.part_tree(m.message_id), s.part_tree(m.message_id))

    async def test_feed_order_for_move_and_failing_listener(self) -> None:
        s = self.store
        seen: list[tuple[Change, object | None]] = []

        def broken(change: Change, origin: object | None) -> None:
            raise RuntimeError("listener bug")

        s.add_listener(broken)
        s.add_listener(lambda c, o: seen.append((c, o)))
        await s.append("INBOX", message(1))
        me = object()
        await s.move(s.mailbox("INBOX").id, [1], "Archive", origin=me)
        await s.create_mailbox("New")
        kinds = [(type(c).__name__, o is me) for c, o in seen]
        self.assertEqual(
            kinds,
            [("MessageAdded", False), ("MessagesExpunged", True), ("MessageAdded", True), ("MailboxesChanged", False)],
        )
        expunged, added = seen[1][0], seen[2][0]
        assert isinstance(expunged, MessagesExpunged) and isinstance(added, MessageAdded)
        self.assertEqual((expunged.uids, added.message.uid), ((1,), 1))
        self.assertIsInstance(seen[3][0], MailboxesChanged)
        self.flushLoggedErrors(RuntimeError)

    async def test_append_to_missing_mailbox_fails_through_deferred(self) -> None:
        d = self.store.append("Nope", message(1))
        with self.assertRaises(MailboxNotFound):
            await d

    async def test_appends_follow_mailbox_renames_deletes_and_undone_creates(self) -> None:
        """Appends find their mailbox from a remembered name -> id map: every change of the mailbox list
        must show in it."""
        s = self.store
        await s.create_mailbox("A")
        await s.append("A", message(1))  # remembered: A
        await s.rename_mailbox("A", "B")
        await s.append("B", message(2))
        self.assertEqual(s.mailbox("B").messages, 2)
        with self.assertRaises(MailboxNotFound):
            await s.append("A", message(3))
        await s.create_mailbox("A")  # a new mailbox under the old name
        await s.append("A", message(4))
        self.assertEqual((s.mailbox("A").messages, s.mailbox("B").messages), (1, 2))
        await s.delete_mailbox("A")
        with self.assertRaises(MailboxNotFound):
            await s.append("A", message(5))
        # RFC 9051 §6.3.6: renaming INBOX makes a new mailbox and leaves INBOX in place.
        await s.append("INBOX", message(6))
        await s.rename_mailbox("INBOX", "Old")
        await s.append("INBOX", message(7))
        self.assertEqual((s.mailbox("INBOX").messages, s.mailbox("Old").messages), (1, 1))
        assert_counters_agree(s)

    async def test_mailbox_deleted_while_file_is_written(self) -> None:
        s = self.store
        await s.create_mailbox("Gone")
        d = s.append("Gone", message(1))
        await s.delete_mailbox("Gone")  # before the thread pool has synced the file
        with self.assertRaises(MailboxNotFound):
            await d
        assert_counters_agree(s)
        ok = await s.append("INBOX", message(2))
        self.assertEqual(ok.uid, 1)
        for _ in range(100):
            ahead = {str(i) for i in s.files.made_ahead()}  # empty files for later messages
            files = [p for p in (s.root / "msg").rglob("*") if p.is_file() and p.name not in ahead]
            if len(files) == 1:
                break
            await task.deferLater(reactor, 0.01)
        self.assertEqual(len(files), 1)

    async def test_concurrent_appends_share_sync_rounds_and_commits(self) -> None:
        s = self.store
        commits: list[int] = []
        commit_now = s._commit_now

        def counting_commit() -> None:
            commits.append(len(s._pending_rows))
            commit_now()

        def slow_fsync_dir(path: Path) -> None:
            time.sleep(0.02)  # a disk slow enough that renames arrive while a directory fsync runs
            fsync_dir(path)

        s._commit_now = counting_commit  # type: ignore[method-assign]
        with mock.patch("mailsrv.store.files.fsync_dir", slow_fsync_dir):
            await defer.gatherResults([s.append("INBOX", message(n)) for n in range(20)])
        # Directory fsyncs are shared between the pool threads writing files (one bucket, plus
        # the account's message root once for the new bucket).
        self.assertLess(s.files.directory_fsyncs, 12)
        self.assertEqual(sum(commits), 20)
        self.assertLess(len(commits), 20)
        assert_counters_agree(s)

    async def test_close_with_appends_in_flight(self) -> None:
        s = self.store
        d = s.append("INBOX", message(1))
        self.registry.close_all()
        try:
            await d
        except StoreError:
            pass  # still writing its file when the store closed: not acknowledged
        store = self.registry.open("bob")
        assert_counters_agree(store)
        files = [p for p in (store.root / "msg").rglob("*") if p.is_file()]
        self.assertEqual(len(files), store.mailbox("INBOX").messages)
