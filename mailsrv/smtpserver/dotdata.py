"""DATA content (RFC 5321 §4.5.2) handled in bulk: finding the end-of-data line, removing
dot-stuffing and canonicalising line ends, a whole buffer at a time rather than line by line
(per-line Python was the largest cost of receiving a message).

Invariants (the same as reading line by line):
- A line ends at LF; a line whose content, without trailing CRs, is "." ends the data.
- One leading "." is removed from every other line that starts with one.
- Every line end (LF with any CRs before it) becomes CRLF: stored messages are canonical.
  A CR elsewhere stays as it is.
- `at_line_start` is False only after a partial line (no LF within PARTIAL_LINE octets)
  was passed on: its continuation is not a line start.
"""

from __future__ import annotations

import re

PARTIAL_LINE = 64 * 1024

_END_AFTER_LF = re.compile(rb"\n\.\r*\n")
_END_AT_START = re.compile(rb"\.\r*\n")
_LINE_END = re.compile(rb"\r*\n")


def find_end(buf: bytes | bytearray, at_line_start: bool) -> tuple[int, int] | None:
    """(start, end) of the end-of-data line in `buf`, or None when it is not there yet."""
    if at_line_start:
        m = _END_AT_START.match(buf)
        if m:
            return 0, m.end()
    m = _END_AFTER_LF.search(buf)
    if m:
        return m.start() + 1, m.end()
    return None


def unstuff(chunk: bytes, at_line_start: bool) -> bytes:
    """`chunk` (whole lines, the last one ending with LF, or a partial line) as stored."""
    if at_line_start and chunk.startswith(b"."):
        chunk = chunk[1:]
    chunk = chunk.replace(b"\n.", b"\n")
    if b"\r\r" in chunk or chunk.count(b"\n") != chunk.count(b"\r\n"):
        chunk = _LINE_END.sub(b"\r\n", chunk)
    return chunk
