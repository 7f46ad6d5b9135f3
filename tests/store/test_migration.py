"""An account stored by the version-1 store opens with the current code: summaries, sort keys
and thread ids are filled in, nothing else changes, and the index is at the current version.

`data/v1-account/bob` was written by the version-1 store (commit c7e7839) with
`data/make_v1.py`: four messages in INBOX and Sent (a three-message thread, an HTML message
with a JPEG attachment), one expunged message, flags and a keyword."""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
from pathlib import Path

from twisted.trial.unittest import TestCase

from mailsrv.store import SQLiteAccountStore, SQLiteStoreRegistry
from mailsrv.store.interfaces import SortKey, StoreUnavailable
from mailsrv.store.schema import SCHEMA_VERSION

FIXTURE = Path(__file__).parent / "data" / "v1-account"


class MigrationTests(TestCase):
    def setUp(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="mailsrv-migrate-"))
        self.addCleanup(shutil.rmtree, self.dir, True)
        shutil.copytree(FIXTURE, self.dir / "accounts")
        index = self.dir / "accounts" / "bob" / "index.db"
        with sqlite3.connect(index) as db:
            self.assertEqual(db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0], 1)
            self.before = db.execute("SELECT id, mailbox_id, uid, modseq, flags FROM message ORDER BY id").fetchall()
            self.boxes = db.execute("SELECT * FROM mailbox ORDER BY id").fetchall()
        self.registry = SQLiteStoreRegistry(self.dir)
        self.addCleanup(self.registry.close_all)

    async def _open_migrated(self) -> SQLiteAccountStore:
        # The first open starts the migration in a pool thread and answers "unavailable, try
        # again" until it has finished: the reactor never waits for it.
        with self.assertRaises(StoreUnavailable):
            self.registry.open("bob")
        with self.assertRaises(StoreUnavailable):
            self.registry.open("bob")  # still migrating: no second migration
        migrating = self.registry.migrating("bob")
        assert migrating is not None
        await migrating
        self.assertIsNone(self.registry.migrating("bob"))
        return self.registry.open("bob")

    async def test_v1_account_migrates_on_open(self) -> None:
        store = await self._open_migrated()
        self.assertEqual(
            store.db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0], SCHEMA_VERSION
        )
        # Rows and mailboxes are as they were.
        self.assertEqual(
            store.db.execute("SELECT id, mailbox_id, uid, modseq, flags FROM message ORDER BY id").fetchall(),
            self.before,
        )
        boxes = store.db.execute("SELECT * FROM mailbox ORDER BY id").fetchall()
        # Version 1's columns unchanged; the recent_floor column added after them, unknown (NULL).
        self.assertEqual([row[: len(self.boxes[0])] for row in boxes], self.boxes)
        self.assertEqual({row[len(self.boxes[0]) :] for row in boxes}, {(None,)})
        inbox = store.mailbox("INBOX")
        sent = store.mailbox("Sent")
        listed = await store.summaries(inbox.id)
        by_id = {m.summary.message_id: m for m in [*listed, *await store.summaries(sent.id)]}
        self.assertEqual(set(by_id), {"p1@example.org", "p2@example.org", "p3@example.org", "ph@example.org"})
        photos = by_id["ph@example.org"].summary
        self.assertEqual((photos.from_[0].name, photos.subject), ("Émile", "Photos"))
        self.assertTrue(photos.has_attachment)
        self.assertEqual(photos.preview, "Here they are.")
        reply = by_id["p3@example.org"].summary
        self.assertEqual(reply.references, ("p1@example.org", "p2@example.org"))
        self.assertEqual(reply.preview, "See you.")
        # The thread formed across INBOX and Sent as it would have at delivery.
        threads = {by_id[f"p{i}@example.org"].thread_id for i in (1, 2, 3)}
        self.assertEqual(threads, {by_id["p1@example.org"].id})
        self.assertNotEqual(by_id["ph@example.org"].thread_id, by_id["p1@example.org"].thread_id)
        page = await store.list_messages(inbox.id, SortKey.DATE, descending=True, count=10)
        self.assertEqual(
            [m.summary.message_id for m in page.messages], ["ph@example.org", "p3@example.org", "p1@example.org"]
        )
        # New deliveries continue the thread; a reopen does not migrate again.
        await store.append("INBOX", b"Subject: Re: Plans\r\nReferences: <p3@example.org>\r\n\r\nok\r\n")
        self.registry.close_all()
        store = self.registry.open("bob")
        latest = (await store.summaries(store.mailbox("INBOX").id))[-1]
        self.assertEqual(latest.thread_id, by_id["p1@example.org"].thread_id)

    async def test_the_migration_runs_off_the_reactor_thread(self) -> None:
        import threading

        from mailsrv.store import migration

        threads: list[int] = []
        real = migration.fill_summaries

        def fill(*args: object) -> int:
            threads.append(threading.get_ident())
            return real(*args)  # type: ignore[arg-type]

        migration.fill_summaries = fill  # type: ignore[assignment]
        try:
            store = await self._open_migrated()
        finally:
            migration.fill_summaries = real
        self.assertEqual(len(threads), 1)
        self.assertNotEqual(threads[0], threading.get_ident())
        self.assertEqual(len(await store.summaries(store.mailbox("INBOX").id)), 3)


class LazyMigrationTests(TestCase):
    """Start-up opens no account store: an old index migrates when its account is first used,
    one account at a time, with a log line before and after."""

    def test_start_up_does_not_open_or_migrate_stores(self) -> None:
        from twisted.logger import globalLogPublisher

        from mailsrv.service import StoresService
        from tests.ops.world import make_server

        tmp = Path(tempfile.mkdtemp(prefix="mailsrv-lazy-"))
        self.addCleanup(shutil.rmtree, tmp, True)
        server = make_server(tmp)
        self.addCleanup(server.close)
        server.dynamic.add_domain("example.org")
        server.dynamic.add_account("bob", "bob@example.org")
        shutil.copytree(FIXTURE / "bob", server.config.data_dir / "accounts" / "bob")
        index = server.config.data_dir / "accounts" / "bob" / "index.db"

        def version() -> int:
            with sqlite3.connect(index) as db:
                return int(db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0])

        StoresService(server).startService()
        self.assertEqual(version(), 1)  # not touched at start

        events: list[str] = []

        def observe(event: dict[str, object]) -> None:
            if "index of" in str(event.get("log_format", "")):
                events.append(str(event["log_format"]).format(**event))

        globalLogPublisher.addObserver(observe)
        try:
            store = server.stores.open("bob")
        finally:
            globalLogPublisher.removeObserver(observe)
        self.assertEqual(version(), SCHEMA_VERSION)
        self.assertEqual(len(store.messages(store.mailbox("INBOX").id)), 3)
        self.assertEqual(events[0], f"migrating the index of bob from version 1 to {SCHEMA_VERSION}")
        self.assertTrue(events[-1].startswith("index of bob migrated in "), events)
