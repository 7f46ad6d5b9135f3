"""\\Recent as a user's client sees it (issue 11 defect 2): mail delivered over SMTP while no
session has INBOX selected is recent for the first client that selects it, and for no
other; EXAMINE and STATUS show it without taking it. imaplib against the real daemon."""

from __future__ import annotations

import imaplib
import smtplib

from tests.daemon import RunningDaemon, wait_until


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
