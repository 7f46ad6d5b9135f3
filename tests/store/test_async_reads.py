"""The Deferred forms of the store's reads (what ops/ and the web use): same answers as the
synchronous forms, errors through the Deferred; part trees in bulk; body scans in the files
pool that skip messages whose file is gone."""

from __future__ import annotations

import shutil
import tempfile
import threading
from pathlib import Path

from twisted.trial.unittest import TestCase

from mailsrv.pools import Pools
from mailsrv.store import SQLiteStoreRegistry
from mailsrv.store.interfaces import FlagMode, InvalidRequest, MailboxNotFound

MSG = b"From: a@example.org\r\nTo: b@example.org\r\nSubject: hi\r\n\r\nbody %d\r\n"


class AsyncReadTests(TestCase):
    def setUp(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="mailsrv-store-"))
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.registry = SQLiteStoreRegistry(self.dir, lambda account: None)
        self.store = self.registry.open("alice")
        self.addCleanup(self.registry.close_all)

    async def _fill(self, n: int) -> int:
        for i in range(n):
            await self.store.append("INBOX", MSG % i)
        return self.store.mailbox("INBOX").id

    async def test_reads_answer_like_the_synchronous_forms(self) -> None:
        inbox = await self._fill(3)
        await self.store.store_flags(inbox, [2], FlagMode.ADD, ["\\Seen"])
        s = self.store
        self.assertEqual(await s.mailboxes_async(), s.mailboxes())
        self.assertEqual(await s.mailbox_async("inbox"), s.mailbox("INBOX"))
        self.assertEqual(await s.mailbox_by_id_async(inbox), s.mailbox_by_id(inbox))
        self.assertEqual(await s.subscriptions_async(), s.subscriptions())
        self.assertEqual(await s.messages_async(inbox), s.messages(inbox))
        self.assertEqual(await s.message_async(inbox, 2), s.message(inbox, 2))
        self.assertIsNone(await s.message_async(inbox, 99))
        self.assertEqual(await s.changes_since_async(inbox, 1), s.changes_since(inbox, 1))
        self.assertEqual(await s.usage_async(), s.usage())

    async def test_errors_come_through_the_deferred(self) -> None:
        with self.assertRaises(MailboxNotFound):
            await self.store.mailbox_async("nope")
        with self.assertRaises(MailboxNotFound):
            await self.store.mailbox_by_id_async(999)
        with self.assertRaises(InvalidRequest):
            await self.store.part_trees(list(range(self.store.MAX_TREES + 1)))

    async def test_part_trees_leave_out_expunged_messages(self) -> None:
        inbox = await self._fill(3)
        ids = [m.message_id for m in self.store.messages(inbox)]
        await self.store.store_flags(inbox, [1], FlagMode.ADD, ["\\Deleted"])
        await self.store.expunge(inbox)
        trees = await self.store.part_trees(ids)
        self.assertEqual(sorted(trees), ids[1:])
        self.assertEqual(trees[ids[1]].envelope.subject, "hi")  # type: ignore[union-attr]

    async def test_scan_bodies_runs_in_the_files_pool_and_skips_missing_files(self) -> None:
        inbox = await self._fill(4)
        ids = [m.message_id for m in self.store.messages(inbox)]
        (self.store.files.path(ids[0])).unlink()  # gone behind the index's back
        threads: set[str] = set()

        def match(message_id: int, raw: bytes) -> bool:
            threads.add(threading.current_thread().name)
            return b"body 2" in raw or b"body 0" in raw

        self.assertEqual(await self.store.scan_bodies(ids, match), [ids[2]])
        self.assertNotIn(threading.main_thread().name, threads)


class FilesPoolTests(TestCase):
    """`scan_bodies` goes to the store's files pool, not another one."""

    async def test_scan_uses_the_files_runner(self) -> None:
        from mailsrv.pools import inline_pools

        used: list[str] = []
        base = inline_pools()

        def counting(name: str, runner: object) -> object:
            def run(f: object, /, *args: object, **kwargs: object) -> object:
                used.append(name)
                return runner(f, *args, **kwargs)  # type: ignore[operator]

            return run

        pools = Pools(
            fsync=counting("fsync", base.fsync),  # type: ignore[arg-type]
            files=counting("files", base.files),  # type: ignore[arg-type]
            dns=base.dns,
            hashing=base.hashing,
        )
        root = Path(tempfile.mkdtemp(prefix="mailsrv-store-"))
        self.addCleanup(shutil.rmtree, root, True)
        registry = SQLiteStoreRegistry(root, lambda account: None, pools=pools)
        self.addCleanup(registry.close_all)
        store = registry.open("bob")
        await store.append("INBOX", MSG % 1)
        ids = [m.message_id for m in store.messages(store.mailbox("INBOX").id)]
        used.clear()
        self.assertEqual(await store.scan_bodies(ids, lambda i, raw: True), ids)
        self.assertEqual(used, ["files"])
