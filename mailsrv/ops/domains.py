"""Domains the server accepts mail for: add, remove, list, and their settings: the catchall
separator, where DMARC and TLS reports go, and the MTA-STS policy served for them.

Reporting addresses: an address in a local domain must reach an account (directly, by the
catchall separator, or in the LDAP directory), checked when it is set; the reports then go to
that account's "DMARC reports" / "TLS reports" mailbox (`mailsrv.ops.reports`). An address
elsewhere is an external mailbox: for DMARC, its domain must publish the RFC 7489 §7.1
authorisation record, which the DNS check looks up.

The MTA-STS policy (RFC 8461 §3.2) of a domain is its mode and max_age (the domain's, else
`[smtp]`'s) with this server's host name as the only mx; its id (the `_mta-sts` TXT record's)
is derived from the policy text, so it changes exactly when the policy does.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

import msgspec
from twisted.internet.threads import deferToThreadPool

from mailsrv.address import Address, AddressError, Domain
from mailsrv.auth.interfaces import TemporaryAuthFailure
from mailsrv.config.load import MTA_STS_MAX_AGE_LIMIT, MTA_STS_MODES, REPORT_LOCALPART, REPORT_LOCALPART_PROBLEM
from mailsrv.config.types import AccountConfig, AliasConfig, DomainConfig, StaticConfig
from mailsrv.ops.configerrors import refusals_as_invalid_input
from mailsrv.ops.dkim import DKIMRecord, create_domain_dkim
from mailsrv.ops.errors import Exists, InvalidInput, NotFound, TemporaryFailure
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


class SetDomainSettings(msgspec.Struct, kw_only=True):
    """The settings to change; a field left out (null) stays as it is."""

    domain: str
    separator: str | None = None  # "": none
    dmarc_reports: str | None = None  # an address; "": none
    tlsrpt_reports: str | None = None  # an address; "": none
    mta_sts_mode: str | None = None  # none, testing, enforce, off; "": the server's default ([smtp])
    mta_sts_max_age: int | None = None  # seconds; 0: the server's default ([smtp])


class MTASTSPolicy(msgspec.Struct, kw_only=True):
    """The policy served at https://mta-sts.DOMAIN/.well-known/mta-sts.txt (mode "off": none)."""

    mode: str
    max_age: int
    mx: str
    id: str  # the id= of the `_mta-sts` TXT record: changes when the policy text does
    text: str  # "" when mode is "off"


class DomainInfo(msgspec.Struct, kw_only=True):
    domain: str  # A-label
    unicode: str  # U-label
    separator: str
    dmarc_reports: str = ""  # "": not set
    tlsrpt_reports: str = ""
    # The domain's own MTA-STS settings ("" / 0: the server's default) and the policy in effect.
    mta_sts_mode: str = ""
    mta_sts_max_age: int = 0
    mta_sts: MTASTSPolicy | None = None


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


def mta_sts_policy(config: StaticConfig, domain: DomainConfig) -> MTASTSPolicy:
    """The domain's policy: its own mode and max_age, else [smtp]'s (module docstring)."""
    mode = domain.mta_sts_mode or config.smtp.mta_sts_mode
    max_age = domain.mta_sts_max_age or config.smtp.mta_sts_max_age
    mx = config.hostname.ascii
    # RFC 8461 §3.2: key/value lines, CRLF (LF is allowed on reading; CRLF is the ABNF).
    text = "" if mode == "off" else f"version: STSv1\r\nmode: {mode}\r\nmx: {mx}\r\nmax_age: {max_age}\r\n"
    # §3.1: id is 1-32 letters and digits; senders refetch the policy when it changes.
    ident = hashlib.sha256(text.encode("ascii")).hexdigest()[:20]
    return MTASTSPolicy(mode=mode, max_age=max_age, mx=mx, id=ident, text=text)


def info(server: Server, d: DomainConfig) -> DomainInfo:
    return DomainInfo(
        domain=d.name.ascii,
        unicode=d.name.unicode,
        separator=d.localpart_catchall_separator or "",
        dmarc_reports=d.dmarc_reports.display() if d.dmarc_reports is not None else "",
        tlsrpt_reports=d.tlsrpt_reports.display() if d.tlsrpt_reports is not None else "",
        mta_sts_mode=d.mta_sts_mode or "",
        mta_sts_max_age=d.mta_sts_max_age or 0,
        mta_sts=mta_sts_policy(server.config, d),
    )


class Deliverability(msgspec.Struct, kw_only=True):
    """Where mail to a reporting address goes: `account` for a local one, `external` for another
    domain's, `problem` when it goes nowhere (a local address nobody has, an alias)."""

    account: str = ""
    external: bool = False
    problem: str = ""


async def report_destination(server: Server, address: Address) -> Deliverability:
    """Where reports sent to `address` end up (see Deliverability); TemporaryFailure when the
    directory cannot answer."""
    if not server.dynamic.is_local_domain(address.domain):
        return Deliverability(external=True)
    target = server.dynamic.lookup(address)
    if isinstance(target, AccountConfig):
        return Deliverability(account=target.name)
    if isinstance(target, AliasConfig):
        return Deliverability(problem=f"{address.display()} is an alias: name an account's address")
    if server.config.ldap is not None:
        domain = server.dynamic.current.domains.get(address.domain.ascii)
        stripped = address.strip_catchall(domain.localpart_catchall_separator if domain else None)
        try:
            account = await server.accounts.account_for_address(stripped)
        except TemporaryAuthFailure:
            raise TemporaryFailure("the directory is unavailable, try again later") from None
        if account is not None:
            return Deliverability(account=account)
    return Deliverability(problem=f"no account has the address {address.display()}")


async def _report_address(server: Server, text: str, field: str) -> Address | None:
    if text == "":
        return None
    try:
        address = Address.parse(text.strip())
    except AddressError as e:
        raise InvalidInput(f"invalid address {text!r}: {e}", field) from None
    if not REPORT_LOCALPART.fullmatch(address.localpart.value):
        # It is published in DNS as a mailto: URI (config.load says why it stays plain).
        raise InvalidInput(f"{REPORT_LOCALPART_PROBLEM} in a reporting address, got {text!r}", field)
    where = await report_destination(server, address)
    if where.problem:
        raise InvalidInput(f"{where.problem}; reports must reach an account or an external mailbox", field)
    account = server.dynamic.account_by_name(where.account) if where.account else None
    if account is not None and account.addresses[0].key() == address.key():
        # Every message to the reporting address is filed as a report.
        raise InvalidInput(
            f"{address.display()} is the account's primary address: give the reports an address of their own"
            f" (such as {address.localpart.value}+dmarc@{address.domain.unicode}, or another address of the account)",
            field,
        )
    return address


async def set_settings(server: Server, req: SetDomainSettings) -> DomainInfo:
    """Changes the settings given (SetDomainSettings); NotFound for an unknown domain,
    InvalidInput naming the field for a bad value or a local reporting address no account has."""
    domain = _parse(req.domain)
    if domain.ascii not in server.dynamic.current.domains:
        raise NotFound(f"no such domain: {domain.ascii}")
    changes: dict[str, Any] = {}
    if req.separator is not None:
        changes["localpart_catchall_separator"] = req.separator or None
    if req.dmarc_reports is not None:
        changes["dmarc_reports"] = await _report_address(server, req.dmarc_reports, "dmarc_reports")
    if req.tlsrpt_reports is not None:
        changes["tlsrpt_reports"] = await _report_address(server, req.tlsrpt_reports, "tlsrpt_reports")
    if req.mta_sts_mode is not None:
        if req.mta_sts_mode not in ("", *MTA_STS_MODES):
            raise InvalidInput(
                f"MTA-STS mode: expected none, testing, enforce, off or empty, got {req.mta_sts_mode!r}", "mta_sts_mode"
            )
        changes["mta_sts_mode"] = req.mta_sts_mode or None
    if req.mta_sts_max_age is not None:
        if not 0 <= req.mta_sts_max_age <= MTA_STS_MAX_AGE_LIMIT:
            raise InvalidInput(
                f"MTA-STS max_age: expected 1 to {MTA_STS_MAX_AGE_LIMIT} seconds (RFC 8461 §3.2), or 0 for the default",
                "mta_sts_max_age",
            )
        changes["mta_sts_max_age"] = req.mta_sts_max_age or None
    reactor: Any = server.reactor
    with refusals_as_invalid_input():
        # The rewrite fsyncs: in the pool, as every dynamic config mutation.
        updated = await deferToThreadPool(
            reactor, reactor.getThreadPool(), server.dynamic.update_domain, domain.ascii, **changes
        )
    return info(server, updated)


def show(server: Server, req: DomainName) -> DomainInfo:
    domain = _parse(req.domain)
    config = server.dynamic.current.domains.get(domain.ascii)
    if config is None:
        raise NotFound(f"no such domain: {domain.ascii}")
    return info(server, config)


def set_separator(server: Server, req: SetSeparator) -> DomainInfo:
    """Changes the localpart catchall separator (validated as when loading the config: one
    of the characters an unquoted localpart may hold, or none). Rewrites the dynamic config:
    run it in a thread."""
    domain = _parse(req.domain)
    if domain.ascii not in server.dynamic.current.domains:
        raise NotFound(f"no such domain: {domain.ascii}")
    with refusals_as_invalid_input():
        d = server.dynamic.set_domain_separator(domain.ascii, req.separator)
    return info(server, d)


def list_domains(server: Server, req: ListDomains) -> list[DomainInfo]:
    return [info(server, d) for d in sorted(server.dynamic.current.domains.values(), key=lambda d: d.name.ascii)]


OPERATIONS = (
    Operation("domain.add", add, AddDomain, in_thread=True, summary="add a domain"),
    Operation("domain.rm", remove, DomainName, in_thread=True, summary="remove an unused domain"),
    Operation("domain.list", list_domains, ListDomains, summary="list domains"),
    Operation("domain.separator", set_separator, SetSeparator, in_thread=True, summary="set the catchall separator"),
    Operation("domain.show", show, DomainName, summary="a domain's settings and MTA-STS policy"),
    Operation(
        "domain.set",
        set_settings,
        SetDomainSettings,
        summary="change a domain's settings (separator, reporting addresses, MTA-STS mode and max_age)",
    ),
)
