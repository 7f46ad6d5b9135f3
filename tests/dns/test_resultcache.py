"""The SPF result and DMARC policy caches (mailsrv/dns/resultcache.py): reused only while the DNS
answers they came from are cached, never for failures, bounded; and the same verdicts as
evaluation without them."""

from __future__ import annotations

import email.utils
import random
import re
from collections.abc import Iterator
from typing import Any

import pytest
from twisted.internet import reactor

from mailsrv.dns import spf as spf_module
from mailsrv.dns.authresults import MailAuthenticator
from mailsrv.dns.dkim import _signature_headers, has_signature
from mailsrv.dns.dmarc import OrganizationalDomains, PolicyCache, evaluate_dmarc_sync, from_domain
from mailsrv.dns.resolver import Resolver, Seen
from mailsrv.dns.resultcache import ResultCache
from mailsrv.dns.spf import SPFCache, check_spf_sync
from tests.dnsserver import DNSServer

R: Any = reactor

MESSAGE = b"From: Alice <alice@a.example>\r\nTo: bob@b.example\r\nSubject: hi\r\n\r\nHi\r\n"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def server() -> Iterator[DNSServer]:
    with DNSServer(ttl=300) as s:
        yield s


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def resolver(server: DNSServer, clock: Clock) -> Resolver:
    return Resolver(R, [server.address], timeout=0.5, clock=clock)


def spf_twice(resolver: Resolver, cache: SPFCache, ip: str, sender: str, helo: str) -> Any:
    """Evaluates until the result is stored: the first evaluation queries (not stored), the
    second answers from the DNS cache (stored)."""
    check_spf_sync(resolver, ip, sender, helo, cache)
    return check_spf_sync(resolver, ip, sender, helo, cache)


# -- SPF ------------------------------------------------------------------------------------


def test_spf_hit_needs_no_evaluation(server: DNSServer, resolver: Resolver, monkeypatch: pytest.MonkeyPatch) -> None:
    server.set("a.example", "TXT", "v=spf1 ip4:192.0.2.0/24 -all")
    cache = SPFCache(resolver)
    first = check_spf_sync(resolver, "192.0.2.10", "alice@a.example", "mail.a.example", cache)
    assert len(cache) == 0  # computed from a fresh query: not stored
    second = check_spf_sync(resolver, "192.0.2.10", "alice@a.example", "mail.a.example", cache)
    assert second == first and second.result == "pass" and len(cache) == 1
    queries = len(server.queries)
    evaluations: list[tuple[Any, ...]] = []
    query = spf_module.spf.query

    def counted(*args: Any, **kwargs: Any) -> Any:
        evaluations.append(args)
        return query(*args, **kwargs)

    monkeypatch.setattr(spf_module.spf, "query", counted)
    assert check_spf_sync(resolver, "192.0.2.10", "alice@a.example", "mail.a.example", cache) is second
    assert len(server.queries) == queries and evaluations == []
    # Anything else in the key is another evaluation: the local part (macros may use it), the IP, the HELO.
    for n, (ip, sender, helo) in enumerate(
        (
            ("192.0.2.10", "bob@a.example", "mail.a.example"),
            ("192.0.2.11", "alice@a.example", "mail.a.example"),
            ("192.0.2.10", "alice@a.example", "other.a.example"),
        )
    ):
        check_spf_sync(resolver, ip, sender, helo, cache)
        assert len(evaluations) == n + 1


def test_spf_expires_with_the_shortest_ttl(server: DNSServer, resolver: Resolver, clock: Clock) -> None:
    server.set("a.example", "TXT", "v=spf1 include:b.example -all")
    server.ttl = 60
    server.set("b.example", "TXT", "v=spf1 ip4:192.0.2.10 -all")
    cache = SPFCache(resolver)
    check_spf_sync(resolver, "192.0.2.10", "alice@a.example", "h.example", cache)  # a.example TXT at 300 s
    check_spf_sync(resolver, "192.0.2.10", "alice@a.example", "h.example", cache)
    server.ttl = 300
    # b.example's record was cached for 60 s only: the result too.
    server.set("b.example", "TXT", "v=spf1 -all")
    clock.now += 59
    assert spf_twice(resolver, cache, "192.0.2.10", "alice@a.example", "h.example").result == "pass"
    clock.now += 2
    changed = check_spf_sync(resolver, "192.0.2.10", "alice@a.example", "h.example", cache)
    assert changed.result == "fail"
    # The same as an evaluation without the cache, explanation included.
    assert changed == check_spf_sync(resolver, "192.0.2.10", "alice@a.example", "h.example")


def test_spf_results_equal_uncached(server: DNSServer, resolver: Resolver) -> None:
    server.set("a.example", "MX", "10 mail.a.example.")
    server.set("mail.a.example", "A", "192.0.2.10")
    server.set("loop.a.example", "TXT", "v=spf1 include:a.example -all")
    server.set("exp.a.example", "TXT", "%{i} is not one of %{d}'s servers")
    for record in (
        "v=spf1 ip4:192.0.2.0/24 -all",
        "v=spf1 ip4:198.51.100.1 -all",
        "v=spf1 ip4:198.51.100.1 ~all",
        "v=spf1 ?all",
        "v=spf1 a:mail.a.example -all",
        "v=spf1 mx -all",
        "v=spf1 include:loop.a.example -all",
        "v=spf1 bogus:x -all",
        "v=spf1 exists:%{l}.%{d} -all",
        "v=spf1 -all exp=exp.a.example",
    ):
        server.set("a.example", "TXT", record)
        resolver.clear_cache()
        cache = SPFCache(resolver)
        for ip in ("192.0.2.10", "198.51.100.1"):
            uncached = check_spf_sync(resolver, ip, "alice@a.example", "mail.a.example")
            assert spf_twice(resolver, cache, ip, "alice@a.example", "mail.a.example") == uncached, record
            assert check_spf_sync(resolver, ip, "alice@a.example", "mail.a.example", cache) == uncached, record


def test_spf_failures_are_not_stored(server: DNSServer, resolver: Resolver) -> None:
    cache = SPFCache(resolver)
    server.servfail.add("a.example")
    assert spf_twice(resolver, cache, "192.0.2.10", "alice@a.example", "h.example").result == "temperror"
    assert len(cache) == 0
    server.servfail.clear()
    server.set("a.example", "TXT", "v=spf1 ip4:192.0.2.10 -all")
    assert check_spf_sync(resolver, "192.0.2.10", "alice@a.example", "h.example", cache).result == "pass"


def test_spf_cache_only_miss_is_not_stored(server: DNSServer, resolver: Resolver) -> None:
    server.set("a.example", "TXT", "v=spf1 include:b.example -all")
    server.set("b.example", "TXT", "v=spf1 ip4:192.0.2.10 -all")
    resolver.query_sync("a.example", "TXT")  # cached; b.example is not
    cache = SPFCache(resolver)
    with resolver.cache_only() as missed:
        assert check_spf_sync(resolver, "192.0.2.10", "alice@a.example", "h.example", cache).result == "temperror"
    assert missed[0] and len(cache) == 0


def test_spf_time_macro_is_not_stored(server: DNSServer, resolver: Resolver) -> None:
    # %{t} is the current time (RFC 7208 §7.3, explanations only): a result depending on it is not reusable.
    server.set("a.example", "TXT", "v=spf1 -all exp=exp.a.example")
    server.set("exp.a.example", "TXT", "refused at %{T}")
    cache = SPFCache(resolver)
    verdict = spf_twice(resolver, cache, "192.0.2.10", "alice@a.example", "h.example")
    assert verdict.result == "fail" and re.fullmatch(r"refused at \d+", verdict.explanation)
    assert len(cache) == 0


def test_spf_cache_is_bounded(server: DNSServer, resolver: Resolver) -> None:
    server.set("a.example", "TXT", "v=spf1 ip4:192.0.2.0/24 -all")
    cache = SPFCache(resolver, size=3)
    for i in range(10):
        spf_twice(resolver, cache, f"192.0.2.{i}", f"u{i}@a.example", "h.example")
        assert len(cache) <= 3
    # The most recently used stay.
    assert cache.get(("192.0.2.9", "u9@a.example", "h.example")) is not None
    assert cache.get(("192.0.2.0", "u0@a.example", "h.example")) is None


def test_clearing_the_dns_cache_invalidates(server: DNSServer, resolver: Resolver) -> None:
    server.set("a.example", "TXT", "v=spf1 ip4:192.0.2.10 -all")
    cache = SPFCache(resolver)
    assert spf_twice(resolver, cache, "192.0.2.10", "alice@a.example", "h.example").result == "pass"
    server.set("a.example", "TXT", "v=spf1 -all")
    resolver.clear_cache()
    assert check_spf_sync(resolver, "192.0.2.10", "alice@a.example", "h.example", cache).result == "fail"


def test_result_cache_bounds_lifetime(resolver: Resolver, clock: Clock) -> None:
    cache: ResultCache[str, int] = ResultCache(resolver, size=4, max_seconds=10)
    seen = Seen()  # no lookups at all: only max_seconds bounds it
    cache.put("k", 1, seen, resolver.generation)
    clock.now += 9
    assert cache.get("k") == 1
    clock.now += 2
    assert cache.get("k") is None
    stale = resolver.generation
    resolver.clear_cache()
    cache.put("k", 2, seen, stale)  # computed before the clear: not stored
    assert cache.get("k") is None


# -- DMARC ----------------------------------------------------------------------------------


def test_dmarc_policy_cache(server: DNSServer, resolver: Resolver, clock: Clock) -> None:
    orgs = OrganizationalDomains()
    cache = PolicyCache(resolver)
    server.set("_dmarc.a.example", "TXT", "v=DMARC1; p=reject")
    sub = MESSAGE.replace(b"alice@a.example", b"alice@news.a.example")

    def verdict(message: bytes = MESSAGE) -> Any:
        return evaluate_dmarc_sync(resolver, orgs, message, None, [], cache=cache)

    assert verdict() == verdict() == evaluate_dmarc_sync(resolver, orgs, MESSAGE, None, [])
    assert verdict(sub) == verdict(sub)  # _dmarc.news.a.example: NXDOMAIN, then the organisational domain's
    assert verdict(sub).policy == "reject" and len(cache) == 2
    queries = len(server.queries)
    assert verdict().disposition == "reject" and len(server.queries) == queries
    server.set("_dmarc.a.example", "TXT", "v=DMARC1; p=none")
    clock.now += 301
    assert verdict().disposition == "none"
    # A temporary failure is a verdict, never a stored policy.
    server.servfail.add("_dmarc.t.example")
    t = MESSAGE.replace(b"a.example", b"t.example")
    assert verdict(t).result == verdict(t).result == "temperror"
    assert cache.get("t.example") is None
    server.servfail.clear()
    server.set("_dmarc.t.example", "TXT", "v=DMARC1; p=quarantine")
    assert verdict(t).disposition == "quarantine"


def test_dmarc_cache_is_bounded(server: DNSServer, resolver: Resolver) -> None:
    orgs = OrganizationalDomains()
    cache = PolicyCache(resolver, size=5)
    for i in range(20):
        message = MESSAGE.replace(b"a.example", f"d{i}.example".encode())
        evaluate_dmarc_sync(resolver, orgs, message, None, [], cache=cache)
        evaluate_dmarc_sync(resolver, orgs, message, None, [], cache=cache)
        assert len(cache) <= 5


# -- the fast paths give what the plain code gave --------------------------------------------


def _from_domain_before(message: bytes) -> str | None:
    """dmarc.from_domain as it was before the fast path (the reference)."""
    m = re.search(rb"\r?\n\r?\n", message)
    head = message if m is None else message[: m.start()]
    unfolded = re.sub(rb"\r?\n[ \t]", b" ", head)
    froms = [line[5:] for line in re.split(rb"\r?\n", unfolded) if line[:5].lower() == b"from:"]
    if len(froms) != 1:
        return None
    text = froms[0].decode("utf-8", "replace")
    addresses = [a for _, a in email.utils.getaddresses([text]) if a]
    if len(addresses) != 1 or "@" not in addresses[0]:
        return None
    domain = addresses[0].rpartition("@")[2].strip().rstrip(".").lower()
    if not domain:
        return None
    try:
        return domain.encode("idna").decode("ascii") if not domain.isascii() else domain
    except UnicodeError:
        return None


_PIECES = [
    b"From:",
    b"from: ",
    b"FROM:",
    b" From:",
    b"\tfrom:",
    b"To:",
    b"X: y",
    b"a@b.example",
    b"<c@d.example>",
    b"Name <e@f.example>",
    b", ",
    b"\r\n",
    b"\n",
    b"\r",
    b" ",
    b"\t",
    b"\r\n\r\n",
    b"\n\n",
    b"\n\r\n",
    b"\xc3\xa9@x.example",
    b"@",
    b'"q"',
    b"DKIM-Signature:",
    b"dkim-signature :",
    b"body",
]


def test_from_domain_and_signature_detection_match_the_plain_code() -> None:
    rng = random.Random(7)
    for _ in range(5000):
        data = b"".join(rng.choice(_PIECES) for _ in range(rng.randrange(1, 16)))
        assert from_domain(data) == _from_domain_before(data), data
        assert has_signature(data) == bool(_signature_headers(data)), data


def test_authenticator_equal_with_and_without_caches(server: DNSServer, resolver: Resolver) -> None:
    server.set("a.example", "TXT", "v=spf1 ip4:192.0.2.10 -all")
    server.set("_dmarc.a.example", "TXT", "v=DMARC1; p=quarantine")
    auth = MailAuthenticator(resolver, "mx.b.example")
    args = [
        ("alice@a.example", "mail.a.example", "192.0.2.10"),
        ("alice@a.example", "mail.a.example", "192.0.2.11"),
        ("", "mail.a.example", "192.0.2.10"),
    ]
    for mail_from, helo, ip in args:
        first = auth.evaluate_sync(MESSAGE, mail_from, helo, ip)
        for _ in range(2):
            again = auth.evaluate_sync(MESSAGE, mail_from, helo, ip)
            assert again == first and again.header_field() == first.header_field()
        plain = MailAuthenticator(resolver, "mx.b.example", cache_size=0)
        assert plain.evaluate_sync(MESSAGE, mail_from, helo, ip).header_field() == first.header_field()
