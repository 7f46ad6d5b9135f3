"""Index commits off the reactor thread: a mutation is visible and announced at its commit,
acknowledged only once the WAL fsync (in the fsync pool) has run; concurrent writers share
fsyncs (group commit); expunged files go only once the expunge is durable; the store's own
fsyncs never run on the reactor thread (SQLite makes none there: synchronous=NORMAL, no
automatic checkpoints)."""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

from twisted.internet import defer
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase

from mailsrv.pools import Pools, inline_pools
from mailsrv.store import SQLiteStoreRegistry, files, walsync
from mailsrv.store.interfaces import Change, FlagMode, MailboxNotFound

MSG = b"From: a@example.org\r\nSubject: hi\r\n\r\nbody\r\n"


class HeldPool:
    """A runner whose calls wait until `release()`: the test decides when an fsync ends."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, tuple[Any, ...], Deferred[Any]]] = []

    def __call__(self, f: Any, /, *args: Any) -> Deferred[Any]:
        d: Deferred[Any] = Deferred()
        self.calls.append((f, args, d))
        return d

    def release(self) -> int:
        calls, self.calls = self.calls, []
        for f, args, d in calls:
            maybeDeferred(f, *args).chainDeferred(d)
        return len(calls)


class WALSyncTests(TestCase):
    def setUp(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="mailsrv-wal-"))
        self.addCleanup(shutil.rmtree, self.dir, True)

    def held_store(self, messages: int) -> tuple[Any, HeldPool, Clock]:
        clock = Clock()
        setup = SQLiteStoreRegistry(self.dir, reactor=clock, pools=inline_pools())
        store = setup.open("alice")
        for _ in range(messages):
            store.append("INBOX", MSG)
            clock.advance(0)
        setup.close_all()
        fsync = HeldPool()
        inline = inline_pools()
        registry = SQLiteStoreRegistry(
            self.dir,
            reactor=clock,
            pools=Pools(fsync=fsync, files=inline.files, dns=inline.dns, hashing=inline.hashing),
        )
        self.addCleanup(registry.close_all)
        return registry.open("alice"), fsync, clock

    def test_acknowledged_only_once_durable(self) -> None:
        store, fsync, clock = self.held_store(3)
        box = store.mailbox("INBOX")
        told: list[Change] = []
        store.add_listener(lambda change, origin: told.append(change))
        d = store.store_flags(box.id, [1], FlagMode.ADD, ["\\Seen"])
        # Committed, visible and announced at once; not acknowledged before the fsync.
        self.assertEqual(store.message(box.id, 1).flags, frozenset({"\\Seen"}))  # type: ignore[union-attr]
        self.assertEqual(len(told), 1)
        self.assertFalse(d.called)
        self.assertEqual(fsync.release(), 1)
        self.assertEqual(len(self.successResultOf(d).changed), 1)

        # Expunge: the file stays until the expunge is durable (a crash before would bring
        # the row back, pointing at a file that must still be there).
        self.successResultOf(self.acked(store.store_flags(box.id, [2], FlagMode.ADD, ["\\Deleted"]), fsync))
        path = store.files.path(store.message(box.id, 2).message_id)  # type: ignore[union-attr]
        gone = store.expunge(box.id)
        self.assertIsNone(store.message(box.id, 2))
        self.assertTrue(path.exists())
        fsync.release()
        self.assertEqual(self.successResultOf(gone), (2,))
        self.assertFalse(path.exists())

        # An append: file write, fsync and directory fsync (one pool call), then the row's
        # commit, then the WAL fsync.
        appended = store.append("INBOX", MSG)
        clock.advance(0)
        self.assertEqual(fsync.release(), 1)  # the message file and its directory
        clock.advance(0)  # the group commit of this turn
        self.assertFalse(appended.called)
        self.assertEqual(store.mailbox("INBOX").messages, 3)
        self.assertEqual(fsync.release(), 1)  # the WAL
        self.assertEqual(self.successResultOf(appended).uid, 4)

    def acked(self, d: Deferred[Any], fsync: HeldPool) -> Deferred[Any]:
        fsync.release()
        return d

    def test_writers_share_fsyncs(self) -> None:
        store, fsync, _ = self.held_store(40)
        box = store.mailbox("INBOX")
        # 40 STOREs of 40 sessions in one reactor turn: the first starts an fsync, the other
        # 39 commit while it runs and share the next one.
        ds = [store.store_flags(box.id, [uid], FlagMode.ADD, ["\\Flagged"]) for uid in range(1, 41)]
        self.assertEqual(fsync.release(), 1)
        self.assertEqual(sum(d.called for d in ds), 1)
        self.assertEqual(fsync.release(), 1)
        self.assertEqual(fsync.release(), 0)
        self.assertTrue(all(d.called for d in ds))
        self.assertEqual(store.index_sync.fsyncs, 2 + 1)  # and one at open

    def test_statement_journals_in_memory(self) -> None:
        # On disk, every write transaction created and unlinked a temporary file.
        store, _, _ = self.held_store(0)
        self.assertEqual(store.db.execute("PRAGMA temp_store").fetchone()[0], 2)  # MEMORY

    def test_appends_of_one_turn_share_one_fsync(self) -> None:
        store, fsync, clock = self.held_store(1)
        before = store.index_sync.fsyncs
        ds = [store.append("INBOX", MSG, delivery=True, delivery_id=f"d{i}") for i in range(3)]
        clock.advance(0)
        self.assertEqual(fsync.release(), 3)  # the three message files
        clock.advance(0)  # one group commit; its three appends wait for one WAL fsync
        self.assertEqual(store.mailbox("INBOX").messages, 4)
        self.assertEqual(fsync.release(), 1)
        self.assertEqual([self.successResultOf(d).uid for d in ds], [2, 3, 4])
        self.assertEqual(store.index_sync.fsyncs - before, 1)

    def test_appends_ready_during_an_fsync_commit_after_it(self) -> None:
        store, fsync, clock = self.held_store(1)
        commits: list[str] = []
        store.db.set_trace_callback(lambda sql: commits.append(sql) if sql.strip().upper() == "COMMIT" else None)
        first = store.append("INBOX", MSG, delivery=True, delivery_id="first")
        clock.advance(0)
        fsync.release()
        clock.advance(0)  # committed; its WAL fsync now runs
        self.assertEqual((len(commits), store.mailbox("INBOX").messages), (1, 2))
        self.assertTrue(store.index_sync.syncing)
        later = [store.append("INBOX", MSG, delivery=True, delivery_id=f"later{i}") for i in range(2)]
        clock.advance(0)
        f, args, d = fsync.calls.pop(0)  # the WAL fsync stays in flight: only the files finish
        fsync.release()
        clock.advance(0)
        fsync.calls.insert(0, (f, args, d))
        # Their rows wait for the running fsync (they could not be durable before the next).
        self.assertEqual((len(commits), store.mailbox("INBOX").messages), (1, 2))
        self.assertEqual(fsync.release(), 1)  # the first WAL fsync ends: both commit at once
        self.assertEqual(self.successResultOf(first).uid, 2)
        self.assertEqual((len(commits), store.mailbox("INBOX").messages), (2, 4))
        self.assertFalse(any(d.called for d in later))
        self.assertEqual(fsync.release(), 1)  # one fsync for both
        self.assertEqual([self.successResultOf(d).uid for d in later], [3, 4])
        self.assertEqual(fsync.release(), 0)

    def test_close_commits_appends_waiting_for_an_fsync(self) -> None:
        store, fsync, clock = self.held_store(1)
        first = store.append("INBOX", MSG)
        clock.advance(0)
        fsync.release()
        clock.advance(0)
        waiting = store.append("INBOX", MSG)
        clock.advance(0)
        f, args, d = fsync.calls.pop(0)
        fsync.release()
        fsync.calls.insert(0, (f, args, d))
        store.close()  # commits the waiting rows (a daemon drains appends before it closes)
        self.assertEqual(fsync.release(), 1)  # the first append's WAL fsync
        self.successResultOf(first)
        self.assertEqual(fsync.release(), 1)  # the waiting append's
        self.successResultOf(waiting)
        registry = SQLiteStoreRegistry(self.dir, reactor=clock, pools=inline_pools())
        self.addCleanup(registry.close_all)
        self.assertEqual(registry.open("alice").mailbox("INBOX").messages, 3)

    async def test_no_fsync_on_the_reactor_thread(self) -> None:
        registry = SQLiteStoreRegistry(self.dir)  # the real reactor and its thread pool
        self.addCleanup(registry.close_all)
        store = registry.open("alice")
        reactor_thread = threading.current_thread()
        on_reactor: list[int] = []
        real_fsync = os.fsync

        def fsync(fd: int) -> None:
            if threading.current_thread() is reactor_thread:
                on_reactor.append(fd)
            real_fsync(fd)

        self.patch(files.os, "fsync", fsync)  # the same os module walsync uses
        results = await defer.gatherResults([store.append("INBOX", MSG) for _ in range(20)])
        box = store.mailbox("INBOX")
        await store.store_flags(box.id, [r.uid for r in results], FlagMode.ADD, ["\\Deleted"])
        self.assertEqual(len(await store.expunge(box.id)), 20)
        await store.create_mailbox("Work")
        await store.rename_mailbox("Work", "Play")
        await store.set_subscribed("Play", True)
        await store.delete_mailbox("Play")
        self.assertEqual(on_reactor, [])
        self.assertGreater(store.index_sync.fsyncs, 1)

    def test_checkpoints_every_so_many_fsyncs(self) -> None:
        # By count, not WAL size: the WAL file keeps its size after a checkpoint, and a size
        # test made every later fsync a checkpoint (commits on the reactor went ~0.2 -> ~10 ms).
        self.patch(walsync, "CHECKPOINT_EVERY", 4)
        store, fsync, _ = self.held_store(2)
        box = store.mailbox("INBOX")
        before = store.index_sync.checkpoints
        for i in range(12):
            d = store.store_flags(box.id, [1], FlagMode.ADD if i % 2 == 0 else FlagMode.REMOVE, ["\\Flagged"])
            fsync.release()
            self.successResultOf(d)
        self.assertEqual(store.index_sync.checkpoints - before, 3)

    def test_a_failing_append_of_a_group_commit_fails_alone(self) -> None:
        store, fsync, clock = self.held_store(1)
        created = store.create_mailbox("Doomed")
        fsync.release()
        self.successResultOf(created)
        first = store.append("INBOX", MSG, delivery=True, delivery_id="same")
        retry = store.append("INBOX", MSG, delivery=True, delivery_id="same")  # the same delivery again
        doomed = store.append("Doomed", MSG)
        other = store.append("INBOX", MSG, delivery=True, delivery_id="other")
        clock.advance(0)
        fsync.release()  # the four files
        store.db.execute("DELETE FROM mailbox WHERE name = 'Doomed'")  # gone while they were written
        store.db.commit()
        clock.advance(0)
        fsync.release()
        stored = self.successResultOf(first)
        self.assertEqual(self.successResultOf(retry), stored)
        self.assertIsInstance(self.failureResultOf(doomed).value, MailboxNotFound)
        self.assertEqual([stored.uid, self.successResultOf(other).uid], [2, 3])
        self.assertEqual(store.mailbox("INBOX").messages, 3)
        self.assertEqual([c.uids for c in self.successResultOf(store.changes_after(0)).changes][-2:], [(2,), (3,)])

    def test_durable_inside_held_starts_its_fsync_at_the_end_even_after_an_error(self) -> None:
        store, fsync, _ = self.held_store(1)
        waiting: list[Deferred[None]] = []
        with self.assertRaises(ZeroDivisionError), store.index_sync.held():
            waiting.append(store.index_sync.durable())
            self.assertEqual(fsync.calls, [])  # not inside
            1 / 0  # noqa: B018
        self.assertEqual(fsync.release(), 1)
        self.successResultOf(waiting[0])
