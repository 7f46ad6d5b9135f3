"""mailsrv/ops/dnscheck.py against a DNS server the test controls (tests/dnsserver.py): a
domain published as this server wants it checks OK item by item; each broken or missing
record turns its item into a warning or an error with the record to publish."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mailsrv.config.types import DNSConfig, ListenerConfig, TLSKeyPair
from mailsrv.dns.dkimkeys import public_record
from mailsrv.ops import dnscheck, domains
from mailsrv.ops.errors import NotFound
from mailsrv.tlsutil import generate_self_signed
from tests.dnsserver import DNSServer
from tests.ops.world import make_server, result

HOST = "mail.example.org"
POLICY = f"version: STSv1\r\nmode: enforce\r\nmx: {HOST}\r\nmax_age: 604800\r\n"


@pytest.fixture
def dnsserver() -> Iterator[DNSServer]:
    with DNSServer() as server:
        yield server


@pytest.fixture
def world(tmp_path: Path, dnsserver: DNSServer) -> Iterator[Any]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    generate_self_signed([HOST, "mta-sts.example.org", "autoconfig.example.org"], cert, key)
    listeners = (
        ListenerConfig(name="smtp", protocol="smtp", address="127.0.0.1", port=25, tls="starttls"),
        ListenerConfig(name="submissions", protocol="submission", address="127.0.0.1", port=465, tls="implicit"),
        ListenerConfig(name="imaps", protocol="imap", address="127.0.0.1", port=993, tls="implicit"),
    )
    server = make_server(
        tmp_path,
        dns=DNSConfig(nameservers=(dnsserver.address,), timeout=2.0),
        tls=(TLSKeyPair(cert_file=cert, key_file=key),),
    )
    object.__setattr__(server.config, "listeners", listeners)
    added = domains.add(server, domains.AddDomain(domain="example.org"))
    # The served policy (POLICY) is the domain's own mode, not [smtp]'s default "testing".
    result(domains.set_settings(server, domains.SetDomainSettings(domain="example.org", mta_sts_mode="enforce")))
    publish_all(dnsserver, server, [(r.selector, r.value) for r in added.dkim])
    yield server, dnsserver
    server.close()


def publish_all(d: DNSServer, server: Any, dkim: list[tuple[str, str]]) -> None:
    d.add("example.org", "MX", f"10 {HOST}.")
    d.add(HOST, "A", "127.0.0.1")
    d.add("example.org", "TXT", "v=spf1 ip4:127.0.0.1 -all")
    for selector, value in dkim:
        d.add(f"{selector}._domainkey.example.org", "TXT", value)
    d.add("_dmarc.example.org", "TXT", "v=DMARC1; p=reject; rua=mailto:postmaster@example.org")
    d.add("_mta-sts.example.org", "TXT", f"v=STSv1; id={policy_id(server)}")
    d.add("_smtp._tls.example.org", "TXT", "v=TLSRPTv1; rua=mailto:postmaster@example.org")
    d.add("_submissions._tcp.example.org", "SRV", f"0 1 465 {HOST}.")
    d.add("_imaps._tcp.example.org", "SRV", f"0 1 993 {HOST}.")
    d.add("autoconfig.example.org", "CNAME", f"{HOST}.")
    d.add("1.0.0.127.in-addr.arpa", "PTR", f"{HOST}.")


def policy_id(server: Any) -> str:
    return domains.mta_sts_policy(server.config, server.dynamic.current.domains["example.org"]).id


def settings(server: Any, **changes: Any) -> domains.DomainInfo:
    req = domains.SetDomainSettings(domain="example.org", **changes)
    info: domains.DomainInfo = result(domains.set_settings(server, req))
    return info


def check(server: Any, policy: str | Exception = POLICY) -> dict[str, dnscheck.CheckItem]:
    fetched: list[str] = []

    async def fetch(domain: str) -> str:
        fetched.append(domain)
        if isinstance(policy, Exception):
            raise policy
        return policy

    found = result(dnscheck.check_domain(server, dnscheck.CheckDomain(domain="example.org"), fetch))
    assert found.domain == "example.org" and found.hostname == HOST
    return {item.name: item for item in found.items}


def statuses(items: dict[str, dnscheck.CheckItem]) -> dict[str, str]:
    return {name: item.status for name, item in items.items()}


def test_everything_published_is_ok(world: Any) -> None:
    server, _ = world
    found = result(dnscheck.check_domain(server, dnscheck.CheckDomain(domain="example.org"), _serve(POLICY)))
    bad = [(i.name, i.message) for i in found.items if i.status != "ok"]
    assert bad == [] and found.status == "ok"
    names = [i.name for i in found.items]
    selectors = server.dynamic.current.domains["example.org"].dkim_selectors
    assert len(selectors) == 2
    for expected in (
        "MX",
        f"address of {HOST}",
        "SPF",
        *(f"DKIM {s}" for s in selectors),
        "DMARC",
        "MTA-STS record",
        "MTA-STS policy",
        "TLSRPT",
        "SRV _submissions._tcp",
        "SRV _imaps._tcp",
        "autoconfig",
        "reverse DNS 127.0.0.1",
        f"certificate for {HOST}",
        "certificate for mta-sts.example.org",
    ):
        assert expected in names


def _serve(text: str) -> dnscheck.PolicyFetcher:
    async def fetch(domain: str) -> str:
        assert domain == "example.org"
        return text

    return fetch


def test_missing_records_are_errors_with_the_record_to_add(world: Any) -> None:
    server, d = world
    for name in ("example.org", "_dmarc.example.org", "1.0.0.127.in-addr.arpa"):
        d.remove(name)
    items = check(server)
    assert items["MX"].status == "error" and items["MX"].fix == [f"example.org.  MX 10 {HOST}."]
    assert items["SPF"].status == "error" and "v=spf1 mx -all" in items["SPF"].fix[0]
    assert items["DMARC"].status == "error" and items["DMARC"].fix[0].startswith("_dmarc.example.org.  TXT")
    assert items["reverse DNS 127.0.0.1"].status == "error"
    assert "PTR mail.example.org." in items["reverse DNS 127.0.0.1"].fix[0]


def test_dkim_compares_the_published_key_with_ours(world: Any) -> None:
    server, d = world
    selectors = server.dynamic.current.domains["example.org"].dkim_selectors
    ed, rsa = selectors
    d.set(f"{ed}._domainkey.example.org", "TXT", "v=DKIM1; k=ed25519; p=AAAAnotourkey")
    d.remove(f"{rsa}._domainkey.example.org")
    items = check(server)
    assert items[f"DKIM {ed}"].status == "error" and "not ours" in items[f"DKIM {ed}"].message
    assert items[f"DKIM {ed}"].found == ["v=DKIM1; k=ed25519; p=AAAAnotourkey"]
    expected = public_record(server.config.data_dir, "example.org", rsa)
    assert items[f"DKIM {rsa}"].status == "error"
    fix = items[f"DKIM {rsa}"].fix[0]
    assert fix.startswith(f"{rsa}._domainkey.example.org.  TXT ")
    assert "".join(part.strip('"') for part in fix.split("TXT ", 1)[1].split('" "')) == expected


def test_weak_records_are_warnings(world: Any) -> None:
    server, d = world
    d.set("example.org", "TXT", "v=spf1 ip4:127.0.0.1 ~all")
    d.set("_dmarc.example.org", "TXT", "v=DMARC1; p=none")
    d.remove("_smtp._tls.example.org")
    d.set("1.0.0.127.in-addr.arpa", "PTR", "host.provider.example.")
    items = check(server, POLICY.replace("enforce", "testing"))
    assert statuses(items)["SPF"] == "warning"
    assert statuses(items)["DMARC"] == "warning"
    assert statuses(items)["TLSRPT"] == "warning" and "v=TLSRPTv1" in items["TLSRPT"].fix[0]
    assert statuses(items)["MTA-STS policy"] == "warning"
    assert statuses(items)["reverse DNS 127.0.0.1"] == "warning"


def test_spf_that_does_not_authorise_us_and_duplicate_records(world: Any) -> None:
    server, d = world
    d.set("example.org", "TXT", "v=spf1 ip4:192.0.2.1 -all")
    d.add("_dmarc.example.org", "TXT", "v=DMARC1; p=quarantine")
    items = check(server)
    assert items["SPF"].status == "error" and "127.0.0.1" in items["SPF"].message
    assert items["DMARC"].status == "error" and "more than one" in items["DMARC"].message


def test_mtasts_policy_problems(world: Any) -> None:
    server, d = world
    items = check(server, dnscheck.PolicyFetchError("HTTP status 404"))
    assert items["MTA-STS policy"].status == "error" and "404" in items["MTA-STS policy"].message
    items = check(server, "version: STSv1\nmode: enforce\nmx: other.example\nmax_age: 86400\n")
    assert items["MTA-STS policy"].status == "error" and HOST in items["MTA-STS policy"].message
    items = check(server, "not a policy")
    assert items["MTA-STS policy"].status == "error"
    d.remove("_mta-sts.example.org")
    items = check(server)
    assert items["MTA-STS record"].status == "warning" and "MTA-STS policy" not in items
    assert items["MTA-STS record"].fix[0].startswith('_mta-sts.example.org.  TXT "v=STSv1; id=')


def test_srv_and_autoconfig(world: Any) -> None:
    server, d = world
    d.set("_imaps._tcp.example.org", "SRV", "0 1 993 elsewhere.example.")
    d.remove("_submissions._tcp.example.org")
    d.remove("autoconfig.example.org")
    items = check(server)
    assert items["SRV _imaps._tcp"].status == "warning"
    assert items["SRV _submissions._tcp"].fix == [f"_submissions._tcp.example.org.  SRV 0 1 465 {HOST}."]
    assert items["autoconfig"].status == "warning"
    # No IMAP STARTTLS or submission STARTTLS listener: those services are not asked for.
    assert "SRV _imap._tcp" not in items and "SRV _submission._tcp" not in items


def test_certificate_that_does_not_cover_the_names(world: Any, tmp_path: Path) -> None:
    server, _ = world
    cert, key = tmp_path / "other.pem", tmp_path / "other-key.pem"
    generate_self_signed(["other.example"], cert, key)
    object.__setattr__(server.config, "tls", (TLSKeyPair(cert_file=cert, key_file=key),))
    items = check(server)
    assert items[f"certificate for {HOST}"].status == "error"
    assert items["certificate for mta-sts.example.org"].status == "error"
    assert items["certificate for autoconfig.example.org"].status == "warning"


def test_wildcard_certificate_covers_one_label() -> None:
    assert dnscheck.covers(["*.example.org"], "mail.example.org")
    assert not dnscheck.covers(["*.example.org"], "a.b.example.org")
    assert not dnscheck.covers(["*.example.org"], "example.org")


def test_a_failing_dns_server_is_an_error_item_not_an_exception(world: Any) -> None:
    server, d = world
    d.servfail.add("_dmarc.example.org")
    items = check(server)
    assert items["DMARC"].status == "error" and "DNS lookup failed" in items["DMARC"].message
    assert items["MX"].status == "ok"


def test_unknown_domain(world: Any) -> None:
    server, _ = world
    with pytest.raises(NotFound):
        result(dnscheck.check_domain(server, dnscheck.CheckDomain(domain="nope.example"), _serve(POLICY)))


def test_reporting_addresses_of_an_account_are_asked_for_in_rua(world: Any) -> None:
    server, d = world
    server.dynamic.add_account("alice", "alice@example.org")
    settings(server, dmarc_reports="alice+dmarc@example.org", tlsrpt_reports="alice+tls@example.org")
    # Published records still name postmaster@: reports go elsewhere.
    items = check(server)
    assert items["DMARC"].status == "warning" and "alice+dmarc@example.org" in items["DMARC"].message
    assert items["DMARC"].fix == ['_dmarc.example.org.  TXT "v=DMARC1; p=reject; rua=mailto:alice+dmarc@example.org"']
    assert items["TLSRPT"].status == "warning"
    assert items["TLSRPT"].fix == ['_smtp._tls.example.org.  TXT "v=TLSRPTv1; rua=mailto:alice+tls@example.org"']
    assert "DMARC external reports" not in items and "DMARC reports" not in items
    # Published as suggested (with another reporter beside it, and a size limit): OK.
    d.set(
        "_dmarc.example.org",
        "TXT",
        "v=DMARC1; p=quarantine; rua=mailto:x@elsewhere.example,mailto:ALICE+dmarc@example.org!10m",
    )
    d.set("_smtp._tls.example.org", "TXT", "v=TLSRPTv1; rua=mailto:alice+tls@example.org")
    items = check(server)
    assert statuses(items)["DMARC"] == "ok" and statuses(items)["TLSRPT"] == "ok"
    # The catchall separator removed: the addresses reach nobody any more.
    settings(server, separator="")
    items = check(server)
    assert items["DMARC reports"].status == "error" and "no account has the address" in items["DMARC reports"].message
    assert items["TLSRPT reports"].status == "error"
    assert statuses(items)["DMARC"] == "ok"  # the record itself still names the address


def test_external_dmarc_destination_needs_its_authorisation(world: Any) -> None:
    server, d = world
    settings(server, dmarc_reports="reports@elsewhere.example")
    d.set("_dmarc.example.org", "TXT", "v=DMARC1; p=reject; rua=mailto:reports@elsewhere.example")
    items = check(server)
    assert items["DMARC"].status == "ok"
    external = items["DMARC external reports"]
    assert external.status == "warning" and "RFC 7489 §7.1" in external.message
    assert external.fix[0].startswith('example.org._report._dmarc.elsewhere.example.  TXT "v=DMARC1"')
    d.add("example.org._report._dmarc.elsewhere.example", "TXT", "v=DMARC1")
    assert check(server)["DMARC external reports"].status == "ok"


def test_mtasts_per_domain_mode_changes_the_id(world: Any) -> None:
    server, d = world
    before = policy_id(server)
    info = settings(server, mta_sts_mode="testing", mta_sts_max_age=86400)
    assert info.mta_sts is not None and info.mta_sts.mode == "testing" and info.mta_sts.max_age == 86400
    assert info.mta_sts.id != before and info.mta_sts.id == policy_id(server)
    # The published id is the old policy's; the served policy is still the old one too.
    items = check(server)
    assert items["MTA-STS record"].status == "warning" and before in items["MTA-STS record"].message
    assert items["MTA-STS record"].fix == [f'_mta-sts.example.org.  TXT "v=STSv1; id={info.mta_sts.id}"']
    assert items["MTA-STS policy"].status == "warning" and "not this server's" in items["MTA-STS policy"].message
    d.set("_mta-sts.example.org", "TXT", f"v=STSv1; id={info.mta_sts.id}")
    items = check(server, info.mta_sts.text)
    assert items["MTA-STS record"].status == "ok"
    assert items["MTA-STS policy"].status == "warning" and "mode testing" in items["MTA-STS policy"].message
    # Back to the server's defaults ([smtp]: testing, 7 days): another id again.
    info = settings(server, mta_sts_mode="", mta_sts_max_age=0)
    assert info.mta_sts is not None and (info.mta_sts.mode, info.mta_sts.max_age) == ("testing", 604800)
    assert (info.mta_sts_mode, info.mta_sts_max_age) == ("", 0)
    # Off: no policy served, and a published record should go.
    info = settings(server, mta_sts_mode="off")
    assert info.mta_sts is not None and info.mta_sts.text == ""
    items = check(server)
    assert items["MTA-STS record"].status == "warning" and "remove it" in items["MTA-STS record"].message
    assert "MTA-STS policy" not in items
    d.remove("_mta-sts.example.org")
    assert check(server)["MTA-STS record"].status == "ok"
