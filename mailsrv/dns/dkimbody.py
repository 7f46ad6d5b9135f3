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
# The white space relaxed canonicalisation changes: runs of two or more, and lone tabs (a lone
# space stays as it is, and most text has nothing else).
_WSP_TO_SPACE = re.compile(rb"[ \t]{2,}|\t")
# A partial line longer than this is hashed up to its last non-white-space octet, so that a
# body without line breaks is never held whole.
_MAX_CARRY = 64 * 1024


class BodyHasher:
    """Complete lines are canonicalised a chunk at a time (a few C-level passes over the
    bytes, not a Python step per line); the empty lines at the end of what was seen so far are
    held back (`_pending`), since they count only if text follows them."""

    def __init__(self, relaxed: bool, algorithm: str = "sha256", limit: int | None = None) -> None:
        self._relaxed = relaxed
        self._hash = hashlib.new(algorithm)
        self._limit = limit
        self._hashed = 0
        self._any_text = False
        self._pending = 0  # CRLFs held back: line ends and empty lines at the end so far
        self._carry = b""  # the current line, not complete yet

    def _emit(self, data: bytes) -> None:
        if self._limit is not None:
            if self._hashed >= self._limit:
                return
            data = data[: self._limit - self._hashed]
        self._hashed += len(data)
        self._hash.update(data)

    def _text(self, text: bytes) -> None:
        """Canonical text that does not end with a CRLF: the held-back CRLFs come first."""
        if self._pending:
            self._emit(b"\r\n" * self._pending)
            self._pending = 0
        self._emit(text)
        self._any_text = True

    def _lines(self, data: bytes) -> None:
        """Complete lines (`data` ends with LF)."""
        if data.count(b"\n") != data.count(b"\r\n"):
            # A line ends at LF, and a CR right before it belongs to the line end.
            data = data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        if self._relaxed:
            if b"\t" in data or b"  " in data:
                data = _WSP_TO_SPACE.sub(b" ", data)
            if b" \r\n" in data:
                # RFC 6376 §3.4.4: no white space at line ends (one space at most, by now).
                data = data.replace(b" \r\n", b"\r\n")
        # The CRLFs at the end: those after the last text, or after the last CR that is text
        # (a CR not followed by LF: in "\r\r\n" the first one).
        text_end = len(data.rstrip(b"\r\n"))
        double_cr = data.rfind(b"\r\r", text_end)
        if double_cr >= 0:
            text_end = double_cr + 1
        if text_end:
            self._text(data[:text_end])
        self._pending += (len(data) - text_end) // 2

    def update(self, chunk: bytes) -> None:
        data = self._carry + chunk if self._carry else chunk
        last = data.rfind(b"\n")
        if last < 0:
            self._carry = data
        else:
            self._carry = data[last + 1 :]
            self._lines(data[: last + 1])
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
        if self._carry:
            # A last line without a line break of its own: canonicalisation adds one.
            line = self._carry
            if self._relaxed:
                # dkimpy deletes white space only before a CRLF, so here it only compresses.
                line = _WSP_RUN.sub(b" ", line)
            self._text(line)
            self._carry = b""
            self._emit(b"\r\n")
        elif self._any_text:
            self._emit(b"\r\n")  # the empty lines at the end are dropped (RFC 6376 §3.4.3, §3.4.4)
        elif not self._relaxed:
            self._emit(b"\r\n")  # simple: an empty body is one CRLF (RFC 6376 §3.4.3)
        return self._hash.digest()
