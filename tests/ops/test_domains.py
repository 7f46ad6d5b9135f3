"""ops.domains on its own."""

from __future__ import annotations

import pytest

from mailsrv.ops import domains
from mailsrv.ops.errors import Exists, InvalidInput, NotFound
from mailsrv.server import Server


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
    assert listed == [
        domains.DomainInfo(domain="example.org", unicode="example.org", separator="+"),
        domains.DomainInfo(domain="xn--bcher-kva.example", unicode="bücher.example", separator=""),
    ]
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
