"""Domains the server accepts mail for: add, remove, list."""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

from mailsrv.address import AddressError, Domain
from mailsrv.ops.configerrors import refusals_as_invalid_input
from mailsrv.ops.dkim import DKIMRecord, create_domain_dkim
from mailsrv.ops.errors import Exists, InvalidInput, NotFound
from mailsrv.ops.operation import Done, Operation

if TYPE_CHECKING:
    from mailsrv.server import Server


class AddDomain(msgspec.Struct, kw_only=True):
    domain: str
    # Localpart catchall separator: "user+anything@" reaches "user@". Empty: none.
    separator: str = "+"


class DomainName(msgspec.Struct, kw_only=True):
    domain: str


class ListDomains(msgspec.Struct, kw_only=True):
    pass


class SetSeparator(msgspec.Struct, kw_only=True):
    domain: str
    separator: str  # "": none


class DomainAdded(msgspec.Struct, kw_only=True):
    domain: str  # the A-label form
    # The DKIM keys created for it (ed25519 and RSA, both in dkim_selectors): TXT records to publish.
    dkim: list[DKIMRecord] = []


class DomainInfo(msgspec.Struct, kw_only=True):
    domain: str  # A-label
    unicode: str  # U-label
    separator: str


def _parse(name: str) -> Domain:
    try:
        return Domain.parse(name)
    except AddressError as e:
        raise InvalidInput(f"invalid domain {name!r}: {e}", "domain") from None


def add(server: Server, req: AddDomain) -> DomainAdded:
    domain = _parse(req.domain)
    if domain.ascii in server.dynamic.current.domains:
        raise Exists(f"domain {domain.ascii} already exists")
    # Keys first, so the domain never exists without them; an existing key is kept.
    records = create_domain_dkim(server.config.data_dir, domain.ascii)
    with refusals_as_invalid_input():
        added = server.dynamic.add_domain(
            domain.ascii, catchall_separator=req.separator, dkim_selectors=tuple(r.selector for r in records)
        )
    return DomainAdded(domain=added.name.ascii, dkim=records)


def remove(server: Server, req: DomainName) -> Done:
    """Refused (InvalidInput) while an account, address or alias still uses the domain."""
    domain = _parse(req.domain)
    if domain.ascii not in server.dynamic.current.domains:
        raise NotFound(f"no such domain: {domain.ascii}")
    with refusals_as_invalid_input():
        server.dynamic.remove_domain(domain.ascii)
    return Done()


def set_separator(server: Server, req: SetSeparator) -> DomainInfo:
    """Changes the localpart catchall separator (validated as when loading the config: one
    of the characters an unquoted localpart may hold, or none). Rewrites the dynamic config:
    run it in a thread."""
    domain = _parse(req.domain)
    if domain.ascii not in server.dynamic.current.domains:
        raise NotFound(f"no such domain: {domain.ascii}")
    with refusals_as_invalid_input():
        d = server.dynamic.set_domain_separator(domain.ascii, req.separator)
    return DomainInfo(domain=d.name.ascii, unicode=d.name.unicode, separator=d.localpart_catchall_separator or "")


def list_domains(server: Server, req: ListDomains) -> list[DomainInfo]:
    return [
        DomainInfo(domain=d.name.ascii, unicode=d.name.unicode, separator=d.localpart_catchall_separator or "")
        for d in sorted(server.dynamic.current.domains.values(), key=lambda d: d.name.ascii)
    ]


OPERATIONS = (
    Operation("domain.add", add, AddDomain, in_thread=True, summary="add a domain"),
    Operation("domain.rm", remove, DomainName, in_thread=True, summary="remove an unused domain"),
    Operation("domain.list", list_domains, ListDomains, summary="list domains"),
    Operation("domain.separator", set_separator, SetSeparator, in_thread=True, summary="set the catchall separator"),
)
