"""Message files: durable writes with grouped directory fsyncs, links for COPY, and orphan clean-up.

A message file is `msg/<bucket>/<id>` below the account directory, where the bucket keeps
directories small. Durability order (DESIGN.md "Storage"): the file's directory entry and
its content are durable before the caller commits the index row. All of it runs in one call
in the fsync pool (one thread hop per message).

Files are made ahead: the first write that finds no file for its id creates empty files for
the next `PREALLOCATE` ids of its bucket and fsyncs the directory once for all of them. A
write to a file made ahead then only opens it, writes and fsyncs it: one fsync per message
instead of a file fsync, a rename and a directory fsync (measured here: 0.32 instead of
0.6 ms, 0.15 instead of 0.24 ms of CPU). A crash in the middle leaves an empty or partial
file without an index row, which the next open removes like any orphan; a clean close
removes the files made ahead and not used. Writes of concurrent deliveries run in parallel
threads (ext4 merges their fsyncs into fewer journal commits); links (COPY) share directory
fsyncs: a thread whose link happened before a directory fsync started is covered by it
(`DirectorySync`).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred

from mailsrv.message.source import MessageSource
from mailsrv.pools import Runner

# Empty message files made ahead per directory fsync (ids are handed out in order).
PREALLOCATE = 64


def bucket_of(message_id: int) -> str:
    return f"{message_id >> 10:04x}"


def message_path(root: Path, message_id: int) -> Path:
    return root / bucket_of(message_id) / str(message_id)


def fsync_dir(path: Path | str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class DirectorySync:
    """Group commit of one directory's fsync across threads. `sync()` returns once an fsync
    of the directory that started after the call began has completed: the caller's entry
    changes (renames, links) made before the call are then durable. One thread fsyncs at a
    time; the callers that arrived meanwhile share the next fsync.

    Tickets order calls and fsyncs: a caller takes one after its change; the thread that
    fsyncs takes one just before, so that fsync covers every smaller ticket. A plain lock
    (not a condition and counters under it) keeps the per-call Python small: pool threads
    compete with the reactor for the GIL."""

    def __init__(self, path: Path | str) -> None:
        self.path = os.fspath(path)
        self._lock = threading.Lock()
        self._tickets = itertools.count(1)  # next() is atomic
        self._covered = 0  # every ticket up to this one is durable
        self.fsyncs = 0

    def sync(self) -> None:
        mine = next(self._tickets)
        with self._lock:
            if self._covered >= mine:
                return  # an fsync that started after this call's change has completed
            covers = next(self._tickets)
            fsync_dir(self.path)  # on failure nothing is covered: the next caller retries
            self._covered = covers
            self.fsyncs += 1


class MessageFiles:
    """The message files of one account. Methods are called from the reactor thread; durable
    writes and links run through `run_fsync` (the fsync pool), removals through `run_files`."""

    def __init__(self, root: Path, reactor: Any, run_fsync: Runner, run_files: Runner) -> None:
        self.root = root
        self._root_text = os.fspath(root)
        self._reactor = reactor
        self._run_fsync = run_fsync
        self._run_files = run_files
        root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()  # guards the fields below (pool threads use them)
        self._dir_syncs: dict[str, DirectorySync] = {}
        self._root_sync = DirectorySync(self._root_text)
        # Bucket directories known to exist and whose entry in the root is durable. A
        # durable write looks it up without the lock (a set read is atomic) and makes and
        # syncs a bucket only when it is missing: once per 1024 messages.
        self._durable_buckets: set[str] = set()
        self._fsyncs_of_forgotten = 0
        # Ids whose empty file was made ahead with a durable directory entry and is not used
        # yet. Taken with set.remove (atomic); added to under `_ahead_lock`, which links also
        # hold so that an id is never both made ahead and linked.
        self._ahead: set[int] = set()
        self._ahead_lock = threading.Lock()
        self._ahead_upto: dict[str, int] = {}  # per bucket: the highest id made ahead so far

    def path(self, message_id: int) -> Path:
        return message_path(self.root, message_id)

    def _bucket(self, message_id: int) -> str:
        return f"{self._root_text}/{message_id >> 10:04x}"

    def write(self, message_id: int, data: bytes | MessageSource) -> Deferred[None]:
        """Fires when the file is durably in place. A `MessageSource` is copied in chunks,
        never held whole in memory (issue 17 item 7)."""
        d: Deferred[None] = self._run_fsync(self.write_durably, message_id, data)
        return d

    def link(self, pairs: Iterable[tuple[int, int]]) -> Deferred[None]:
        """Hard-links existing files to new ids (COPY); fires when durable."""
        d: Deferred[None] = self._run_fsync(self._link_durably, list(pairs))
        return d

    def write_durably(self, message_id: int, data: bytes | MessageSource) -> None:
        """Writes and fsyncs the message's file, whose directory entry is durable already or
        made so first (blocking: a pool thread). Plain strings and os calls, not pathlib:
        this runs once per message in a pool thread that competes with the reactor for the GIL."""
        bucket = self._bucket(message_id)
        try:
            self._ahead.remove(message_id)
        except KeyError:
            self._make_ahead(bucket, message_id)
        self._write_file(f"{bucket}/{message_id}", data)

    def _make_ahead(self, bucket: str, message_id: int) -> None:
        """Creates the file of `message_id` (a file already there is left as it is) and empty
        files for the following ids of the bucket not made before, then makes their entries
        durable with one directory fsync."""
        with self._ahead_lock:
            try:
                self._ahead.remove(message_id)
                return  # another thread made it meanwhile
            except KeyError:
                pass
            new_bucket = bucket not in self._durable_buckets
            if new_bucket:
                os.makedirs(bucket, exist_ok=True)
            made: list[int] = []
            try:
                os.close(os.open(f"{bucket}/{message_id}", os.O_WRONLY | os.O_CREAT, 0o600))
                start = max(message_id + 1, self._ahead_upto.get(bucket, 0) + 1)
                end = min(message_id + PREALLOCATE, (message_id | 1023) + 1)  # within the bucket
                for ahead in range(start, end):
                    try:
                        fd = os.open(f"{bucket}/{ahead}", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                    except FileExistsError:
                        continue  # linked (COPY) already: not ours to hand out
                    os.close(fd)
                    made.append(ahead)
                self._syncer(bucket).sync()
                if new_bucket:
                    self._bucket_durable(bucket)
                self._ahead_upto[bucket] = max(self._ahead_upto.get(bucket, 0), end - 1)
            except BaseException:
                for unused in (message_id, *made):  # best effort; the next open removes what stays
                    with contextlib.suppress(OSError):
                        os.unlink(f"{bucket}/{unused}")
                raise
            self._ahead.update(made)

    def made_ahead(self) -> frozenset[int]:
        """Ids whose empty file exists, made ahead and not used yet (no message of theirs)."""
        return frozenset(self._ahead)

    def discard_unused(self) -> None:
        """Removes the files made ahead and not used (at close; after a crash the next open
        removes them as orphans)."""
        with self._ahead_lock:
            unused, self._ahead = self._ahead, set()
        for message_id in unused:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(f"{self._bucket(message_id)}/{message_id}")

    def _link_durably(self, pairs: list[tuple[int, int]]) -> None:
        buckets: set[str] = set()
        with self._ahead_lock:  # a link target is never also made ahead (see `_make_ahead`)
            for source, new in pairs:
                bucket = self._bucket(new)
                if bucket not in buckets and bucket not in self._durable_buckets:
                    os.makedirs(bucket, exist_ok=True)
                buckets.add(bucket)
                target = f"{bucket}/{new}"
                if new in self._ahead:
                    self._ahead.remove(new)
                    os.unlink(target)  # its empty file made ahead
                os.link(self.path(source), target)
        for bucket in buckets:
            self._syncer(bucket).sync()
        for bucket in buckets - self._durable_buckets:
            self._bucket_durable(bucket)

    def _bucket_durable(self, bucket: str) -> None:
        """Makes a new bucket's entry in the root durable (so the files in it are reachable
        after a crash); buckets found at open are synced then."""
        self._root_sync.sync()
        with self._lock:
            self._durable_buckets.add(bucket)
            # A bucket fills once per 1024 messages: its syncer is not needed for long.
            if len(self._dir_syncs) > 8:
                for directory in sorted(self._dir_syncs)[:-4]:
                    self._fsyncs_of_forgotten += self._dir_syncs.pop(directory).fsyncs
            if len(self._ahead_upto) > 8:
                for directory in sorted(self._ahead_upto)[:-4]:
                    del self._ahead_upto[directory]  # O_EXCL keeps a late write there safe

    def _syncer(self, directory: str) -> DirectorySync:
        syncer = self._dir_syncs.get(directory)
        if syncer is None:
            with self._lock:
                syncer = self._dir_syncs.get(directory)
                if syncer is None:
                    syncer = self._dir_syncs[directory] = DirectorySync(directory)
        return syncer

    @property
    def directory_fsyncs(self) -> int:
        """Directory fsyncs made so far (group commit shows as fewer fsyncs than writes)."""
        with self._lock:
            syncers = [*self._dir_syncs.values(), self._root_sync]
            return self._fsyncs_of_forgotten + sum(s.fsyncs for s in syncers)

    def _write_file(self, path: str, data: bytes | MessageSource) -> None:
        """Writes and fsyncs an existing (empty) file; on failure removes it, so no partial
        file is left behind by this process."""
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
        try:
            try:
                for chunk in (data,) if isinstance(data, bytes) else data.chunks():
                    view = memoryview(chunk)
                    while view:
                        n = os.write(fd, view)
                        view = view[n:]
                os.fsync(fd)
            finally:
                os.close(fd)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            raise

    def remove_later(self, message_ids: Iterable[int]) -> Deferred[None]:
        """`remove` in the files pool."""
        return self._run_files(self.remove, list(message_ids))

    def remove(self, message_ids: Iterable[int]) -> None:
        """Removes files of expunged messages. A crash before this leaves orphans, which
        `remove_orphans` deletes at the next start."""
        for message_id in message_ids:
            try:
                os.unlink(self.path(message_id))
            except FileNotFoundError:
                pass

    def remove_orphans(self, known_ids: set[int]) -> int:
        """Deletes temporary files and files without an index row; returns how many. Also
        fsyncs every bucket and the root, so buckets found here count as durable."""
        removed = 0
        for bucket in self.root.iterdir() if self.root.exists() else ():
            if not bucket.is_dir():
                continue
            for f in bucket.iterdir():
                name = f.name
                if name.startswith(".") or not name.isdigit() or int(name) not in known_ids:
                    f.unlink()
                    removed += 1
            # A bucket made just before a crash may exist without being durable yet.
            fsync_dir(bucket)
            with self._lock:
                self._durable_buckets.add(os.fspath(bucket))
        fsync_dir(self.root)
        return removed
