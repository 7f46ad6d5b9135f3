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


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class DirectorySync:
    """Group commit of one directory's fsync across threads. `sync()` returns once an fsync
    of the directory that started after the call began has completed: the caller's entry
    changes (renames, links) made before the call are then durable. One thread fsyncs at a
    time; the callers that arrived meanwhile share the next fsync."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._cond = threading.Condition()
        self._requested = 0  # calls so far
        self._done = 0  # calls covered by a completed fsync
        self._running = False
        self.fsyncs = 0

    def sync(self) -> None:
        with self._cond:
            self._requested += 1
            mine = self._requested
            while self._running and self._done < mine:
                self._cond.wait()
            if self._done >= mine:
                return
            self._running = True
            covers = self._requested  # every call so far made its changes before this fsync
        try:
            fsync_dir(self.path)
        except BaseException:
            # The callers waiting now retry (one of them fsyncs); this one gets the error.
            with self._cond:
                self._running = False
                self._cond.notify_all()
            raise
        with self._cond:
            self._running = False
            self._done = max(self._done, covers)
            self.fsyncs += 1
            self._cond.notify_all()


class MessageFiles:
    """The message files of one account. Methods are called from the reactor thread; durable
    writes and links run through `run_fsync` (the fsync pool), removals through `run_files`."""

    def __init__(self, root: Path, reactor: Any, run_fsync: Runner, run_files: Runner) -> None:
        self.root = root
        self._reactor = reactor
        self._run_fsync = run_fsync
        self._run_files = run_files
        root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()  # guards the two fields below (pool threads use them)
        self._dir_syncs: dict[Path, DirectorySync] = {}
        # Bucket directories whose entry in the root is known durable.
        self._durable_buckets: set[Path] = set()

    def path(self, message_id: int) -> Path:
        return message_path(self.root, message_id)

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
        durable (blocking: a pool thread)."""
        self._write_file(message_id, data)
        self._sync_dirs({self.path(message_id).parent})

    def _link_durably(self, pairs: list[tuple[int, int]]) -> None:
        for source, new in pairs:
            target = self.path(new)
            target.parent.mkdir(exist_ok=True)
            os.link(self.path(source), target)
        self._sync_dirs({self.path(new).parent for _, new in pairs})

    def _syncer(self, directory: Path) -> DirectorySync:
        with self._lock:
            syncer = self._dir_syncs.get(directory)
            if syncer is None:
                syncer = self._dir_syncs[directory] = DirectorySync(directory)
            return syncer

    def _sync_dirs(self, dirs: set[Path]) -> None:
        for d in dirs:
            self._syncer(d).sync()
        with self._lock:
            new_buckets = dirs - self._durable_buckets
        if new_buckets:
            # The root changes only when a bucket is new; fsyncing it then makes the bucket
            # (and so the files in it) reachable after a crash. Buckets found at open are
            # synced then.
            self._syncer(self.root).sync()
            with self._lock:
                self._durable_buckets |= new_buckets
            # A bucket is made once per 1024 messages: its syncer is not needed for long.
            self._forget_old_syncers()

    def _forget_old_syncers(self) -> None:
        with self._lock:
            if len(self._dir_syncs) > 8:
                for directory in sorted(self._dir_syncs)[:-4]:
                    if directory != self.root:
                        del self._dir_syncs[directory]

    @property
    def directory_fsyncs(self) -> int:
        """Directory fsyncs made so far (group commit shows as fewer fsyncs than writes)."""
        with self._lock:
            return sum(s.fsyncs for s in self._dir_syncs.values())

    def _write_file(self, message_id: int, data: bytes | MessageSource) -> None:
        final = self.path(message_id)
        final.parent.mkdir(exist_ok=True)
        tmp = final.with_name(f".{final.name}.tmp")
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
            tmp.unlink(missing_ok=True)
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
                self._durable_buckets.add(bucket)
        fsync_dir(self.root)
        return removed
