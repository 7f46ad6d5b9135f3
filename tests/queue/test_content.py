"""Message content in the queue: read back as written, from memory for a message just queued
(no file read in the pool) and from its file otherwise; unlinks of finished messages batched
into one pool job while one runs; a dropped message reads as None."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred, ensureDeferred, gatherResults, maybeDeferred
from twisted.trial import unittest

import mailsrv.queue.store as store_module
from mailsrv.address import Address
from mailsrv.queue.interfaces import QueueFilter
from mailsrv.queue.store import SQLiteOutgoingQueue

MESSAGE = b"From: a@a.example\r\nTo: b@b.example\r\n\r\nhello\r\n"


class Content(unittest.TestCase):
    def setUp(self) -> None:
        self.jobs: list[Any] = []  # files-pool jobs run so far
        self.held: list[tuple[Any, tuple[Any, ...], Deferred[Any]]] = []  # jobs held back by the test
        self.hold = False

        def run_files(f: Any, *args: Any) -> Deferred[Any]:
            self.jobs.append(f)
            if self.hold:
                d: Deferred[Any] = Deferred()
                self.held.append((f, args, d))
                return d
            return maybeDeferred(f, *args)

        self.dir = Path(self.mktemp())
        # Writes, unlinks and reads all go through `run_files` here (writes and unlinks run in the
        # fsync pool in the daemon).
        self.queue = SQLiteOutgoingQueue(self.dir, run_fsync=run_files, run_files=run_files)
        self.addCleanup(self.queue.close)

    def enqueue(self, data: bytes = MESSAGE) -> Deferred[int]:
        return self.queue.enqueue(Address.parse("a@a.example"), [Address.parse("b@b.example")], data, "a", False)

    def release_held(self) -> None:
        held, self.held = self.held, []
        for f, args, d in held:
            maybeDeferred(f, *args).chainDeferred(d)

    def test_a_message_just_queued_is_read_from_memory(self) -> Deferred[None]:
        async def go() -> None:
            mid = await self.enqueue()
            jobs = len(self.jobs)
            assert await self.queue.read_content(mid) == MESSAGE
            assert len(self.jobs) == jobs  # no file read
            assert self.queue.path(mid).read_bytes() == MESSAGE  # the file is there all the same

        return ensureDeferred(go())

    def test_an_older_message_is_read_from_its_file(self) -> Deferred[None]:
        self.patch(store_module, "FRESH_CONTENT_BYTES", 2 * len(MESSAGE))

        async def go() -> None:
            first = await self.enqueue()
            for _ in range(3):  # push the first out of the bounded memory
                await self.enqueue()
            jobs = len(self.jobs)
            assert await self.queue.read_content(first) == MESSAGE
            assert len(self.jobs) == jobs + 1
            # A queue opened afresh (a restart) reads files.
            self.queue.close()
            reopened = SQLiteOutgoingQueue(self.dir, run_fsync=maybeDeferred, run_files=maybeDeferred)
            self.addCleanup(reopened.close)
            assert await reopened.read_content(first) == MESSAGE

        return ensureDeferred(go())

    def test_dropped_content_reads_as_none(self) -> Deferred[None]:
        async def go() -> None:
            mid = await self.enqueue()
            await self.queue.drop_content(mid)
            assert not self.queue.path(mid).exists()
            assert await self.queue.read_content(mid) is None
            other = await self.enqueue()
            assert await self.queue.drop(QueueFilter(ids=(other,))) == 1
            assert await self.queue.read_content(other) is None  # an admin drop forgets it too

        return ensureDeferred(go())

    def test_unlinks_asked_for_while_one_runs_share_the_next_job(self) -> Deferred[None]:
        async def go() -> None:
            ids = [await self.enqueue() for _ in range(6)]
            self.hold = True
            jobs = len(self.jobs)
            drops = [self.queue.drop_content(i) for i in ids]
            assert len(self.held) == 1  # the first started alone, the other five wait
            self.release_held()
            assert len(self.held) == 1  # ... and went together
            self.release_held()
            await gatherResults(drops)
            assert len(self.jobs) == jobs + 2
            assert not any(self.queue.path(i).exists() for i in ids)

        return ensureDeferred(go())

    def test_a_failed_unlink_fails_its_batch(self) -> Deferred[None]:
        async def go() -> None:
            mid = await self.enqueue()
            self.patch(self.queue, "path", lambda message_id: self.queue.msg_dir)  # a directory: unlink fails
            try:
                await self.queue.drop_content(mid)
            except OSError:
                pass
            else:
                raise AssertionError("the unlink failed silently")
            self.patch(self.queue, "path", lambda message_id: self.dir / "queue" / "msg" / str(message_id))
            await self.queue.drop_content(mid)  # the next batch runs
            assert not (self.queue.msg_dir / str(mid)).exists()

        return ensureDeferred(go())


class DurableWrites(unittest.TestCase):
    """Content files are written and fsynced in batches: messages queued while one batch is
    being written share the next pool job and its one directory fsync."""

    def setUp(self) -> None:
        self.held: list[tuple[Any, tuple[Any, ...], Deferred[Any]]] = []
        self.jobs = 0

        def run_fsync(f: Any, *args: Any) -> Deferred[Any]:
            self.jobs += 1
            d: Deferred[Any] = Deferred()
            self.held.append((f, args, d))
            return d

        self.queue = SQLiteOutgoingQueue(Path(self.mktemp()), run_fsync=run_fsync, run_files=maybeDeferred)
        self.addCleanup(self.queue.close)

    def run_held(self) -> None:
        held, self.held = self.held, []
        for f, args, d in held:
            maybeDeferred(f, *args).chainDeferred(d)

    def test_messages_queued_meanwhile_share_a_batch_and_its_directory_fsync(self) -> Deferred[None]:
        dir_syncs: list[Path] = []
        real = store_module.fsync_dir

        def counting(path: Path) -> None:
            dir_syncs.append(path)
            real(path)

        self.patch(store_module, "fsync_dir", counting)
        queued: list[int] = []
        self.queue.on_enqueued.append(queued.append)

        async def go() -> None:
            rcpt = [Address.parse("b@b.example")]
            sender = Address.parse("a@a.example")
            enqueues = [self.queue.enqueue(sender, rcpt, MESSAGE + bytes([65 + i]), "a", False) for i in range(5)]
            assert len(self.held) == 1  # the first message's file job; four wait
            self.run_held()  # the first file: then its WAL fsync, and the four files together
            while self.held:
                self.run_held()
            ids = await gatherResults(enqueues)
            assert sorted(queued) == sorted(ids)
            assert dir_syncs.count(self.queue.msg_dir) == 2
            for i, mid in enumerate(ids):
                assert self.queue.path(mid).read_bytes() == MESSAGE + bytes([65 + i])

        return ensureDeferred(go())

    def test_a_message_whose_file_fails_fails_alone(self) -> Deferred[None]:
        real = self.queue._write_file

        def failing(message_id: int, data: bytes) -> None:
            if data.endswith(b"B"):
                raise OSError(28, "No space left on device")
            real(message_id, data)

        self.patch(self.queue, "_write_file", failing)

        async def go() -> None:
            rcpt = [Address.parse("b@b.example")]
            sender = Address.parse("a@a.example")
            first = self.queue.enqueue(sender, rcpt, MESSAGE + b"A", "a", False)
            bad = self.queue.enqueue(sender, rcpt, MESSAGE + b"B", "a", False)
            good = self.queue.enqueue(sender, rcpt, MESSAGE + b"C", "a", False)
            while self.held:
                self.run_held()
            await first
            await good
            try:
                await bad
            except OSError as e:
                assert e.errno == 28
            else:
                raise AssertionError("the failed write was acknowledged")
            # Only the two good messages have rows.
            assert self.queue.db.execute("SELECT COUNT(*) FROM message").fetchone()[0] == 2

        return ensureDeferred(go())

    def test_unlinks_ride_along_with_the_next_write_batch(self) -> Deferred[None]:
        async def go() -> None:
            rcpt = [Address.parse("b@b.example")]
            sender = Address.parse("a@a.example")
            first = self.queue.enqueue(sender, rcpt, MESSAGE, "a", False)
            while self.held:
                self.run_held()
            old = await first
            jobs = self.jobs
            busy = self.queue.enqueue(sender, rcpt, MESSAGE + b"1", "a", False)  # its file job is held
            dropped = self.queue.drop_content(old)
            later = self.queue.enqueue(sender, rcpt, MESSAGE + b"2", "a", False)
            self.run_held()  # the first file; then one job for the unlink and the second file
            assert self.jobs == jobs + 3  # file, (unlink + file), WAL fsync
            while self.held:
                self.run_held()
            await gatherResults([busy, dropped, later])
            assert not self.queue.path(old).exists()

        return ensureDeferred(go())
