"""ops.domains on its own."""

from __future__ import annotations

import pytest

from mailsrv.ops import domains
from mailsrv.ops.errors import Exists, InvalidInput, NotFound
from mailsrv.server import Server


def test_add_list_remove(server: Server) -> None:
    assert domains.add(server, domains.AddDomain(domain="Bücher.Example.", separator="")) == domains.DomainAdded(
        domain="xn--bcher-kva.example"
    )
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
