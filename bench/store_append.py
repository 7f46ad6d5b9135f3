#!/usr/bin/env python3
"""Store append cost on the reactor thread: what SMTP delivery pays per message in the store.

Appends `--count` 10 KB messages into one account as deliveries (`delivery=True` with a
delivery id each), from `--writers` concurrent writers, on a real reactor with the daemon's
thread pools. Prints per message: the reactor thread's CPU time (`time.thread_time()`), the
SQL statements it ran, the WAL bytes and frames written, and commits and WAL fsyncs.
CPU time, not throughput, so it is usable on a loaded machine (take the median of a few runs).
Syscalls of the reactor thread alone: `strace -c python3 bench/store_append.py` (no -f).

    python bench/store_append.py [--count N] [--writers W] [--dir DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# Run as a script: the checkout, not bench/, goes first on sys.path (bench/queue.py must not
# shadow the standard library's queue module).
sys.path[0] = str(Path(__file__).resolve().parents[1])

from twisted.internet import defer, task  # noqa: E402

from mailsrv.message.part import Part  # noqa: E402
from mailsrv.pools import thread_pools  # noqa: E402
from mailsrv.store import SQLiteStoreRegistry, appending, walsync  # noqa: E402

WAL_FRAME = 4096 + 24  # page size + frame header


def message(n: int) -> bytes:
    """A 10 KB single-part message with the trace fields delivery adds (like smtp-source's)."""
    header = (
        f"Return-Path: <bench@example.net>\r\n"
        f"Delivered-To: alice@example.org\r\n"
        f"Received: from client.example.net (localhost [127.0.0.1])\r\n"
        f"\tby mx.example.org (mailsrv) with ESMTP id Q{n:08d}\r\n"
        f"\tfor <alice@example.org>; Mon, 07 Dec 2026 06:00:00 +0000\r\n"
        f"Authentication-Results: mx.example.org; spf=none smtp.mailfrom=example.net;"
        f" dkim=none; dmarc=none header.from=example.net\r\n"
        f"From: <bench@example.net>\r\n"
        f"To: <alice@example.org>\r\n"
        f"Date: Mon, 07 Dec 2026 06:00:00 +0000\r\n"
        f"Message-Id: <{n}.bench@client.example.net>\r\n"
        f"Subject: bench message {n}\r\n\r\n"
    ).encode()
    return header + (b"La de da de da 1. La de da de da 2. La de da de da 3. La de da de da 4.\r\n" * 137)


def _delivery_id(n: int) -> str:
    """Like ops.delivery.delivery_id: a hash, so rows land at random places of the index."""
    return "smtp:" + hashlib.sha256(b"%d" % n).hexdigest()[:40]


async def _writer(store: Any, first: int, count: int, step: int) -> None:
    for n in range(first, first + count * step, step):
        await store.append("INBOX", message(n), delivery=True, delivery_id=_delivery_id(n))


async def _run(store: Any, start: int, count: int, writers: int) -> None:
    per = count // writers
    await defer.gatherResults([defer.ensureDeferred(_writer(store, start + w, per, writers)) for w in range(writers)])


class Timed:
    """Reactor-thread CPU spent inside some store functions (patched in), the parts of the
    per-message figure that are the store's own work."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.on = False

    def wrap(self, owner: Any, name: str, label: str) -> None:
        f = getattr(owner, name, None)
        if f is None:
            return  # an older version (for before/after comparisons)

        def timed(*args: Any, **kwargs: Any) -> Any:
            if not self.on:
                return f(*args, **kwargs)
            start = time.thread_time()
            try:
                return f(*args, **kwargs)
            finally:
                self.seconds[label] = self.seconds.get(label, 0.0) + time.thread_time() - start

        setattr(owner, name, timed)


async def main(reactor: Any, count: int, writers: int, directory: Path) -> None:
    walsync.CHECKPOINT_EVERY = 1 << 30  # the WAL only grows: its size counts the frames written
    pools = thread_pools(reactor)
    registry = SQLiteStoreRegistry(directory, reactor=reactor, pools=pools)
    store = registry.open("bench")
    timed = Timed()
    timed.wrap(appending, "parse_message", "parse_message")
    timed.wrap(appending, "summarize", "summarize")
    timed.wrap(Part, "to_json", "to_json")
    timed.wrap(type(store), "_write_batch", "rows (SQL)")
    timed.wrap(type(store), "_commit_now", "rows + commit")
    await _run(store, 0, 200, writers)  # warm-up: caches, pool threads, a non-empty index
    statements = [0]
    commits = [0]

    def trace(sql: str) -> None:
        statements[0] += 1
        commits[0] += sql.strip().upper() == "COMMIT"

    wal = directory / "accounts" / "bench" / "index.db-wal"
    wal_before = wal.stat().st_size
    fsyncs_before = store.index_sync.fsyncs
    cpu = time.thread_time()
    wall = time.perf_counter()
    timed.on = True
    await _run(store, 1_000_000, count, writers)
    timed.on = False
    cpu = time.thread_time() - cpu
    wall = time.perf_counter() - wall
    wal_bytes = wal.stat().st_size - wal_before
    fsyncs = store.index_sync.fsyncs - fsyncs_before
    # A second pass with a trace callback counts statements (the callback costs CPU itself).
    store.db.set_trace_callback(trace)
    await _run(store, 2_000_000, count, writers)
    store.db.set_trace_callback(None)
    n = count // writers * writers
    print(f"{n} appends, {writers} writers, {len(message(0))} bytes each, {wall:.2f} s wall")
    print(f"reactor CPU: {cpu / n * 1e6:.0f} us/msg; of it", end="")
    print("; ".join(f" {label} {seconds / n * 1e6:.0f}" for label, seconds in timed.seconds.items()))
    print(f"WAL: {wal_bytes / n:.0f} bytes/msg = {wal_bytes / WAL_FRAME / n:.1f} frames/msg")
    print(f"SQL statements: {statements[0] / n:.1f}/msg; commits: {commits[0] / n:.2f}/msg", end="")
    print(f" ({n / max(commits[0], 1):.1f} msg/commit); WAL fsyncs: {fsyncs / n:.2f}/msg")
    registry.close_all()
    pools.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--writers", type=int, default=10)
    parser.add_argument("--dir", type=Path, help="data directory on the disk to measure (default: a temp dir)")
    args = parser.parse_args()
    directory = args.dir or Path(tempfile.mkdtemp(prefix="mailsrv-bench-append-"))
    try:
        task.react(lambda reactor: defer.ensureDeferred(main(reactor, args.count, args.writers, directory)))
    finally:
        if args.dir is None:
            shutil.rmtree(directory, ignore_errors=True)
