"""A registered TLS client key logs in only while its account exists and may log in.

The account provider that password logins use is asked at every connection: a user deleted
from a real slapd, or an account removed from (or disabled in) dynamic.toml, no longer gets
PREAUTH, EXTERNAL or submission without AUTH, although the key stays registered. Clients:
imaplib and smtplib with a client certificate in their SSL context.
"""

from __future__ import annotations

import imaplib
import smtplib
import ssl
import time
from pathlib import Path

import pytest

from mailsrv.config import write_atomically
from tests.auth.slapd import BASE, start_slapd
from tests.certs import client_certificate as make_cert
from tests.daemon import RunningDaemon, start_daemon
from tests.e2e.test_clientcert import client_context, register
from tests.tools import needs_program

Cert = tuple[Path, Path]


def _message(sender: str, to: str) -> bytes:
    return f"From: {sender}\r\nTo: {to}\r\nSubject: by key\r\n\r\nhi\r\n".encode()


def _imap(daemon: RunningDaemon, cert: Cert) -> imaplib.IMAP4_SSL:
    return imaplib.IMAP4_SSL("127.0.0.1", daemon.ports["imaps"], ssl_context=client_context(daemon, cert), timeout=30)


def _assert_key_logs_in(daemon: RunningDaemon, cert: Cert, sender: str, to: str) -> None:
    imap = _imap(daemon, cert)
    assert imap.welcome.startswith(b"* PREAUTH"), imap.welcome
    assert imap.select("INBOX")[0] == "OK"
    imap.logout()
    ctx = client_context(daemon, cert)
    with smtplib.SMTP_SSL("127.0.0.1", daemon.ports["submissions"], context=ctx, timeout=30) as s:
        s.ehlo()
        assert s.sendmail(sender, [to], _message(sender, to)) == {}


def _assert_key_refused(daemon: RunningDaemon, cert: Cert, sender: str, to: str) -> None:
    """An unregistered certificate's treatment: OK greeting, no EXTERNAL, no submission."""
    imap = _imap(daemon, cert)
    try:
        assert imap.welcome.startswith(b"* OK"), imap.welcome
        assert "AUTH=EXTERNAL" not in imap.capabilities
        with pytest.raises(imaplib.IMAP4.error):
            imap.authenticate("EXTERNAL", lambda _: b"")
    finally:
        imap.shutdown()
    ctx = client_context(daemon, cert)
    with smtplib.SMTP_SSL("127.0.0.1", daemon.ports["submissions"], context=ctx, timeout=30) as s:
        s.ehlo()
        assert "EXTERNAL" not in s.esmtp_features.get("auth", "")
        with pytest.raises(smtplib.SMTPSenderRefused) as refused:
            s.sendmail(sender, [to], _message(sender, to))
        assert refused.value.smtp_code == 530  # authentication required
        assert s.docmd("AUTH", "EXTERNAL =")[0] in (504, 535)


def _wait_for_greeting(daemon: RunningDaemon, cert: Cert, greeting: bytes, timeout: float = 15.0) -> None:
    """Until the dynamic config's reloader (every 2 s) has seen a hand edit."""
    deadline = time.monotonic() + timeout
    while True:
        imap = _imap(daemon, cert)
        welcome = imap.welcome
        imap.shutdown()
        if welcome.startswith(greeting):
            return
        assert time.monotonic() < deadline, f"greeting {welcome!r}\n{daemon.log()[-3000:]}"
        time.sleep(0.5)


@needs_program("slapd", package="slapd")
@needs_program("ldapmodify", package="ldap-utils")
def test_directory_user_deleted_or_unreachable(tmp_path: Path) -> None:
    slapd = start_slapd(tmp_path / "slapd")
    try:
        daemon = start_daemon(
            tmp_path / "d",
            accounts={},
            extra_static=slapd.mailsrv_section(tmp_path / "bindpw")
            + """
# Three refused certificate connections from 127.0.0.1 block its logins (checked at the end).
[limits]
login_failures_per_ip = 3
""",
        )
        try:
            cert = make_cert(tmp_path, "doras-phone", "p256")
            other = make_cert(tmp_path, "other", "ed25519")
            # `tlspubkey add` asks the directory: unknown entries, entries outside the mail
            # group and addresses that are not the entry's are refused.
            for account, extra, error in [
                ("nobody", (), "no account nobody in the directory"),
                ("eve", (), "no account eve in the directory"),
                ("dora", ("--login-address", "finn@example.org"), "finn@example.org is not its address"),
            ]:
                r = daemon.cli("config", "tlspubkey", "add", account, str(other[0]), *extra)
                assert r.returncode == 1 and error in r.stderr, (account, r.stdout, r.stderr)
            # The account is stored as the directory spells it (uid matches regardless of case).
            r = daemon.cli("config", "tlspubkey", "add", "DORA", str(cert[0]))
            assert r.returncode == 0 and "added for dora " in r.stdout, r.stdout + r.stderr

            _assert_key_logs_in(daemon, cert, "dora@example.org", "finn@example.org")

            # Directory down: no certificate login, and EXTERNAL says "temporarily".
            slapd.stop()
            imap = _imap(daemon, cert)
            assert imap.welcome.startswith(b"* OK"), imap.welcome
            with pytest.raises(imaplib.IMAP4.error, match="UNAVAILABLE"):
                imap.authenticate("EXTERNAL", lambda _: b"")
            imap.shutdown()
            ctx = client_context(daemon, cert)
            with smtplib.SMTP_SSL("127.0.0.1", daemon.ports["submissions"], context=ctx, timeout=30) as s:
                s.ehlo()
                assert s.docmd("AUTH", "EXTERNAL =")[0] == 454
                assert s.docmd("MAIL", "FROM:<dora@example.org>")[0] == 530
            r = daemon.cli("config", "tlspubkey", "add", "finn", str(other[0]))
            assert r.returncode == 1 and "cannot be reached" in r.stderr, r.stderr
            slapd.start()
            _assert_key_logs_in(daemon, cert, "dora@example.org", "finn@example.org")

            # Deleted from the directory: her key, still registered, is a stranger's now.
            slapd.modify(f"dn: uid=dora,ou=people,{BASE}\nchangetype: delete\n")
            _assert_key_refused(daemon, cert, "dora@example.org", "finn@example.org")
            assert "dora" in daemon.cli("config", "tlspubkey", "list").stdout
            log = daemon.log()
            assert "refused: the account does not exist or may not log in" in log, log[-3000:]

            # Each refused key counted as a failed login from 127.0.0.1 (two so far): the third
            # reaches the limit, and then even a good password waits.
            imap = _imap(daemon, cert)
            assert imap.welcome.startswith(b"* OK")
            with pytest.raises(imaplib.IMAP4.error, match="UNAVAILABLE"):
                imap.login("finn@example.org", "finnpass")
            imap.shutdown()
            assert "Traceback" not in daemon.stop()
        finally:
            daemon.kill()
    finally:
        slapd.stop()


def _set_dynamic(daemon: RunningDaemon, text: str) -> None:
    write_atomically(daemon.data_dir / "dynamic.toml", text.encode())


def test_local_account_disabled_removed_or_rm(tmp_path: Path) -> None:
    daemon = start_daemon(tmp_path / "d", extra_static="[limits]\nlogin_failures_per_ip = 1000\n")
    try:
        alice = make_cert(tmp_path, "alice", "rsa")
        bob = make_cert(tmp_path, "bob", "p256")
        alice_fingerprint = register(daemon, "alice", alice[0])
        register(daemon, "bob", bob[0])
        _assert_key_logs_in(daemon, alice, "alice@example.org", "bob@example.org")
        original = (daemon.data_dir / "dynamic.toml").read_text()
        assert '[accounts."alice"]\n' in original

        # Disabled by hand in dynamic.toml: refused; enabled again: logs in again.
        _set_dynamic(daemon, original.replace('[accounts."alice"]\n', '[accounts."alice"]\ndisabled = true\n'))
        _wait_for_greeting(daemon, alice, b"* OK")
        _assert_key_refused(daemon, alice, "alice@example.org", "bob@example.org")
        _set_dynamic(daemon, original)
        _wait_for_greeting(daemon, alice, b"* PREAUTH")

        # Removed from dynamic.toml by hand: the key remains in auth.db but logs in no more.
        section = original.index('[accounts."alice"]\n')
        end = original.find("[accounts.", section + 1)
        _set_dynamic(daemon, original[:section] + (original[end:] if end >= 0 else ""))
        _wait_for_greeting(daemon, alice, b"* OK")
        _assert_key_refused(daemon, alice, "alice@example.org", "bob@example.org")
        assert alice_fingerprint in daemon.cli("config", "tlspubkey", "list").stdout

        # `mailsrv account rm` through the daemon.
        _assert_key_logs_in(daemon, bob, "bob@example.org", "bob@example.org")
        r = daemon.cli("account", "rm", "bob")
        assert r.returncode == 0, r.stderr
        _assert_key_refused(daemon, bob, "bob@example.org", "bob@example.org")
        assert "Traceback" not in daemon.stop()
    finally:
        daemon.kill()


def test_client_waiting_for_the_check_keeps_its_order(tmp_path: Path) -> None:
    """Commands sent right after the handshake wait for the account check, then run in order."""
    daemon = start_daemon(tmp_path / "d")
    try:
        cert = make_cert(tmp_path, "fast", "ed25519")
        register(daemon, "alice", cert[0], "--no-imap-preauth")
        ctx: ssl.SSLContext = client_context(daemon, cert)
        import socket

        with socket.create_connection(("127.0.0.1", daemon.ports["imaps"]), timeout=30) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
                tls.sendall(b"a AUTHENTICATE EXTERNAL =\r\nb LOGOUT\r\n")
                data = b""
                while b"b OK" not in data:
                    chunk = tls.recv(65536)
                    if not chunk:
                        break
                    data += chunk
        assert data.startswith(b"* OK"), data
        assert b"a OK" in data and data.index(b"a OK") < data.index(b"b OK"), data
    finally:
        daemon.kill()
