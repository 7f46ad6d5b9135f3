"""Sending through a smarthost: daemon A (example.org, 127.0.0.1) routes mail for b.example
through daemon B (127.0.0.2), logging in on B's submission port as B's account `relay`, the
way a small organisation sends through its provider.

- Transport `smarthost` (submissions: TLS from the first byte, B's certificate verified
  against `tls_ca_file` for the name mail.b.example; password from a 0600 file) is what the
  routes choose for b.example. The message arrives in bob@b.example's INBOX with B's
  `Received: ... with ESMTPSA` (authenticated submission), and A's history names the transport.
- Transport `badlogin` (submission with STARTTLS, a wrong password written in the config, which
  start-up warns about) is chosen for mail of A's account bob: B refuses the login, so the
  recipient is deferred with a clear error, not bounced. An administrator moves it to
  `smarthost` (`mailsrv queue transport`) and it goes.
- B's `relay` account owns alice@example.org and bob@example.org: providers accept only
  their customers' own sender addresses, and so does B's submission.
"""

from __future__ import annotations

import os
import smtplib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.daemon import RunningDaemon, wait_until, write_config
from tests.dnsserver import DNSServer


@dataclass
class Pair:
    a: RunningDaemon
    b: RunningDaemon


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    base = Path(tmp_path_factory.mktemp("smarthost"))
    with DNSServer() as dns:
        dns_section = f'\n[dns]\nnameservers = ["{dns.nameserver}"]\ntimeout = 2\n'
        b = write_config(
            base / "b",
            domain="b.example",
            accounts={"bob": ("bob@b.example", "bobpass"), "relay": ("relay@b.example", "relaypass")},
            extra_static=dns_section,
            extra_dynamic='\n[domains."example.org"]\n',
            address="127.0.0.2",
        )
        dynamic = b.data_dir / "dynamic.toml"
        dynamic.write_text(
            dynamic.read_text().replace(
                'addresses = ["relay@b.example"]',
                'addresses = ["relay@b.example", "alice@example.org", "bob@example.org"]',
            )
        )
        (base / "a").mkdir()
        secret = base / "a" / "relay.pass"
        secret.write_text("relaypass\n")
        os.chmod(secret, 0o600)
        transports = f"""
[transports.smarthost]
kind = "submissions"
host = "mail.b.example"
port = {b.ports["submissions"]}
username = "relay@b.example"
password_file = "relay.pass"
tls_ca_file = "{b.cert_path}"

[transports.badlogin]
kind = "submission"
host = "mail.b.example"
port = {b.ports["submission"]}
username = "relay@b.example"
password = "not-the-password"
tls_ca_file = "{b.cert_path}"

[[routes]]
accounts = ["bob"]
transport = "badlogin"

[[routes]]
recipient_domains = ["b.example"]
transport = "smarthost"
"""
        a = write_config(base / "a", extra_static=dns_section + transports)
        dynamic = a.data_dir / "dynamic.toml"
        dynamic.write_text(
            dynamic.read_text().replace('[accounts."alice"]\n', '[accounts."alice"]\nretired_keep = "1d"\n')
        )
        dns.set("mail.b.example", "A", "127.0.0.2")
        b.start()
        a.start()
        try:
            yield Pair(a, b)
        finally:
            logs = a.stop() + b.stop()
        assert "Traceback" not in logs, logs


def _submit(daemon: RunningDaemon, login: str, password: str, sender: str, recipient: str) -> str:
    subject = f"via smarthost {uuid.uuid4().hex}"
    message = (
        f"From: <{sender}>\r\nTo: <{recipient}>\r\nSubject: {subject}\r\n"
        f"Date: Mon, 07 Dec 2026 03:00:00 +0000\r\nMessage-ID: <{uuid.uuid4().hex}@test>\r\n\r\nHello.\r\n"
    )
    with smtplib.SMTP("127.0.0.1", daemon.ports["submission"], timeout=30) as s:
        s.starttls(context=daemon.ssl_context())
        s.login(login, password)
        s.sendmail(sender, [recipient], message.encode())
    return subject


def _arrived(daemon: RunningDaemon, subject: str) -> list[bytes]:
    return [m for m in daemon.inbox("bob@b.example", "bobpass") if subject.encode() in m]


def _queued(daemon: RunningDaemon, *args: str) -> list[Any]:
    result: list[Any] = daemon.cli_json("queue", "list", *args)
    return result


def test_routed_mail_goes_through_the_smarthost_with_a_login(pair: Pair) -> None:
    subject = _submit(pair.a, "alice@example.org", "alicepass", "alice@example.org", "bob@b.example")
    wait_until(lambda: _arrived(pair.b, subject), timeout=60, what="the message at B")
    (message,) = _arrived(pair.b, subject)
    received = message.split(b"\r\n\r\n", 1)[0].replace(b"\r\n\t", b" ").replace(b"\r\n ", b" ")
    assert b"with ESMTPSA" in received.split(b"Received:", 2)[1], received  # B's own, for the login
    (retired,) = pair.a.cli_json("queue", "retired", "--transport", "smarthost")
    assert [r["transport"] for r in retired["recipients"]] == ["smarthost"]
    assert pair.a.cli_json("queue", "retired", "--transport", "direct") == []
    history = pair.a.cli_json("queue", "history", str(retired["id"]))
    (attempt,) = history["attempts"]
    assert (attempt["transport"], attempt["code"], attempt["host"]) == ("smarthost", 250, "mail.b.example [127.0.0.2]")
    text = pair.a.cli_ok("queue", "history", str(retired["id"]))
    assert "\tmail.b.example [127.0.0.2]\t250 " in text and text.rstrip().endswith("via smarthost"), text


def test_refused_login_defers_with_a_clear_error_until_the_admin_changes_the_transport(pair: Pair) -> None:
    assert "transports.badlogin.password: a password in the configuration file" in pair.a.log()
    subject = _submit(pair.a, "bob@example.org", "bobpass", "bob@example.org", "bob@b.example")

    def deferred() -> list[Any]:
        return [m for m in _queued(pair.a, "--transport", "badlogin") if m["recipients"][0]["attempts"] >= 1]

    wait_until(deferred, timeout=60, what="the first attempt through badlogin")
    (message,) = deferred()
    (rcpt,) = message["recipients"]
    assert rcpt["status"] == "queued" and rcpt["transport"] == "badlogin" and not rcpt["transport_fixed"]
    assert rcpt["last_error"].startswith("451 4.7.0 login to smarthost badlogin failed: authentication refused: 535")
    assert _queued(pair.a, "--transport", "smarthost") == []
    text = pair.a.cli_ok("queue", "list", "--transport", "badlogin")
    assert "bob@b.example\tqueued\tattempts 1\tvia badlogin\t451 4.7.0 login to smarthost badlogin" in text, text

    refused = pair.a.cli("queue", "transport", "nosuch", str(message["id"]))
    assert refused.returncode == 1 and "no transport 'nosuch'" in refused.stderr, refused.stderr
    assert pair.a.cli_ok("queue", "transport", "smarthost", str(message["id"])).strip() == "1 recipient(s) changed"
    (moved,) = _queued(pair.a, "--transport", "smarthost")
    assert moved["recipients"][0]["transport_fixed"] is True
    assert "via smarthost (set by an administrator)" in pair.a.cli_ok("queue", "list", str(message["id"]))
    pair.a.cli_ok("queue", "retry", str(message["id"]))
    wait_until(lambda: _arrived(pair.b, subject), timeout=60, what="the message at B after the change")
    wait_until(lambda: _queued(pair.a) == [], timeout=20, what="the queue to empty")
