"""DATA content (RFC 5321 §4.5.2) handled in bulk: finding the end-of-data line and removing
dot-stuffing, a whole buffer at a time rather than line by line (per-line Python was the
largest cost of receiving a message).

Only CRLF "." CRLF ends the data (RFC 5321 §4.1.1.4), and a line ends only at CRLF. A bare
LF or a bare CR (RFC 5321 §2.3.8 forbids both in SMTP text) is refused by the session, not
read as a line end: a receiver that took LF.LF, CRLF.LF, LF.CRLF or CRLF.CR.CRLF as the end
while the sender's relay did not would run the rest of the data as commands, a second
"smuggled" message with a forged From (issue 17 item 4). Postfix refuses them the same way.

Invariants:
- A line whose content is "." ends the data.
- One leading "." is removed from every other line that starts with one.
- `at_line_start` is False only after a partial line (no LF within PARTIAL_LINE octets)
  was passed on: its continuation is not a line start.
"""

from __future__ import annotations

PARTIAL_LINE = 64 * 1024

END = b"\r\n.\r\n"


def find_end(buf: bytes | bytearray, at_line_start: bool) -> tuple[int, int] | None:
    """(start, end) of the end-of-data line in `buf`, or None when it is not there yet."""
    if at_line_start and buf.startswith(END[2:]):
        return 0, 3
    i = buf.find(END)
    if i >= 0:
        return i + 2, i + 5
    return None


def has_bare_line_end(chunk: bytes | bytearray) -> bool:
    """True when `chunk` holds an LF without a CR before it or a CR without an LF after it.
    (Counting in C is much faster over megabytes than a regular expression.)"""
    crlf = chunk.count(b"\r\n")
    return chunk.count(b"\n") != crlf or chunk.count(b"\r") != crlf


def unstuff(chunk: bytes, at_line_start: bool) -> bytes:
    """`chunk` (whole CRLF lines, or a partial line) without its dot-stuffing."""
    if at_line_start and chunk.startswith(b"."):
        chunk = chunk[1:]
    return chunk.replace(b"\r\n.", b"\r\n")
