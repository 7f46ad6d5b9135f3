"""Aliases (lists) through the CLI and SMTP against the real daemon: one copy per member,
none back to the sending member, PostPublic, AllowMsgFrom on submission."""

from __future__ import annotations

import json
import smtplib

import pytest

from tests.daemon import RunningDaemon


def _msg(sender: str, to: str, subject: str) -> bytes:
    return f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\n\r\nbody\r\n".encode()


def test_alias_cli_and_list_delivery(daemon: RunningDaemon) -> None:
    run = daemon.cli("alias", "add", "team@example.org", "alice@example.org", "bob@example.org")
    assert run.returncode == 0, run.stderr
    assert daemon.cli("alias", "add", "alice@example.org").returncode == 1  # an account's address
    rows = json.loads(daemon.cli("alias", "list", "--json").stdout)
    assert rows[0]["alias"] == "team@example.org" and len(rows[0]["members"]) == 2
    with smtplib.SMTP("127.0.0.1", daemon.ports["smtp"]) as s:
        s.ehlo()
        # Not a member, PostPublic off: refused.
        s.mail("stranger@example.net")
        code, text = s.rcpt("team@example.org")
        assert code == 550 and b"5.7.1" in text
        s.rset()
        # A member sends to the list and names another member too: one copy each, none back.
        refused = s.sendmail(
            "bob@example.org", ["team@example.org", "alice@example.org"], _msg("bob@example.org", "team", "one")
        )
        assert refused == {}
    assert len(daemon.inbox("alice@example.org", "alicepass")) == 1
    assert daemon.inbox("bob@example.org", "bobpass") == []

    assert daemon.cli("alias", "set", "team@example.org", "--post-public").returncode == 0
    with smtplib.SMTP("127.0.0.1", daemon.ports["smtp"]) as s:
        s.sendmail("stranger@example.net", ["team@example.org"], _msg("stranger@example.net", "team", "two"))
    assert (
        len(daemon.inbox("alice@example.org", "alicepass")) == 2
        and len(daemon.inbox("bob@example.org", "bobpass")) == 1
    )

    assert daemon.cli("alias", "rmmember", "team@example.org", "bob@example.org").returncode == 0
    assert daemon.cli("alias", "rm", "team@example.org").returncode == 0
    assert json.loads(daemon.cli("alias", "list", "--json").stdout) == []


def test_allow_msg_from_on_submission(daemon: RunningDaemon) -> None:
    assert daemon.cli("alias", "add", "sales@example.org", "bob@example.org").returncode == 0
    with smtplib.SMTP_SSL("127.0.0.1", daemon.ports["submissions"], context=daemon.ssl_context()) as s:
        s.login("bob@example.org", "bobpass")
        with pytest.raises(smtplib.SMTPDataError) as e:
            s.sendmail("bob@example.org", ["alice@example.org"], _msg("sales@example.org", "alice", "x"))
        assert e.value.smtp_code == 550
    assert daemon.cli("alias", "set", "sales@example.org", "--allow-msg-from").returncode == 0
    with smtplib.SMTP_SSL("127.0.0.1", daemon.ports["submissions"], context=daemon.ssl_context()) as s:
        s.login("bob@example.org", "bobpass")
        assert s.sendmail("bob@example.org", ["alice@example.org"], _msg("sales@example.org", "alice", "y")) == {}
    assert len(daemon.inbox("alice@example.org", "alicepass")) == 1


def test_ruleset_from_cli_files_into_mailbox(daemon: RunningDaemon) -> None:
    import imaplib

    run = daemon.cli("rules", "add", "alice", "--header", "^subject$", "invoice", "--mailbox", "Bills")
    assert run.returncode == 0, run.stderr
    assert daemon.cli("rules", "add", "alice", "--msg-from", "(").returncode == 1  # bad regexp, no action
    assert "Bills" in daemon.cli("rules", "list", "alice").stdout
    imap = imaplib.IMAP4_SSL("127.0.0.1", daemon.ports["imaps"], ssl_context=daemon.ssl_context())
    imap.login("alice@example.org", "alicepass")
    imap.create("Bills")
    with smtplib.SMTP("127.0.0.1", daemon.ports["smtp"]) as s:
        s.sendmail("x@example.net", ["alice@example.org"], _msg("x@example.net", "alice", "Your INVOICE"))
        s.sendmail("x@example.net", ["alice@example.org"], _msg("x@example.net", "alice", "hello"))
    assert imap.select("Bills")[1][0] == b"1"
    assert imap.select("INBOX")[1][0] == b"1"
    imap.logout()
    assert daemon.cli("rules", "rm", "alice", "1").returncode == 0
    assert daemon.cli("rules", "list", "alice").stdout == ""


def test_quota_refuses_with_452_and_list_skips_full_member(daemon: RunningDaemon) -> None:
    assert daemon.cli("account", "setquota", "bob", "500").returncode == 0
    assert daemon.cli("alias", "add", "all@example.org", "alice@example.org", "bob@example.org").returncode == 0
    assert daemon.cli("alias", "set", "all@example.org", "--post-public").returncode == 0
    big = _msg("x@example.net", "bob", "big") + b"x" * 1000 + b"\r\n"
    with smtplib.SMTP("127.0.0.1", daemon.ports["smtp"]) as s:
        s.ehlo()
        s.mail("x@example.net")
        assert s.rcpt("bob@example.org")[0] == 250
        assert s.rcpt("alice@example.org")[0] == 250
        code, text = s.data(big)
        assert code == 452 and text.startswith(b"4.2.2"), text  # nothing stored, not even alice's copy
        assert s.sendmail("x@example.net", ["all@example.org"], big) == {}
    assert len(daemon.inbox("alice@example.org", "alicepass")) == 1
    assert daemon.inbox("bob@example.org", "bobpass") == []


def test_expn_shows_members_only_with_list_members(daemon: RunningDaemon) -> None:
    assert daemon.cli("alias", "add", "crew@example.org", "alice@example.org", "bob@example.org").returncode == 0
    with smtplib.SMTP_SSL("127.0.0.1", daemon.ports["submissions"], context=daemon.ssl_context()) as s:
        s.login("bob@example.org", "bobpass")
        assert s.expn("crew@example.org")[0] == 252
        assert daemon.cli("alias", "set", "crew@example.org", "--list-members").returncode == 0
        code, text = s.expn("crew@example.org")
        assert code == 250 and text == b"2.1.5 <alice@example.org>\n2.1.5 <bob@example.org>"
    with smtplib.SMTP("127.0.0.1", daemon.ports["smtp"]) as s:
        assert s.expn("crew@example.org")[0] == 252  # not authenticated: nothing revealed
