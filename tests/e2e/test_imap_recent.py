"""\\Recent as a user's client sees it (issue 11 defect 2): mail delivered over SMTP while no
session has INBOX selected is recent for the first client that selects it, and for no
other; EXAMINE and STATUS show it without taking it. imaplib against the real daemon."""

from __future__ import annotations

import imaplib
import smtplib
from pathlib import Path

from tests.daemon import RunningDaemon, start_daemon, wait_until


def _imap(daemon: RunningDaemon) -> imaplib.IMAP4_SSL:
    m = imaplib.IMAP4_SSL("127.0.0.1", daemon.ports["imaps"], ssl_context=daemon.ssl_context())
    m.login("alice@example.org", "alicepass")
    return m


def test_delivered_mail_is_recent_for_the_first_select_only(daemon: RunningDaemon) -> None:
    with smtplib.SMTP("127.0.0.1", daemon.ports["smtp"]) as s:
        for n in (1, 2):
            message = f"From: bob@example.org\r\nTo: alice@example.org\r\nSubject: new {n}\r\n\r\nhi\r\n"
            assert s.sendmail("bob@example.org", ["alice@example.org"], message.encode()) == {}
    watcher = _imap(daemon)

    def delivered() -> bool:
        typ, data = watcher.status("INBOX", "(MESSAGES RECENT)")
        return typ == "OK" and b"MESSAGES 2" in data[0]

    wait_until(delivered, what="both messages in INBOX")
    assert b"RECENT 2" in watcher.status("INBOX", "(RECENT)")[1][0]

    first = _imap(daemon)
    first.select("INBOX", readonly=True)  # EXAMINE
    assert first.response("RECENT")[1] == [b"2"]
    assert first.search(None, "RECENT")[1] == [b"1 2"]
    first.select("INBOX")
    assert first.response("RECENT")[1] == [b"2"]
    typ, data = first.fetch("1:2", "(FLAGS)")
    assert typ == "OK" and all(b"\\Recent" in d for d in data), data

    second = _imap(daemon)
    second.select("INBOX")
    assert second.response("RECENT")[1] == [b"0"]
    assert second.search(None, "NEW")[1] == [b""]
    assert b"RECENT 0" in watcher.status("INBOX", "(RECENT)")[1][0]
    for m in (first, second, watcher):
        m.logout()


def _deliver(daemon: RunningDaemon, *subjects: str) -> None:
    with smtplib.SMTP("127.0.0.1", daemon.ports["smtp"]) as s:
        for subject in subjects:
            message = f"From: bob@example.org\r\nTo: alice@example.org\r\nSubject: {subject}\r\n\r\nhi\r\n"
            assert s.sendmail("bob@example.org", ["alice@example.org"], message.encode()) == {}


def _recent_on_select(daemon: RunningDaemon) -> tuple[bytes, bytes]:
    """RECENT of a SELECT and what SEARCH RECENT finds, in a new session (which then ends)."""
    m = _imap(daemon)
    m.select("INBOX")
    recent = m.response("RECENT")[1][0]
    found = m.search(None, "RECENT")[1][0]
    m.logout()
    return recent, found


def test_recent_survives_a_restart(tmp_path: Path) -> None:
    """Issue 11: which messages were given out as \\Recent is kept in the mailbox row, so mail
    delivered before a restart and not yet seen by any session is recent for exactly one
    session after it (it was recent for none before: the floor was kept in memory)."""
    daemon = start_daemon(tmp_path / "d")
    try:
        _deliver(daemon, "one", "two")
        watcher = _imap(daemon)
        wait_until(lambda: b"MESSAGES 2" in watcher.status("INBOX", "(MESSAGES)")[1][0], what="two messages")
        watcher.logout()
        daemon.stop()
        daemon.start()
        assert _recent_on_select(daemon) == (b"2", b"1 2")
        assert _recent_on_select(daemon) == (b"0", b"")
        # Seen by a session before the restart: not recent after it; a newer one is.
        _deliver(daemon, "three")
        watcher = _imap(daemon)
        wait_until(lambda: b"MESSAGES 3" in watcher.status("INBOX", "(MESSAGES)")[1][0], what="three messages")
        watcher.logout()
        daemon.stop()
        daemon.start()
        assert _recent_on_select(daemon) == (b"1", b"3")
        daemon.stop()
        daemon.start()
        assert _recent_on_select(daemon) == (b"0", b"")
    finally:
        daemon.stop()
