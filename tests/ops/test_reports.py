"""DMARC and TLS reports to a domain's reporting addresses are filed in the receiving account's
"DMARC reports" / "TLS reports" mailbox (created on first use), past the junk filter; other
mail to the account is not affected (mailsrv/ops/reports.py, ops.delivery)."""

from __future__ import annotations

from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from twisted.internet.defer import Deferred

from mailsrv.address import Address
from mailsrv.ops import accounts, delivery, domains, reports
from mailsrv.ops.delivery import Decision, DecisionInput, Envelope, Trace
from mailsrv.ops.errors import InvalidInput, NotFound
from mailsrv.pools import inline_pools
from mailsrv.server import Server
from mailsrv.store import SQLiteStoreRegistry
from tests.ops import world
from tests.ops.world import make_server

T = TypeVar("T")


def result(d: Any) -> Any:
    """world.result, turning the clock until the store's group commits have run."""
    if isinstance(d, Coroutine):
        d = Deferred.fromCoroutine(d)
    if isinstance(d, Deferred):
        out: list[Any] = []
        d.addBoth(lambda r: out.append(r) or r)
        for _ in range(10_000):
            if out:
                break
            _CLOCK[0].advance(0)
    return world.result(d)


_CLOCK: list[Any] = []

REPORT = b"From: <noreply-dmarc@reporter.example>\r\nSubject: Report Domain: example.org\r\n\r\nxml\r\n"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    s = make_server(tmp_path)
    s.stores.close_all()
    s.stores = SQLiteStoreRegistry(s.config.data_dir, quota_for=s.quota_for, reactor=s.reactor, pools=inline_pools())
    _CLOCK[:] = [s.reactor]
    domains.add(s, domains.AddDomain(domain="example.org"))
    result(accounts.add(s, accounts.AddAccount(account="alice", address="alice@example.org", password="x" * 12)))
    req = domains.SetDomainSettings(
        domain="example.org", dmarc_reports="alice+dmarc@example.org", tlsrpt_reports="alice+tls@example.org"
    )
    result(domains.set_settings(s, req))
    yield s
    s.close()


def _deliver(server: Server, to: str, message: bytes = REPORT) -> delivery.DeliveryResult:
    envelope = Envelope(
        mail_from=Address.parse("noreply@reporter.example"), trace=Trace(helo="h", remote_ip="192.0.2.1")
    )
    envelope.recipients.append(result(delivery.resolve_recipient(server, envelope, Address.parse(to))))
    delivered: delivery.DeliveryResult = result(delivery.deliver(server, envelope, message))
    return delivered


def _count(server: Server, mailbox: str) -> int:
    store = server.stores.open("alice")
    box = next(b for b in store.mailboxes() if b.name == mailbox)
    return len(store.messages(box.id))


def test_reports_are_filed_in_their_mailboxes_past_the_junk_filter(server: Server) -> None:
    async def reject_everything(subject: DecisionInput, decision: Decision) -> Decision:
        return Decision(mailbox="Junk", rejected=True, keep_copy=False, reason="junk")

    server.delivery_deciders.append(reject_everything)
    assert _deliver(server, "alice+dmarc@example.org").mailboxes == {"alice": reports.DMARC_MAILBOX}
    assert _deliver(server, "Alice+TLS@example.org", REPORT.replace(b"xml", b"json")).mailboxes == {
        "alice": reports.TLS_MAILBOX
    }
    assert _deliver(server, "alice+dmarc@example.org", REPORT + b"2\r\n").mailboxes == {"alice": reports.DMARC_MAILBOX}
    assert _count(server, reports.DMARC_MAILBOX) == 2 and _count(server, reports.TLS_MAILBOX) == 1
    # Other mail to the account still meets the filter.
    server.delivery_deciders.clear()
    assert _deliver(server, "alice+other@example.org").mailboxes == {"alice": "INBOX"}


def test_a_removed_setting_stops_the_filing(server: Server) -> None:
    req = domains.SetDomainSettings(domain="example.org", dmarc_reports="")
    result(domains.set_settings(server, req))
    assert reports.mailbox_for(server, Address.parse("alice+dmarc@example.org")) is None
    assert _deliver(server, "alice+dmarc@example.org").mailboxes == {"alice": "INBOX"}


def test_reports_are_read_and_summarised_per_domain(server: Server) -> None:
    from tests.message.reportsamples import dmarc_message, report_message, tlsrpt_message

    _deliver(server, "alice+dmarc@example.org", dmarc_message(report_id="r-1"))
    _deliver(server, "alice+dmarc@example.org", dmarc_message(report_id="r-1"))  # the same report again
    _deliver(server, "alice+dmarc@example.org", dmarc_message(report_id="r-2"))
    _deliver(server, "alice+dmarc@example.org", dmarc_message(domain="other.example", report_id="r-3"))
    _deliver(server, "alice+tls@example.org", tlsrpt_message())
    bad = report_message(b"<feedback><broken", "text/xml", "bad.xml")
    assert _deliver(server, "alice+dmarc@example.org", bad).mailboxes == {"alice": reports.DMARC_MAILBOX}
    # Every message is filed, the unreadable one too (the repeated one is the same message: stored once).
    assert _count(server, reports.DMARC_MAILBOX) == 5
    found = reports.domain_reports(server, reports.ReportsRequest(domain="example.org"))
    assert [r.report.report_id for r in found.dmarc] == ["r-2", "r-1"]  # same period: the later received first
    assert found.dmarc[0].account == "alice"
    assert (found.dmarc_passed, found.dmarc_failed) == (24, 6)
    assert [r.report.report_id for r in found.tlsrpt] == ["t-1"]
    assert (found.tls_successful, found.tls_failed) == (40, 2)
    assert found.tlsrpt[0].report.policies[0].failures == {"certificate-expired": 2}
    # Reports about domains that are not ours are not kept.
    assert server.reports.for_domain("other.example", "dmarc", 10) == []
    with pytest.raises(NotFound):
        reports.domain_reports(server, reports.ReportsRequest(domain="other.example"))
    with pytest.raises(InvalidInput):
        reports.domain_reports(server, reports.ReportsRequest(domain="example.org", limit=0))
