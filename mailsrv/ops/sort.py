"""Sorting search results (RFC 5256 §3 SORT, RFC 5957 DISPLAYFROM/DISPLAYTO): one order for
IMAP SORT/ESORT and, later, the webmail's list.

`sort` runs the search engine (`mailsrv.ops.search`) and orders its matches by a list of
`Criterion`s; ties after every criterion keep the view's order (message sequence number,
RFC 5256 §3). The values come from `Summary`, built per message from the index (size,
arrival) and the envelope stored at delivery in the part tree (no message file is read):

- ARRIVAL: internal date; SIZE: octets; DATE: the Date: header's time in UTC, or the
  internal date when it is missing or unparseable (RFC 5256 §2.2);
- FROM / TO / CC: the local part (addr-mailbox) of the first address of the field (group
  markers skipped), "" when none;
- DISPLAYFROM / DISPLAYTO (RFC 5957 §3): the first address's display name, RFC 2047
  decoded, or its addr-spec when it has none;
- SUBJECT: the base subject (`mailsrv.message.basesubject`, RFC 5256 §2.1).

Strings compare with `collate`: full Unicode case folding then NFKD (compatibility
decomposition), an approximation of i;unicode-casemap (RFC 5051), which RFC 5256 allows in
place of its minimum, i;ascii-casemap; for ASCII text the two orders are the same.

Cost: the search's cost, plus one cached part-tree read per match on the reactor thread in
slices (`Scheduler.pause` every `SLICE` messages) and one sort, O(n log n).
"""

from __future__ import annotations

import datetime
import email.utils
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from mailsrv.message.basesubject import base_subject
from mailsrv.message.parse import decode_text
from mailsrv.message.part import EnvelopeAddress, Part
from mailsrv.ops import search as engine
from mailsrv.store.interfaces import AccountStore

SortKey = Literal["arrival", "cc", "date", "from", "size", "subject", "to", "displayfrom", "displayto"]
SORT_KEYS: frozenset[str] = frozenset(SortKey.__args__)  # type: ignore[attr-defined]
SLICE = 500  # summaries built between two pauses of the reactor


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
    arrival: float  # internal date, POSIX seconds
    sent: float  # Date: header in POSIX seconds (UTC), or `arrival`
    from_: str
    to: str
    cc: str
    display_from: str
    display_to: str
    subject: str  # base subject
    reply_or_forward: bool
    message_id: str | None  # "<...>" as in the header, or None
    in_reply_to: str | None
    store_id: int  # the store's message id (to read headers the envelope lacks)
    header: tuple[int, int] = (0, 0)  # offset and length of the header block in the file


def collate(text: str) -> str:
    """The comparison form of a string (see the module notes)."""
    return unicodedata.normalize("NFKD", text.casefold())


def _first(addrs: tuple[EnvelopeAddress, ...]) -> EnvelopeAddress | None:
    # Group start and end markers have no host (RFC 9051 §7.5.2): skipped.
    return next((a for a in addrs if a.mailbox is not None and a.host is not None), None)


def _mailbox(addrs: tuple[EnvelopeAddress, ...]) -> str:
    a = _first(addrs)
    return a.mailbox or "" if a is not None else ""


def _display(addrs: tuple[EnvelopeAddress, ...]) -> str:
    """RFC 5957 §3: the display name, or the addr-spec when the name is empty."""
    a = _first(addrs)
    if a is None:
        return ""
    name = (decode_text(a.name) or "").strip() if a.name else ""
    return name or f"{a.mailbox}@{a.host}"


def sent_time(date_header: str | None) -> float | None:
    """The Date: header as POSIX seconds (UTC), None when missing or unparseable."""
    if not date_header:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(date_header)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed is None:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.UTC)  # "-0000": UTC, no zone information
    try:
        return parsed.timestamp()
    except (OverflowError, ValueError, OSError):
        return None


def summarize(match: engine.Match, tree: Part) -> Summary:
    m = match.message
    arrival = m.internal_date.timestamp()
    env = tree.envelope
    if env is None:
        return Summary(
            match.position, m.uid, m.size, arrival, arrival, "", "", "", "", "", "", False, None, None, m.message_id
        )
    subject, reply_or_forward = base_subject(decode_text(env.subject))
    return Summary(
        position=match.position,
        uid=m.uid,
        size=m.size,
        arrival=arrival,
        sent=sent_time(env.date) or arrival,
        from_=_mailbox(env.from_),
        to=_mailbox(env.to),
        cc=_mailbox(env.cc),
        display_from=_display(env.from_),
        display_to=_display(env.to),
        subject=subject,
        reply_or_forward=reply_or_forward,
        message_id=env.message_id,
        in_reply_to=env.in_reply_to,
        store_id=m.message_id,
        header=(tree.header_start, tree.body_start - tree.header_start),
    )


async def summaries(store: AccountStore, matches: Sequence[engine.Match], scheduler: engine.Scheduler) -> list[Summary]:
    out: list[Summary] = []
    for i, match in enumerate(matches):
        if i and i % SLICE == 0:
            await scheduler.pause()
        try:
            tree = store.part_tree(match.message.message_id)
        except Exception:
            tree = Part("text", "plain")  # expunged meanwhile: sorts with empty values
        out.append(summarize(match, tree))
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


def order(items: Sequence[Summary], criteria: Sequence[Criterion]) -> list[Summary]:
    """`items` sorted by `criteria`; ties in view order. Stable sorts from the last criterion
    to the first, each ascending or reversed, give exactly that order."""
    out = sorted(items, key=lambda s: s.position)
    for criterion in reversed(criteria):
        # Reversing a stable sort would also reverse ties: sort descending instead.
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
    return order(await summaries(store, result.matches, scheduler), criteria), result
