"""mailsrv/ops/serverinfo.py: listeners and certificates, the configuration with secrets
hidden, recent warnings and errors, counts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from twisted.logger import Logger, LogPublisher

from mailsrv.config.types import LDAPConfig, TLSKeyPair
from mailsrv.ops import accounts, aliases, domains, serverinfo
from mailsrv.ops.errors import InvalidInput
from mailsrv.tlsutil import generate_self_signed
from tests.ops.world import make_server, result


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Any]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    generate_self_signed(["mail.example.org", "mta-sts.example.org"], cert, key, days=30)
    s = make_server(tmp_path, tls=(TLSKeyPair(cert_file=cert, key_file=key, hostnames=("mail.example.org",)),))
    domains.add(s, domains.AddDomain(domain="example.org"))
    result(accounts.add(s, accounts.AddAccount(account="alice", address="alice@example.org", password="alice-secret")))
    aliases.add(s, aliases.AddAlias(alias="team@example.org", members=["alice@example.org"]))
    yield s
    s.close()


def test_listeners_and_certificates(server: Any) -> None:
    info = serverinfo.listeners(server, serverinfo.Empty())
    assert info.hostname == "mail.example.org"
    assert [(lc.name, lc.port) for lc in info.listeners] == [("smtp", 25)]
    [cert] = info.certificates
    assert cert.names == ["mail.example.org", "mta-sts.example.org"] and cert.self_signed
    assert cert.hostnames == ["mail.example.org"]
    assert 29 * 86400 < cert.not_after - cert.not_before <= 31 * 86400 and not cert.error  # backdated a little


def test_unreadable_certificate_is_reported(server: Any, tmp_path: Path) -> None:
    object.__setattr__(server.config, "tls", (TLSKeyPair(cert_file=tmp_path / "gone.pem", key_file=tmp_path / "k"),))
    [cert] = serverinfo.listeners(server, serverinfo.Empty()).certificates
    assert "cannot read" in cert.error


def test_configuration_hides_secrets(server: Any, tmp_path: Path) -> None:
    ldap = LDAPConfig(
        uris=("ldap://127.0.0.1",),
        bind_dn="cn=mailsrv",
        bind_password_file=tmp_path / "bindpw",
        user_base="ou=people",
        user_filter="(uid={username})",
    )
    object.__setattr__(server.config, "ldap", ldap)
    view = serverinfo.configuration(server, serverinfo.Empty())
    assert view.static["hostname"]["ascii"] == "mail.example.org"
    assert view.static["ldap"]["bind_password_file"] == str(tmp_path / "bindpw")  # a path, not the secret
    assert view.static["limits"]["max_message_size"] > 0
    hidden = serverinfo._hide_secrets({"password": "x", "api_token": "y", "nested": [{"secret": "z"}], "name": "n"})
    assert hidden == {"password": "(hidden)", "api_token": "(hidden)", "nested": [{"secret": "(hidden)"}], "name": "n"}


def test_recent_errors_newest_first(server: Any) -> None:
    publisher = LogPublisher()
    publisher.addObserver(server.recent_log.observer())
    log = Logger(namespace="mailsrv.test", observer=publisher)
    log.info("not kept")
    log.warn("first {what}", what="warning")
    try:
        raise ValueError("boom")
    except ValueError:
        log.failure("it failed")
    entries = serverinfo.recent_errors(server, serverinfo.RecentErrorsRequest(limit=10))
    assert [(e.level, e.text.split("\n")[0]) for e in entries] == [("critical", "it failed"), ("warn", "first warning")]
    assert "ValueError: boom" in entries[0].text and entries[0].namespace == "mailsrv.test"
    assert len(serverinfo.recent_errors(server, serverinfo.RecentErrorsRequest(limit=1))) == 1
    with pytest.raises(InvalidInput):
        serverinfo.recent_errors(server, serverinfo.RecentErrorsRequest(limit=0))


def test_counts(server: Any) -> None:
    q = server.queue
    for mid, hold, retired in ((1, 0, None), (2, 1, None), (3, 0, 99.0)):
        q.db.execute(
            "INSERT INTO message (id, mail_from, account, size, smtputf8, created, hold, retired_until)"
            " VALUES (?, '', 'alice', 1, 0, 1, ?, ?)",
            (mid, hold, retired),
        )
    q.db.commit()
    counts = result(serverinfo.counts(server, serverinfo.Empty()))
    assert counts == serverinfo.Counts(domains=1, accounts=1, aliases=1, queued=2, held=1, retired=1)
