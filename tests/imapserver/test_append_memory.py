"""IMAP APPEND and the daemon-wide message memory budget (issue 17 item 7, see
mailsrv/spool.py and tests/smtpserver/test_memory.py for SMTP)."""

from __future__ import annotations

import imaplib
from pathlib import Path

from tests.daemon import start_daemon


def test_imap_append_beyond_the_budget_is_refused_with_limit(tmp_path: Path) -> None:
    """IMAP APPEND literals are held in memory until the command runs: they count against
    the same budget, and one that does not fit is NO [LIMIT] (RFC 5530), sent instead of the
    continuation so the client does not send it."""
    daemon = start_daemon(tmp_path / "d", extra_static="[limits]\nmessage_memory = 1048576\n")
    try:
        imap = imaplib.IMAP4_SSL("127.0.0.1", daemon.ports["imaps"], ssl_context=daemon.ssl_context())
        imap.login("alice@example.org", "alicepass")
        big = b"Subject: big\r\n\r\n" + (b"z" * 998 + b"\r\n") * 1100
        try:
            typ, data = imap.append("INBOX", None, None, big)
        except imaplib.IMAP4.error as e:
            typ, data = "NO", [str(e).encode()]
        assert typ == "NO" and b"[LIMIT]" in data[0], data
        typ, _ = imap.append("INBOX", None, None, b"Subject: small\r\n\r\nhello\r\n")
        assert typ == "OK"
        # The budget came back: the same small message again, and a second session.
        typ, _ = imap.append("INBOX", None, None, b"Subject: small 2\r\n\r\nhello\r\n")
        assert typ == "OK"
        imap.logout()
    finally:
        daemon.stop()
