"""DKIM body hashes computed over a message read in chunks (RFC 6376 §3.4.3, §3.4.4, §3.7).

dkimpy hashes a body it holds whole in memory, with several canonicalised copies of it. For a
large message read from its spool file (issue 17 item 7), the body hash is computed here
while the body streams past, in memory bounded by the chunk size; dkimpy then checks only
the header signature (mailsrv/dns/dkim.py).

Canonicalisation follows what dkimpy computes, so that both give the same hash: lines end at
LF (a CR right before it belongs to the line end); "simple" keeps lines as they are and drops
empty lines at the end, leaving one CRLF; "relaxed" also deletes white space at line ends,
turns runs of white space into one space and makes a body of only empty lines empty. An
`l=` tag limits the hash to that many octets of the canonical body.
"""

from __future__ import annotations

import hashlib
import re

_WSP_RUN = re.compile(rb"[ \t]+")
# A partial line longer than this is hashed up to its last non-white-space octet, so that a
# body without line breaks is never held whole.
_MAX_CARRY = 64 * 1024


class BodyHasher:
    def __init__(self, relaxed: bool, algorithm: str = "sha256", limit: int | None = None) -> None:
        self._relaxed = relaxed
        self._hash = hashlib.new(algorithm)
        self._limit = limit
        self._hashed = 0
        self._any_text = False
        self._pending_empty = 0  # empty lines not hashed yet: they count only if text follows
        self._carry = b""  # the current line, not complete yet
        self._line_started = False  # part of the current line was hashed already

    def _emit(self, data: bytes) -> None:
        if self._limit is not None:
            data = data[: max(0, self._limit - self._hashed)]
        self._hashed += len(data)
        self._hash.update(data)

    def _text(self, text: bytes) -> None:
        """Non-empty canonical text of the current line."""
        if self._pending_empty:
            self._emit(b"\r\n" * self._pending_empty)
            self._pending_empty = 0
        self._emit(text)
        self._line_started = True
        self._any_text = True

    def _end_line(self, line: bytes) -> None:
        if line.endswith(b"\r"):
            line = line[:-1]
        if self._relaxed:
            line = _WSP_RUN.sub(b" ", line.rstrip(b" \t"))
        if line:
            self._text(line)
        if self._line_started:
            self._emit(b"\r\n")
            self._line_started = False
        else:
            self._pending_empty += 1

    def update(self, chunk: bytes) -> None:
        data = self._carry + chunk if self._carry else chunk
        start = 0
        while True:
            nl = data.find(b"\n", start)
            if nl < 0:
                break
            self._end_line(data[start:nl])
            start = nl + 1
        self._carry = data[start:]
        if len(self._carry) > _MAX_CARRY:
            self._flush_carry()

    def _flush_carry(self) -> None:
        carry = self._carry
        keep = len(carry)
        # Keep the trailing white space (it may end the line) and a CR (it may precede LF).
        while keep > 0 and carry[keep - 1 : keep] in (b" ", b"\t", b"\r"):
            keep -= 1
        if keep == 0:
            if self._relaxed:
                # Only white space (and CRs) so far: a run of white space counts as one.
                self._carry = _WSP_RUN.sub(b" ", carry)
            return
        head, self._carry = carry[:keep], carry[keep:]
        self._text(_WSP_RUN.sub(b" ", head) if self._relaxed else head)

    def digest(self) -> bytes:
        """The body hash; call once, after the last `update`."""
        if self._carry or self._line_started:
            # A last line without a line break of its own: canonicalisation adds one.
            line = self._carry
            if self._relaxed:
                # dkimpy deletes white space only before a CRLF, so here it only compresses.
                line = _WSP_RUN.sub(b" ", line)
            if line:
                self._text(line)
            self._emit(b"\r\n")
            self._line_started = False
            self._carry = b""
        elif not self._any_text and not self._relaxed:
            self._emit(b"\r\n")  # simple: an empty body is one CRLF (RFC 6376 §3.4.3)
        return self._hash.digest()
