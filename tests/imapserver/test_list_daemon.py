"""Issue 17 item 2 against the real daemon: a hostile LIST pattern from one logged-in user
must not delay another connection (DESIGN.md "Concurrency": a NOOP within 100 ms)."""

from __future__ import annotations

import imaplib
import time

from tests.daemon import RunningDaemon
from tests.imapserver.rawimap import raw_login, read_tagged


def _login(daemon: RunningDaemon) -> imaplib.IMAP4_SSL:
    imap = imaplib.IMAP4_SSL("127.0.0.1", daemon.ports["imaps"], ssl_context=daemon.ssl_context())
    imap.login("alice@example.org", "alicepass")
    return imap


def test_hostile_list_does_not_freeze_other_connections(daemon: RunningDaemon) -> None:
    setup = _login(daemon)
    # Long names make the matcher's work grow: 150 mailboxes of ~100 characters.
    for i in range(150):
        typ, _ = setup.create(f"folder{i}/" + "x" * 90 + f"/sub{i}")
        assert typ == "OK"
    setup.logout()

    hostile = raw_login(daemon)
    other = raw_login(daemon)
    # Within the pattern length limit: 1,001 characters of alternating wildcards.
    pattern = b"*%" * 500 + b"Q"
    hostile.sendall(b'h LIST "" "' + pattern + b'"\r\n')
    time.sleep(0.02)  # let the daemon start on it
    started = time.monotonic()
    other.sendall(b"n NOOP\r\n")
    assert b"n OK" in read_tagged(other, b"n")
    assert time.monotonic() - started < 0.1
    assert b"h OK" in read_tagged(hostile, b"h")

    # The issue's own pattern (4,001 characters) is refused with BAD, at once.
    hostile.sendall(b'h2 LIST "" {4001+}\r\n' + b"*%" * 2000 + b"Q\r\n")
    assert b"h2 BAD" in read_tagged(hostile, b"h2")
    hostile.close()
    other.close()
