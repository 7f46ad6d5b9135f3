"""Where DMARC aggregate reports (RFC 7489 §7.2) and SMTP TLS reports (RFC 8460) for local
domains are filed: a message to a domain's `dmarc_reports` or `tlsrpt_reports` address goes
to the receiving account's "DMARC reports" or "TLS reports" mailbox (created on first use),
past the rulesets and the junk filter (reports are machine mail the filter would misjudge).

The map from address key to mailbox is built once per dynamic config (a few domains), so a
delivery pays one dict lookup.

Once filed, the report in the message is read in a pool thread (bounded: gzip/zip inflation,
XML without a DTD, JSON; mailsrv.message.aggregatereports) and its summary stored per policy
domain in `DATA_DIR/reports.db` (mailsrv.store.reports) for the admin page; reports about
domains that are not ours are not kept. A message that holds no readable report is only logged:
it stays in the mailbox.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec
from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger

from mailsrv.address import Address, AddressError, Domain
from mailsrv.config.types import DynamicConfig
from mailsrv.message.aggregatereports import MAX_MESSAGE, DMARCSummary, ReportError, TLSSummary, read_report
from mailsrv.message.source import MessageSource
from mailsrv.ops.errors import InvalidInput, NotFound
from mailsrv.ops.operation import Operation
from mailsrv.store.reports import ReportStore

if TYPE_CHECKING:
    from mailsrv.server import Server

log = Logger()

DMARC_MAILBOX = "DMARC reports"
TLS_MAILBOX = "TLS reports"

_cache: tuple[DynamicConfig, dict[str, str]] | None = None


def _addresses(config: DynamicConfig) -> dict[str, str]:
    global _cache
    cached = _cache
    if cached is not None and cached[0] is config:
        return cached[1]
    found: dict[str, str] = {}
    for d in config.domains.values():
        # One address for both kinds: DMARC's mailbox (its reports are the more frequent).
        if d.tlsrpt_reports is not None:
            found[d.tlsrpt_reports.key()] = TLS_MAILBOX
        if d.dmarc_reports is not None:
            found[d.dmarc_reports.key()] = DMARC_MAILBOX
    _cache = (config, found)
    return found


def mailbox_for(server: Server, address: Address) -> str | None:
    """The reports mailbox for mail to `address`, or None when it is no reporting address."""
    addresses = _addresses(server.dynamic.current)
    return addresses.get(address.key()) if addresses else None


# --- the reports' summaries ------------------------------------------------------------------------------------

KINDS = {DMARC_MAILBOX: "dmarc", TLS_MAILBOX: "tlsrpt"}
MAX_LIST = 100


def report_store(server: Server) -> ReportStore:
    """The server's report summaries, opened on first use (reactor thread)."""
    if server.reports is None:
        server.reports = ReportStore(server.config.data_dir)
    store: ReportStore = server.reports
    return store


def _summaries(summary: DMARCSummary | TLSSummary) -> list[tuple[str, bytes]]:
    """(policy domain, summary JSON) for each domain the report is about."""
    if isinstance(summary, DMARCSummary):
        return [(summary.domain, msgspec.json.encode(summary))]
    out = []
    for policy in summary.policies:
        one = TLSSummary(
            org=summary.org, report_id=summary.report_id, begin=summary.begin, end=summary.end, policies=[policy]
        )
        out.append((policy.domain, msgspec.json.encode(one)))
    return out


def _record(server: Server, account: str, kind: str, summary: DMARCSummary | TLSSummary) -> int:
    """Stores the summaries about local domains (reports about others are not kept); returns how many."""
    stored = 0
    for domain, encoded in _summaries(summary):
        try:
            local = server.dynamic.is_local_domain(Domain.parse(domain))
        except AddressError:
            local = False
        if not local:
            continue
        begin, end = (summary.begin, summary.end)
        if report_store(server).add(kind, domain, summary.org, summary.report_id, begin, end, account, encoded):
            stored += 1
    return stored


async def record_report(server: Server, account: str, mailbox: str, message: bytes | MessageSource) -> int:
    """Reads the report in a message just filed in a reports mailbox and stores its summary
    (bounded: mailsrv.message.aggregatereports). A message that holds none is only logged:
    it stays in the mailbox for a human. Returns how many summaries were stored."""
    kind = KINDS.get(mailbox)
    if kind is None:
        return 0
    if len(message) > MAX_MESSAGE:
        log.info("{kind} report for {account} not read: {size} octets", kind=kind, account=account, size=len(message))
        return 0
    reactor: Any = server.reactor
    data = message if isinstance(message, bytes) else None
    try:
        if data is None:
            assert isinstance(message, MessageSource)
            data = await deferToThreadPool(reactor, reactor.getThreadPool(), message.read, 0, len(message))
        summary = await deferToThreadPool(reactor, reactor.getThreadPool(), read_report, data, kind)
    except ReportError as e:
        log.info("{kind} report for {account} not read: {error}", kind=kind, account=account, error=str(e))
        return 0
    return _record(server, account, kind, summary)


def record_in_background(server: Server, account: str, mailbox: str, message: bytes | MessageSource) -> None:
    """record_report without holding up the delivery; a failure is logged."""
    if mailbox not in KINDS:
        return
    d = Deferred.fromCoroutine(record_report(server, account, mailbox, message))
    d.addErrback(lambda f: log.failure("recording a report for {account} failed", f, account=account))


class ReportsRequest(msgspec.Struct, kw_only=True):
    domain: str
    limit: int = 30


class DMARCReport(msgspec.Struct, kw_only=True):
    received: float
    account: str  # whose "DMARC reports" mailbox holds the message
    report: DMARCSummary


class TLSReport(msgspec.Struct, kw_only=True):
    received: float
    account: str
    report: TLSSummary


class DomainReports(msgspec.Struct, kw_only=True):
    domain: str
    dmarc: list[DMARCReport]  # the latest report periods first
    tlsrpt: list[TLSReport]
    # Over the reports listed: messages reported passing and failing DMARC; TLS sessions.
    dmarc_passed: int
    dmarc_failed: int
    tls_successful: int
    tls_failed: int


def domain_reports(server: Server, req: ReportsRequest) -> DomainReports:
    """The latest DMARC and TLS report summaries received about a local domain, with totals.
    NotFound for a domain that is not ours."""
    try:
        domain = Domain.parse(req.domain)
    except AddressError as e:
        raise InvalidInput(f"invalid domain {req.domain!r}: {e}", "domain") from None
    if not server.dynamic.is_local_domain(domain):
        raise NotFound(f"no such domain: {domain.ascii}")
    if not 1 <= req.limit <= MAX_LIST:
        raise InvalidInput(f"limit: 1 to {MAX_LIST}", "limit")
    store = report_store(server)
    dmarc = [
        DMARCReport(received=r.received, account=r.account, report=msgspec.json.decode(r.summary, type=DMARCSummary))
        for r in store.for_domain(domain.ascii, "dmarc", req.limit)
    ]
    tls = [
        TLSReport(received=r.received, account=r.account, report=msgspec.json.decode(r.summary, type=TLSSummary))
        for r in store.for_domain(domain.ascii, "tlsrpt", req.limit)
    ]
    return DomainReports(
        domain=domain.ascii,
        dmarc=dmarc,
        tlsrpt=tls,
        dmarc_passed=sum(r.report.passed for r in dmarc),
        dmarc_failed=sum(r.report.failed for r in dmarc),
        tls_successful=sum(p.successful for r in tls for p in r.report.policies),
        tls_failed=sum(p.failed for r in tls for p in r.report.policies),
    )


OPERATIONS = (
    Operation("domain.reports", domain_reports, ReportsRequest, summary="DMARC and TLS reports received for a domain"),
)
