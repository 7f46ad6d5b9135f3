"""The log lines that trace mail (mailsrv/maillog.py), parsed from the real daemon's log with the
regular expressions docs/operations.md gives: one line per accepted message (queue id,
Message-ID, sender, every recipient and where its copy went), one NOQUEUE line per refused
RCPT/MAIL/message that a fail2ban filter can match, one line per queue delivery attempt."""

from __future__ import annotations

import email.policy
import re
import smtplib
from email.message import EmailMessage

import pytest

from mailsrv.maillog import Acceptance, Attempt, Copy, Rejection
from tests.daemon import RunningDaemon, wait_until

# As in docs/operations.md "Log lines that trace mail".
REJECT = re.compile(
    r"NOQUEUE: reject: (?P<stage>MAIL|RCPT|DATA) from (?P<name>[^\[ ]*)\[(?P<ip>[^\]]+)\]: (?P<code>[45]\d\d)"
    r" (?P<enhanced>[245]\.\d{1,3}\.\d{1,3})(?: <(?P<rcpt>[^>]*)>:)? (?P<reason>.*?); from=<(?P<sender>[^>]*)>"
    r"(?: to=<(?P<to>[^>]*)>)? proto=(?P<proto>E?SMTP) helo=<(?P<helo>[^>]*)>$"
)
ACCEPTED = re.compile(
    r"(?P<qid>[0-9a-f]+): accepted message-id=<(?P<mid>[^>]*)> from=<(?P<sender>[^>]*)> size=(?P<size>\d+)"
    r" client=(?P<name>[^\[ ]*)\[(?P<ip>[^\]]+)\](?: sasl_username=(?P<account>\S+))? (?P<rcpts>to=.*)$"
)
RECIPIENT = re.compile(r"to=<(?P<address>[^>]*)> \((?P<places>[^)]*)\)")
ATTEMPT = re.compile(
    r"queue (?P<queue>\d+): to=<(?P<rcpt>[^>]*)>, relay=(?P<relay>\S+), attempt=(?P<attempt>\d+),"
    r" delay=(?P<delay>[\d.]+), status=(?P<status>delivered|deferred|failed) \((?P<reply>.*)\)$"
)
# What a fail2ban filter needs (docs/operations.md gives it as failregex with <HOST>).
FAIL2BAN = re.compile(r"NOQUEUE: reject: RCPT from [^\[ ]*\[(?P<host>[^\]]+)\]: 5\d\d ")


def lines(daemon: RunningDaemon, pattern: re.Pattern[str]) -> list[re.Match[str]]:
    """Matches of `pattern` on the message of each log line: after mailsrv's `TIME LEVEL
    NAMESPACE [cN] ` (mailsrv/logging.py) or twist's `TIME [NAMESPACE#LEVEL] `."""
    out = []
    for line in daemon.log().splitlines():
        message = re.sub(r"^\S+ (?:\[[^\]]*\]|\S+ \S+)(?: \[c\d+\])? ", "", line)
        m = pattern.match(message)
        if m is not None:
            out.append(m)
    return out


def test_inbound_accept_and_refusals(daemon: RunningDaemon) -> None:
    msg = EmailMessage()
    msg["From"] = "x@example.net"
    msg["To"] = "alice@example.org"
    msg["Message-ID"] = "<trace-1@example.net>"
    msg["Subject"] = "traced"
    msg.set_content("hello\n")
    with smtplib.SMTP("127.0.0.1", daemon.ports["smtp"], timeout=30) as s:
        s.ehlo("client.example.net")
        s.mail("x@example.net")
        assert s.rcpt("alice@example.org")[0] == 250
        assert s.rcpt("nobody@example.org")[0] == 550
        assert s.rcpt("far@elsewhere.example")[0] == 554
        assert s.data(msg.as_bytes(policy=email.policy.SMTP))[0] == 250
    wait_until(lambda: lines(daemon, ACCEPTED), 10, "the accepted line")

    rejects = {m["to"]: m for m in lines(daemon, REJECT)}
    unknown = rejects["nobody@example.org"]
    assert (unknown["stage"], unknown["code"], unknown["enhanced"]) == ("RCPT", "550", "5.1.1")
    assert (unknown["name"], unknown["ip"], unknown["rcpt"]) == ("unknown", "127.0.0.1", "nobody@example.org")
    assert unknown["sender"] == "x@example.net" and unknown["proto"] == "ESMTP"
    assert unknown["helo"] == "client.example.net" and unknown["reason"]
    relay = rejects["far@elsewhere.example"]
    assert (relay["code"], relay["enhanced"]) == ("554", "5.7.1")
    assert [m["host"] for m in lines(daemon, FAIL2BAN)] == ["127.0.0.1", "127.0.0.1"]

    [accepted] = lines(daemon, ACCEPTED)
    assert accepted["mid"] == "trace-1@example.net" and accepted["sender"] == "x@example.net"
    assert accepted["ip"] == "127.0.0.1" and accepted["account"] is None
    assert int(accepted["size"]) == len(msg.as_bytes(policy=email.policy.SMTP))
    assert RECIPIENT.findall(accepted["rcpts"]) == [("alice@example.org", "alice:INBOX")]
    # The queue id is the one in the stored message's Received: field.
    [stored] = daemon.inbox("alice@example.org", "alicepass")
    assert f" id {accepted['qid']}".encode() in stored


def test_submission_accept_queue_attempt_and_data_refusal(daemon: RunningDaemon) -> None:
    with smtplib.SMTP_SSL("127.0.0.1", daemon.ports["submissions"], context=daemon.ssl_context(), timeout=30) as s:
        s.login("bob@example.org", "bobpass")
        msg = b"From: bob@example.org\r\nTo: alice@example.org, far@remote.example\r\nSubject: out\r\n\r\nhi\r\n"
        s.sendmail("bob@example.org", ["alice@example.org", "far@remote.example"], msg)
        # The From: is not bob's: the message is refused at the end of DATA.
        with pytest.raises(smtplib.SMTPDataError):
            s.sendmail("bob@example.org", ["alice@example.org"], b"From: alice@example.org\r\n\r\nforged\r\n")
    wait_until(lambda: lines(daemon, ATTEMPT), 30, "a queue attempt line")

    [accepted] = lines(daemon, ACCEPTED)
    assert accepted["account"] == "bob" and accepted["sender"] == "bob@example.org"
    assert accepted["mid"].endswith("@example.org")  # added by submission
    places = dict(RECIPIENT.findall(accepted["rcpts"]))
    assert places["alice@example.org"] == "alice:INBOX"
    queue = re.fullmatch(r"queue (\d+)", places["far@remote.example"])
    assert queue is not None

    attempt = lines(daemon, ATTEMPT)[0]
    assert attempt["queue"] == queue.group(1) and attempt["rcpt"] == "far@remote.example"
    assert attempt["attempt"] == "1" and attempt["status"] in ("deferred", "failed") and attempt["reply"]

    [refused] = [m for m in lines(daemon, REJECT) if m["stage"] == "DATA"]
    assert (refused["code"], refused["enhanced"]) == ("550", "5.7.1") and refused["sender"] == "bob@example.org"


def test_peer_controlled_values_cannot_break_the_line() -> None:
    reject = Rejection("RCPT", "192.0.2.1", 550, "5.1.1", "no\r\nsuch", "a@b", "x>\nNOQUEUE: fake", "ESMTP", "h\x00")
    line = reject.line()
    assert "\n" not in line and "\r" not in line and "\x00" not in line
    assert REJECT.fullmatch(line) is None or line.count("NOQUEUE") == 1
    accepted = Acceptance("ab12", "<m\n@x>", None, 10, "::1", None, [Copy("a@b", [("a", "INBOX")])])
    assert "\n" not in accepted.line() and "from=<>" in accepted.line()
    assert ACCEPTED.fullmatch(accepted.line()) is not None
    attempt = Attempt(7, "r@x", "", 2, 3.04, "deferred", "451 4.4.1 no answer\r\n")
    assert ATTEMPT.fullmatch(attempt.line()) is not None and "relay=none" in attempt.line()
    assert attempt.fields()["delay"] == 3.0 and reject.fields()["code"] == 550


def test_an_attempts_transport_is_a_json_field_and_leaves_the_text_line_alone() -> None:
    plain = Attempt(17, "a@b.example", "relay.example [192.0.2.1]", 1, 0.4, "delivered", "250 ok")
    routed = Attempt(17, "a@b.example", "relay.example [192.0.2.1]", 1, 0.4, "delivered", "250 ok", "provider")
    assert routed.line() == plain.line()
    assert routed.fields()["transport"] == "provider" and plain.fields()["transport"] == ""
