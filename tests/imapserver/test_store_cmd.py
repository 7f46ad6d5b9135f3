"""STORE argument parsing (RFC 9051 §6.4.6, RFC 7162 UNCHANGEDSINCE): every form, and random
input gives only ParseError (→ BAD), never another exception."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailsrv.imapserver.cmd_messages import parse_store
from mailsrv.imapserver.errors import ParseError
from mailsrv.imapserver.reader import Reader
from mailsrv.store.interfaces import FlagMode


def test_forms() -> None:
    r = parse_store(Reader(b"1:3,* +FLAGS.SILENT (\\Seen $Work)"))
    assert r.mode == FlagMode.ADD and r.silent and r.flags == ["\\Seen", "$Work"] and r.unchanged_since is None
    r = parse_store(Reader(b"2 (UNCHANGEDSINCE 320162338) -flags \\Deleted \\Seen"))
    assert r.mode == FlagMode.REMOVE and not r.silent and r.flags == ["\\Deleted", "\\Seen"]
    assert r.unchanged_since == 320162338
    r = parse_store(Reader(b"$ FLAGS ()"))
    assert r.mode == FlagMode.REPLACE and r.flags == [] and r.seqset.saved


@pytest.mark.parametrize(
    "bad",
    [
        b"",
        b"1",
        b"1 FLAGS",
        b"1 *FLAGS (\\Seen)",
        b"1 (UNCHANGEDSINCE) FLAGS ()",
        b"1 (FOO 1) FLAGS ()",
        b"1 FLAGS (\\Seen",
        b"1 FLAGS.LOUD ()",
        b"0 FLAGS ()",
        b"1 FLAGS () x",
    ],
)
def test_rejects(bad: bytes) -> None:
    with pytest.raises(ParseError):
        parse_store(Reader(bad))


_TOKENS = [
    b"1",
    b":",
    b"*",
    b",",
    b" ",
    b"(",
    b")",
    b"+FLAGS",
    b"-FLAGS",
    b"FLAGS",
    b".SILENT",
    b"\\Seen",
    b"$x",
    b"UNCHANGEDSINCE",
    b"99",
    b"\\",
]


@given(st.lists(st.sampled_from(_TOKENS), max_size=20))
def test_token_soup_only_parse_error(tokens: list[bytes]) -> None:
    try:
        parse_store(Reader(b"".join(tokens)))
    except ParseError:
        pass


@given(st.binary(max_size=50))
def test_random_input_only_parse_error(data: bytes) -> None:
    try:
        parse_store(Reader(data))
    except ParseError:
        pass
