"""mbox and Maildir encodings: separator lines, mboxrd quoting, flag fields and file names."""

from __future__ import annotations

import datetime

from hypothesis import given
from hypothesis import strategies as st

from mailsrv.ops import mailformats as fmt

WHEN = datetime.datetime(2026, 12, 7, 0, 24, 45, tzinfo=datetime.UTC)


def test_from_line_round_trip_in_any_locale_free_form() -> None:
    line = fmt.from_line(WHEN)
    assert line == b"From MAILER-DAEMON Mon Dec  7 00:24:45 2026\n"
    assert fmt.parse_from_line(line) == WHEN
    assert fmt.parse_from_line(b"From someone@example.com Sat Jan  3 01:05:34 1996\n") == datetime.datetime(
        1996, 1, 3, 1, 5, 34, tzinfo=datetime.UTC
    )
    assert fmt.parse_from_line(b"From nobody\n") is None
    assert fmt.parse_from_line(b"From x Sat Foo  3 01:05:34 1996\n") is None


def test_mbox_entry_quotes_and_carries_flags() -> None:
    entry = fmt.mbox_entry(b"Subject: s\r\n\r\nFrom me\r\n>From you", ["\\Seen", "\\Answered", "Work"], WHEN)
    assert entry == (
        b"From MAILER-DAEMON Mon Dec  7 00:24:45 2026\n"
        b"Status: RO\nX-Status: A\nX-Keywords: Work\nSubject: s\n\n>From me\n>>From you\n\n"
    )
    assert fmt.unquote_mbox_line(b">>From you\n") == b">From you\n"
    assert fmt.unquote_mbox_line(b">Frog\n") == b">Frog\n"


def test_split_metadata_removes_only_header_fields() -> None:
    message = b"Status: O\nX-Status: FT\nSubject: x\n continued\nX-Keywords: a b\n\tc\n\nStatus: body line\n"
    body, flags = fmt.split_mbox_metadata(message)
    assert body == b"Subject: x\n continued\n\nStatus: body line\n"
    assert flags == ["\\Draft", "\\Flagged", "a", "b", "c"]
    _, mozilla = fmt.split_mbox_metadata(b"X-Mozilla-Status: 0005\n\nx\n")
    assert mozilla == ["\\Flagged", "\\Seen"]


def test_maildir_names() -> None:
    letters = fmt.keyword_letters(["$Forwarded", "Work"])
    assert letters == {"$Forwarded": "a", "Work": "b"}
    assert fmt.dovecot_keywords_file(letters) == b"0 $Forwarded\n1 Work\n"
    assert fmt.parse_dovecot_keywords(b"0 $Forwarded\n1 Work\nbad line\n99 x\n") == {"a": "$Forwarded", "b": "Work"}
    name = fmt.maildir_name(7, WHEN, ["\\Seen", "\\Deleted", "Work", "\\Draft"], letters)
    assert name == f"{int(WHEN.timestamp())}.M7.mailsrv:2,DSTb"
    back = {v: k for k, v in letters.items()}
    assert fmt.parse_maildir_name(name, back) == (["Work", "\\Deleted", "\\Draft", "\\Seen"], WHEN)
    assert fmt.parse_maildir_name("abc;2,RP", {}) == (["$Forwarded", "\\Answered"], None)


_line = st.binary(max_size=40).filter(lambda b: b"\n" not in b and b"\r" not in b)


@given(st.lists(_line, max_size=20))
def test_mbox_body_survives_quoting(lines: list[bytes]) -> None:
    # Whatever the body lines are, quoting then unquoting line by line gives them back.
    message = b"Subject: t\r\n\r\n" + b"".join(line + b"\r\n" for line in lines)
    entry = fmt.mbox_entry(message, [], WHEN)
    out = entry.split(b"\n", 2)[2]  # after the separator and Status lines
    back = b"".join(fmt.unquote_mbox_line(line) for line in out.splitlines(keepends=True)[:-1])
    assert fmt.to_crlf(back) == message
