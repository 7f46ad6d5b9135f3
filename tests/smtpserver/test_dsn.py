"""The DSN extension (RFC 3461) with smtplib against the daemon: advertised, parameters
accepted (their validation: test_session.py, no daemon), and NOTIFY=SUCCESS for a local recipient answered with a
"delivered" DSN (RFC 3461 §5.2.2.1)."""

from __future__ import annotations

import email
import email.policy
import smtplib
import time

from tests.daemon import RunningDaemon

MSG = b"From: bob@example.org\r\nTo: alice@example.org\r\nSubject: dsn test\r\n\r\nThe body.\r\n"


def test_dsn_advertised_and_parameters_accepted_on_port_25(daemon: RunningDaemon) -> None:
    with smtplib.SMTP("127.0.0.1", daemon.ports["smtp"]) as s:
        s.ehlo()
        assert s.has_extn("dsn")
        refused = s.sendmail(
            "someone@example.net",
            ["alice@example.org"],
            MSG,
            mail_options=["RET=HDRS", "ENVID=abc"],
            rcpt_options=["NOTIFY=FAILURE,DELAY", "ORCPT=rfc822;alice@example.org"],
        )
        assert refused == {}
    assert len(daemon.inbox("alice@example.org", "alicepass")) == 1


def test_notify_success_for_a_local_recipient_sends_a_delivered_dsn(daemon: RunningDaemon) -> None:
    with smtplib.SMTP("127.0.0.1", daemon.ports["submission"]) as s:
        s.starttls(context=daemon.ssl_context())
        s.ehlo()
        assert s.has_extn("dsn")
        s.login("bob@example.org", "bobpass")
        s.sendmail(
            "bob@example.org",
            ["alice@example.org"],
            MSG,
            mail_options=["RET=FULL", "ENVID=abc+2B1"],
            rcpt_options=["NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;Alice@example.org"],
        )
        # The default (no NOTIFY) asks for no success DSN.
        s.sendmail("bob@example.org", ["alice@example.org"], MSG)
    assert len(daemon.inbox("alice@example.org", "alicepass")) == 2
    deadline = time.monotonic() + 10
    while not (found := daemon.inbox("bob@example.org", "bobpass")) and time.monotonic() < deadline:
        time.sleep(0.1)
    [raw] = found
    dsn = email.message_from_bytes(raw, policy=email.policy.default)
    assert dsn.get_content_type() == "multipart/report" and dsn["To"].addresses[0].addr_spec == "bob@example.org"
    text = raw.decode()
    assert "Original-Envelope-Id: abc+1\r\n" in text, text
    assert "Original-Recipient: rfc822;Alice@example.org\r\nFinal-Recipient: rfc822; alice@example.org\r\n" in text
    assert "Action: delivered\r\nStatus: 2.0.0" in text
    returned = dsn.get_payload()[2]
    # RET=FULL concerns failure DSNs (RFC 3461 §4.3): a success DSN returns the header only.
    assert returned.get_content_type() == "text/rfc822-headers" and "The body." not in text
    assert "delivered DSN to bob@example.org for 1 recipient(s)" in daemon.log()


def _send_on_port_25(daemon: RunningDaemon, sender: str, message: bytes) -> None:
    with smtplib.SMTP("127.0.0.1", daemon.ports["smtp"]) as s:
        refused = s.sendmail(sender, ["alice@example.org"], message, rcpt_options=["NOTIFY=SUCCESS"])
        assert refused == {}


# A forged header block of ~2 MB, the size the issue reflected.
BIG_HEADER = b"".join(b"X-Junk-%d: %s\r\n" % (i, b"j" * 200) for i in range(10_000))


def test_success_dsn_is_not_reflected_to_an_unverified_sender(daemon: RunningDaemon) -> None:
    """Issue 17 item 5: anyone on port 25 may name any reverse-path and ask NOTIFY=SUCCESS;
    without SPF or DKIM for its domain no success DSN goes there (here the forged sender is
    a local account, so a DSN would be visible in bob's inbox)."""
    _send_on_port_25(daemon, "bob@example.org", BIG_HEADER + MSG)
    assert len(daemon.inbox("alice@example.org", "alicepass")) == 1
    time.sleep(1)
    assert daemon.inbox("bob@example.org", "bobpass") == []
    assert "success DSN not sent: sender bob@example.org is not verified" in daemon.log()


def test_success_dsn_to_a_verified_sender_returns_a_capped_header(daemon: RunningDaemon) -> None:
    assert daemon.dns is not None
    daemon.dns.add("example.org", "TXT", "v=spf1 ip4:127.0.0.1 -all")  # SPF pass for the sender
    _send_on_port_25(daemon, "bob@example.org", MSG.replace(b"Subject:", BIG_HEADER + b"Subject:"))
    deadline = time.monotonic() + 10
    while not (found := daemon.inbox("bob@example.org", "bobpass")) and time.monotonic() < deadline:
        time.sleep(0.1)
    [raw] = found
    assert len(raw) < 64 * 1024, len(raw)
    returned = email.message_from_bytes(raw, policy=email.policy.default).get_payload()[2]
    assert returned.get_content_type() == "text/rfc822-headers"
    header = returned.get_payload() if isinstance(returned.get_payload(), str) else raw.decode()
    assert "X-Junk-0:" in header and "X-Junk-9999:" not in header
