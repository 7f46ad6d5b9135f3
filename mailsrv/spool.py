"""Message data on its way in, and the daemon-wide budget for holding it in memory.

Issue 17 item 7: SMTP kept every message in memory while it arrived, and made copies
after; 20 parallel 49 MB messages from one unauthenticated address took the daemon to
1.98 GB. Now a message being received goes to a `Spool`, an anonymous 0600 file under
`data/spool/` (unlinked from the start, so a crash leaves nothing behind), and only the
delivery reads it into memory, after reserving its size from the `MemoryBudget`. When the
budget is spent the message is refused with a temporary error and the sender retries.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import IO


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
    """One message's data as it arrives, in a private temporary file. Its memory cost is
    the file object's buffer, whatever the message size."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._file: IO[bytes] | None = None
        self.size = 0

    def write(self, data: bytes) -> None:
        if not data:
            return
        if self._file is None:
            self._directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            # mkstemp-style: created 0600 and unlinked at once (O_TMPFILE where available).
            self._file = tempfile.TemporaryFile(dir=self._directory)
        self._file.write(data)
        self.size += len(data)

    def read(self) -> bytes:
        """All data written so far."""
        if self._file is None:
            return b""
        self._file.flush()
        self._file.seek(0)
        data = self._file.read()
        self._file.seek(0, 2)
        return data

    def discard(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        self.size = 0
