"""SEARCH programs (RFC 9051 §6.4.4): parsing, evaluation over index, part tree and decoded
message text, and the rule that the message file is read only when cheap keys cannot decide."""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailsrv.imapserver.errors import ParseError
from mailsrv.imapserver.reader import Reader
from mailsrv.imapserver.search import MAX_KEYS, SearchContext, SearchRequest, parse_search
from mailsrv.message.parse import parse_message
from mailsrv.message.part import Part
from mailsrv.ops import search as engine
from mailsrv.store.interfaces import MessageInfo

UTC = datetime.UTC

MESSAGES = [
    # uid, flags, internal date, raw
    (
        2,
        {"\\Seen"},
        datetime.datetime(2026, 11, 1, 23, 30, tzinfo=UTC),
        b"From: Alice <alice@example.org>\r\nTo: bob@example.org\r\nSubject: =?utf-8?q?Gr=C3=BC=C3=9Fe?= aus Berlin\r\n"
        b"Date: Sun, 1 Nov 2026 10:00:00 +0000\r\nX-Project: Mailsrv\r\n\r\nplain ascii body\r\n",
    ),
    (
        5,
        {"\\Flagged", "$Work"},
        datetime.datetime(2026, 11, 3, 8, 0, tzinfo=UTC),
        b"From: bob@example.org\r\nTo: alice@example.org\r\nCc: carol@example.net\r\nSubject: invoice\r\n"
        b"Date: Tue, 3 Nov 2026 10:00:00 +0000\r\nContent-Type: text/plain; charset=iso-8859-1\r\n"
        b"Content-Transfer-Encoding: quoted-printable\r\n\r\nDer B=E4r tanzt STRASSE\r\n",
    ),
    (
        9,
        set(),
        datetime.datetime(2026, 11, 5, 8, 0, tzinfo=UTC),
        "From: dora@example.org\r\nSubject: Ünïcödé\r\nX-Project: Ärger\r\nDate: Thu, 5 Nov 2026 10:00:00 +0000\r\n"
        "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n".encode()
        + b"SGVsbG8gV8OWUkxE\r\n",  # "Hello WÖRLD"
    ),
]


@dataclass
class FakeStore:
    raws: dict[int, bytes]
    reads: list[int] = field(default_factory=list)

    def messages(self, mailbox_id: int) -> list[MessageInfo]:
        return [MessageInfo(uid, 10 + uid, frozenset(flags), len(raw), date, uid) for uid, flags, date, raw in MESSAGES]

    def part_tree(self, message_id: int) -> Part:
        return parse_message(self.raws[message_id])

    def read(self, message_id: int) -> bytes:
        self.reads.append(message_id)
        return self.raws[message_id]

    async def messages_async(self, mailbox_id: int) -> list[MessageInfo]:
        return self.messages(mailbox_id)

    async def part_trees(self, message_ids: list[int]) -> dict[int, Part]:
        return {i: self.part_tree(i) for i in message_ids}

    async def scan_bodies(self, message_ids: list[int], match: Callable[[int, bytes], bool]) -> list[int]:
        hits = []
        for i in message_ids:
            try:
                raw = self.read(i)
            except FileNotFoundError:
                continue  # as the store does: expunged meanwhile
            if match(i, raw):
                hits.append(i)
        return hits

    async def read_async(self, message_id: int) -> bytes:
        return self.read(message_id)


CONTEXT = SearchContext(count=3, max_uid=9, saved=frozenset({2, 9}), recent=frozenset({9}))


def search(program: bytes, context: SearchContext = CONTEXT) -> tuple[list[int], FakeStore]:
    """Parses like the IMAP session does and runs the engine inline over the view [2, 5, 9]."""
    store = FakeStore({uid: raw for uid, _, _, raw in MESSAGES})
    request = parse_search(Reader(program), context)
    result = asyncio.run(
        engine.search(store, 1, request.program, scheduler=engine.InlineScheduler(), view=[2, 5, 9])  # type: ignore[arg-type]
    )
    return result.uids, store


@pytest.mark.parametrize(
    ("program", "uids"),
    [
        (b"ALL", [2, 5, 9]),
        (b"SEEN", [2]),
        (b"UNSEEN", [5, 9]),
        (b"FLAGGED NOT SEEN", [5]),
        (b"KEYWORD $work", [5]),
        (b"UNKEYWORD $Work", [2, 9]),
        (b"OR SEEN FLAGGED", [2, 5]),
        (b"(OR SEEN FLAGGED) NOT 1", [5]),
        (b"2:*", [5, 9]),
        (b"*", [9]),
        (b"UID 5:100", [5, 9]),
        (b"UID *", [9]),
        (b"$", [2, 9]),
        (b"UID $", [2, 9]),
        (b"RECENT", [9]),
        (b"NEW", [9]),
        (b"OLD", [2, 5]),
        (b"LARGER 190", [5, 9]),
        (b"SMALLER 190", [2]),
        (b"SINCE 3-Nov-2026", [5, 9]),
        (b"BEFORE 3-Nov-2026", [2]),
        (b"ON 1-Nov-2026", [2]),
        (b"SENTON 3-Nov-2026", [5]),
        (b"SENTBEFORE 3-Nov-2026", [2]),
        (b"SENTSINCE 3-Nov-2026", [5, 9]),
        (b"MODSEQ 15", [5, 9]),
        (b"FROM alice", [2]),
        (b"FROM ALICE@EXAMPLE", [2]),
        (b"TO alice", [5]),
        (b"CC carol", [5]),
        (b"BCC carol", []),
        ('SUBJECT "grüße"'.encode(), [2]),
        ("CHARSET UTF-8 SUBJECT {8+}\r\nünïcö".encode(), [9]),
        (b"SUBJECT berlin", [2]),
        (b"HEADER X-Project mailsrv", [2]),
        ('HEADER X-Project "ärger"'.encode(), [9]),
        (b'HEADER X-Project ""', [2, 9]),
        ('BODY "bär"'.encode(), [5]),
        ('BODY "wörld"'.encode(), [9]),
        (b"BODY ascii", [2]),
        (b"TEXT invoice", [5]),
        (b"TEXT tanzt", [5]),
        (b"NOT TEXT example.org", []),
        (b"BODY strasse", [5]),
    ],
)
def test_keys(program: bytes, uids: list[int]) -> None:
    assert search(program)[0] == uids


def test_file_read_only_when_cheap_keys_cannot_decide() -> None:
    matched, store = search(b"FLAGGED BODY tanzt")
    assert matched == [5] and store.reads == [5]
    matched, store = search(b"OR SEEN BODY hello")
    assert matched == [2, 9] and store.reads == [5, 9]
    _, store = search(b"SUBJECT invoice")
    assert store.reads == []


def test_return_options_and_charset() -> None:
    req = parse_search(Reader(b"RETURN (MIN max COUNT save) CHARSET us-ascii ALL"))
    assert isinstance(req, SearchRequest)
    assert req.return_options == ["MIN", "MAX", "COUNT", "SAVE"] and req.charset == "US-ASCII"
    assert parse_search(Reader(b"RETURN () ALL")).return_options == []


@pytest.mark.parametrize(
    "bad",
    [
        b"",
        b"FOO",
        b"SINCE 32-Foo-2026",
        b"OR SEEN",
        b"NOT",
        b"(SEEN",
        b"()",
        b"LARGER x",
        b"RETURN (BOGUS) ALL",
        b"SEEN  ",
        b"0",
        b"HEADER X",
    ],
)
def test_rejects(bad: bytes) -> None:
    with pytest.raises(ParseError):
        parse_search(Reader(bad))


def test_deep_nesting_is_refused_not_a_recursion_error() -> None:
    with pytest.raises(ParseError):
        parse_search(Reader(b"NOT " * 5000 + b"ALL"))
    with pytest.raises(ParseError):
        parse_search(Reader(b"(" * 5000 + b"ALL" + b")" * 5000))


_TOKENS = [
    b"OR",
    b"NOT",
    b"(",
    b")",
    b" ",
    b"ALL",
    b"SEEN",
    b"1:*",
    b"$",
    b"UID",
    b"HEADER",
    b'"x"',
    b"{1}\r\nx",
    b"SINCE",
    b"1-Jan-2026",
    b"RETURN",
    b"CHARSET",
    b"MODSEQ",
    b"5",
    b"*",
    b",",
    b":",
]


@given(st.lists(st.sampled_from(_TOKENS), max_size=25))
def test_token_soup_only_parse_error(tokens: list[bytes]) -> None:
    try:
        parse_search(Reader(b"".join(tokens)))
    except ParseError:
        pass


@given(st.binary(max_size=60))
def test_random_input_only_parse_error(data: bytes) -> None:
    try:
        parse_search(Reader(data))
    except ParseError:
        pass


def test_message_whose_file_vanished_is_skipped() -> None:
    class Vanishing(FakeStore):
        def read(self, message_id: int) -> bytes:
            if message_id == 5:
                raise FileNotFoundError(message_id)  # expunged by another session meanwhile
            return self.raws[message_id]

    store = Vanishing({uid: raw for uid, _, _, raw in MESSAGES})
    program = parse_search(Reader(b"BODY e")).program
    # Message 5 ("Der Bär") would match "e" too.
    result = asyncio.run(engine.search(store, 1, program, scheduler=engine.InlineScheduler()))  # type: ignore[arg-type]
    assert result.uids == [9]


def test_too_many_keys_is_bad_while_parsing() -> None:
    """Issue 17: 10,000 ALL keys on 5,000 messages blocked the reactor for 17.4 s."""
    with pytest.raises(ParseError, match="more than 1000 keys"):
        parse_search(Reader(b" ".join([b"ALL"] * 10_000)))
    with pytest.raises(ParseError, match="more than 1000 keys"):
        group = b"(" + b" ".join([b"SEEN"] * 600) + b")"
        parse_search(Reader(group + b" " + group))
    assert parse_search(Reader(b" ".join([b"ALL"] * MAX_KEYS)))


def test_star_saved_and_recent_resolve_against_the_view() -> None:
    empty = SearchContext()
    assert search(b"*", empty)[0] == []  # "*" of an empty view
    assert search(b"$", empty)[0] == []
    assert search(b"RECENT", empty)[0] == []
    assert search(b"OLD", empty)[0] == [2, 5, 9]
