"""A message that is not held in memory: bytes in memory followed by regions of open files.

Issue 17 item 7: a large message arrives into a private spool file (mailsrv/spool.py) and
flows from there to the store without ever being read whole: the delivery prepends its
trace fields as bytes, the store copies the file region into the message file in chunks,
and parsing reads the stored file. A `MessageSource` describes such a message as a list of
segments: `bytes`, or a `FileRegion` (an open file, an offset and a length).

Files are read with `os.pread`, so several readers (pool threads) may share one file. The
owner of a file (the spool) keeps it open until every reader is done.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import IO

from mailsrv.message.parse import header_end

CHUNK = 1 << 20  # octets read from a file at once
# A header block longer than this is cut when read for its fields: real ones are a few KiB.
MAX_HEADER_BLOCK = 1 << 20


@dataclass(frozen=True)
class FileRegion:
    file: IO[bytes]
    offset: int
    length: int

    def chunks(self, start: int = 0, length: int | None = None, size: int = CHUNK) -> Iterator[bytes]:
        """The region's bytes from `start` (relative), at most `length` of them, in chunks."""
        fd = self.file.fileno()
        position = self.offset + start
        left = self.length - start if length is None else min(length, self.length - start)
        while left > 0:
            data = os.pread(fd, min(size, left), position)
            if not data:
                raise OSError(f"message file shorter than expected ({left} octets missing)")
            position += len(data)
            left -= len(data)
            yield data


Segment = bytes | FileRegion


class MessageSource:
    """A message as segments. Its size is known; its bytes are read in chunks on demand."""

    def __init__(self, segments: Sequence[Segment]) -> None:
        self.segments: tuple[Segment, ...] = tuple(
            s for s in segments if (len(s) if isinstance(s, bytes) else s.length)
        )
        self.size = sum(len(s) if isinstance(s, bytes) else s.length for s in self.segments)

    @classmethod
    def of_file(cls, file: IO[bytes], size: int) -> MessageSource:
        return cls([FileRegion(file, 0, size)])

    def __len__(self) -> int:
        return self.size

    def with_head(self, head: bytes) -> MessageSource:
        """This message with `head` (header fields ending in CRLF) in front of it."""
        return MessageSource((head, *self.segments))

    def chunks(self, start: int = 0, length: int | None = None, size: int = CHUNK) -> Iterator[bytes]:
        """The bytes from `start`, at most `length` of them, at most `size` at a time."""
        left = self.size - start if length is None else min(length, self.size - start)
        for segment in self.segments:
            if left <= 0:
                return
            seg_len = _length(segment)
            if start >= seg_len:
                start -= seg_len
                continue
            take = min(left, seg_len - start)
            if isinstance(segment, bytes):
                for i in range(start, start + take, size):
                    yield segment[i : min(i + size, start + take)]
            else:
                yield from segment.chunks(start, take, size)
            left -= take
            start = 0

    def read(self, start: int = 0, length: int | None = None) -> bytes:
        """Bytes into memory: only for bounded lengths, or for small messages."""
        return b"".join(self.chunks(start, length))

    def header_block(self, limit: int = MAX_HEADER_BLOCK) -> bytes:
        """The header up to and including the empty line that ends it, read at most `limit`
        octets far (a header block longer than that is returned cut there)."""
        out = bytearray()
        for chunk in self.chunks(0, limit, 16 * 1024):
            out += chunk
            end = header_end(out, 0, len(out))
            if end < len(out) or _ends_header(out):
                return bytes(out[:end])
        return bytes(out)

    def body(self) -> MessageSource:
        """The message after its header block (the body), as a source."""
        head_len = len(self.header_block())
        return self.tail(head_len)

    def tail(self, start: int) -> MessageSource:
        """The message from offset `start`."""
        out: list[Segment] = []
        for segment in self.segments:
            seg_len = _length(segment)
            if start >= seg_len:
                start -= seg_len
                continue
            if isinstance(segment, bytes):
                out.append(segment[start:])
            else:
                out.append(FileRegion(segment.file, segment.offset + start, segment.length - start))
            start = 0
        return MessageSource(out)


def _length(segment: Segment) -> int:
    return len(segment) if isinstance(segment, bytes) else segment.length


def _ends_header(data: bytearray) -> bool:
    """Whether `data` ends exactly with the empty line that ends a header block."""
    return data.endswith(b"\n\n") or data.endswith(b"\n\r\n") or bytes(data) in (b"\r\n", b"\n")


def message_size(data: bytes | MessageSource) -> int:
    return len(data)


def as_bytes(data: bytes | MessageSource) -> bytes:
    """`data` in memory (for small messages and the few paths that need them whole)."""
    return data if isinstance(data, bytes) else data.read()
