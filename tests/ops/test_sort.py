"""Sorting (mailsrv.ops.sort, RFC 5256 §3 and RFC 5957): the values of every criterion, the
order with REVERSE and ties, and the property that a sort is a permutation of the search."""

from __future__ import annotations

import asyncio
import datetime
from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from mailsrv.message.parse import parse_message
from mailsrv.message.part import Part
from mailsrv.ops import search as engine
from mailsrv.ops.sort import SORT_KEYS, Criterion, Summary, collate, order, sort, summarize
from mailsrv.store import summary as store_summary
from mailsrv.store.interfaces import MessageInfo, MessageSummary

UTC = datetime.UTC


def info(uid: int, size: int = 100, day: int = 1) -> MessageInfo:
    return MessageInfo(uid, uid, frozenset(), size, datetime.datetime(2026, 1, day, tzinfo=UTC), uid)


def message_summary(raw: bytes, m: MessageInfo) -> MessageSummary:
    when = int(m.internal_date.timestamp())
    header = store_summary.summarize(raw, parse_message(raw), when)
    return MessageSummary(m.message_id, 1, m.uid, m.modseq, tuple(sorted(m.flags)), m.size, when, m.uid, header)


def summary(raw: bytes, uid: int = 1, position: int = 1, **kw: int) -> Summary:
    return summarize(position, message_summary(raw, info(uid, **kw)))


def test_values_of_each_criterion() -> None:
    s = summary(
        b"From: =?utf-8?q?J=C3=BCrgen?= <JUERGEN@example.org>, b@example.org\r\n"
        b"To: undisclosed:;, Zoe <zoe@example.net>\r\n"
        b"Cc: carl@example.com\r\n"
        b"Subject: Re: [team] Plans (fwd)\r\n"
        b"Date: Tue, 1 Jan 2030 01:00:00 +0100\r\n\r\nbody\r\n",
        size=1234,
        day=5,
    )
    assert (s.from_, s.to, s.cc) == ("JUERGEN", "zoe", "carl")
    assert (s.display_from, s.display_to) == ("Jürgen", "Zoe")
    assert (s.subject, s.reply_or_forward) == ("Plans", True)
    assert s.sent == int(datetime.datetime(2030, 1, 1, tzinfo=UTC).timestamp())  # UTC
    assert s.arrival == datetime.datetime(2026, 1, 5, tzinfo=UTC).timestamp()
    assert s.size == 1234


def test_missing_values() -> None:
    s = summary(b"From: bob@example.org\r\nDate: not a date\r\n\r\nbody\r\n", day=7)
    assert (s.to, s.cc, s.subject, s.display_to) == ("", "", "", "")
    assert s.display_from == "bob@example.org"  # no display name: the addr-spec (RFC 5957)
    assert s.sent == s.arrival  # unparseable Date: the internal date (RFC 5256 §2.2)


def test_order_reverse_and_ties() -> None:
    raws = {
        1: b"From: b@x\r\nSubject: beta\r\n\r\n",
        2: b"From: a@x\r\nSubject: Re: alpha\r\n\r\n",
        3: b"From: A@x\r\nSubject: gamma\r\n\r\n",
        4: b"From: c@x\r\nSubject: ALPHA\r\n\r\n",
    }
    items = [summary(raws[p], uid=p, position=p, size=10 * (p % 2)) for p in (1, 2, 3, 4)]
    pos = lambda ss: [s.position for s in ss]  # noqa: E731
    assert pos(order(items, [Criterion("subject")])) == [2, 4, 1, 3]  # ties: view order
    assert pos(order(items, [Criterion("from")])) == [2, 3, 1, 4]  # case-insensitive, ties kept
    assert pos(order(items, [Criterion("from", reverse=True)])) == [4, 1, 2, 3]  # ties still ascending
    assert pos(order(items, [Criterion("size"), Criterion("subject", reverse=True)])) == [2, 4, 3, 1]
    assert pos(order(items, [])) == [1, 2, 3, 4]


def test_collation() -> None:
    assert collate("Straße") == collate("STRASSE")
    assert collate("ﬁ") == collate("fi")  # compatibility decomposition
    assert collate("Émile") > collate("Emile")  # accents are not dropped, only case
    assert collate("a") < collate("B") < collate("c")


@dataclass
class FakeStore:
    infos: list[MessageInfo]
    raws: dict[int, bytes]
    trees: dict[int, Part] = field(default_factory=dict)

    def messages(self, mailbox_id: int) -> list[MessageInfo]:
        return self.infos

    def part_tree(self, message_id: int) -> Part:
        if message_id not in self.trees:
            self.trees[message_id] = parse_message(self.raws[message_id])
        return self.trees[message_id]

    async def messages_async(self, mailbox_id: int) -> list[MessageInfo]:
        return self.messages(mailbox_id)

    async def part_trees(self, message_ids: list[int]) -> dict[int, Part]:
        return {i: self.part_tree(i) for i in message_ids}

    async def summaries(self, mailbox_id: int, uids: list[int]) -> list[MessageSummary]:
        wanted = set(uids)
        return [message_summary(self.raws[m.uid], m) for m in self.infos if m.uid in wanted]


_words = st.sampled_from(["", "Re: ", "Fwd: ", "[x] ", "a", "B", "é", "z z"])
_message = st.tuples(
    st.lists(_words, max_size=4).map("".join),  # subject
    st.sampled_from(["a@x", "B@x", '"Zed" <c@x>', "", "=?utf-8?q?=C3=89?= <e@x>"]),  # from
    st.sampled_from(["Mon, 2 Jan 2026 10:00:00 +0000", "Sun, 1 Jan 2026 23:00:00 -0200", "junk", ""]),
    st.integers(1, 5),  # size
    st.booleans(),  # \Seen
)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(_message, max_size=25),
    st.lists(st.tuples(st.sampled_from(sorted(SORT_KEYS)), st.booleans()), max_size=3),
    st.sampled_from([engine.All(), engine.Flag("\\Seen"), engine.Subject("a")]),
)
def test_sort_is_a_permutation_of_the_search_in_criteria_order(
    messages: list[tuple[str, str, str, int, bool]], keys: list[tuple[str, bool]], program: engine.Key
) -> None:
    infos, raws = [], {}
    for uid, (subject, sender, date, size, seen) in enumerate(messages, 1):
        raws[uid] = f"From: {sender}\r\nSubject: {subject}\r\nDate: {date}\r\n\r\nbody\r\n".encode()
        flags = frozenset({"\\Seen"}) if seen else frozenset()
        infos.append(MessageInfo(uid, uid, flags, size, datetime.datetime(2026, 1, 1 + uid % 3, tzinfo=UTC), uid))
    store = FakeStore(infos, raws)
    criteria = [Criterion(k, r) for k, r in keys]  # type: ignore[arg-type]
    scheduler = engine.InlineScheduler()
    searched = asyncio.run(engine.search(store, 1, program, scheduler=scheduler))  # type: ignore[arg-type]
    ordered, _ = asyncio.run(sort(store, 1, program, criteria, scheduler=scheduler))  # type: ignore[arg-type]
    assert sorted(s.uid for s in ordered) == searched.uids
    # Adjacent messages are in criteria order, ties in view (sequence) order.
    from mailsrv.ops.sort import _value

    def rank(s: Summary) -> tuple[object, ...]:
        parts: list[object] = []
        for c in criteria:
            v = _value(s, c.key)
            parts.append(_Neg(v) if c.reverse else v)
        return (*parts, s.position)

    ranks = [rank(s) for s in ordered]
    assert ranks == sorted(ranks)


class _Neg:
    """Inverts the order of a value (REVERSE) inside a tuple comparison."""

    def __init__(self, v: object) -> None:
        self.v = v

    def __lt__(self, other: _Neg) -> bool:
        return other.v < self.v  # type: ignore[operator,no-any-return]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Neg) and self.v == other.v

    def __hash__(self) -> int:
        return hash(self.v)
