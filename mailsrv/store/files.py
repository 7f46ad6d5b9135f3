"""Message files: durable writes with grouped directory fsyncs, links for COPY, and orphan clean-up.

A message file is `msg/<bucket>/<id>` below the account directory, where the bucket keeps
directories small. Durability order (DESIGN.md "Storage"): write the file to a temporary
name, fsync it, rename it into place, fsync its directory (and the root when the bucket is
new); only then does the caller commit the index row. All of that runs in one call in the
fsync pool (one thread hop per message). Writes of concurrent deliveries run in parallel
threads (ext4 merges their fsyncs into fewer journal commits) and share directory fsyncs:
a thread whose rename happened before a directory fsync started is covered by it, so one
fsync serves every rename made while the previous one ran (`DirectorySync`).
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
        """Writes, fsyncs and renames the file into place, then makes its directory entry
        durable (blocking: a pool thread). Plain strings and os calls, not pathlib: this
        runs once per message in a pool thread that competes with the reactor for the GIL."""
        bucket = self._bucket(message_id)
        new_bucket = bucket not in self._durable_buckets
        if new_bucket:
            os.makedirs(bucket, exist_ok=True)
        self._write_file(bucket, message_id, data)
        self._syncer(bucket).sync()
        if new_bucket:
            self._bucket_durable(bucket)

    def _link_durably(self, pairs: list[tuple[int, int]]) -> None:
        buckets: set[str] = set()
        for source, new in pairs:
            bucket = self._bucket(new)
            if bucket not in buckets and bucket not in self._durable_buckets:
                os.makedirs(bucket, exist_ok=True)
            buckets.add(bucket)
            os.link(self.path(source), f"{bucket}/{new}")
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

    def _write_file(self, bucket: str, message_id: int, data: bytes | MessageSource) -> None:
        final = f"{bucket}/{message_id}"
        tmp = f"{bucket}/.{message_id}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
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
            # No half-written file is left behind (a crash leaves a dot-file that the
            # next start removes).
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        os.replace(tmp, final)

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
