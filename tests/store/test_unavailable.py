"""Idempotent deliveries (`append(..., delivery_id=...)`) and `StoreUnavailable`: the store
says "try again later" when its index or files cannot be used, and nothing half-done stays."""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
import time
from pathlib import Path

from twisted.trial.unittest import TestCase

from mailsrv.imapserver.errors import from_ops_error, from_store_error
from mailsrv.ops import errors as oe
from mailsrv.pools import inline_pools
from mailsrv.smtpserver.replies import reply_for
from mailsrv.store import SQLiteStoreRegistry
from mailsrv.store.account import SQLiteAccountStore
from mailsrv.store.interfaces import DELIVERY_ID_DAYS, FlagMode, StoreUnavailable

MSG = b"From: a@example.org\r\nSubject: hi\r\n\r\nbody\r\n"


def stored_files(store: SQLiteAccountStore) -> list[str]:
    """The message files, without the empty ones made ahead for later messages."""
    ahead = {str(i) for i in store.files.made_ahead()}
    return [f for _, _, names in os.walk(store.files.root) for f in names if f not in ahead]


class StoreTestCase(TestCase):
    def setUp(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="mailsrv-store-"))
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.registry = SQLiteStoreRegistry(self.dir, pools=inline_pools())  # file removals at once
        self.addCleanup(self.registry.close_all)


class DeliveryIdTests(StoreTestCase):
    async def test_a_retried_delivery_returns_the_first_result(self) -> None:
        store = self.registry.open("alice")
        first = await store.append("INBOX", MSG, delivery=True, delivery_id="smtp:1")
        again = await store.append("INBOX", MSG + b"changed", delivery=True, delivery_id="smtp:1")
        self.assertEqual(again, first)
        other = await store.append("INBOX", MSG, delivery=True, delivery_id="smtp:2")
        self.assertEqual(other.uid, first.uid + 1)
        inbox = store.mailbox("INBOX")
        self.assertEqual(inbox.messages, 2)
        files = stored_files(store)
        self.assertEqual(len(files), 2)  # the retry wrote no file

    async def test_concurrent_duplicates_store_one_copy(self) -> None:
        store = self.registry.open("alice")
        # Both are in flight at once (the second started before the first committed).
        a = store.append("INBOX", MSG, delivery=True, delivery_id="queue:7")
        b = store.append("INBOX", MSG, delivery=True, delivery_id="queue:7")
        first, second = await a, await b
        self.assertEqual(first, second)
        self.assertEqual(store.mailbox("INBOX").messages, 1)
        self.assertEqual(len(store.messages(store.mailbox("INBOX").id)), 1)
        files = stored_files(store)
        self.assertEqual(len(files), 1)

    async def test_the_id_survives_a_restart_and_expires(self) -> None:
        store = self.registry.open("alice")
        first = await store.append("INBOX", MSG, delivery=True, delivery_id="smtp:1")
        self.registry.close_all()
        store = self.registry.open("alice")
        self.assertEqual(await store.append("INBOX", MSG, delivery=True, delivery_id="smtp:1"), first)
        # Older than the window: forgotten (and trimmed at the next open).
        old = int(time.time()) - DELIVERY_ID_DAYS * 86400 - 10
        store.db.execute("UPDATE delivered SET time = ?", (old,))
        store.db.commit()
        again = await store.append("INBOX", MSG, delivery=True, delivery_id="smtp:1")
        self.assertEqual(again.uid, first.uid + 1)

    def test_delivery_ids_are_trimmed_through_a_time_index(self) -> None:
        # An index of before had delivered_time (time); it is replaced by (time, uid) at open.
        store = self.registry.open("alice")
        store.db.execute("DROP INDEX delivered_by_time")
        store.db.execute("CREATE INDEX delivered_time ON delivered (time)")
        store.db.commit()
        self.registry.close_all()
        store = self.registry.open("alice")
        names = {str(r[0]) for r in store.db.execute("SELECT name FROM sqlite_schema WHERE tbl_name = 'delivered'")}
        self.assertIn("delivered_by_time", names)
        self.assertNotIn("delivered_time", names)
        plan = " ".join(
            str(r[-1]) for r in store.db.execute("EXPLAIN QUERY PLAN DELETE FROM delivered WHERE time < ?", (0,))
        )
        self.assertIn("delivered_by_time", plan)


class UnavailableTests(StoreTestCase):
    def test_an_index_that_cannot_be_opened(self) -> None:
        account = self.dir / "accounts" / "bob"
        account.mkdir(parents=True)
        (account / "index.db").write_bytes(b"this is not a database" * 100)
        with self.assertRaises(StoreUnavailable):
            self.registry.open("bob")
        # Nothing is cached: once repaired, the next open works.
        (account / "index.db").unlink()
        self.assertEqual(self.registry.open("bob").account, "bob")

    async def test_a_failing_commit_is_unavailable_and_undone(self) -> None:
        store = self.registry.open("alice")
        await store.append("INBOX", MSG)
        inbox = store.mailbox("INBOX")
        real_db = store.db

        class FailingCommit:
            """The connection, with a commit that fails as on a full disk."""

            in_transaction = property(lambda self: real_db.in_transaction)

            def __getattr__(self, name: str) -> object:
                return getattr(real_db, name)

            def commit(self) -> None:
                raise sqlite3.OperationalError("database or disk is full")

        store.db = FailingCommit()  # type: ignore[assignment]
        try:
            with self.assertRaises(StoreUnavailable):
                await store.store_flags(inbox.id, [1], FlagMode.ADD, ["\\Seen"])
            with self.assertRaises(StoreUnavailable):
                await store.append("INBOX", MSG)
        finally:
            store.db = real_db
        self.assertEqual(store.message(inbox.id, 1).flags, frozenset())  # type: ignore[union-attr]
        self.assertEqual(store.mailbox("INBOX").messages, 1)

    async def test_a_failing_file_write_is_unavailable(self) -> None:
        store = self.registry.open("alice")

        def full(message_id: int, data: bytes) -> object:
            raise OSError(28, "No space left on device")

        store.files.write = full  # type: ignore[method-assign]
        with self.assertRaises(StoreUnavailable):
            await store.append("INBOX", MSG)
        self.assertEqual(store.mailbox("INBOX").messages, 0)

    async def test_reads_fail_through_the_deferred(self) -> None:
        store = self.registry.open("alice")
        real_db = store.db

        class Broken:
            def execute(self, *args: object) -> None:
                raise sqlite3.OperationalError("disk I/O error")

        store.db = Broken()  # type: ignore[assignment]
        try:
            for read in (store.mailboxes_async(), store.mailbox_async("INBOX"), store.messages_async(1)):
                with self.assertRaises(StoreUnavailable):
                    await read
        finally:
            store.db = real_db


class MappingTests(TestCase):
    """What the protocols answer."""

    def test_imap_says_unavailable(self) -> None:
        self.assertEqual(from_store_error(StoreUnavailable("later")).code, "UNAVAILABLE")
        self.assertEqual(from_ops_error(oe.StoreUnavailable("later")).code, "UNAVAILABLE")

    def test_smtp_says_451(self) -> None:
        reply = reply_for(oe.StoreUnavailable("later"))
        self.assertEqual((reply.code, reply.enhanced), (451, "4.3.0"))
