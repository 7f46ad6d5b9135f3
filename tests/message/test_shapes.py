"""Part trees of real-world-shaped messages: forwarded messages, encodings, groups, and the
broken MIME that real senders produce. Offsets are checked against the raw bytes."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from mailsrv.message.parse import body_text, decode_body, parse_message
from mailsrv.message.part import EnvelopeAddress, Part

FORWARD = (
    b"Received: from mx.example.net by mail.example.org; Sun, 29 Nov 2026 01:00:00 +0000\r\n"
    b"From: =?utf-8?q?J=C3=B6rg?= <j@example.org>\r\n"
    b"To: undisclosed-recipients:;\r\n"
    b'Cc: Team: a@x.org, "b, :x" <b@y.org>;, c@z.org\r\n'
    b"Subject: =?utf-8?b?RndkOiByw6lzdW3DqQ==?=\r\n"
    b"Message-ID: <outer@example.org>\r\n"
    b'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n'
    b"--b1\r\n"
    b"Content-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
    b"J=F6rg=\r\n wrote\r\n"
    b"--b1\r\n"
    b'Content-Type: message/rfc822\r\nContent-Disposition: attachment; filename="fwd.eml"\r\n\r\n'
    b"From: x@example.org\r\nSubject: inner\r\nMessage-ID: <inner@example.org>\r\n"
    b"Content-Type: multipart/alternative; boundary=b2\r\n\r\n"
    b"--b2\r\n\r\ninner text\r\n"
    b"--b2\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    b"PHA+aMOpbGxvPC9wPg==\r\n"
    b"--b2--\r\n"
    b"--b1--\r\n"
)


def body(raw: bytes, part: Part) -> bytes:
    return raw[part.body_start : part.body_end]


def test_forwarded_message_tree_and_offsets() -> None:
    root = parse_message(FORWARD)
    env = root.envelope
    assert env is not None and env.message_id == "<outer@example.org>"
    assert env.subject == "=?utf-8?b?RndkOiByw6lzdW3DqQ==?="  # ENVELOPE keeps encoded words
    assert env.to == (
        EnvelopeAddress(None, None, "undisclosed-recipients", None),
        EnvelopeAddress(None, None, None, None),
    )
    assert [a.mailbox for a in env.cc] == ["Team", "a", "b", None, "c"]
    assert env.cc[2].name == "b, :x"
    assert env.sender == env.reply_to == env.from_

    qp, fwd = root.children
    assert decode_body(qp, body(FORWARD, qp)) == b"J\xf6rg wrote"
    assert body_text(qp, body(FORWARD, qp)) == "J\u00f6rg wrote"
    assert (fwd.media_type, fwd.media_subtype, fwd.disposition) == ("message", "rfc822", "attachment")
    assert fwd.disposition_params == {"filename": "fwd.eml"}
    # The last line has no CRLF of its own (the one before the delimiter belongs to it): not counted.
    assert fwd.body_lines == body(FORWARD, fwd).count(b"\n")

    (inner,) = fwd.children
    assert inner.header_start == fwd.body_start and inner.body_end == fwd.body_end
    assert FORWARD[inner.header_start : inner.body_start].startswith(b"From: x@example.org")
    assert FORWARD[inner.header_start : inner.body_start].endswith(b"b2\r\n\r\n")
    assert inner.envelope is not None and inner.envelope.subject == "inner"
    plain, html = inner.children
    assert (plain.media_type, plain.media_subtype, body(FORWARD, plain)) == ("text", "plain", b"inner text")
    assert plain.body_lines == 0  # "inner text" and no CRLF of its own, as Dovecot counts
    assert html.params == {"charset": "utf-8"} and html.encoding == "base64"
    assert decode_body(html, body(FORWARD, html)) == "<p>h\u00e9llo</p>".encode()
    assert Part.from_json(root.to_json()) == root


def test_bare_lf_message_offsets() -> None:
    raw = FORWARD.replace(b"\r\n", b"\n")
    root = parse_message(raw)
    qp, fwd = root.children
    assert decode_body(qp, body(raw, qp)) == b"J\xf6rg wrote"
    plain, html = fwd.children[0].children
    assert body(raw, plain) == b"inner text"
    assert decode_body(html, body(raw, html)) == "<p>h\u00e9llo</p>".encode()


def test_rfc2231_and_encoded_parameters() -> None:
    raw = (
        b"Content-Type: application/octet-stream;\r\n"
        b"  name*0*=utf-8''%E2%82%AC%20report;\r\n  name*1*=%2Epdf\r\n"
        b'Content-Disposition: attachment; filename="=?utf-8?q?r=C3=A9sum=C3=A9.pdf?="\r\n'
        b"Content-Language: en, de\r\nContent-ID: <c1@x>\r\nContent-Description: =?utf-8?q?d=C3=A9j=C3=A0?=\r\n\r\n"
        b"data"
    )
    root = parse_message(raw)
    assert root.params == {"name": "\u20ac report.pdf"}
    assert root.disposition_params == {"filename": "r\u00e9sum\u00e9.pdf"}
    assert root.language == ["en", "de"] and root.content_id == "<c1@x>"
    assert root.description == "d\u00e9j\u00e0" and root.body_lines == 0


def test_broken_shapes() -> None:
    # No header at all: the whole input is the body.
    root = parse_message(b"\r\njust a body\r\n")
    assert (root.body_start, root.media_type) == (2, "text")
    # Headers and no body.
    raw = b"Subject: only headers\r\nFrom: a@b"
    root = parse_message(raw)
    assert root.body_start == root.body_end == len(raw)
    # Nested multipart, both end delimiters missing: each last part runs to the end.
    raw = (
        b"Content-Type: multipart/mixed; boundary=o\r\n\r\n--o\r\nContent-Type: multipart/related; boundary=i\r\n\r\n"
        b"--i\r\n\r\none\r\n--i\r\n\r\ntwo"
    )
    (rel,) = parse_message(raw).children
    assert [body(raw, c) for c in rel.children] == [b"one", b"two"]
    # A base64 body with junk, no padding, truncated.
    part = Part("application", "x", encoding="base64")
    assert decode_body(part, b"aGVsbG93\r\nb3Js*!\r\nZA") == b"helloworld"
    assert decode_body(Part("text", "plain", encoding="x-uuencode"), b"x") is None
    # Invalid Content-Type, 8-bit junk in headers, a huge header line.
    raw = b"Content-Type: garbage\r\nSubject: caf\xc3\xa9 \xff\xfe\r\nX-Long: " + b"a" * 200_000 + b"\r\n\r\nbody"
    root = parse_message(raw)
    assert (root.media_type, root.media_subtype) == ("text", "plain")
    assert root.envelope is not None and root.envelope.subject is not None
    assert root.envelope.subject.startswith("caf\u00e9")
    assert body(raw, root) == b"body"
    # A boundary-like line that is longer than the boundary does not split.
    raw = b"Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n\r\na\r\n--xy\r\nb\r\n--x--\r\n"
    assert [body(raw, c) for c in parse_message(raw).children] == [b"a\r\n--xy\r\nb"]
    # message/rfc822 in base64 is not looked into.
    raw = b"Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\nRnJvbTogYQ0KDQp4"
    assert parse_message(raw).children == []


def test_digest_parts_default_to_messages() -> None:
    raw = b"Content-Type: multipart/digest; boundary=d\r\n\r\n--d\r\n\r\nSubject: one\r\n\r\n1\r\n--d--\r\n"
    (msg,) = parse_message(raw).children
    assert (msg.media_type, msg.media_subtype) == ("message", "rfc822")
    assert msg.children[0].envelope is not None and msg.children[0].envelope.subject == "one"


def test_deep_nesting_is_bounded() -> None:
    raw = b"".join(b"Content-Type: message/rfc822\r\n\r\n" for _ in range(5000)) + b"x"
    root = parse_message(raw)
    depth = 0
    while root.children:
        root = root.children[0]
        depth += 1
    assert depth <= 41


def _check(raw: bytes, p: Part) -> None:
    assert 0 <= p.header_start <= p.body_start <= p.body_end <= len(raw)
    for c in p.children:
        assert p.body_start <= c.header_start and c.body_end <= p.body_end
        _check(raw, c)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.sampled_from(FORWARD.split(b"\r\n")), max_size=40),
    st.sampled_from([b"\r\n", b"\n", b"\r"]),
    st.binary(max_size=30),
)
def test_shuffled_lines_never_raise(lines: list[bytes], eol: bytes, junk: bytes) -> None:
    raw = eol.join(lines) + junk
    root = parse_message(raw)
    _check(raw, root)
    Part.from_json(root.to_json())

    def decode_all(p: Part) -> None:
        decode_body(p, body(raw, p))
        body_text(p, body(raw, p))
        for c in p.children:
            decode_all(c)

    decode_all(root)


def test_utf8_headers_rfc6532() -> None:
    raw = (
        "Subject: caf\u00e9\r\nFrom: J\u00f6rg <j\u00f6rg@b\u00fccher.de>\r\n"
        'Content-Type: text/plain; name="r\u00e9sum\u00e9"\r\n\r\nx'
    )
    root = parse_message(raw.encode())
    assert root.envelope is not None and root.envelope.subject == "caf\u00e9"
    assert root.envelope.from_ == (EnvelopeAddress("J\u00f6rg", None, "j\u00f6rg", "b\u00fccher.de"),)
    assert root.params == {"name": "r\u00e9sum\u00e9"}


def test_charset_name_with_nul_falls_back_to_utf8() -> None:
    # Found by the property above: Python refuses such a codec name with ValueError.
    raw = b"Content-Type: text/html; charset=utf-8\x00\r\n\r\ncaf\xc3\xa9\r\n"
    root = parse_message(raw)
    assert body_text(root, body(raw, root)).startswith("caf\u00e9")


PREFIX = (
    b'From: a@example.org\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="----=_NextPart_X"\r\n\r\n'
    b'preamble\r\n------=_NextPart_X\r\nContent-Type: multipart/alternative; boundary="----=_NextPart_XAA"\r\n\r\n'
    b"------=_NextPart_XAA\r\nContent-Type: text/plain\r\n\r\nplain\r\n"
    b"------=_NextPart_XAA\r\nContent-Type: text/html\r\n\r\n<p>html</p>\r\n"
    b"------=_NextPart_XAA--\r\n\r\n"
    b"------=_NextPart_X\r\nContent-Type: text/plain\r\n\r\nsecond\r\nline\r\n\r\n------=_NextPart_X--\r\n"
)
CLOSE_WITH_TEXT = (
    b'From: a@example.org\r\nMIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary="B"\r\n\r\n'
    b"--B\r\nContent-Type: text/plain\r\n\r\nhi\r\n--B\r\nContent-Type: text/html\r\n\r\n<p>hi</p>\r\n"
    b"--B--</BODY></HTML>\r\n\r\n"
)
BAD_TYPE = b"From: a@example.org\r\nContent-Type: text/plain charset=us-ascii\r\n\r\none\r\ntwo\r\n"


def test_nested_boundary_extending_the_outer_one() -> None:
    # Issue 11 defect 14; sizes and line counts as Dovecot answers them.
    root = parse_message(PREFIX)
    alternative, second = root.children
    assert body(PREFIX, alternative).endswith(b"<p>html</p>\r\n------=_NextPart_XAA--\r\n")
    assert alternative.body_octets == 143
    assert [(p.media_subtype, p.body_octets, p.body_lines) for p in alternative.children] == [
        ("plain", 5, 0),
        ("html", 11, 0),
    ]
    assert (second.body_octets, second.body_lines) == (14, 2)


def test_close_delimiter_followed_by_text() -> None:
    root = parse_message(CLOSE_WITH_TEXT)
    assert [(p.media_subtype, body(CLOSE_WITH_TEXT, p), p.body_lines) for p in root.children] == [
        ("plain", b"hi", 0),
        ("html", b"<p>hi</p>", 0),
    ]


def test_content_type_that_is_not_a_type_is_plain_text() -> None:
    root = parse_message(BAD_TYPE)
    assert (root.media_type, root.media_subtype, root.body_octets, root.body_lines) == ("text", "plain", 10, 2)
