"""SMTP smuggling (issue 17 item 4) against the real daemon over raw sockets: an end-of-data
other than CRLF.CRLF must not end DATA, so the commands after it never deliver a second,
forged message. Data with a bare LF or CR is refused (521, connection closed), as Postfix
does; BDAT content is binary and taken as it is."""

from __future__ import annotations

import socket

import pytest

from tests.daemon import RunningDaemon

FIRST = b"From: <x@example.net>\r\nSubject: first\r\n\r\nhello\r\n"
SMUGGLED = (
    b"MAIL FROM:<admin@example.org>\r\nRCPT TO:<alice@example.org>\r\nDATA\r\n"
    b"From: admin@example.org\r\nSubject: smuggled\r\n\r\nevil\r\n.\r\n"
)
ENDS = {
    "LF.LF": b"\n.\n",
    "CRLF.LF": b"\r\n.\n",
    "LF.CRLF": b"\n.\r\n",
    "CRLF.CR.CRLF": b"\r\n.\r\r\n",
    "CRLF.CR.CR.CRLF": b"\r\n.\r.\r\n",
}


def _talk(daemon: RunningDaemon, data: bytes) -> list[str]:
    """Final lines of each reply until the server closes."""
    with socket.create_connection(("127.0.0.1", daemon.ports["smtp"]), timeout=10) as sock:
        f = sock.makefile("rb")
        f.readline()
        sock.sendall(data)
        return [line.decode().rstrip() for line in f if line[3:4] == b" "]


@pytest.mark.parametrize("end", ENDS.values(), ids=list(ENDS))
def test_a_lone_lf_or_cr_does_not_end_data(daemon: RunningDaemon, end: bytes) -> None:
    envelope = b"EHLO relay.example\r\nMAIL FROM:<x@example.net>\r\nRCPT TO:<alice@example.org>\r\nDATA\r\n"
    # The sender's relay passes the lone line end through and ends the data properly.
    replies = _talk(daemon, envelope + FIRST + end + SMUGGLED + b"\r\n.\r\nQUIT\r\n")
    assert replies[-1].startswith("521 5.5.2"), replies
    assert not any(r.startswith("250 2.0.0") for r in replies), replies
    assert daemon.inbox("alice@example.org", "alicepass") == []


def test_bdat_content_is_taken_as_is(daemon: RunningDaemon) -> None:
    body = FIRST + b"\n.\n" + SMUGGLED
    replies = _talk(
        daemon,
        b"EHLO relay.example\r\nMAIL FROM:<x@example.net>\r\nRCPT TO:<alice@example.org>\r\n"
        + b"BDAT %d LAST\r\n" % len(body)
        + body
        + b"QUIT\r\n",
    )
    assert [r[:3] for r in replies] == ["250", "250", "250", "250", "221"], replies
    [message] = daemon.inbox("alice@example.org", "alicepass")
    assert message.endswith(body)
