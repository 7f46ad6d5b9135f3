"""The part-tree parser: exact offsets on real-world shapes, and no exception on any input."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from mailsrv.message.parse import decode_body, parse_message
from mailsrv.message.part import Part

NESTED = (
    b"From: a@example.org\r\nSubject: nested\r\n"
    b'Content-Type: multipart/mixed; boundary="outer"\r\n\r\n'
    b"preamble\r\n--outer\r\n"
    b'Content-Type: multipart/alternative; boundary="inner"\r\n\r\n'
    b"--inner\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nplain\r\n"
    b"--inner\r\nContent-Type: text/html\r\n\r\n<p>html</p>\r\n--inner--\r\n"
    b"--outer\r\nContent-Type: application/pdf; name*=utf-8''r%C3%A9sum%C3%A9.pdf\r\n"
    b"Content-Transfer-Encoding: base64\r\nContent-Disposition: attachment\r\n\r\nJVBERi0=\r\n"
    b"--outer--\r\nepilogue\r\n"
)


def test_offsets_of_nested_multipart() -> None:
    root = parse_message(NESTED)
    assert (root.media_type, root.media_subtype) == ("multipart", "mixed")
    alt, pdf = root.children
    plain, html = alt.children
    assert NESTED[plain.body_start : plain.body_end] == b"plain"
    assert NESTED[html.body_start : html.body_end] == b"<p>html</p>"
    assert pdf.params["name"] == "r\u00e9sum\u00e9.pdf" and pdf.disposition == "attachment"
    assert decode_body(pdf, NESTED[pdf.body_start : pdf.body_end]) == b"%PDF-"
    assert Part.from_json(root.to_json()) == root


def test_bare_lf_and_missing_end_boundary() -> None:
    raw = b"Content-Type: multipart/mixed; boundary=x\n\n--x\nContent-Type: text/plain\n\nhello\n--x\n\nlast"
    root = parse_message(raw)
    assert [raw[c.body_start : c.body_end] for c in root.children] == [b"hello", b"last"]


def test_no_boundary_parameter_gives_one_text_part() -> None:
    root = parse_message(b"Content-Type: multipart/mixed\r\n\r\nbody")
    assert len(root.children) == 1


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_random_bytes_never_raise(raw: bytes) -> None:
    root = parse_message(raw)
    assert 0 <= root.header_start <= root.body_start <= root.body_end == len(raw)
    Part.from_json(root.to_json())


@settings(max_examples=200, deadline=None)
@given(st.integers(0, len(NESTED)), st.integers(0, len(NESTED)), st.binary(max_size=20))
def test_mutated_messages_never_raise(a: int, b: int, junk: bytes) -> None:
    lo, hi = min(a, b), max(a, b)
    raw = NESTED[:lo] + junk + NESTED[hi:]
    root = parse_message(raw)

    def check(p: Part) -> None:
        assert 0 <= p.header_start <= p.body_start <= p.body_end <= len(raw)
        for c in p.children:
            check(c)

    check(root)


def test_envelope_keeps_obsolete_source_routes() -> None:
    # Issue 11 defect 4: RFC 5322 §4.4 obs-route goes to the ENVELOPE's adl (RFC 9051 §7.5.2).
    raw = (
        b"From: Joe <@r1.example,@r2.example:joe@example.org>\r\n"
        b'To: a@b.example, <@x.example:u@d.example>, "Q, R" < @z.example : v@f.example >\r\n'
        b"\r\nhi\r\n"
    )
    env = parse_message(raw).envelope
    assert env is not None
    assert [(a.name, a.adl, a.mailbox, a.host) for a in env.from_] == [
        ("Joe", "@r1.example,@r2.example", "joe", "example.org")
    ]
    assert [(a.name, a.adl, a.mailbox, a.host) for a in env.to] == [
        (None, None, "a", "b.example"),
        (None, "@x.example", "u", "d.example"),
        ("Q, R", "@z.example", "v", "f.example"),
    ]


def test_envelope_uses_the_first_of_repeated_address_fields() -> None:
    # Issue 11 defect 14: a message with two From: fields lists the first one's addresses.
    raw = b"From: first@example.org\r\nFrom: second@example.org\r\nTo: x@example.org\r\n\r\nhi\r\n"
    env = parse_message(raw).envelope
    assert env is not None
    assert [a.mailbox for a in env.from_] == ["first"]
    assert [a.mailbox for a in env.sender] == ["first"]


def test_quoted_printable_transport_whitespace_and_soft_breaks() -> None:
    # Issue 11 defect 5, RFC 2045 §6.7 rules 3 and 5.
    from mailsrv.message.parse import decode_quoted_printable

    encoded = b"line one   \r\nsoft= \r\nbreak=\t\r\nend=3D ok\t \r\n=e9t=E9 =4 last"
    assert decode_quoted_printable(encoded) == b"line one\r\nsoftbreakend= ok\r\n\xe9t\xe9 =4 last"
    assert decode_quoted_printable(b"a=\r\n") == b"a"
    assert decode_quoted_printable(b"\r\n\r\n") == b"\r\n\r\n"
