"""Message data on its way in, and the daemon-wide budget for holding it in memory.

Issue 17 item 7: SMTP kept every message in memory while it arrived, and made copies
after; 20 parallel 49 MB messages from one unauthenticated address took the daemon to
1.98 GB. Now a message being received goes to a `Spool`: its first 64 KB in memory, a
larger one to an anonymous 0600 file under `data/spool/` (unlinked from the start, so a
crash leaves nothing behind). A small message is
read into memory for its delivery; a large one (`STREAM_THRESHOLD`) flows from the file to
the store as a `MessageSource` and is parsed from the stored file. Either way the delivery
first takes its `memory_cost` from the daemon-wide `MemoryBudget`; when the budget is spent
the message is refused with a temporary error and the sender retries.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import IO

from mailsrv.message.source import MessageSource

# Messages at least this large flow from their spool file to the store (never read whole);
# smaller ones are read into memory, which is faster.
STREAM_THRESHOLD = 1 << 20
# What a streamed message costs in memory while it is delivered, whatever its size: chunks of
# the copy, header blocks, the parser's work (taken from the budget instead of its size).
STREAMED_COST = 1 << 20


def memory_cost(size: int) -> int:
    """What a message of `size` octets takes from the `MemoryBudget` while it is delivered."""
    return size if size < STREAM_THRESHOLD else STREAMED_COST


class MemoryBudget:
    """Octets of message data the daemon holds in memory at once, at most `limit`."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def reserve(self, octets: int) -> bool:
        """Takes `octets` from the budget; False (and nothing taken) when they do not fit."""
        if self.used + octets > self.limit:
            return False
        self.used += octets
        return True

    def release(self, octets: int) -> None:
        self.used = max(0, self.used - octets)


class Spool:
    """One message's data as it arrives: the first `IN_MEMORY` octets in memory, the whole
    message in a private temporary file once it grows past that. Most mail is smaller, and
    a file per message (create, unlink, write, read back, close) cost more CPU than the rest
    of receiving it; the memory held per session stays bounded by `IN_MEMORY`."""

    IN_MEMORY = 64 * 1024  # well under STREAM_THRESHOLD: a streamed message is always in a file

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._file: IO[bytes] | None = None
        self._buffer = bytearray()
        self.size = 0

    def write(self, data: bytes) -> None:
        if not data:
            return
        if self._file is None and self.size + len(data) <= self.IN_MEMORY:
            self._buffer += data
        else:
            if self._file is None:
                self._directory.mkdir(mode=0o700, parents=True, exist_ok=True)
                # mkstemp-style: created 0600 and unlinked at once (O_TMPFILE where available).
                self._file = tempfile.TemporaryFile(dir=self._directory)
                self._file.write(self._buffer)
                self._buffer = bytearray()
            self._file.write(data)
        self.size += len(data)

    def source(self) -> MessageSource:
        """The data written so far as a `MessageSource` over the file, valid until `discard`."""
        if self._file is None:
            return MessageSource((bytes(self._buffer),))
        self._file.flush()
        return MessageSource.of_file(self._file, self.size)

    def read(self) -> bytes:
        """All data written so far."""
        if self._file is None:
            return bytes(self._buffer)
        self._file.flush()
        self._file.seek(0)
        data = self._file.read()
        self._file.seek(0, 2)
        return data

    def discard(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        self._buffer = bytearray()
        self.size = 0
