"""The junk filter end to end, as a user meets it: a real daemon, IMAP (imapclient) moves and keywords train it,
SMTP deliveries (smtplib) are filed or refused by it, and `mailsrv junk` inspects and tunes it."""

from __future__ import annotations

import re
import smtplib
from pathlib import Path

import pytest
from imapclient import IMAPClient

from tests.daemon import RunningDaemon, wait_until
from tests.junk.corpus import ham, spam

pytestmark = pytest.mark.slow


def _imap(daemon: RunningDaemon) -> IMAPClient:
    client = IMAPClient(daemon.address, port=daemon.ports["imaps"], ssl=True, ssl_context=daemon.ssl_context())
    client.login("alice@example.org", "alicepass")
    return client


def _junk_field(raw: bytes) -> bytes:
    """Our X-Mailsrv-Junk field: below our Delivered-To and Received fields, above the sender's."""
    head = raw.split(b"\r\n\r\n", 1)[0].replace(b"\r\n\t", b" ").split(b"\r\n")
    assert head[0].startswith(b"Delivered-To: "), head[:3]
    return next(line for line in head if line.startswith(b"X-Mailsrv-Junk: "))


def _stats(daemon: RunningDaemon) -> tuple[int, int]:
    out = daemon.cli_ok("junk", "stats", "alice")
    match = re.search(r"trained: (\d+) not junk, (\d+) junk", out)
    assert match, out
    return int(match.group(1)), int(match.group(2))


def _send(daemon: RunningDaemon, message: bytes) -> None:
    with smtplib.SMTP(daemon.address, daemon.ports["smtp"], timeout=30) as smtp:
        smtp.starttls(context=daemon.ssl_context())
        smtp.sendmail("sender@example.net", ["alice@example.org"], message)


def test_user_trains_by_moving_and_flagging_then_delivery_uses_it(daemon: RunningDaemon, tmp_path: Path) -> None:
    client = _imap(daemon)
    junk_folder = next(name for flags, _, name in client.list_folders() if b"\\Junk" in flags)
    for n in range(25):
        client.append("INBOX", spam(n))
        client.append("INBOX", ham(n))
    client.select_folder("INBOX")
    uids = client.search("ALL")
    spam_uids, ham_uids = uids[0::2], uids[1::2]
    # The user moves the junk away and marks the rest as not junk, as Thunderbird does.
    client.move(spam_uids, junk_folder)
    client.add_flags(ham_uids, ["$NotJunk"])
    wait_until(lambda: _stats(daemon) == (25, 25), what="training from the moves and flags")

    _send(daemon, spam(100))
    _send(daemon, ham(100))
    junk_mail = daemon.inbox("alice@example.org", "alicepass", junk_folder)
    assert len(junk_mail) == 26
    assert b"junk=yes" in _junk_field(junk_mail[-1])
    inbox = daemon.inbox("alice@example.org", "alicepass")
    assert b"junk=no" in _junk_field(inbox[-1])

    # `mailsrv junk check` shows the score and the words that decided it.
    sample = tmp_path / "sample.eml"
    sample.write_bytes(spam(101))
    out = daemon.cli_ok("junk", "check", "alice", str(sample))
    assert re.search(r"score (0\.9\d+|1\.0000) \(threshold 0\.95\): junk", out), out
    assert "viagra" in out or "casino" in out

    # Changing one's mind: moving a junk message back to the Inbox retrains it as not junk.
    client.select_folder(junk_folder)
    first = client.search("ALL")[0]
    client.move([first], "INBOX")
    wait_until(lambda: _stats(daemon) == (26, 24), what="retraining after the move back")
    client.logout()


def test_reject_mode_refuses_with_a_temporary_error_and_keeps_a_copy(daemon: RunningDaemon, tmp_path: Path) -> None:
    files = []
    for n in range(20):
        for kind, make in (("spam", spam), ("ham", ham)):
            path = tmp_path / f"{kind}{n}.eml"
            path.write_bytes(make(n))
            files.append(path)
    out = daemon.cli_ok("junk", "train", "alice", "--junk", *(str(p) for p in files if p.name.startswith("spam")))
    assert "trained 20 message(s) as junk" in out
    daemon.cli_ok("junk", "train", "alice", "--ham", *(str(p) for p in files if p.name.startswith("ham")))
    out = daemon.cli_ok("junk", "settings", "alice", "--set", "action=reject", "--set", "threshold=0.9")
    assert 'action = "reject"' in out and "threshold = 0.9" in out

    with pytest.raises(smtplib.SMTPDataError) as refused:
        _send(daemon, spam(300))
    assert refused.value.smtp_code == 451
    assert b"junk" not in refused.value.smtp_error.lower()
    kept = daemon.inbox("alice@example.org", "alicepass", "Rejects")
    assert len(kept) == 1 and b"junk=yes" in _junk_field(kept[0])
    _send(daemon, ham(300))  # not junk: delivered as usual

    bad = daemon.cli("junk", "settings", "alice", "--set", "threshold=3")
    assert bad.returncode != 0 and "threshold" in bad.stderr
