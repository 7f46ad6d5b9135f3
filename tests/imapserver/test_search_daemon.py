"""Issue 17 item 2 against the real daemon: a SEARCH whose cost grows with the mailbox must not
delay another connection (DESIGN.md "Concurrency": a NOOP within 100 ms), and the issue's
program of 10,000 keys is refused at once."""

from __future__ import annotations

import imaplib
import time

from tests.daemon import RunningDaemon
from tests.imapserver.rawimap import raw_login, read_tagged

MESSAGES = 5000
MESSAGE = (
    b"From: Bob <bob@example.org>\r\nTo: alice@example.org\r\nSubject: weekly report\r\n"
    b"Date: Mon, 2 Nov 2026 10:00:00 +0000\r\n\r\nnumbers are up\r\n"
)


def _fill_inbox(daemon: RunningDaemon) -> None:
    imap = imaplib.IMAP4_SSL("127.0.0.1", daemon.ports["imaps"], ssl_context=daemon.ssl_context())
    imap.login("alice@example.org", "alicepass")
    assert imap.append("INBOX", None, None, MESSAGE)[0] == "OK"
    imap.select("INBOX")
    count = 1
    while count < MESSAGES:  # doubling copies: 13 commands instead of 5,000 appends
        upto = min(count, MESSAGES - count)
        assert imap.copy(f"1:{upto}", "INBOX")[0] == "OK"
        count += upto
    typ, data = imap.select("INBOX")
    assert typ == "OK" and int(data[0]) == MESSAGES
    imap.logout()


def test_hostile_search_does_not_freeze_other_connections(daemon: RunningDaemon) -> None:
    _fill_inbox(daemon)
    hostile = raw_login(daemon)
    hostile.sendall(b"s SELECT INBOX\r\n")
    read_tagged(hostile, b"s")
    other = raw_login(daemon)

    # Within the key limit (998 keys), every key evaluated on every message: distinct
    # needles so nothing is deduplicated, NOT so no conjunct decides early.
    program = b" ".join(b"NOT SUBJECT q%03d" % i for i in range(499))
    search_started = time.monotonic()
    hostile.sendall(b"h SEARCH " + program + b"\r\n")
    time.sleep(0.05)  # let the daemon start on it
    delays = []
    for i in range(3):
        started = time.monotonic()
        other.sendall(b"n%d NOOP\r\n" % i)
        assert b"n%d OK" % i in read_tagged(other, b"n%d" % i)
        delays.append(time.monotonic() - started)
    answer = read_tagged(hostile, b"h")
    print(f"SEARCH of {MESSAGES} messages with 998 keys took {time.monotonic() - search_started:.2f} s")
    assert b"h OK" in answer
    assert len(answer.split(b"\r\n")[0].split()) == 2 + MESSAGES  # "* SEARCH" and every number
    print(f"NOOP delays while the SEARCH ran: {delays}")
    assert max(delays) < 0.1, delays

    # The program: 10,000 ALL keys (it blocked the reactor for 17.4 s) is BAD at once.
    started = time.monotonic()
    hostile.sendall(b"h2 SEARCH " + b" ".join([b"ALL"] * 10_000) + b"\r\n")
    assert b"h2 BAD" in read_tagged(hostile, b"h2")
    assert time.monotonic() - started < 1.0
    hostile.close()
    other.close()
