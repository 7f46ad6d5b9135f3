"""Sorting search results (RFC 5256 §3 SORT, RFC 5957 DISPLAYFROM/DISPLAYTO): one order for
IMAP SORT/ESORT and, later, the webmail's list.

`sort` runs the search engine (`mailsrv.ops.search`) and orders its matches by a list of
`Criterion`s; ties after every criterion keep the view's order (message sequence number,
RFC 5256 §3). The values come from the store's per-message summaries (`AccountStore.
summaries`: taken from the header at delivery, no message file is read):

- ARRIVAL: internal date; SIZE: octets; DATE: the sent date (the Date header in UTC, or the
  internal date when it is missing or unparseable, RFC 5256 §2.2, applied by the store);
- FROM / TO / CC: the local part (addr-mailbox) of the first address of the field (group
  markers skipped), "" when none;
- DISPLAYFROM / DISPLAYTO (RFC 5957 §3): the first address's display name, RFC 2047
  decoded, or its addr-spec when it has none;
- SUBJECT: the base subject (`mailsrv.message.basesubject`, RFC 5256 §2.1).

Strings compare with `collate`: full Unicode case folding then NFKD (compatibility
decomposition), an approximation of i;unicode-casemap (RFC 5051), which RFC 5256 allows in
place of its minimum, i;ascii-casemap; for ASCII text the two orders are the same.

Cost: the search's cost, one summary read per match (in slices of `SLICE` UIDs, pausing the
reactor in between) and one sort, O(n log n).
"""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from mailsrv.message.basesubject import base_subject
from mailsrv.ops import search as engine
from mailsrv.store.interfaces import AccountStore, MessageSummary, SummaryAddress

SortKey = Literal["arrival", "cc", "date", "from", "size", "subject", "to", "displayfrom", "displayto"]
SORT_KEYS: frozenset[str] = frozenset(SortKey.__args__)  # type: ignore[attr-defined]
SLICE = 500  # UIDs whose summaries are read between two pauses of the reactor


@dataclass(frozen=True)
class Criterion:
    key: SortKey
    reverse: bool = False


@dataclass(frozen=True)
class Summary:
    """What sorting and threading know of one matched message."""

    position: int  # 1-based position in the searched view (IMAP message sequence number)
    uid: int
    size: int
    arrival: int  # internal date, POSIX seconds
    sent: int  # sent date, POSIX seconds (the internal date when the Date header is bad)
    from_: str
    to: str
    cc: str
    display_from: str
    display_to: str
    subject: str  # base subject
    reply_or_forward: bool
    message_id: str  # without <>; "" when none
    in_reply_to: tuple[str, ...] = ()
    references: tuple[str, ...] = ()  # the newest ones, oldest first


def collate(text: str) -> str:
    """The comparison form of a string (see the module notes)."""
    return unicodedata.normalize("NFKD", text.casefold())


def _local_part(addrs: tuple[SummaryAddress, ...]) -> str:
    if not addrs:
        return ""
    addr = addrs[0].addr
    return addr.rpartition("@")[0] if "@" in addr else addr


def _display(addrs: tuple[SummaryAddress, ...]) -> str:
    """RFC 5957 §3: the display name, or the addr-spec when the name is empty."""
    if not addrs:
        return ""
    return addrs[0].name.strip() or addrs[0].addr


def summarize(position: int, m: MessageSummary) -> Summary:
    s = m.summary
    subject, reply_or_forward = base_subject(s.subject)
    return Summary(
        position=position,
        uid=m.uid,
        size=m.size,
        arrival=m.internal_date,
        sent=s.date,
        from_=_local_part(s.from_),
        to=_local_part(s.to),
        cc=_local_part(s.cc),
        display_from=_display(s.from_),
        display_to=_display(s.to),
        subject=subject,
        reply_or_forward=reply_or_forward,
        message_id=s.message_id,
        in_reply_to=s.in_reply_to,
        references=s.references,
    )


async def summaries(
    store: AccountStore, mailbox_id: int, matches: Sequence[engine.Match], scheduler: engine.Scheduler
) -> list[Summary]:
    """The summaries of `matches`, in their order; a message expunged meanwhile is left out."""
    out: list[Summary] = []
    for start in range(0, len(matches), SLICE):
        if start:
            await scheduler.pause()
        chunk = matches[start : start + SLICE]
        found = {m.uid: m for m in await store.summaries(mailbox_id, [m.message.uid for m in chunk])}
        out += [summarize(m.position, found[m.message.uid]) for m in chunk if m.message.uid in found]
    return out


def _value(s: Summary, key: SortKey) -> str | float:
    if key == "arrival":
        return s.arrival
    if key == "date":
        return s.sent
    if key == "size":
        return s.size
    if key == "subject":
        return collate(s.subject)
    if key == "from":
        return collate(s.from_)
    if key == "to":
        return collate(s.to)
    if key == "cc":
        return collate(s.cc)
    if key == "displayfrom":
        return collate(s.display_from)
    return collate(s.display_to)


@functools.total_ordering
class Descending:
    """A value whose order is reversed (REVERSE) inside a key tuple."""

    __slots__ = ("value",)

    def __init__(self, value: str | float) -> None:
        self.value = value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Descending) and self.value == other.value

    def __lt__(self, other: Descending) -> bool:
        return other.value < self.value  # type: ignore[operator]

    def __hash__(self) -> int:
        return hash(self.value)


def sort_key(s: Summary, criteria: Sequence[Criterion]) -> tuple[str | float | Descending, ...]:
    """One comparable key for `s` under `criteria`, ties by UID (the view's order): for
    keeping a sorted list up to date with `bisect` (IMAP CONTEXT=SORT)."""
    parts: list[str | float | Descending] = []
    for c in criteria:
        value = _value(s, c.key)
        parts.append(Descending(value) if c.reverse else value)
    parts.append(s.uid)
    return tuple(parts)


def order(items: Sequence[Summary], criteria: Sequence[Criterion]) -> list[Summary]:
    """`items` sorted by `criteria`; ties in view order. Stable sorts from the last criterion
    to the first, each ascending or reversed, give exactly that order."""
    out = sorted(items, key=lambda s: s.position)
    for criterion in reversed(criteria):
        # reverse=True keeps equal items in their order (reversing afterwards would not).
        out.sort(key=lambda s, k=criterion.key: _value(s, k), reverse=criterion.reverse)  # type: ignore[misc]
    return out


async def sort(
    store: AccountStore,
    mailbox_id: int,
    program: engine.Key,
    criteria: Sequence[Criterion],
    *,
    scheduler: engine.Scheduler,
    view: Sequence[int] | None = None,
) -> tuple[list[Summary], engine.SearchResult]:
    """The matches of `program` in the order of `criteria`, with the search result (for the
    highest modseq). Raises what `search.search` raises."""
    result = await engine.search(store, mailbox_id, program, scheduler=scheduler, view=view)
    return order(await summaries(store, mailbox_id, result.matches, scheduler), criteria), result
