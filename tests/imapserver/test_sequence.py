"""Sequence sets (RFC 9051 §9): parsing, `*`, `$`, reversed ranges, resolution, compact re-encoding."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailsrv.imapserver.errors import ParseError, SyntaxError_
from mailsrv.imapserver.reader import Reader
from mailsrv.imapserver.responses import uid_set
from mailsrv.imapserver.sequence import STAR, SequenceSet, parse_sequence_set, resolve


class FakeSelected:
    def __init__(self, uids: list[int]) -> None:
        self.uids = uids


def parse(text: bytes) -> SequenceSet:
    r = Reader(text)
    s = parse_sequence_set(r)
    r.end()
    return s


def test_parse_forms() -> None:
    assert parse(b"1").ranges == ((1, 1),)
    assert parse(b"1:3,7,9:*").ranges == ((1, 3), (7, 7), (9, STAR))
    assert parse(b"*:4").ranges == ((STAR, 4),)
    assert parse(b"$").saved


@pytest.mark.parametrize("bad", [b"0", b"1:0", b"", b",1", b"1,", b"1::2", b"a", b"1:"])
def test_parse_rejects(bad: bytes) -> None:
    with pytest.raises(ParseError):
        parse(bad)


def test_resolve_msn_and_uid() -> None:
    sel = FakeSelected([3, 5, 8, 13])
    assert resolve(parse(b"2:*"), sel, uid_mode=False) == [5, 8, 13]  # type: ignore[arg-type]
    assert resolve(parse(b"*:2"), sel, uid_mode=False) == [5, 8, 13]  # type: ignore[arg-type]
    assert resolve(parse(b"4:9"), sel, uid_mode=True) == [5, 8]  # type: ignore[arg-type]
    # "*" in a UID set is the largest UID, so 100:* includes it (RFC 9051 §6.4.8).
    assert resolve(parse(b"100:*"), sel, uid_mode=True) == [13]  # type: ignore[arg-type]
    assert resolve(parse(b"$"), sel, uid_mode=True, saved=[5, 99, 13]) == [5, 13]  # type: ignore[arg-type]
    with pytest.raises(SyntaxError_):
        resolve(parse(b"5"), sel, uid_mode=False)  # type: ignore[arg-type]


def test_contains_number() -> None:
    s = parse(b"2:4,*")
    assert [n for n in range(1, 11) if s.contains_number(n, 10)] == [2, 3, 4, 10]


def test_uid_set_compact() -> None:
    assert uid_set([1, 2, 3, 7, 9, 10]) == b"1:3,7,9:10"
    assert uid_set([5]) == b"5"


@given(st.lists(st.integers(1, 300), unique=True))
def test_uid_set_round_trip(uids: list[int]) -> None:
    uids.sort()
    if not uids:
        return
    s = parse(uid_set(uids))
    assert [n for n in range(1, 301) if s.contains_number(n, 300)] == uids


@given(st.binary(max_size=30))
def test_random_input_only_parse_error(data: bytes) -> None:
    try:
        parse(data)
    except ParseError:
        pass
