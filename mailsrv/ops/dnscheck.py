"""The DNS check of a local domain: what is published for it, judged against what this server
needs, with the record to add or change for every item that is not right.

Items, in order: MX, the host name's addresses, SPF (RFC 7208), DKIM per configured selector
(RFC 6376: the published public key compared with ours), DMARC (RFC 7489: with the domain's
reporting address in rua=, and for an external one its RFC 7489 §7.1 authorisation), MTA-STS
(RFC 8461: the `_mta-sts` TXT record, whose id must be the current policy's, and the policy
file over HTTPS against the domain's mode and max_age), TLSRPT (RFC 8460, its rua=), client
configuration by SRV (RFC 6186, RFC 8314) and autoconfig, reverse DNS of the addresses the
SMTP listeners use, and whether the TLS certificates cover the host names clients use.

Invariants:
- Every item is "ok", "warning" (works, but weaker than it should be, or optional and
  missing) or "error" (mail or a client will fail); `fix` holds zone-file lines to publish.
- Lookups go through a resolver built from `[dns]` without a cache, so a record fixed a
  minute ago is seen at once; every query is bounded by its timeout and runs off the reactor
  (the DNS pool). A lookup that fails temporarily is an error item naming the failure, never
  an exception to the caller.
- The MTA-STS policy is fetched through `PolicyFetcher` (the daemon's: HTTPS with a verified
  certificate, no redirects, bounded size: `mailsrv.dns.mtasts.fetch_policy_text`); tests
  pass their own.
"""

from __future__ import annotations

import datetime
import ipaddress
import urllib.parse
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import dns.reversename
import msgspec
from cryptography import x509

from mailsrv.address import Address, AddressError, Domain
from mailsrv.dns import mtasts
from mailsrv.dns.dkimkeys import public_record
from mailsrv.dns.dmarc import parse_record as parse_dmarc
from mailsrv.dns.resolver import DNSError, DNSNotFound, Resolver
from mailsrv.dns.spf import check_spf
from mailsrv.ops.domains import MTASTSPolicy, mta_sts_policy, report_destination
from mailsrv.ops.errors import InvalidInput, NotFound, TemporaryFailure
from mailsrv.ops.operation import Operation

if TYPE_CHECKING:
    from mailsrv.server import Server

Status = Literal["ok", "warning", "error"]
_RANK = {"ok": 0, "warning": 1, "error": 2}

# Fetches the policy file of `mta-sts.<domain>`; raises PolicyFetchError with the reason.
PolicyFetcher = Callable[[str], Awaitable[str]]


class PolicyFetchError(Exception):
    pass


class CheckItem(msgspec.Struct, kw_only=True):
    name: str  # "MX", "SPF", "DKIM 202612e", ...
    status: Status
    message: str  # what was found and why it is judged so
    found: list[str] = []  # the records as published
    fix: list[str] = []  # zone-file lines to add or change


class CheckDomain(msgspec.Struct, kw_only=True):
    domain: str


class DomainCheck(msgspec.Struct, kw_only=True):
    domain: str  # A-label
    hostname: str  # this server's host name (the MX target)
    status: Status  # the worst item's
    items: list[CheckItem]


def _ok(name: str, message: str, found: Sequence[str] = ()) -> CheckItem:
    return CheckItem(name=name, status="ok", message=message, found=list(found))


def _bad(status: Status, name: str, message: str, fix: Sequence[str] = (), found: Sequence[str] = ()) -> CheckItem:
    return CheckItem(name=name, status=status, message=message, found=list(found), fix=list(fix))


def _txt(value: str) -> str:
    """A TXT value in zone-file form: character-strings of at most 255 octets (RFC 1035 §3.3.14)."""
    return " ".join(f'"{value[i : i + 255]}"' for i in range(0, len(value), 255)) or '""'


class _Lookups:
    """The resolver calls of one check, with DNS failures turned into text."""

    def __init__(self, resolver: Resolver) -> None:
        self.resolver = resolver

    async def txt(self, name: str) -> list[str]:
        """TXT records as text; [] when the name or the type does not exist. DNSError (temporary)
        propagates."""
        try:
            return [r.decode("utf-8", "replace") for r in await self.resolver.txt(name)]
        except DNSNotFound:
            return []

    async def query(self, name: str, rdtype: str) -> tuple[Any, ...]:
        try:
            return await self.resolver.in_thread(self.resolver.query_sync, name, rdtype)
        except DNSNotFound:
            return ()

    async def addresses(self, host: str) -> tuple[str, ...]:
        try:
            return await self.resolver.addresses(host)
        except DNSNotFound:
            return ()


def _temporary(name: str, error: DNSError) -> CheckItem:
    return _bad("error", name, f"DNS lookup failed: {error} (try again; a server that keeps failing needs fixing)")


async def _check_mx(dns_: _Lookups, domain: str, host: str) -> CheckItem:
    fix = [f"{domain}.  MX 10 {host}."]
    try:
        mx = await dns_.resolver.mx(domain)
    except DNSNotFound:
        return _bad("error", "MX", f"{domain} does not exist in DNS: nobody can send it mail", fix)
    except DNSError as e:
        return _temporary("MX", e)
    found = [f"{r.preference} {r.host or '.'}" for r in mx.records]
    if not mx.records:
        return _bad("error", "MX", "no MX record: senders try the domain's own address instead", fix)
    if mx.null_mx:
        return _bad("error", "MX", "null MX (RFC 7505): the domain says it accepts no mail", fix, found)
    if host not in mx.hosts:
        return _bad("error", "MX", f"the MX records do not name this server ({host})", fix, found)
    if mx.hosts[0] != host and mx.records[0].preference < min(r.preference for r in mx.records if r.host == host):
        return _bad("warning", "MX", f"another host is preferred over {host}", fix, found)
    return _ok("MX", f"mail for {domain} comes to {host}", found)


async def _check_host_addresses(dns_: _Lookups, host: str) -> tuple[CheckItem, tuple[str, ...]]:
    name = f"address of {host}"
    try:
        addresses = await dns_.addresses(host)
    except DNSError as e:
        return _temporary(name, e), ()
    if not addresses:
        return _bad("error", name, f"{host} has no A or AAAA record", [f"{host}.  A <this server's IPv4 address>"]), ()
    return _ok(name, f"{host} resolves", addresses), addresses


async def _check_spf(dns_: _Lookups, domain: str, host: str, addresses: Sequence[str]) -> CheckItem:
    fix = [f"{domain}.  TXT {_txt('v=spf1 mx -all')}"]
    try:
        records = [r for r in await dns_.txt(domain) if r.lower().startswith("v=spf1")]
    except DNSError as e:
        return _temporary("SPF", e)
    if not records:
        return _bad("error", "SPF", "no SPF record: receivers cannot tell our mail from forgeries", fix)
    if len(records) > 1:
        # RFC 7208 §4.5: more than one record is a permanent error.
        return _bad("error", "SPF", "more than one SPF record (RFC 7208 §4.5: permerror); keep one", fix, records)
    record = records[0]
    terms = record.lower().split()
    if "+all" in terms or "all" in terms:
        return _bad("error", "SPF", "the record ends in +all: it authorises every host on the internet", fix, records)
    failing = []
    for ip in addresses:
        verdict = await check_spf(dns_.resolver, ip, f"postmaster@{domain}", host)
        if verdict.result != "pass":
            failing.append(f"{ip}: {verdict.result}")
    if failing:
        return _bad("error", "SPF", f"the record does not authorise this server ({', '.join(failing)})", fix, records)
    if "-all" not in terms:
        return _bad(
            "warning", "SPF", "the record does not end in -all: forgeries are not failed outright", fix, records
        )
    return _ok("SPF", "authorises this server's addresses, fails others", records)


def _dkim_key(value: str) -> str:
    """The p= tag of a DKIM key record, whitespace removed (RFC 6376 §3.6.1)."""
    for tag in value.split(";"):
        name, _, v = tag.partition("=")
        if name.strip() == "p":
            return "".join(v.split())
    return ""


async def _check_dkim(server: Server, dns_: _Lookups, domain: str, selectors: Sequence[str]) -> list[CheckItem]:
    if not selectors:
        return [_bad("error", "DKIM", "the domain has no DKIM selector: its mail leaves unsigned")]
    items = []
    for selector in selectors:
        name = f"DKIM {selector}"
        where = f"{selector}._domainkey.{domain}"
        try:
            expected = await dns_.resolver.in_thread(public_record, server.config.data_dir, domain, selector)
        except (OSError, ValueError, TypeError) as e:
            items.append(_bad("error", name, f"our key for this selector cannot be read: {e}"))
            continue
        fix = [f"{where}.  TXT {_txt(expected)}"]
        try:
            records = [r for r in await dns_.txt(where) if "p=" in r]
        except DNSError as e:
            items.append(_temporary(name, e))
            continue
        if not records:
            items.append(_bad("error", name, f"no key record at {where}: signatures cannot be verified", fix))
        elif len(records) > 1:
            items.append(_bad("error", name, "more than one key record: verifiers fail", fix, records))
        elif _dkim_key(records[0]) != _dkim_key(expected):
            items.append(_bad("error", name, "the published key is not ours: signatures fail", fix, records))
        else:
            items.append(_ok(name, "the published key matches ours", records))
    return items


def _tags(record: str) -> dict[str, str]:
    """The tag=value pairs of a DMARC or TLSRPT record (names lower-cased, the first of each)."""
    tags: dict[str, str] = {}
    for part in record.split(";"):
        name, eq, value = part.partition("=")
        if eq and name.strip().lower() not in tags:
            tags[name.strip().lower()] = value.strip()
    return tags


def _mailto_keys(rua: str) -> set[str]:
    """The address keys of the mailto: URIs in an rua= list (RFC 7489 §6.4: comma-separated URIs,
    each maybe with a !size limit; RFC 8460 §3 the same without limits)."""
    keys = set()
    for uri in rua.split(","):
        uri = uri.strip().split("!", 1)[0]
        if uri[:7].lower() != "mailto:":
            continue
        try:
            keys.add(Address.parse(urllib.parse.unquote(uri[7:])).key())
        except AddressError:
            continue
    return keys


async def _judge_destination(server: Server, name: str, setting: str, report_to: Address | None) -> CheckItem | None:
    """An error item when the configured reporting address delivers nowhere (an account or
    address removed since it was set)."""
    if report_to is None:
        return None
    try:
        where = await report_destination(server, report_to)
    except TemporaryFailure as e:
        return _bad("error", name, f"{setting} {report_to.display()}: {e}")
    if where.problem:
        fix = [f"mailsrv domain set DOMAIN --{setting.replace('_', '-')} <an account's address>"]
        return _bad("error", name, f"the domain's {setting} address delivers nowhere: {where.problem}", fix)
    return None


async def _check_dmarc(
    server: Server, dns_: _Lookups, domain: str, configured: Address | None, fallback: str
) -> list[CheckItem]:
    """The _dmarc record; with a reporting address set, its rua= must name it, and an external
    one must have authorised the reports (RFC 7489 §7.1)."""
    where = f"_dmarc.{domain}"
    report_to = str(configured) if configured is not None else fallback

    def fix(policy: str = "reject") -> list[str]:
        return [f"{where}.  TXT {_txt(f'v=DMARC1; p={policy}; rua=mailto:{report_to}')}"]

    bad_destination = await _judge_destination(server, "DMARC reports", "dmarc_reports", configured)
    items = [bad_destination] if bad_destination is not None else []
    try:
        records = [r for r in await dns_.txt(where) if r.replace(" ", "").lower().startswith("v=dmarc1")]
    except DNSError as e:
        return [*items, _temporary("DMARC", e)]
    if not records:
        return [
            *items,
            _bad("error", "DMARC", "no DMARC record: receivers apply no policy to forged From: addresses", fix()),
        ]
    if len(records) > 1:
        # RFC 7489 §6.6.3: several records mean no DMARC at all.
        return [*items, _bad("error", "DMARC", "more than one DMARC record: receivers ignore them all", fix(), records)]
    parsed = parse_dmarc(records[0])
    if parsed is None:
        return [*items, _bad("error", "DMARC", "the record does not parse", fix(), records)]
    rua = _mailto_keys(_tags(records[0]).get("rua", ""))
    if parsed.policy == "none":
        items.append(_bad("warning", "DMARC", "p=none: forgeries are reported at most, not refused", fix(), records))
    elif not rua:
        items.append(
            _bad("warning", "DMARC", "no rua= address: you get no aggregate reports", fix(parsed.policy), records)
        )
    elif configured is not None and configured.key() not in rua:
        msg = f"rua= does not name the domain's DMARC reporting address {configured.display()}: reports go elsewhere"
        items.append(_bad("warning", "DMARC", msg, fix(parsed.policy), records))
    else:
        items.append(_ok("DMARC", f"policy {parsed.policy}, aggregate reports to the rua= address", records))
    if configured is not None and not server.dynamic.is_local_domain(configured.domain):
        items.append(await _check_external_dmarc(dns_, domain, configured))
    return items


async def _check_external_dmarc(dns_: _Lookups, domain: str, report_to: Address) -> CheckItem:
    """RFC 7489 §7.1: reports go to a destination in another domain only when that domain
    publishes `<our domain>._report._dmarc.<its domain>` with v=DMARC1; reporters skip it otherwise."""
    name = "DMARC external reports"
    where = f"{domain}._report._dmarc.{report_to.domain.ascii}"
    fix = [f"{where}.  TXT {_txt('v=DMARC1')}  (in {report_to.domain.ascii}'s zone)"]
    try:
        records = [r for r in await dns_.txt(where) if r.replace(" ", "").lower().startswith("v=dmarc1")]
    except DNSError as e:
        return _temporary(name, e)
    if not records:
        msg = (
            f"{report_to.display()} is outside this server: {report_to.domain.ascii} must authorise reports about"
            f" {domain} (RFC 7489 §7.1 external destination verification), or reporters send none"
        )
        return _bad("warning", name, msg, fix)
    return _ok(name, f"{report_to.domain.ascii} accepts reports about {domain}", records)


async def _check_mtasts(
    dns_: _Lookups, domain: str, host: str, fetch: PolicyFetcher, policy: MTASTSPolicy
) -> list[CheckItem]:
    """The `_mta-sts` record (its id must be the current policy's, or senders keep a cached older
    one) and the policy file as fetched, against the policy this server serves for the domain."""
    where = f"_mta-sts.{domain}"
    fix = [f"{where}.  TXT {_txt(f'v=STSv1; id={policy.id}')}", f"mta-sts.{domain}.  CNAME {host}."]
    try:
        records = await dns_.txt(where)
    except DNSError as e:
        return [_temporary("MTA-STS record", e)]
    sts = [r for r in records if r.replace(" ", "").startswith("v=STSv1")]
    if policy.mode == "off":
        if sts:
            msg = "MTA-STS is off for this domain (no policy is served) but the record is published: remove it"
            return [_bad("warning", "MTA-STS record", msg, [f"{where}.  (no TXT record)"], sts)]
        return [_ok("MTA-STS record", "MTA-STS is off for this domain and no record is published")]
    if not sts:
        return [_bad("warning", "MTA-STS record", "no MTA-STS record: senders may deliver without TLS", fix)]
    ident = mtasts.parse_txt(tuple(r.encode() for r in records))
    if ident is None:
        return [_bad("error", "MTA-STS record", "the record is not one valid v=STSv1 record with an id", fix, sts)]
    if ident != policy.id:
        msg = f"id={ident} is not the current policy's ({policy.id}): senders keep a cached older policy"
        items = [_bad("warning", "MTA-STS record", msg, fix[:1], sts)]
    else:
        items = [_ok("MTA-STS record", "present, with the current policy's id", sts)]
    policy_url = f"https://mta-sts.{domain}/.well-known/mta-sts.txt"
    ours = mtasts_policy_fix(policy)
    try:
        text = await fetch(domain)
    except PolicyFetchError as e:
        items.append(_bad("error", "MTA-STS policy", f"{policy_url}: {e}", [*fix[1:], *ours]))
        return items
    fetched = mtasts.parse_policy(text)
    found = [line for line in text.replace("\r\n", "\n").split("\n") if line.strip()][:20]
    if fetched is None:
        items.append(_bad("error", "MTA-STS policy", f"{policy_url} is not a valid policy", ours, found))
    elif fetched.mode != "none" and not fetched.allows(host):
        items.append(_bad("error", "MTA-STS policy", f"the policy's mx lines do not allow {host}", ours, found))
    elif (fetched.mode, fetched.max_age) != (policy.mode, policy.max_age):
        msg = (
            f"the policy served (mode {fetched.mode}, max_age {fetched.max_age}) is not this server's for the"
            f" domain (mode {policy.mode}, max_age {policy.max_age}): is mta-sts.{domain} another server?"
        )
        items.append(_bad("warning", "MTA-STS policy", msg, [*fix[1:], *ours], found))
    elif fetched.mode != "enforce":
        items.append(_bad("warning", "MTA-STS policy", f"mode {fetched.mode}: senders do not insist on TLS", [], found))
    else:
        items.append(_ok("MTA-STS policy", f"mode enforce, allows {host}", found))
    return items


def mtasts_policy_fix(policy: MTASTSPolicy) -> list[str]:
    return [f"policy file: version: STSv1 / mode: {policy.mode} / mx: {policy.mx} / max_age: {policy.max_age}"]


async def _check_tlsrpt(
    server: Server, dns_: _Lookups, domain: str, configured: Address | None, fallback: str
) -> list[CheckItem]:
    """The _smtp._tls record (RFC 8460 §3); with a reporting address set, its rua= must name it."""
    where = f"_smtp._tls.{domain}"
    report_to = str(configured) if configured is not None else fallback
    fix = [f"{where}.  TXT {_txt(f'v=TLSRPTv1; rua=mailto:{report_to}')}"]
    bad_destination = await _judge_destination(server, "TLSRPT reports", "tlsrpt_reports", configured)
    items = [bad_destination] if bad_destination is not None else []
    try:
        records = [r for r in await dns_.txt(where) if r.replace(" ", "").startswith("v=TLSRPTv1")]
    except DNSError as e:
        return [*items, _temporary("TLSRPT", e)]
    if not records:
        msg = "no TLS reporting record: you hear nothing of senders' TLS failures"
        return [*items, _bad("warning", "TLSRPT", msg, fix)]
    if len(records) > 1:
        msg = "more than one TLSRPT record (RFC 8460 §3: none is used)"
        return [*items, _bad("error", "TLSRPT", msg, fix, records)]
    rua = _tags(records[0]).get("rua", "")
    if not rua:
        return [*items, _bad("error", "TLSRPT", "the record has no rua=", fix, records)]
    if configured is not None and configured.key() not in _mailto_keys(rua):
        msg = f"rua= does not name the domain's TLS reporting address {configured.display()}: reports go elsewhere"
        return [*items, _bad("warning", "TLSRPT", msg, fix, records)]
    return [*items, _ok("TLSRPT", "present", records)]


# RFC 6186 services with the port this server's quickstart uses and the listener kind behind them.
_SRV = (
    ("_submissions._tcp", 0, 465, "submission", "implicit"),  # RFC 8314 §5.1: implicit TLS preferred
    ("_submission._tcp", 10, 587, "submission", "starttls"),
    ("_imaps._tcp", 0, 993, "imap", "implicit"),
    ("_imap._tcp", 10, 143, "imap", "starttls"),
)


async def _check_srv(server: Server, dns_: _Lookups, domain: str, host: str) -> list[CheckItem]:
    items = []
    for service, priority, default_port, protocol, tls in _SRV:
        ports = sorted({lc.port for lc in server.config.listeners if lc.protocol == protocol and lc.tls == tls})
        name = f"SRV {service}"
        if not ports:
            continue  # we offer no such service: nothing to advertise
        port = default_port if default_port in ports else ports[0]
        fix = [f"{service}.{domain}.  SRV {priority} 1 {port} {host}."]
        try:
            records = await dns_.query(f"{service}.{domain}", "SRV")
        except DNSError as e:
            items.append(_temporary(name, e))
            continue
        found = [f"{r.priority} {r.weight} {r.port} {r.target.to_text(omit_final_dot=True)}" for r in records]
        targets = {(r.target.to_text(omit_final_dot=True).lower(), int(r.port)) for r in records}
        if not records:
            items.append(_bad("warning", name, "missing: mail clients cannot find the server by themselves", fix))
        elif not any(t == host and p in ports for t, p in targets):
            items.append(_bad("warning", name, f"does not point at {host} port {port}", fix, found))
        else:
            items.append(_ok(name, "points at this server", found))
    name = f"autoconfig.{domain}"
    fix = [f"autoconfig.{domain}.  CNAME {host}."]
    try:
        aliases = [r.target.to_text(omit_final_dot=True) for r in await dns_.query(name, "CNAME")]
        addresses = aliases or list(await dns_.addresses(name))
    except DNSError as e:
        items.append(_temporary("autoconfig", e))
        return items
    if not addresses:
        items.append(_bad("warning", "autoconfig", f"{name} does not resolve: Thunderbird cannot find settings", fix))
    else:
        items.append(_ok("autoconfig", f"{name} resolves", addresses))
    return items


def _listening_ips(server: Server, host_addresses: Sequence[str]) -> list[str]:
    """The addresses SMTP peers see: the SMTP listeners' own addresses, and for listeners on
    every address (0.0.0.0, ::) the host name's."""
    out: list[str] = []
    for lc in server.config.listeners:
        if lc.protocol != "smtp":
            continue
        try:
            ip = ipaddress.ip_address(lc.address)
        except ValueError:
            continue
        candidates = list(host_addresses) if ip.is_unspecified else [str(ip)]
        out += [c for c in candidates if c not in out]
    return out


async def _check_reverse(dns_: _Lookups, host: str, ips: Sequence[str]) -> list[CheckItem]:
    items = []
    for ip in ips:
        name = f"reverse DNS {ip}"
        where = dns.reversename.from_address(ip).to_text(omit_final_dot=True)
        fix = [f"{where}.  PTR {host}.  (set by whoever runs the address, often your provider)"]
        try:
            records = await dns_.query(where, "PTR")
        except DNSError as e:
            items.append(_temporary(name, e))
            continue
        names = [r.target.to_text(omit_final_dot=True).lower() for r in records]
        if not names:
            items.append(_bad("error", name, "no PTR record: many receivers refuse such mail", fix))
        elif host not in names:
            items.append(_bad("warning", name, f"names {', '.join(names)}, not {host}", fix, names))
        else:
            try:
                forward = await dns_.addresses(host)
            except DNSError as e:
                items.append(_temporary(name, e))
                continue
            if ip not in forward:
                msg = f"{host} does not resolve back to {ip} (not forward-confirmed)"
                items.append(_bad("warning", name, msg, [f"{host}.  A/AAAA {ip}"], names))
            else:
                items.append(_ok(name, f"{ip} ↔ {host}", names))
    return items


def certificate_names(cert: x509.Certificate) -> list[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        return [n.lower() for n in san.get_values_for_type(x509.DNSName)]
    except x509.ExtensionNotFound:
        cns = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
        return [str(cns[0].value).lower()] if cns else []


def covers(names: Sequence[str], host: str) -> bool:
    """RFC 6125 §6.4.3: an exact name, or "*." standing for exactly one leftmost label."""
    host = host.lower().rstrip(".")
    parent = host.partition(".")[2]
    return host in names or (bool(parent) and f"*.{parent}" in names)


def _load_certificates(paths: Sequence[Path]) -> list[tuple[Path, x509.Certificate | str]]:
    out: list[tuple[Path, x509.Certificate | str]] = []
    for path in paths:
        try:
            out.append((path, x509.load_pem_x509_certificates(path.read_bytes())[0]))
        except (OSError, ValueError, IndexError) as e:
            out.append((path, f"cannot read {path}: {e}"))
    return out


async def _check_certificates(server: Server, dns_: _Lookups, domain: str, host: str) -> list[CheckItem]:
    paths = [kp.cert_file for kp in server.config.tls]
    if not paths:
        return [_bad("error", "TLS certificate", "no [[tls]] key pair: clients and senders get no TLS")]
    loaded = await dns_.resolver.in_thread(_load_certificates, paths)
    now = datetime.datetime.now(datetime.UTC)
    items = []
    certs: list[x509.Certificate] = []
    for path, cert in loaded:
        if isinstance(cert, str):
            items.append(_bad("error", f"TLS certificate {path.name}", cert))
            continue
        certs.append(cert)
        if cert.not_valid_after_utc < now:
            items.append(_bad("error", f"TLS certificate {path.name}", f"expired {cert.not_valid_after_utc:%Y-%m-%d}"))
        elif cert.not_valid_after_utc - now < datetime.timedelta(days=14):
            items.append(
                _bad("warning", f"TLS certificate {path.name}", f"expires {cert.not_valid_after_utc:%Y-%m-%d}")
            )
    wanted: list[tuple[str, Status]] = [
        (host, "error"),
        (f"mta-sts.{domain}", "error"),
        (f"autoconfig.{domain}", "warning"),
    ]
    for name, severity in wanted:
        if any(covers(certificate_names(c), name) for c in certs):
            items.append(_ok(f"certificate for {name}", "covered"))
        else:
            why = {
                host: "SMTP, IMAP and submission clients will not verify the connection",
                f"mta-sts.{domain}": "senders cannot fetch the MTA-STS policy",
                f"autoconfig.{domain}": "autoconfig over HTTPS fails",
            }[name]
            fix = [f"a certificate whose names include {name} (add it to [acme] hostnames)"]
            items.append(_bad(severity, f"certificate for {name}", f"no certificate covers {name}: {why}", fix))
    return items


def _resolver_for_checks(server: Server) -> Resolver:
    """A resolver like the daemon's but without a cache: the check must see fresh records."""
    run = server.pools.dns if server.pools is not None else None
    return Resolver(server.reactor, server.config.dns.nameservers, server.config.dns.timeout, 0, 0, 0, run_in_pool=run)


def _default_report_address(server: Server, domain: str) -> str:
    """Suggested when the domain has no reporting address set: the postmaster's."""
    postmaster = server.config.smtp.postmaster_account
    account = server.dynamic.account_by_name(postmaster) if postmaster else None
    if account is not None and account.addresses:
        return account.addresses[0].display()
    return f"postmaster@{domain}"


async def check_domain(server: Server, req: CheckDomain, fetch: PolicyFetcher | None = None) -> DomainCheck:
    """Looks up and judges every record the domain needs (module docstring). NotFound for a
    domain that is not ours."""
    try:
        domain = Domain.parse(req.domain)
    except AddressError as e:
        raise InvalidInput(f"invalid domain {req.domain!r}: {e}", "domain") from None
    config = server.dynamic.current.domains.get(domain.ascii)
    if config is None:
        raise NotFound(f"no such domain: {domain.ascii}")
    name = domain.ascii
    host = server.config.hostname.ascii
    if fetch is None:
        fetch = _daemon_fetcher(server)
    dns_ = _Lookups(_resolver_for_checks(server))
    report_to = _default_report_address(server, name)
    items = [await _check_mx(dns_, name, host)]
    host_item, host_addresses = await _check_host_addresses(dns_, host)
    items.append(host_item)
    items.append(await _check_spf(dns_, name, host, host_addresses))
    items += await _check_dkim(server, dns_, name, config.dkim_selectors)
    items += await _check_dmarc(server, dns_, name, config.dmarc_reports, report_to)
    items += await _check_mtasts(dns_, name, host, fetch, mta_sts_policy(server.config, config))
    items += await _check_tlsrpt(server, dns_, name, config.tlsrpt_reports, report_to)
    items += await _check_srv(server, dns_, name, host)
    items += await _check_reverse(dns_, host, _listening_ips(server, host_addresses))
    items += await _check_certificates(server, dns_, name, host)
    worst = max((i.status for i in items), key=_RANK.__getitem__)
    return DomainCheck(domain=name, hostname=host, status=worst, items=items)


def _daemon_fetcher(server: Server) -> PolicyFetcher:
    smtp = server.config.smtp

    async def fetch(domain: str) -> str:
        try:
            return await mtasts.fetch_policy_text(
                server.reactor, server.resolver, domain, https_port=smtp.mta_sts_port, ca_file=smtp.tls_ca_file
            )
        except mtasts.PolicyUnavailable as e:
            raise PolicyFetchError(str(e)) from None

    return fetch


OPERATIONS = (Operation("domain.check", check_domain, CheckDomain, summary="check a domain's DNS records"),)
