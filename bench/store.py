#!/usr/bin/env python3
"""Store benchmark: durable deliveries per second into one account.

Each delivery writes a 10 KB message file, fsyncs it and its directory, and commits the
index row (synchronous=FULL) before it counts, exactly as SMTP delivery and IMAP APPEND do.
Runs one writer, then 10 concurrent writers (whose appends share fsync rounds: group
commit), and prints messages per second for each.

    python bench/store.py [--count N] [--dir DIR]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# Run as a script: the checkout, not bench/, goes first on sys.path, so mailsrv and tests import
# from it and bench/queue.py cannot shadow the standard library's queue module.
sys.path[0] = str(Path(__file__).resolve().parents[1])

from twisted.internet import defer, task  # noqa: E402

from mailsrv.store import SQLiteStoreRegistry  # noqa: E402

MESSAGE = b"From: bench@example.org\r\nTo: user@example.org\r\nSubject: bench\r\n\r\n" + (b"x" * 76 + b"\r\n") * 128


async def _writer(store: Any, count: int) -> None:
    for _ in range(count):
        await store.append("INBOX", MESSAGE)


async def main(reactor: Any, count: int, directory: Path) -> None:
    registry = SQLiteStoreRegistry(directory)
    store = registry.open("bench")
    print(f"message size: {len(MESSAGE)} bytes, data dir: {directory}")
    for writers in (1, 10):
        per_writer = count // writers
        start = time.perf_counter()
        await defer.gatherResults([defer.ensureDeferred(_writer(store, per_writer)) for _ in range(writers)])
        elapsed = time.perf_counter() - start
        total = per_writer * writers
        print(f"{writers:>2} writer(s): {total} deliveries in {elapsed:.2f} s = {total / elapsed:.0f} msg/s")
    registry.close_all()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--dir", type=Path, help="data directory on the disk to measure (default: a temp dir)")
    args = parser.parse_args()
    directory = args.dir or Path(tempfile.mkdtemp(prefix="mailsrv-bench-store-"))
    try:
        task.react(lambda reactor: defer.ensureDeferred(main(reactor, args.count, directory)))
    finally:
        if args.dir is None:
            shutil.rmtree(directory, ignore_errors=True)
