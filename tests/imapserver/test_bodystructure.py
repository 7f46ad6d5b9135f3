"""ENVELOPE, BODY and BODYSTRUCTURE (RFC 9051 §7.5.2) rendered from the stored part tree,
compared with strings checked by hand against the RFC grammar for real-world-shaped mail.
Sizes and line counts are what Dovecot 2.3 answers for the same messages: a body part's last line
without a CRLF of its own (the one before a delimiter belongs to it) is not counted."""

from __future__ import annotations

from mailsrv.imapserver.bodystructure import body, envelope
from mailsrv.message.parse import parse_message

MIXED = (
    b'From: =?utf-8?q?J=C3=B6rg?= <joerg@example.org>\r\nTo: a@example.org, "B, C" <b@example.org>\r\n'
    b'Subject: Hello "there"\r\nDate: Mon, 2 Nov 2026 10:00:00 +0100\r\nMessage-ID: <x@y>\r\n'
    b'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b1"\r\n\r\npreamble\r\n'
    b"--b1\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
    b"Hall=C3=B6\r\nline2\r\n"
    b"--b1\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\nFrom: x@example.org\r\n\r\ninner body\r\n"
    b'--b1\r\nContent-Type: application/pdf; name="a.pdf"\r\nContent-Disposition: attachment; filename="a.pdf"\r\n'
    b"Content-Transfer-Encoding: base64\r\nContent-Language: en\r\n\r\nAAAA\r\n--b1--\r\n"
)

INNER_ENV = (
    b'(NIL "inner" ((NIL NIL "x" "example.org")) ((NIL NIL "x" "example.org")) ((NIL NIL "x" "example.org"))'
    b" NIL NIL NIL NIL NIL)"
)


def test_envelope_defaults_sender_and_reply_to_to_from_and_keeps_encoded_words() -> None:
    p = parse_message(MIXED)
    assert envelope(p.envelope, utf8=False) == (
        b'("Mon, 2 Nov 2026 10:00:00 +0100" "Hello \\"there\\"" '
        b'(("=?utf-8?q?J=C3=B6rg?=" NIL "joerg" "example.org")) '
        b'(("=?utf-8?q?J=C3=B6rg?=" NIL "joerg" "example.org")) '
        b'(("=?utf-8?q?J=C3=B6rg?=" NIL "joerg" "example.org")) '
        b'((NIL NIL "a" "example.org")("B, C" NIL "b" "example.org")) NIL NIL NIL "<x@y>")'
    )


def test_bodystructure_multipart_with_nested_message_and_attachment() -> None:
    p = parse_message(MIXED)
    assert body(p, extended=True, utf8=False) == (
        b'(("TEXT" "PLAIN" ("CHARSET" "utf-8") NIL NIL "QUOTED-PRINTABLE" 17 1 NIL NIL NIL NIL)'
        b'("MESSAGE" "RFC822" NIL NIL NIL "7BIT" 49 ' + INNER_ENV + b' ("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL'
        b' "7BIT" 10 0 NIL NIL NIL NIL) 3 NIL NIL NIL NIL)'
        b'("APPLICATION" "PDF" ("name" "a.pdf") NIL NIL "BASE64" 4 NIL ("attachment" ("filename" "a.pdf")) "en" NIL)'
        b' "MIXED" ("boundary" "b1") NIL NIL NIL)'
    )


def test_body_has_no_extension_data() -> None:
    p = parse_message(MIXED)
    assert body(p, extended=False, utf8=False) == (
        b'(("TEXT" "PLAIN" ("CHARSET" "utf-8") NIL NIL "QUOTED-PRINTABLE" 17 1)'
        b'("MESSAGE" "RFC822" NIL NIL NIL "7BIT" 49 ' + INNER_ENV + b' ("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL'
        b' "7BIT" 10 0) 3)("APPLICATION" "PDF" ("name" "a.pdf") NIL NIL "BASE64" 4) "MIXED")'
    )


def test_plain_message_without_mime_headers() -> None:
    p = parse_message(b"Subject: hi\r\n\r\none\r\ntwo\r\n")
    assert body(p, extended=True, utf8=False) == (
        b'("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 10 2 NIL NIL NIL NIL)'
    )
    assert envelope(p.envelope, utf8=False) == b'(NIL "hi" NIL NIL NIL NIL NIL NIL NIL NIL)'


def test_alternative_with_html() -> None:
    raw = (
        b"Content-Type: multipart/alternative; boundary=zz\r\n\r\n--zz\r\nContent-Type: text/plain\r\n\r\nhi\r\n"
        b'--zz\r\nContent-Type: text/html; charset="iso-8859-1"\r\nContent-ID: <c1@x>\r\n\r\n<p>hi</p>\r\n--zz--\r\n'
    )
    assert body(parse_message(raw), extended=False, utf8=False) == (
        b'(("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 2 0)'
        b'("TEXT" "HTML" ("CHARSET" "iso-8859-1") "<c1@x>" NIL "7BIT" 9 0) "ALTERNATIVE")'
    )


def test_non_ascii_strings_literal_for_rev1_quoted_for_utf8() -> None:
    p = parse_message("Subject: Grüße\r\n\r\nx\r\n".encode())
    rev1 = envelope(p.envelope, utf8=False)
    assert b"{7}\r\nGr\xc3\xbc\xc3\x9fe" in rev1
    assert '"Grüße"'.encode() in envelope(p.envelope, utf8=True)


def test_quoting_of_backslash_and_quote() -> None:
    p = parse_message(b'Subject: a\\b "c"\r\n\r\n')
    assert b'"a\\\\b \\"c\\""' in envelope(p.envelope, utf8=False)
