"""SPF, DKIM and DMARC evaluation with every record served by tests/dnsserver.py."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from twisted.internet import defer, reactor
from twisted.trial.unittest import TestCase

from mailsrv.dns.authresults import MailAuthenticator
from mailsrv.dns.dkim import generate_dkim_key, sign, verify_dkim_sync
from mailsrv.dns.dmarc import OrganizationalDomains, evaluate_dmarc_sync, from_domain, parse_record
from mailsrv.dns.resolver import Resolver
from mailsrv.dns.spf import check_spf_sync
from tests.dnsserver import DNSServer

R: Any = reactor

MESSAGE = (
    b"From: Alice <alice@a.example>\r\n"
    b"To: bob@b.example\r\n"
    b"Subject: hello\r\n"
    b"Date: Sun, 29 Nov 2026 01:00:00 +0000\r\n"
    b"Message-ID: <1@a.example>\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"\r\n"
    b"Hi Bob,\r\n.dotted line\r\n"
)


@pytest.fixture
def server() -> Iterator[DNSServer]:
    with DNSServer() as s:
        yield s


@pytest.fixture
def resolver(server: DNSServer) -> Resolver:
    return Resolver(R, [server.address], timeout=0.5)


# -- SPF ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        ("v=spf1 ip4:192.0.2.0/24 -all", "pass"),
        ("v=spf1 ip4:198.51.100.1 -all", "fail"),
        ("v=spf1 ip4:198.51.100.1 ~all", "softfail"),
        ("v=spf1 ?all", "neutral"),
        ("v=spf1 a:mail.a.example -all", "pass"),
        ("v=spf1 mx -all", "pass"),
        ("v=spf1 include:loop.a.example -all", "permerror"),
        ("v=spf1 bogus:x -all", "permerror"),
    ],
)
def test_spf(server: DNSServer, resolver: Resolver, record: str, expected: str) -> None:
    server.set("a.example", "TXT", record)
    server.set("a.example", "MX", "10 mail.a.example.")
    server.set("mail.a.example", "A", "192.0.2.10")
    server.set("loop.a.example", "TXT", "v=spf1 include:a.example -all")
    assert check_spf_sync(resolver, "192.0.2.10", "alice@a.example", "mail.a.example").result == expected


def test_spf_none_and_helo(server: DNSServer, resolver: Resolver) -> None:
    server.set("a.example", "A", "192.0.2.1")
    assert check_spf_sync(resolver, "192.0.2.10", "alice@a.example", "h").result == "none"
    server.set("mail.a.example", "TXT", "v=spf1 ip4:192.0.2.10 -all")
    v = check_spf_sync(resolver, "192.0.2.10", "", "mail.a.example")
    assert (v.result, v.domain) == ("pass", "mail.a.example")


def test_spf_more_than_ten_lookups(server: DNSServer, resolver: Resolver) -> None:
    terms = " ".join(f"a:h{i}.a.example" for i in range(11))
    server.set("a.example", "TXT", f"v=spf1 {terms} ip4:192.0.2.10 -all")
    for i in range(11):
        server.set(f"h{i}.a.example", "A", "198.51.100.1")
    assert check_spf_sync(resolver, "192.0.2.10", "alice@a.example", "h").result == "permerror"


def test_spf_void_lookup_limit(server: DNSServer, resolver: Resolver) -> None:
    server.set("a.example", "TXT", "v=spf1 a:v1.a.example a:v2.a.example a:v3.a.example ip4:192.0.2.10 -all")
    assert check_spf_sync(resolver, "192.0.2.10", "alice@a.example", "h").result == "permerror"


def test_spf_temperror(server: DNSServer, resolver: Resolver) -> None:
    server.servfail.add("a.example")
    assert check_spf_sync(resolver, "192.0.2.10", "alice@a.example", "h").result == "temperror"


# -- DKIM -----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["ed25519", "rsa"])
def test_dkim_sign_verify_round_trip(server: DNSServer, resolver: Resolver, kind: Any) -> None:
    pem, txt = generate_dkim_key(kind)
    server.set("sel._domainkey.a.example", "TXT", txt)
    header = sign(MESSAGE, "a.example", "sel", pem)
    assert header.startswith(b"DKIM-Signature:") and header.endswith(b"\r\n")
    assert b"h=from:to:subject:date:message-id:mime-version:content-type:from;" in b"".join(header.split())
    [v] = verify_dkim_sync(resolver, header + MESSAGE)
    assert (v.result, v.domain, v.selector, v.algorithm) == ("pass", "a.example", "sel", f"{kind}-sha256")
    # A changed body, an added From (over-signed) or a wrong key each fail.
    assert verify_dkim_sync(resolver, header + MESSAGE.replace(b"Hi Bob", b"Hi Eve"))[0].result == "fail"
    assert verify_dkim_sync(resolver, header + b"From: eve@evil.example\r\n" + MESSAGE)[0].result == "fail"
    _, other = generate_dkim_key(kind)
    server.set("sel._domainkey.a.example", "TXT", other)
    resolver.clear_cache()
    assert verify_dkim_sync(resolver, header + MESSAGE)[0].result == "fail"


def test_dkim_missing_key_and_dns_failure(server: DNSServer, resolver: Resolver) -> None:
    pem, _ = generate_dkim_key("ed25519")
    signed = sign(MESSAGE, "a.example", "sel", pem) + MESSAGE
    assert verify_dkim_sync(resolver, signed)[0].result == "permerror"
    server.servfail.add("sel._domainkey.a.example")
    resolver.clear_cache()
    assert verify_dkim_sync(resolver, signed)[0].result == "temperror"


def test_dkim_garbage_signatures(resolver: Resolver) -> None:
    for junk in (b"garbage", b"v=1; a=rsa-sha256; d=; s=; b=!!!", b"v=1; a=rsa-sha1; d=a.example; s=s; bh=x; b=y"):
        [v] = verify_dkim_sync(resolver, b"DKIM-Signature: " + junk + b"\r\n" + MESSAGE)
        assert v.result in ("permerror", "fail")
    assert verify_dkim_sync(resolver, MESSAGE) == []


# -- DMARC ----------------------------------------------------------------------------------


def test_parse_record() -> None:
    r = parse_record("v=DMARC1; p=reject; sp=quarantine; adkim=s; pct=50")
    assert r is not None and (r.policy, r.subdomain_policy, r.adkim, r.aspf, r.pct) == (
        "reject",
        "quarantine",
        "s",
        "r",
        50,
    )
    assert parse_record("v=spf1 -all") is None
    assert parse_record("p=reject; v=DMARC1") is None


def test_from_domain() -> None:
    assert from_domain(MESSAGE) == "a.example"
    assert from_domain(b"From: a@x.example\r\nFrom: b@y.example\r\n\r\n") is None
    assert from_domain(b"From: a@x.example, b@y.example\r\n\r\n") is None
    assert from_domain(b"To: a@x.example\r\n\r\n") is None
    assert from_domain(b"From: =?utf-8?q?A?=\r\n <a@Sub.X.example>\r\n\r\n") == "sub.x.example"


def test_alignment_and_policy(server: DNSServer, resolver: Resolver) -> None:
    orgs = OrganizationalDomains()
    assert orgs.of("mail.a.example.co.uk") == "example.co.uk"
    assert orgs.of("bounces.a.example") == "a.example"
    server.set("_dmarc.a.example", "TXT", "v=DMARC1; p=reject")

    def verdict(spf: str | None, dkim: list[str], msg: bytes = MESSAGE) -> tuple[str, str]:
        v = evaluate_dmarc_sync(resolver, orgs, msg, spf, dkim)
        return v.result, v.disposition

    assert verdict("a.example", []) == ("pass", "none")
    assert verdict("bounces.a.example", []) == ("pass", "none")  # relaxed SPF alignment
    assert verdict(None, ["a.example"]) == ("pass", "none")
    assert verdict("other.example", ["other.example"]) == ("fail", "reject")
    assert verdict(None, []) == ("fail", "reject")
    # Strict alignment: a subdomain no longer counts.
    server.set("_dmarc.a.example", "TXT", "v=DMARC1; p=quarantine; aspf=s; adkim=s")
    resolver.clear_cache()
    assert verdict("bounces.a.example", ["sub.a.example"]) == ("fail", "quarantine")
    # A subdomain without its own record takes sp= from the organisational domain.
    server.set("_dmarc.a.example", "TXT", "v=DMARC1; p=reject; sp=none")
    resolver.clear_cache()
    sub = MESSAGE.replace(b"alice@a.example", b"alice@news.a.example")
    assert verdict(None, [], sub) == ("fail", "none")
    # pct: outside the sample, reject becomes quarantine.
    server.set("_dmarc.a.example", "TXT", "v=DMARC1; p=reject; pct=10")
    resolver.clear_cache()
    v = evaluate_dmarc_sync(resolver, orgs, MESSAGE, None, [], sample=lambda: 0.5)
    assert (v.result, v.disposition) == ("fail", "quarantine")
    # No record: none; a temporary DNS failure: temperror.
    assert evaluate_dmarc_sync(resolver, orgs, MESSAGE.replace(b"a.example", b"n.example"), None, []).result == "none"
    server.servfail.add("_dmarc.t.example")
    assert (
        evaluate_dmarc_sync(resolver, orgs, MESSAGE.replace(b"a.example", b"t.example"), None, []).result == "temperror"
    )


# -- everything at once ---------------------------------------------------------------------


class Evaluate(TestCase):
    def setUp(self) -> None:
        self.server = DNSServer()
        self.addCleanup(self.server.close)
        self.resolver = Resolver(R, [self.server.address], timeout=0.5)
        self.pem, txt = generate_dkim_key("ed25519")
        s = self.server
        s.set("a.example", "TXT", "v=spf1 ip4:127.0.0.2 -all")
        s.set("sel._domainkey.a.example", "TXT", txt)
        s.set("_dmarc.a.example", "TXT", "v=DMARC1; p=reject")

    def test_pass(self) -> defer.Deferred[None]:
        auth = MailAuthenticator(self.resolver, "mx.b.example")
        signed = sign(MESSAGE, "a.example", "sel", self.pem) + MESSAGE

        async def go() -> None:
            r = await auth.evaluate(signed, "alice@a.example", "mail.a.example", "127.0.0.2")
            assert (r.spf.result, [v.result for v in r.dkim], r.dmarc.result, r.disposition) == (
                "pass",
                ["pass"],
                "pass",
                "none",
            )
            assert r.verified_domains == ("a.example",)
            value = r.header_value()
            assert value.startswith("mx.b.example;")
            assert "spf=pass smtp.mailfrom=a.example" in value
            assert r.helo_spf is not None and "spf=none smtp.helo=mail.a.example" in value
            assert "dkim=pass header.d=a.example header.s=sel header.a=ed25519-sha256" in value
            assert "dmarc=pass policy.dmarc=reject header.from=a.example" in value
            field = r.header_field()
            assert field.startswith(b"Authentication-Results: mx.b.example;\r\n\tspf=pass") and field.endswith(b"\r\n")

        return defer.ensureDeferred(go())

    def test_forged_from_rejected(self) -> defer.Deferred[None]:
        auth = MailAuthenticator(self.resolver, "mx.b.example")

        async def go() -> None:
            r = await auth.evaluate(MESSAGE, "mallory@evil.example", "evil.example", "198.51.100.7")
            assert (r.spf.result, r.dkim, r.dmarc.result, r.disposition) == ("none", (), "fail", "reject")
            assert r.verified_domains == ()
            assert "dkim=none" in r.header_value()

        return defer.ensureDeferred(go())

    def test_cached_answers_evaluate_on_the_calling_thread(self) -> defer.Deferred[None]:
        """An unsigned message whose DNS answers are all cached is evaluated at once, without a pool thread, with
        the same verdicts; a cache miss or a DKIM signature (crypto) sends it to the thread."""
        import threading

        auth = MailAuthenticator(self.resolver, "mx.b.example")
        where: list[bool] = []  # evaluated on the test's (the reactor's) thread?
        evaluate = auth._evaluate

        def spy(*args: Any) -> Any:
            where.append(threading.current_thread() is threading.main_thread())
            return evaluate(*args)

        auth._evaluate = spy  # type: ignore[method-assign]

        async def go() -> None:
            first = await auth.evaluate(MESSAGE, "alice@a.example", "mail.a.example", "127.0.0.2")
            self.assertEqual(where, [True, False])  # tried at once, a miss: done again in the pool
            again = await auth.evaluate(MESSAGE, "alice@a.example", "mail.a.example", "127.0.0.2")
            self.assertEqual(where[2:], [True])
            self.assertEqual(again, first)
            self.assertEqual((first.spf.result, first.dmarc.result), ("pass", "pass"))  # DMARC by aligned SPF
            signed = sign(MESSAGE, "a.example", "sel", self.pem) + MESSAGE
            await auth.evaluate(signed, "alice@a.example", "mail.a.example", "127.0.0.2")
            self.assertEqual(where[3:], [False])

        return defer.ensureDeferred(go())
