"""SMTP and submission with real clients (smtplib, swaks, raw sockets) against the daemon."""

from __future__ import annotations

import smtplib
import socket
import ssl
import subprocess
import time

import pytest

from tests.daemon import RunningDaemon
from tests.tools import needs_program

MSG = b"From: bob@example.org\r\nTo: alice@example.org\r\nSubject: hello\r\n\r\nHi Alice.\r\n"


def test_inbound_delivery_with_starttls_and_trace_headers(daemon: RunningDaemon) -> None:
    with smtplib.SMTP("127.0.0.1", daemon.ports["smtp"], local_hostname="client.example.net") as s:
        _, ext = s.ehlo()
        for word in (
            b"PIPELINING",
            b"8BITMIME",
            b"SMTPUTF8",
            b"ENHANCEDSTATUSCODES",
            b"CHUNKING",
            b"STARTTLS",
            b"SIZE",
        ):
            assert word in ext
        assert b"AUTH" not in ext
        s.starttls(context=daemon.ssl_context())
        s.ehlo()
        refused = s.sendmail("someone@example.net", ["alice@example.org", "Alice+news@Example.ORG"], MSG)
        assert refused == {}
    [message] = daemon.inbox("alice@example.org", "alicepass")
    # Our trace fields on top; an untrained junk filter adds no X-Mailsrv-Junk field (docs/junk.md).
    assert message.startswith(b"Delivered-To: alice@example.org\r\nReceived: from client.example.net ([127.0.0.1])")
    assert b"X-Mailsrv-Junk" not in message
    assert b"with ESMTPS" in message and message.endswith(MSG)


def test_unknown_recipient_and_open_relay_refused(daemon: RunningDaemon) -> None:
    with smtplib.SMTP("127.0.0.1", daemon.ports["smtp"]) as s:
        s.ehlo()
        s.mail("x@example.net")
        assert s.rcpt("nobody@example.org")[0] == 550
        code, text = s.rcpt("victim@elsewhere.example")
        assert code == 554 and b"5.7.1" in text
        assert s.rcpt("bob@example.org")[0] == 250
        assert s.data(MSG)[0] == 250
    assert len(daemon.inbox("bob@example.org", "bobpass")) == 1


def test_submission_requires_tls_and_auth_and_checks_from(daemon: RunningDaemon) -> None:
    with smtplib.SMTP("127.0.0.1", daemon.ports["submission"]) as s:
        s.ehlo()
        assert not s.has_extn("auth")
        code, _ = s.mail("bob@example.org")
        assert code == 530
        s.rset()
        s.starttls(context=daemon.ssl_context())
        s.ehlo()
        assert "SCRAM-SHA-256" in s.esmtp_features["auth"]
        with pytest.raises(smtplib.SMTPAuthenticationError):
            s.login("bob@example.org", "wrong")
        s.login("bob@example.org", "bobpass")
        forged = MSG.replace(b"From: bob@", b"From: alice@")
        with pytest.raises(smtplib.SMTPDataError) as e:
            s.sendmail("bob@example.org", ["alice@example.org"], forged)
        assert e.value.smtp_code == 550
        # Issue 17 item 9: a second From: with a space before the colon, which mail clients
        # show as the From, is caught too; and the envelope sender is tied to the account.
        second_from = MSG.replace(b"Subject", b"From : alice@example.org\r\nSubject")
        with pytest.raises(smtplib.SMTPDataError) as e:
            s.sendmail("bob@example.org", ["alice@example.org"], second_from)
        assert (e.value.smtp_code, e.value.smtp_error[:5]) == (550, b"5.7.1")
        for foreign in ("alice@example.org", "ceo@remote.example"):
            code, text = s.mail(foreign)
            assert (code, text[:5]) == (553, b"5.7.1"), text
        s.rset()
        s.sendmail(
            "bob@example.org",
            ["alice@example.org", "far@remote.example"],
            MSG.replace(b"Subject", b"X-No-Id: 1\r\nSubject"),
        )
    [message] = daemon.inbox("alice@example.org", "alicepass")
    assert b"with ESMTPSA" in message and b"Message-ID: <" in message and b"\r\nDate: " in message
    # The remote recipient went to the outgoing queue. The test DNS has no remote.example, so
    # the queue fails it at once, sends bob a DSN and (bob keeps no retired messages) forgets
    # it: the DSN is what stays to see.
    deadline = time.monotonic() + 20
    while not any(
        b"far@remote.example" in m and b"Action: failed" in m for m in daemon.inbox("bob@example.org", "bobpass")
    ):
        assert time.monotonic() < deadline, "no DSN for the queued remote recipient"
        time.sleep(0.1)


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN", "CRAM-MD5"])
def test_submissions_implicit_tls_auth_mechanisms(daemon: RunningDaemon, mechanism: str) -> None:
    with smtplib.SMTP_SSL("127.0.0.1", daemon.ports["submissions"], context=daemon.ssl_context()) as s:
        s.ehlo()
        s.user, s.password = "bob@example.org", "bobpass"
        code, _ = s.auth(mechanism, getattr(s, f"auth_{mechanism.lower().replace('-', '_')}"), initial_response_ok=True)
        assert code == 235
        s.sendmail("bob@example.org", ["alice@example.org"], MSG)


def test_smtputf8_nfc_nfd_pair_lands_in_one_account(daemon: RunningDaemon) -> None:
    daemon.cli("account", "add", "jose", "jos\u00e9@example.org", "--password", "josepass1")
    with smtplib.SMTP("127.0.0.1", daemon.ports["smtp"]) as s:
        s.ehlo()
        for rcpt in ("jos\u00e9@example.org", "jose\u0301@example.org"):
            s.sendmail("x@example.net", [rcpt], MSG, mail_options=["SMTPUTF8"])
        s.mail("x@example.net")
        assert s.rcpt("jos\u00e9@example.org")[0] == 553  # without SMTPUTF8
    assert len(daemon.inbox("jose", "josepass1")) == 2  # imaplib cannot send a UTF-8 login name


def test_bdat_chunking_raw_socket(daemon: RunningDaemon) -> None:
    sock = socket.create_connection(("127.0.0.1", daemon.ports["smtp"]))
    f = sock.makefile("rb")
    assert f.readline().startswith(b"220")
    body = MSG.replace(b"hello", b"chunked")
    sock.sendall(
        b"EHLO raw.example\r\nMAIL FROM:<x@example.net>\r\nRCPT TO:<alice@example.org>\r\n"
        + b"BDAT %d\r\n" % 10
        + body[:10]
        + b"BDAT %d LAST\r\n" % (len(body) - 10)
        + body[10:]
        + b"QUIT\r\n"
    )
    replies = f.read().decode()
    sock.close()
    codes = [line[:3] for line in replies.splitlines() if line[3:4] == " "]
    assert codes == ["250", "250", "250", "250", "250", "221"], replies
    [message] = daemon.inbox("alice@example.org", "alicepass")
    assert message.endswith(body)


def test_pipelined_starttls_injection_is_discarded(daemon: RunningDaemon) -> None:
    sock = socket.create_connection(("127.0.0.1", daemon.ports["smtp"]))
    f = sock.makefile("rb")
    f.readline()
    sock.sendall(b"EHLO x\r\n")
    while not f.readline().startswith(b"250 "):
        pass
    sock.sendall(b"STARTTLS\r\nMAIL FROM:<injected@example.net>\r\n")
    assert f.readline().startswith(b"220")
    ctx = ssl.create_default_context(cafile=str(daemon.cert_path))
    ctx.check_hostname = False
    tls = ctx.wrap_socket(sock)
    tls.sendall(b"MAIL FROM:<x@example.net>\r\n")
    # The injected MAIL was dropped: this one is refused only for the missing EHLO.
    assert tls.recv(1024).startswith(b"503")
    tls.close()


@needs_program("swaks", package="swaks")
def test_swaks_sends(daemon: RunningDaemon) -> None:
    run = subprocess.run(
        [
            "swaks",
            "--server",
            "127.0.0.1",
            "--port",
            str(daemon.ports["submission"]),
            "--tls",
            "--auth",
            "PLAIN",
            "--auth-user",
            "bob@example.org",
            "--auth-password",
            "bobpass",
            "--from",
            "bob@example.org",
            "--to",
            "alice@example.org",
            "--header",
            "Subject: via swaks",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert any(b"via swaks" in m for m in daemon.inbox("alice@example.org", "alicepass"))


def test_bad_input_keeps_daemon_up(daemon: RunningDaemon) -> None:
    sock = socket.create_connection(("127.0.0.1", daemon.ports["smtp"]))
    f = sock.makefile("rb")
    f.readline()
    sock.sendall(b"\x00\xff garbage\r\n" + b"A" * 10000 + b"\r\nMAIL FROM:<>\r\nEHLO ok\r\n")
    time.sleep(0.3)
    sock.sendall(b"MAIL FROM:<a@b> SIZE=999999999999\r\nQUIT\r\n")
    replies = f.read().decode("utf-8", "replace")
    assert "500 5.5.2" in replies and "552 5.3.4" in replies and "221" in replies
    with smtplib.SMTP("127.0.0.1", daemon.ports["smtp"]) as s:
        assert s.noop()[0] == 250


@pytest.mark.parametrize(
    ("mechanism", "starttls"),
    [("SCRAM-SHA-256", False), ("SCRAM-SHA-1", True), ("SCRAM-SHA-256-PLUS", True), ("SCRAM-SHA-1-PLUS", False)],
)
def test_scram_mechanisms_with_smtplib(daemon: RunningDaemon, mechanism: str, starttls: bool) -> None:
    import hashlib

    import scramp

    if starttls:
        s: smtplib.SMTP = smtplib.SMTP("127.0.0.1", daemon.ports["submission"])
        s.starttls(context=daemon.ssl_context())
    else:
        s = smtplib.SMTP_SSL("127.0.0.1", daemon.ports["submissions"], context=daemon.ssl_context())
    with s:
        s.ehlo()
        assert mechanism in s.esmtp_features["auth"].split()
        cb = None
        if mechanism.endswith("PLUS"):
            # RFC 5929 §4.1 tls-server-end-point: the hash of the server's certificate.
            cert = s.sock.getpeercert(binary_form=True)  # type: ignore[union-attr]
            cb = ("tls-server-end-point", hashlib.sha256(cert).digest())
        client = scramp.ScramClient([mechanism], "bob@example.org", "bobpass", channel_binding=cb)
        steps = iter(["first", "final", "verify"])

        def answer(challenge: bytes | None = None) -> str:
            step = next(steps)
            if step == "first":
                return str(client.get_client_first())
            if step == "final":
                client.set_server_first(challenge.decode())  # type: ignore[union-attr]
                return str(client.get_client_final())
            client.set_server_final(challenge.decode())  # type: ignore[union-attr]  # verifies the server
            return ""

        code, _ = s.auth(mechanism, answer, initial_response_ok=True)
        assert code == 235
        assert s.sendmail("bob@example.org", ["alice@example.org"], MSG) == {}


def test_submission_smtputf8_from_in_nfd_is_the_accounts_address(daemon: RunningDaemon) -> None:
    daemon.cli("account", "add", "jose", "jos\u00e9@example.org", "--password", "josepass1")
    nfd = "jose\u0301@example.org"
    msg = f"From: {nfd}\r\nTo: alice@example.org\r\nSubject: caf\u00e9\r\n\r\nol\u00e1\r\n".encode()
    with smtplib.SMTP_SSL("127.0.0.1", daemon.ports["submissions"], context=daemon.ssl_context()) as s:
        s.login("jose", "josepass1")
        # AUTH=<> on MAIL (RFC 4954 §5), as relaying MTAs send it, is accepted.
        assert s.sendmail(nfd, ["alice@example.org"], msg, mail_options=["SMTPUTF8", "AUTH=<>"]) == {}
    [message] = daemon.inbox("alice@example.org", "alicepass")
    assert message.endswith(msg) and b"with UTF8SMTPSA" in message


def test_requiretls_offered_and_accepted_only_inside_tls(daemon: RunningDaemon) -> None:
    """RFC 8689: REQUIRETLS is advertised only after STARTTLS, and a MAIL FROM carrying it
    over cleartext is refused (530 5.7.10); inside TLS the message is accepted and delivered."""
    with smtplib.SMTP("127.0.0.1", daemon.ports["smtp"], local_hostname="client.example.net") as s:
        s.ehlo()
        assert not s.has_extn("requiretls")
        code, text = s.mail("someone@example.net", ["REQUIRETLS"])
        assert (code, text[:6]) == (530, b"5.7.10"), text
        s.rset()
        s.starttls(context=daemon.ssl_context())
        s.ehlo()
        assert s.has_extn("requiretls")
        assert s.mail("someone@example.net", ["REQUIRETLS=yes"])[0] == 501
        s.rset()
        assert s.sendmail("someone@example.net", ["alice@example.org"], MSG, mail_options=["REQUIRETLS"]) == {}
    [message] = daemon.inbox("alice@example.org", "alicepass")
    assert message.endswith(MSG)
