"""FETCH attribute parsing and section cutting (RFC 9051 §6.4.5, RFC 3516 BINARY) over the
stored part tree, without a server."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailsrv.imapserver.errors import ParseError, UserError
from mailsrv.imapserver.fetch import Section, _binary, filter_header, parse_fetch, section_bytes
from mailsrv.imapserver.reader import Reader
from mailsrv.message.parse import parse_message

PDF = b"%PDF-1.4\x00\x01\x02binary\xff"
RAW = (
    b"From: a@example.org\r\nSubject: multi\r\n line\r\nX-Tag: 1\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
    b"--b\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
    b"Gr=C3=BC=C3=9Fe\r\n"
    b"--b\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    + base64.encodebytes(PDF).replace(b"\n", b"\r\n")
    + b"\r\n--b\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\nX-A: 1\r\n\r\ninner text\r\n"
    b"--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: x-weird\r\n\r\nzz\r\n--b--\r\n"
)
ROOT = parse_message(RAW)


def parse(text: bytes):  # type: ignore[no-untyped-def]
    return parse_fetch(Reader(text))


def test_macros() -> None:
    assert [i.name for i in parse(b"ALL").items] == ["FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"]
    assert [i.name for i in parse(b"fast").items] == ["FLAGS", "INTERNALDATE", "RFC822.SIZE"]
    assert [i.name for i in parse(b"FULL").items][-1] == "BODY"


def test_sections_partials_and_peek() -> None:
    req = parse(b"(UID BODY.PEEK[1.2.HEADER.FIELDS (From subject)]<0.100> BINARY[2]<5.3> BINARY.SIZE[1] BODY)")
    uid, body, binary, size, structure = req.items
    assert uid.name == "UID"
    assert body.peek and body.section == Section((1, 2), "HEADER.FIELDS", ("FROM", "SUBJECT"))
    assert body.partial == (0, 100)
    assert body.section.spec() == b"1.2.HEADER.FIELDS (FROM SUBJECT)"
    assert binary.name == "BINARY" and binary.partial == (5, 3) and not binary.peek
    assert size.name == "BINARY.SIZE" and size.section == Section((1,))
    assert structure.name == "BODY" and structure.section is None
    assert req.sets_seen  # BINARY[2] without .PEEK sets \Seen
    assert not parse(b"(BODY.PEEK[] BINARY.SIZE[1] RFC822.SIZE)").sets_seen
    assert parse(b"RFC822.TEXT").sets_seen


def test_modifiers() -> None:
    req = parse(b"(FLAGS) (CHANGEDSINCE 12345 VANISHED)")
    assert req.changed_since == 12345 and req.vanished


@pytest.mark.parametrize(
    "bad",
    [
        b"",
        b"()",
        b"BODY[",
        b"BODY[MIME]",
        b"BINARY[TEXT]",
        b"BODY[1]<1>",
        b"FOO",
        b"(FLAGS",
        b"BODY.PEEK",
        b"(FLAGS) (CHANGEDSINCE)",
        b"(FLAGS) (BOGUS 1)",
        b"BODY[HEADER.FIELDS ()]",
        b"FLAGS extra",
    ],
)
def test_rejects(bad: bytes) -> None:
    with pytest.raises(ParseError):
        parse(bad)


@given(st.binary(max_size=60))
def test_random_input_only_parse_error(data: bytes) -> None:
    try:
        parse(data)
    except ParseError:
        pass


@given(
    st.lists(
        st.sampled_from(
            [
                b"BODY",
                b"[",
                b"]",
                b"1",
                b".",
                b"HEADER",
                b"<",
                b">",
                b" ",
                b"(",
                b")",
                b"PEEK",
                b"FIELDS",
                b"TEXT",
                b"MIME",
                b"BINARY",
                b"SIZE",
                b"0",
            ]
        ),
        max_size=20,
    )
)
def test_token_soup_only_parse_error(tokens: list[bytes]) -> None:
    try:
        parse(b"".join(tokens))
    except ParseError:
        pass


def test_section_bytes() -> None:
    header = section_bytes(RAW, ROOT, Section((), "HEADER"))
    assert header is not None and header.startswith(b"From:") and header.endswith(b"boundary=b\r\n\r\n")
    assert section_bytes(RAW, ROOT, Section()) == RAW
    assert section_bytes(RAW, ROOT, Section((1,))) == b"Gr=C3=BC=C3=9Fe"
    mime = section_bytes(RAW, ROOT, Section((1,), "MIME"))
    assert mime is not None and mime.startswith(b"Content-Type: text/plain") and mime.endswith(b"\r\n\r\n")
    assert section_bytes(RAW, ROOT, Section((3,), "TEXT")) == b"inner text"
    assert section_bytes(RAW, ROOT, Section((3,), "HEADER.FIELDS", ("X-A",))) == b"X-A: 1\r\n\r\n"
    assert section_bytes(RAW, ROOT, Section((3, 1))) == b"inner text"
    assert section_bytes(RAW, ROOT, Section((9,))) is None
    assert section_bytes(RAW, ROOT, Section((1,), "TEXT")) is None  # TEXT of a non-message part


def test_filter_header_keeps_continuations() -> None:
    block = section_bytes(RAW, ROOT, Section((), "HEADER"))
    assert block is not None
    assert filter_header(block, ("subject",), keep=True) == b"Subject: multi\r\n line\r\n\r\n"
    not_ = filter_header(block, ("SUBJECT", "CONTENT-TYPE"), keep=False)
    assert not_ == b"From: a@example.org\r\nX-Tag: 1\r\n\r\n"
    assert filter_header(block, ("Nope",), keep=True) == b"\r\n"


def test_binary_decodes_transfer_encoding() -> None:
    assert _binary(RAW, ROOT, Section((1,))) == "Grüße".encode()
    assert _binary(RAW, ROOT, Section((2,))) == PDF
    with pytest.raises(UserError) as e:
        _binary(RAW, ROOT, Section((4,)))
    assert e.value.code == "UNKNOWN-CTE"


def test_section_may_not_end_with_a_dot() -> None:
    with pytest.raises(ParseError):
        parse(b"BODY[1.]")
    assert parse(b"BODY[1.2]").items[0].section == Section((1, 2))
