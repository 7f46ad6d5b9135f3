"""mailsrv/message/headerfields.py gives exactly what the email package's header parser gives
(`raw_items`, 8-bit as UTF-8, unfolded), on well-formed and on random header blocks."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from mailsrv.message.headerfields import header_fields
from mailsrv.message.parse import header_end, parse_headers


def reference(data: bytes) -> list[tuple[str, str]]:
    out = []
    for name, value in parse_headers(data[: header_end(data, 0, len(data))]).raw_items():
        text = str(value).encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        out.append((name, " ".join(line.strip() for line in text.replace("\r", "").split("\n")).strip()))
    return out


def test_a_usual_header() -> None:
    data = (
        b"From bounce@example.org Mon Dec  7 00:00:00 2026\r\n"
        b"Received: from a\r\n\tby b;\r\n  Mon, 7 Dec 2026\r\n"
        b"Subject: =?utf-8?q?h=C3=A9?= \xc3\xa9t\xc3\xa9\r\n"
        b"Message-ID: <1@example.org>\r\n\r\nBody: not a field\r\n"
    )
    assert header_fields(data) == reference(data)
    assert header_fields(data)[0] == ("Received", "from a by b; Mon, 7 Dec 2026")
    assert header_fields(data)[1] == ("Subject", "=?utf-8?q?h=C3=A9?= été")


_PIECES = st.sampled_from(
    [
        b"From ",
        b"From: a",
        b"To",
        b":",
        b": ",
        b" ",
        b"\t",
        b"\r\n",
        b"\n",
        b"\r",
        b"x",
        b"Subject",
        b"\xc3\xa9",
        b"\xff",
        b"\x0b",
        b"\x0c",
        b"\x1c",
        b"\x00",
        b"a-b",
        b"=?",
        b"\r\n\r\n",
        b"\x7f",
    ]
)


@settings(max_examples=2000, deadline=None)
@given(st.lists(_PIECES, max_size=40).map(b"".join))
def test_same_as_the_email_package_on_random_blocks(data: bytes) -> None:
    assert header_fields(data) == reference(data)
