"""ops.domains on its own."""

from __future__ import annotations

from typing import Any

import pytest

from mailsrv.config.load import load_dynamic
from mailsrv.ops import aliases, domains
from mailsrv.ops.errors import Exists, InvalidInput, NotFound
from mailsrv.server import Server
from tests.ops.world import result


def test_add_list_remove(server: Server) -> None:
    added = domains.add(server, domains.AddDomain(domain="Bücher.Example.", separator=""))
    assert added.domain == "xn--bcher-kva.example"
    # An ed25519 and an RSA key, both signing (issue 17 item 10: `domain add` created none).
    selectors = tuple(r.selector for r in added.dkim)
    assert [r.value.split(";")[1].strip() for r in added.dkim] == ["k=ed25519", "k=rsa"]
    assert [r.name for r in added.dkim] == [f"{s}._domainkey.xn--bcher-kva.example" for s in selectors]
    assert server.dynamic.current.domains["xn--bcher-kva.example"].dkim_selectors == selectors
    for selector in selectors:
        assert (
            server.config.data_dir / "dkim" / "xn--bcher-kva.example" / f"{selector}.pem"
        ).stat().st_mode & 0o077 == 0
    listed = domains.list_domains(server, domains.ListDomains())
    assert [(d.domain, d.unicode, d.separator) for d in listed] == [
        ("example.org", "example.org", "+"),
        ("xn--bcher-kva.example", "bücher.example", ""),
    ]
    # No settings of its own: [smtp]'s MTA-STS policy.
    assert (listed[1].dmarc_reports, listed[1].tlsrpt_reports, listed[1].mta_sts_mode) == ("", "", "")
    assert listed[1].mta_sts is not None and listed[1].mta_sts.mode == "testing"
    domains.remove(server, domains.DomainName(domain="xn--bcher-kva.example"))
    assert [d.domain for d in domains.list_domains(server, domains.ListDomains())] == ["example.org"]


def test_refusals(server: Server) -> None:
    with pytest.raises(Exists):
        domains.add(server, domains.AddDomain(domain="EXAMPLE.org"))
    with pytest.raises(InvalidInput, match="invalid domain") as e:
        domains.add(server, domains.AddDomain(domain="no spaces.example"))
    assert e.value.field == "domain"
    with pytest.raises(NotFound):
        domains.remove(server, domains.DomainName(domain="example.net"))
    with pytest.raises(InvalidInput, match="still used by: alice"):
        domains.remove(server, domains.DomainName(domain="example.org"))


def test_set_separator(server: Server) -> None:
    info = domains.set_separator(server, domains.SetSeparator(domain="example.org", separator="-"))
    assert info.separator == "-" and server.dynamic.current.domains["example.org"].localpart_catchall_separator == "-"
    assert domains.set_separator(server, domains.SetSeparator(domain="example.org", separator="")).separator == ""
    with pytest.raises(InvalidInput):
        domains.set_separator(server, domains.SetSeparator(domain="example.org", separator="@"))
    with pytest.raises(NotFound):
        domains.set_separator(server, domains.SetSeparator(domain="nope.example", separator="+"))


def _set(server: Server, **changes: Any) -> domains.DomainInfo:
    info: domains.DomainInfo = result(
        domains.set_settings(server, domains.SetDomainSettings(domain="example.org", **changes))
    )
    return info


def test_reporting_addresses(server: Server) -> None:
    server.dynamic.add_address("alice", "dmarc-reports@example.org")
    info = _set(server, dmarc_reports="dmarc-reports@example.org", tlsrpt_reports="Alice+TLS@example.org")
    assert (info.dmarc_reports, info.tlsrpt_reports) == ("dmarc-reports@example.org", "Alice+TLS@example.org")
    d = server.dynamic.current.domains["example.org"]
    assert str(d.dmarc_reports) == "dmarc-reports@example.org" and str(d.tlsrpt_reports) == "Alice+TLS@example.org"
    # Written to dynamic.toml and read back the same.
    reread = load_dynamic(server.dynamic.path).domains["example.org"]
    assert reread.dmarc_reports == d.dmarc_reports and reread.tlsrpt_reports == d.tlsrpt_reports
    # An external mailbox is allowed (the DNS check asks for its RFC 7489 §7.1 record).
    assert _set(server, dmarc_reports="reports@elsewhere.example").dmarc_reports == "reports@elsewhere.example"
    # Left out: unchanged; "": none.
    info = _set(server, separator="+")
    assert info.dmarc_reports == "reports@elsewhere.example" and info.tlsrpt_reports == "Alice+TLS@example.org"
    info = _set(server, dmarc_reports="", tlsrpt_reports="")
    assert (info.dmarc_reports, info.tlsrpt_reports) == ("", "")
    assert server.dynamic.current.domains["example.org"].dmarc_reports is None


def test_reporting_address_refusals(server: Server) -> None:
    result(aliases.add(server, aliases.AddAlias(alias="list@example.org", members=["alice@example.org"])))
    cases = [
        ("dmarc_reports", "nobody@example.org", "no account has the address nobody@example.org"),
        ("dmarc_reports", "list@example.org", "is an alias"),
        ("tlsrpt_reports", "alice@example.org", "the account's primary address"),
        ("tlsrpt_reports", "not an address", "invalid address"),
        ("dmarc_reports", '"a b"@example.org', "letters, digits"),
        ("dmarc_reports", "a!b@example.org", "letters, digits"),
    ]
    for field, value, message in cases:
        with pytest.raises(InvalidInput, match=message) as e:
            _set(server, **{field: value})
        assert e.value.field in (field, ""), (field, value)
    with pytest.raises(NotFound):
        result(domains.set_settings(server, domains.SetDomainSettings(domain="nope.example", dmarc_reports="")))
    assert server.dynamic.current.domains["example.org"].dmarc_reports is None


def test_mta_sts_settings(server: Server) -> None:
    default = domains.show(server, domains.DomainName(domain="example.org"))
    assert default.mta_sts is not None
    assert (default.mta_sts.mode, default.mta_sts.max_age, default.mta_sts.mx) == (
        "testing",
        604800,
        "mail.example.org",
    )
    info = _set(server, mta_sts_mode="enforce", mta_sts_max_age=86400)
    assert (info.mta_sts_mode, info.mta_sts_max_age) == ("enforce", 86400)
    assert info.mta_sts is not None
    assert info.mta_sts.text == "version: STSv1\r\nmode: enforce\r\nmx: mail.example.org\r\nmax_age: 86400\r\n"
    assert info.mta_sts.id != default.mta_sts.id and info.mta_sts.id.isalnum() and len(info.mta_sts.id) <= 32
    reread = load_dynamic(server.dynamic.path).domains["example.org"]
    assert (reread.mta_sts_mode, reread.mta_sts_max_age) == ("enforce", 86400)
    # The same policy again: the same id (senders do not refetch for nothing).
    assert _set(server, mta_sts_max_age=86400).mta_sts == info.mta_sts
    for changes, field in (
        ({"mta_sts_mode": "strict"}, "mta_sts_mode"),
        ({"mta_sts_max_age": -1}, "mta_sts_max_age"),
        ({"mta_sts_max_age": 31557601}, "mta_sts_max_age"),
    ):
        with pytest.raises(InvalidInput) as e:
            _set(server, **changes)
        assert e.value.field == field
    info = _set(server, mta_sts_mode="", mta_sts_max_age=0)
    assert info.mta_sts == default.mta_sts and (info.mta_sts_mode, info.mta_sts_max_age) == ("", 0)
