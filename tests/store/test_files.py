"""Message files made ahead (store/files.py): one directory fsync serves many writes, unused
files never outlive a clean close, a link (COPY) never loses its file to the clean-up, and
the directory group commit covers exactly the callers whose change came before it."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from unittest import mock

from twisted.trial.unittest import TestCase

from mailsrv.store import files as files_module
from mailsrv.store.files import PREALLOCATE, DirectorySync, MessageFiles


def on_disk(root: Path) -> dict[int, bytes]:
    return {int(p.name): p.read_bytes() for p in root.rglob("*") if p.is_file()}


class MadeAheadTests(TestCase):
    def setUp(self) -> None:
        self.root = Path(self.mktemp()) / "msg"
        self.files = MessageFiles(self.root, None, None, None)  # type: ignore[arg-type]

    def test_one_directory_fsync_serves_a_run_of_writes(self) -> None:
        for message_id in range(1, 1 + PREALLOCATE):
            self.files.write_durably(message_id, b"message %d" % message_id)
        # The new bucket's own fsync, once for the whole run, and the root's for the new bucket.
        self.assertEqual(self.files.directory_fsyncs, 2)
        self.assertEqual({i: b"message %d" % i for i in range(1, 1 + PREALLOCATE)}, on_disk(self.root))

    def test_unused_files_are_removed_at_close_and_used_ones_stay(self) -> None:
        self.files.write_durably(1, b"one")
        self.assertEqual(self.files.made_ahead(), frozenset(range(2, 1 + PREALLOCATE)))
        self.assertEqual(on_disk(self.root)[2], b"")
        self.files.discard_unused()
        self.assertEqual(on_disk(self.root), {1: b"one"})

    def test_a_link_replaces_an_empty_file_made_ahead(self) -> None:
        self.files.write_durably(1, b"one")
        self.files._link_durably([(1, 2)])  # id 2 was made ahead
        self.files.discard_unused()
        self.assertEqual(on_disk(self.root), {1: b"one", 2: b"one"})

    def test_a_link_made_first_is_never_made_ahead_nor_removed(self) -> None:
        # Ids are handed out in order, but a COPY's link may run before a delivery's write.
        self.files.write_durably(1, b"one")
        self.files.discard_unused()
        self.files._link_durably([(1, 1100)])  # another bucket, before anything is made ahead there
        self.files.write_durably(1099, b"delivered")
        self.assertNotIn(1100, self.files.made_ahead())
        self.files.discard_unused()
        self.assertEqual(on_disk(self.root), {1: b"one", 1099: b"delivered", 1100: b"one"})

    def test_made_ahead_stays_within_its_bucket(self) -> None:
        self.files.write_durably(1020, b"x")
        self.assertEqual(self.files.made_ahead(), frozenset(range(1021, 1024)))

    def test_a_failed_write_leaves_no_file(self) -> None:
        with mock.patch.object(files_module.os, "fsync", side_effect=OSError(28, "No space left on device")):
            with self.assertRaises(OSError):
                self.files.write_durably(5, b"lost")
        self.assertEqual(on_disk(self.root), {})  # neither its file nor any made ahead
        self.files.write_durably(5, b"retried")
        self.files.write_durably(6, b"next")
        self.files.discard_unused()
        self.assertEqual(on_disk(self.root), {5: b"retried", 6: b"next"})

    def test_concurrent_writers_each_find_a_durable_file(self) -> None:
        errors: list[BaseException] = []

        def write(ids: range) -> None:
            try:
                for i in ids:
                    self.files.write_durably(i, b"m%d" % i)
            except BaseException as e:  # reported below
                errors.append(e)

        threads = [threading.Thread(target=write, args=(range(k, 400, 4),)) for k in range(1, 5)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(errors, [])
        self.files.discard_unused()
        self.assertEqual(on_disk(self.root), {i: b"m%d" % i for i in range(1, 400)})


class DirectorySyncTests(TestCase):
    def test_a_caller_after_an_fsync_started_gets_its_own(self) -> None:
        path = Path(self.mktemp())
        path.mkdir()
        sync = DirectorySync(path)
        started, release = threading.Event(), threading.Event()
        real = os.fsync

        def slow_fsync(fd: int) -> None:
            started.set()
            release.wait(5)
            real(fd)

        with mock.patch.object(files_module.os, "fsync", side_effect=slow_fsync):
            first = threading.Thread(target=sync.sync)
            first.start()
            started.wait(5)
            # This caller's change came after the running fsync began: it is not covered by it.
            second = threading.Thread(target=sync.sync)
            second.start()
            release.set()
            first.join()
            second.join()
        self.assertEqual(sync.fsyncs, 2)
        sync.sync()
        self.assertEqual(sync.fsyncs, 3)
