"""Unit and property tests of the command Reader, modified UTF-7 and response quoting."""

from __future__ import annotations

import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailsrv.imapserver import mutf7, responses
from mailsrv.imapserver.errors import ParseError
from mailsrv.imapserver.reader import Reader


def test_atoms_strings_literals() -> None:
    r = Reader(b'a1 LOGIN "al\\"ice" {4}\r\npa s ~{3}\r\nb\x00c NIL x]y')
    assert r.tag() == "a1"
    r.sp()
    assert r.keyword() == "LOGIN"
    r.sp()
    assert r.astring() == 'al"ice'
    r.sp()
    assert r.astring() == "pa s"
    r.sp()
    assert r.string_bytes(allow_literal8=True) == b"b\x00c"
    r.sp()
    assert r.nstring() is None
    r.sp()
    assert r.astring() == "x]y"
    r.end()


def test_literal_plus_and_errors() -> None:
    r = Reader(b"{3+}\r\nabc")
    assert r.astring() == "abc"
    with pytest.raises(ParseError):
        Reader(b"{10}\r\nabc").astring()
    with pytest.raises(ParseError):
        Reader(b"~{1}\r\nx").astring()
    with pytest.raises(ParseError):
        Reader(b'"abc').astring()
    with pytest.raises(ParseError):
        Reader(b"99999999999").number()
    with pytest.raises(ParseError):
        Reader(b"0").nz_number()


def test_mailbox_names() -> None:
    assert Reader(b"inbox").mailbox() == "INBOX"
    assert Reader(b"Inbox/sub").mailbox() == "INBOX/sub"
    assert Reader(b"&AOQ-pfel").mailbox() == "äpfel"
    assert Reader('"äpfel"'.encode(), utf8_names=True).mailbox() == "äpfel"
    # NFD input is normalised to NFC.
    assert Reader('"a\u0308pfel"'.encode(), utf8_names=True).mailbox() == "äpfel"
    assert Reader(b"a%b*").list_mailbox() == "a%b*"


def test_flags_and_dates() -> None:
    assert Reader(b"(\\seen $Junk \\DELETED)").flag_list() == ["\\Seen", "$Junk", "\\Deleted"]
    with pytest.raises(ParseError):
        Reader(b"(\\Recent)").flag_list()
    assert Reader(b"\\Seen \\Flagged").store_flags() == ["\\Seen", "\\Flagged"]
    dt = Reader(b'" 1-Feb-2024 10:11:12 -0130"').date_time()
    assert dt == datetime.datetime(2024, 2, 1, 10, 11, 12, tzinfo=datetime.timezone(-datetime.timedelta(minutes=90)))
    assert Reader(b"1-feb-2024").date() == datetime.date(2024, 2, 1)
    with pytest.raises(ParseError):
        Reader(b"31-Feb-2024").date()


def test_paren_list() -> None:
    r = Reader(b"(1 2 3)")
    assert r.paren_list(r.number) == [1, 2, 3]
    r = Reader(b"()")
    assert r.paren_list(r.number) == []


@given(st.text())
def test_mutf7_roundtrip(name: str) -> None:
    assert mutf7.decode(mutf7.encode(name)) == name


@given(st.binary())
def test_reader_never_crashes(data: bytes) -> None:
    for method in ("astring", "mailbox", "list_mailbox", "flag_list", "date_time", "number", "tag"):
        r = Reader(data)
        try:
            getattr(r, method)()
        except ParseError:
            pass


@given(st.binary(max_size=200))
def test_string_roundtrip(data: bytes) -> None:
    if b"\x00" in data:
        return
    out = responses.string(data)
    assert Reader(out).string_bytes() == data
