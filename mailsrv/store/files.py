"""Message files: durable writes with group commit, links for COPY, and orphan clean-up.

A message file is `msg/<bucket>/<id>` below the account directory, where the bucket keeps
directories small. Durability order (DESIGN.md "Storage"): write the file to a temporary
name, fsync it, rename it into place, fsync its directory (and the root when the bucket is
new); only then does the caller commit the index row. Writes that arrive while a batch is
being synced wait for the next batch, so concurrent deliveries share one round of directory
fsyncs (group commit), and the file fsyncs of a batch run in parallel threads.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred, DeferredList, ensureDeferred
from twisted.python.failure import Failure

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


@dataclass
class _Batch:
    writes: list[tuple[int, bytes | MessageSource]] = field(default_factory=list)
    links: list[tuple[int, int]] = field(default_factory=list)  # (source id, new id)
    waiters: list[Deferred[None]] = field(default_factory=list)


class MessageFiles:
    """The message files of one account. Methods are called from the reactor thread; durable
    writes run through `run_fsync` (the fsync pool), removals through `run_files`."""

    def __init__(self, root: Path, reactor: Any, run_fsync: Runner, run_files: Runner) -> None:
        self.root = root
        self._reactor = reactor
        self._run_fsync = run_fsync
        self._run_files = run_files
        root.mkdir(parents=True, exist_ok=True)
        self._pending: _Batch | None = None
        self._syncing = False
        # Bucket directories whose entry in the root is known durable.
        self._durable_buckets: set[Path] = set()

    def path(self, message_id: int) -> Path:
        return message_path(self.root, message_id)

    def write(self, message_id: int, data: bytes | MessageSource) -> Deferred[None]:
        """Fires when the file is durably in place. A `MessageSource` is copied in chunks,
        never held whole in memory (issue 17 item 7)."""
        batch = self._batch()
        batch.writes.append((message_id, data))
        d: Deferred[None] = Deferred()
        batch.waiters.append(d)
        return d

    def link(self, pairs: Iterable[tuple[int, int]]) -> Deferred[None]:
        """Hard-links existing files to new ids (COPY); fires when durable."""
        batch = self._batch()
        batch.links.extend(pairs)
        d: Deferred[None] = Deferred()
        batch.waiters.append(d)
        return d

    def _batch(self) -> _Batch:
        if self._pending is None:
            self._pending = _Batch()
        if not self._syncing:
            self._start_sync()
        return self._pending

    def _start_sync(self) -> None:
        self._syncing = True
        # Let the writes of this reactor turn join the batch before it starts.
        self._reactor.callLater(0, self._sync)

    def _sync(self) -> None:
        batch = self._pending
        self._pending = None
        if batch is None:
            self._syncing = False
            return
        d = ensureDeferred(self._sync_batch(batch))

        def finished(result: object) -> None:
            for w in batch.waiters:
                if isinstance(result, Failure):
                    w.errback(result)
                else:
                    w.callback(None)
            if self._pending is not None:
                self._sync()
            else:
                self._syncing = False

        d.addBoth(finished)

    async def _sync_batch(self, batch: _Batch) -> None:
        # Each file is written and fsynced in its own pool thread: concurrent fsyncs on one
        # file system are merged into fewer journal commits, which serial fsyncs never are.
        # The directories are fsynced once for the whole batch, after every file.
        writes = [self._run_fsync(self._write_file, message_id, data) for message_id, data in batch.writes]
        results = await DeferredList(writes, consumeErrors=True)
        for _, value in results:
            if isinstance(value, Failure):
                value.raiseException()
        dirs = {self.path(i).parent for i, _ in batch.writes} | {self.path(new).parent for _, new in batch.links}
        # The root changes only when a bucket is new; fsyncing it then makes the bucket (and
        # so the files in it) reachable after a crash. Buckets found at open are synced then.
        new_buckets = bool(dirs - self._durable_buckets)
        await self._run_fsync(self._link_and_sync_dirs, batch.links, dirs, new_buckets)
        self._durable_buckets |= dirs

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

    def _link_and_sync_dirs(self, links: list[tuple[int, int]], dirs: set[Path], new_buckets: bool) -> None:
        for source, new in links:
            target = self.path(new)
            target.parent.mkdir(exist_ok=True)
            os.link(self.path(source), target)
        for d in dirs:
            fsync_dir(d)
        if new_buckets:
            fsync_dir(self.root)

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
            self._durable_buckets.add(bucket)
        fsync_dir(self.root)
        return removed
