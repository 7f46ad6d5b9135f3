"""Send later is durable: a message scheduled from the webmail for a recipient on this server
and one elsewhere, then the daemon killed (SIGKILL) and started again, reaches both at its
time and neither before; the sender's Sent copy appears then too."""

from __future__ import annotations

import imaplib
import time
from pathlib import Path

from tests.daemon import RunningDaemon, free_port, wait_until
from tests.queue.daemon_setup import start_queue_daemon
from tests.queue.sink import RecordingSink
from tests.web.webmail.harness import WebmailClient

DELAY = 12  # seconds from sending to the send-later time: the restart happens in between


def _count(daemon: RunningDaemon, address: str, password: str, mailbox: str, subject: str) -> int:
    imap = imaplib.IMAP4_SSL(daemon.address, daemon.ports["imaps"], ssl_context=daemon.ssl_context())
    try:
        imap.login(address, password)
        imap.select(mailbox, readonly=True)
        _, data = imap.search(None, "SUBJECT", f'"{subject}"')
        return len(data[0].split())
    finally:
        imap.logout()


def test_scheduled_message_survives_sigkill_and_goes_out_at_its_time(tmp_path: Path) -> None:
    sink = RecordingSink(free_port())
    daemon = start_queue_daemon(tmp_path / "d", sink.port)
    try:
        alice = WebmailClient(daemon.ports["http"]).login()
        at = int(time.time()) + DELAY
        form = {
            "to": [{"address": "bob@example.org"}, {"address": "carol@remote.example"}],
            "subject": "at its time",
            "text": "see you",
            "send_at": at,
        }
        sent = alice.call("Send", form)
        assert sent["queued"] and sent["sent_copy"] == 0
        assert [m["subject"] for m in alice.call("Scheduled")] == ["at its time"]
        daemon.kill()  # SIGKILL: no clean stop
        daemon.start()
        assert _count(daemon, "bob@example.org", "bobpass", "INBOX", "at its time") == 0
        assert _count(daemon, "alice@example.org", "alicepass", "Sent", "at its time") == 0
        assert sink.count() == 0
        wait_until(lambda: sink.count() == 1, timeout=DELAY + 30, what="the remote copy")
        wait_until(
            lambda: _count(daemon, "bob@example.org", "bobpass", "INBOX", "at its time") == 1,
            timeout=30,
            what="the local copy",
        )
        (remote,) = sink.records()
        assert remote.time >= at and remote.recipients == ("carol@remote.example",)
        # On time: the runner wakes for it (its periodic scan is every 30 s).
        assert remote.time < at + 10, remote.time - at
        assert _count(daemon, "alice@example.org", "alicepass", "Sent", "at its time") == 1
        assert WebmailClient(daemon.ports["http"]).login().call("Scheduled") == []
        time.sleep(1)
        assert _count(daemon, "bob@example.org", "bobpass", "INBOX", "at its time") == 1  # once
    finally:
        daemon.kill()
        sink.close()
