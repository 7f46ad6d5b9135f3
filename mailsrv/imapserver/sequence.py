"""Sequence sets (RFC 9051 §9 sequence-set) and their resolution to UIDs.

A set is parsed once into ranges; `*` is kept symbolic until resolved against the session's
view of the mailbox, because it means "the largest number in use" at that moment. `$` is
the result saved by SEARCH RETURN (SAVE) (RFC 5182). Ranges may be given high:low.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mailsrv.imapserver.errors import SyntaxError_
from mailsrv.imapserver.reader import Reader

if TYPE_CHECKING:
    from mailsrv.imapserver.selected import SelectedMailbox

STAR = -1  # stands for "*" inside a parsed range


@dataclass(frozen=True)
class SequenceSet:
    ranges: tuple[tuple[int, int], ...]
    saved: bool = False  # "$"

    def contains_number(self, n: int, largest: int) -> bool:
        """Whether `n` is in the set when "*" is `largest` (for SEARCH keys and tests)."""
        for lo, hi in self.ranges:
            a = largest if lo == STAR else lo
            b = largest if hi == STAR else hi
            if min(a, b) <= n <= max(a, b):
                return True
        return False


def _number_or_star(reader: Reader) -> int:
    if reader.take(b"*"):
        return STAR
    return reader.nz_number()


def parse_sequence_set(reader: Reader) -> SequenceSet:
    if reader.take(b"$"):
        return SequenceSet((), saved=True)
    ranges = []
    while True:
        lo = _number_or_star(reader)
        hi = lo
        if reader.take(b":"):
            hi = _number_or_star(reader)
        ranges.append((lo, hi))
        if not reader.take(b","):
            break
    return SequenceSet(tuple(ranges))


def is_sequence_set_start(reader: Reader) -> bool:
    c = reader.peek()
    return c == b"$" or c == b"*" or (c.isdigit() and c != b"")


def resolve(
    seqset: SequenceSet, selected: SelectedMailbox, uid_mode: bool, saved: list[int] | None = None
) -> list[int]:
    """The UIDs (ascending, unique) that `seqset` names in the client's view.

    UID sets name existing UIDs and silently skip missing ones (RFC 9051 §6.4.8); with
    message sequence numbers a number beyond the mailbox is a client error (BAD)."""
    uids = selected.uids
    if seqset.saved:
        present = set(uids)
        return sorted(u for u in (saved or []) if u in present)
    out: set[int] = set()
    if uid_mode:
        largest = uids[-1] if uids else 0
        for lo, hi in seqset.ranges:
            a = largest if lo == STAR else lo
            b = largest if hi == STAR else hi
            a, b = min(a, b), max(a, b)
            start = bisect.bisect_left(uids, a)
            end = bisect.bisect_right(uids, b)
            out.update(uids[start:end])
        return sorted(out)
    count = len(uids)
    for lo, hi in seqset.ranges:
        if count == 0:
            raise SyntaxError_("no messages: message sequence numbers are invalid")
        a = count if lo == STAR else lo
        b = count if hi == STAR else hi
        a, b = min(a, b), max(a, b)
        if b > count:
            raise SyntaxError_(f"message sequence number {b} does not exist (mailbox has {count})")
        out.update(uids[a - 1 : b])
    return sorted(out)
