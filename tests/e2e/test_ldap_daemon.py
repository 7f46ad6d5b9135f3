"""The daemon with accounts from a real slapd: IMAP and SMTP logins, delivery, outages."""

from __future__ import annotations

import imaplib
import smtplib
from pathlib import Path

import pytest

from tests.auth.slapd import BASE, SERVICE_DN, SERVICE_PASSWORD, start_slapd
from tests.daemon import start_daemon
from tests.tools import needs_program

MSG = b"From: x@example.net\r\nTo: dora@example.org\r\nSubject: from afar\r\n\r\nhello\r\n"


@needs_program("slapd", package="slapd")
@needs_program("ldapmodify", package="ldap-utils")
def test_directory_users_log_in_receive_and_survive_outages(tmp_path: Path) -> None:
    slapd = start_slapd(tmp_path / "slapd")
    try:
        ldap = (
            slapd.mailsrv_section(tmp_path / "bindpw")
            + """
# The refusals below are deliberate failures from one IP: keep the rate limiter out of the way.
[limits]
login_failures_per_ip = 100
"""
        )
        daemon = start_daemon(tmp_path / "d", accounts={}, extra_static=ldap)
        try:
            with smtplib.SMTP("127.0.0.1", daemon.ports["smtp"]) as s:
                s.ehlo()
                s.sendmail("x@example.net", ["dora@example.org"], MSG)
                s.mail("x@example.net")
                assert s.rcpt("eve@example.org")[0] == 550  # not in the mail group
                assert s.rcpt("*)(uid=*@example.org")[0] in (550, 553)
            # Wrong password, a user outside the mail group, an injection attempt: all refused.
            for user, password in [
                ("dora@example.org", "wrong"),
                ("eve@example.org", "evepass"),
                ("*)(uid=*", "dorapass"),
                ("dora@example.org", ""),
            ]:
                imap = imaplib.IMAP4_SSL("127.0.0.1", daemon.ports["imaps"], ssl_context=daemon.ssl_context())
                with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
                    # imaplib sends the user name unquoted; quote it (RFC 9051 §4.3) so the
                    # injection attempt reaches the directory lookup instead of the parser.
                    imap.login('"' + user + '"', password)
                with smtplib.SMTP_SSL("127.0.0.1", daemon.ports["submissions"], context=daemon.ssl_context()) as s:
                    s.ehlo()
                    with pytest.raises(smtplib.SMTPAuthenticationError) as auth_error:
                        s.user, s.password = user, password
                        s.auth("PLAIN", s.auth_plain)
                    # RFC 4616 §2: PLAIN's passwd is 1*SAFE, so an empty one is a malformed message.
                    assert auth_error.value.smtp_code == (535 if password else 501), (user, auth_error.value)
            imap = imaplib.IMAP4_SSL("127.0.0.1", daemon.ports["imaps"], ssl_context=daemon.ssl_context())
            imap.login("dora@example.org", "dorapass")
            _, data = imap.select("INBOX")
            assert int(data[0]) == 1
            imap.logout()
            # finn never received mail: his store is created when he first logs in.
            imap = imaplib.IMAP4_SSL("127.0.0.1", daemon.ports["imaps"], ssl_context=daemon.ssl_context())
            imap.login("finn", "finnpass")
            assert imap.select("INBOX") == ("OK", [b"0"])
            assert imap.append("INBOX", None, None, MSG)[0] == "OK"
            imap.logout()
            with smtplib.SMTP_SSL("127.0.0.1", daemon.ports["submissions"], context=daemon.ssl_context()) as s:
                assert "CRAM-MD5" not in s.ehlo()[1].decode() and "SCRAM" not in s.ehlo()[1].decode()
                s.login("dora", "dorapass")

            session = imaplib.IMAP4_SSL("127.0.0.1", daemon.ports["imaps"], ssl_context=daemon.ssl_context())
            session.login("finn@example.org", "finnpass")
            session.select("INBOX")
            slapd.stop()
            # Logged-in IMAP session continues; new logins fail temporarily; known addresses
            # still receive mail; unknown ones are deferred (451), never refused (550).
            assert session.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")[0] == "OK"
            assert session.noop()[0] == "OK"
            session.logout()
            imap = imaplib.IMAP4_SSL("127.0.0.1", daemon.ports["imaps"], ssl_context=daemon.ssl_context())
            with pytest.raises(imaplib.IMAP4.error, match="UNAVAILABLE"):
                imap.login("dora@example.org", "dorapass")
            with smtplib.SMTP_SSL("127.0.0.1", daemon.ports["submissions"], context=daemon.ssl_context()) as s:
                s.ehlo()
                with pytest.raises(smtplib.SMTPAuthenticationError) as e:
                    s.login("dora", "dorapass")
                assert e.value.smtp_code == 454
            with smtplib.SMTP("127.0.0.1", daemon.ports["smtp"]) as s:
                s.ehlo()
                s.mail("x@example.net")
                assert s.rcpt("dora@example.org")[0] == 250
                assert s.rcpt("d.directory@example.org")[0] == 451
                assert s.data(MSG)[0] == 250

            # The directory is back, and says dora is gone: her logins and her mail are refused.
            slapd.start()
            imap = imaplib.IMAP4_SSL("127.0.0.1", daemon.ports["imaps"], ssl_context=daemon.ssl_context())
            imap.login("d.directory@example.org", "dorapass")  # back to normal first
            imap.logout()
            slapd.modify(f"dn: uid=dora,ou=people,{BASE}\nchangetype: delete\n")
            imap = imaplib.IMAP4_SSL("127.0.0.1", daemon.ports["imaps"], ssl_context=daemon.ssl_context())
            with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
                imap.login("dora@example.org", "dorapass")
            with smtplib.SMTP("127.0.0.1", daemon.ports["smtp"]) as s:
                s.ehlo()
                s.mail("x@example.net")
                assert s.rcpt("dora@example.org")[0] == 550
            assert "Traceback" not in daemon.stop()
        finally:
            daemon.kill()
    finally:
        slapd.stop()


@needs_program("slapd", package="slapd")
@needs_program("ldapmodify", package="ldap-utils")
def test_cli_ldap_test(tmp_path: Path) -> None:
    slapd = start_slapd(tmp_path / "slapd")
    try:
        (tmp_path / "bindpw").write_text(SERVICE_PASSWORD)
        from tests.daemon import write_config

        d = write_config(
            tmp_path / "d",
            accounts={},
            extra_static=f"""
[ldap]
uris = ["{slapd.uri}"]
bind_dn = "{SERVICE_DN}"
bind_password_file = "{tmp_path / "bindpw"}"
user_base = "ou=people,{BASE}"
user_filter = "(&(objectClass=inetOrgPerson)(mail={{address}}))"
ca_file = "{slapd.ca_path}"
""",
        )
        out = d.cli("ldap", "test", "d.directory@example.org")
        assert out.returncode == 0, out.stderr
        assert "uid=dora,ou=people" in out.stdout and "account:      dora" in out.stdout
        missing = d.cli("ldap", "test", "*)(uid=*")
        assert missing.returncode == 1 and "no single entry" in missing.stderr
        slapd.stop()
        down = d.cli("ldap", "test", "dora@example.org")
        assert down.returncode == 1 and "directory unavailable" in down.stderr and "Traceback" not in down.stderr
    finally:
        slapd.stop()
