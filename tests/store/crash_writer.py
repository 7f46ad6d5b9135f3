"""Child process of `test_crash.py`: delivers 10 KB messages into one account as fast as it
can, from several concurrent writers (so group commit is exercised), and prints one line
`<n> <uid>` for every append whose Deferred fired, i.e. every acknowledged delivery.

    python -m tests.store.crash_writer DATA_DIR
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from twisted.internet import defer, task

from mailsrv.store import SQLiteStoreRegistry

WRITERS = 4


def message_for(n: int) -> bytes:
    """The deterministic 10 KB message number `n` (the test rebuilds it to compare bytes)."""
    head = f"From: crash@example.org\r\nTo: user@example.org\r\nSubject: crash {n}\r\n\r\n".encode()
    line = f"{n:08d} ".encode() + b"y" * 67 + b"\r\n"
    return head + line * 128


async def _writer(store: Any, first: int) -> None:
    n = first
    while True:
        flags = ["\\Seen"] if n % 3 == 0 else []
        result = await store.append("INBOX", message_for(n), flags=flags)
        sys.stdout.write(f"{n} {result.uid}\n")
        sys.stdout.flush()
        n += WRITERS


async def main(reactor: Any, data_dir: Path) -> None:
    store = SQLiteStoreRegistry(data_dir).open("crash")
    await defer.gatherResults([defer.ensureDeferred(_writer(store, i)) for i in range(WRITERS)])


if __name__ == "__main__":
    task.react(lambda reactor: defer.ensureDeferred(main(reactor, Path(sys.argv[1]))))
