"""The resolver against tests/dnsserver.py: typed MX (order, null MX), NXDOMAIN versus
temporary failures, the cache, and the reactor-side wrapper."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from twisted.internet import defer, reactor
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase

from mailsrv.dns.resolver import DNSNotFound, DNSTemporaryError, MXRecord, Resolver
from tests.dnsserver import DNSServer

R: Any = reactor


@pytest.fixture
def server() -> Iterator[DNSServer]:
    with DNSServer() as s:
        yield s


def make(server: DNSServer, **kw: Any) -> Resolver:
    return Resolver(R, [server.address], timeout=kw.pop("timeout", 1.0), **kw)


def test_mx_sorted_by_preference(server: DNSServer) -> None:
    server.set("example.org", "MX", "20 b.example.org.", "10 a.example.org.", "30 C.Example.org.")
    mx = make(server).mx_sync("Example.ORG.")
    assert mx.records == (MXRecord(10, "a.example.org"), MXRecord(20, "b.example.org"), MXRecord(30, "c.example.org"))
    assert not mx.null_mx
    assert mx.hosts == ("a.example.org", "b.example.org", "c.example.org")


def test_null_mx(server: DNSServer) -> None:
    server.set("nomail.example", "MX", "0 .")
    mx = make(server).mx_sync("nomail.example")
    assert mx.null_mx and mx.hosts == ()


def test_nodata_is_empty_not_error(server: DNSServer) -> None:
    server.set("host.example", "A", "127.0.0.5")
    r = make(server)
    assert r.mx_sync("host.example").records == ()
    assert r.addresses_sync("host.example") == ("127.0.0.5",)


def test_nxdomain_versus_servfail_and_timeout(server: DNSServer) -> None:
    r = make(server, timeout=0.5)
    with pytest.raises(DNSNotFound):
        r.mx_sync("missing.example")
    server.servfail.add("broken.example")
    with pytest.raises(DNSTemporaryError):
        r.mx_sync("broken.example")
    server.drop.add("slow.example")
    with pytest.raises(DNSTemporaryError):
        r.txt_sync("slow.example")
    server.garbage.add("garbage.example")
    with pytest.raises(DNSTemporaryError):
        r.txt_sync("garbage.example")


def test_addresses_both_families(server: DNSServer) -> None:
    server.set("dual.example", "A", "192.0.2.1")
    server.set("dual.example", "AAAA", "2001:db8::1")
    assert make(server).addresses_sync("dual.example") == ("2001:db8::1", "192.0.2.1")


def test_long_txt_is_concatenated_and_tcp_fallback(server: DNSServer) -> None:
    long = "v=spf1 " + " ".join(f"ip4:192.0.2.{i}" for i in range(60)) + " -all"
    server.set("big.example", "TXT", long)
    assert make(server).txt_sync("big.example") == (long.encode(),)


def test_cache_respects_ttl_and_size(server: DNSServer) -> None:
    now = [1000.0]
    server.set("c.example", "A", "192.0.2.1")
    r = make(server, clock=lambda: now[0], cache_size=2)
    assert r.addresses_sync("c.example") == ("192.0.2.1",)
    server.set("c.example", "A", "192.0.2.2")
    assert r.query_sync("c.example", "A")[0].address == "192.0.2.1"  # cached
    now[0] += server.ttl + 1
    assert r.query_sync("c.example", "A")[0].address == "192.0.2.2"  # expired
    # NXDOMAIN is cached too (negative caching), temporary failures are not.
    with pytest.raises(DNSNotFound):
        r.query_sync("gone.example", "A")
    server.set("gone.example", "A", "192.0.2.9")
    with pytest.raises(DNSNotFound):
        r.query_sync("gone.example", "A")
    server.servfail.add("flaky.example")
    with pytest.raises(DNSTemporaryError):
        r.query_sync("flaky.example", "A")
    server.servfail.clear()
    server.set("flaky.example", "A", "192.0.2.3")
    assert r.query_sync("flaky.example", "A")[0].address == "192.0.2.3"
    assert len(r._cache) <= 2


class ReactorSide(TestCase):
    """The async API runs in the thread pool and answers on the reactor."""

    def setUp(self) -> None:
        self.server = DNSServer()
        self.addCleanup(self.server.close)

    def test_async_mx(self) -> defer.Deferred[None]:
        self.server.set("example.org", "MX", "10 mx.example.org.")
        r = make(self.server)

        async def go() -> None:
            mx = await r.mx("example.org")
            assert mx.hosts == ("mx.example.org",)
            with pytest.raises(DNSNotFound):
                await r.addresses("nope.example.org")

        return defer.ensureDeferred(go())


def test_async_lookups_answer_from_the_cache_without_the_pool(server: DNSServer) -> None:
    """Cached answers come back on the calling thread (the queue asks MX, A/AAAA and the
    MTA-STS TXT for every delivery); only a miss goes to the pool."""
    server.negative_ttl = 300  # NODATA (no AAAA here) carries an SOA, so it is cached too
    server.set("example.org", "MX", "10 mx.example.org.")
    server.set("mx.example.org", "A", "192.0.2.1")
    server.set("example.org", "TXT", "v=spf1 -all")
    pool_runs: list[object] = []

    def run_in_pool(f: Any, *args: Any) -> defer.Deferred[Any]:
        pool_runs.append(f)
        return defer.maybeDeferred(f, *args)

    r = make(server, run_in_pool=run_in_pool)

    def now(coroutine: Any) -> Any:
        d = defer.ensureDeferred(coroutine)
        results: list[Any] = []
        d.addBoth(results.append)
        assert results, "did not answer at once"
        if isinstance(results[0], Failure):
            results[0].raiseException()
        return results[0]

    assert now(r.mx("example.org")).hosts == ("mx.example.org",)
    assert now(r.addresses("mx.example.org")) == ("192.0.2.1",)
    assert now(r.txt("example.org")) == (b"v=spf1 -all",)
    with pytest.raises(DNSNotFound):
        now(r.addresses("nope.example.org"))
    assert len(pool_runs) == 4
    queries = len(server.queries)
    assert now(r.mx("Example.ORG.")).hosts == ("mx.example.org",)
    assert now(r.addresses("mx.example.org")) == ("192.0.2.1",)
    assert now(r.txt("example.org")) == (b"v=spf1 -all",)
    with pytest.raises(DNSNotFound):
        now(r.addresses("nope.example.org"))
    assert len(pool_runs) == 4 and len(server.queries) == queries


def test_nodata_is_cached_for_the_soa_minimum(server: DNSServer) -> None:
    """RFC 2308 §5: a negative answer with an SOA is cached (at most that long); without
    one, not at all."""
    now = [1000.0]
    server.set("host.example", "A", "192.0.2.1")
    r = make(server, clock=lambda: now[0])
    r.query_sync("host.example", "AAAA")
    r.query_sync("host.example", "AAAA")
    assert server.queries.count(("host.example", "AAAA")) == 2  # no SOA: not cached
    server.negative_ttl = 60
    r.query_sync("host.example", "AAAA")
    r.query_sync("host.example", "AAAA")
    assert server.queries.count(("host.example", "AAAA")) == 3
    now[0] += 61
    r.query_sync("host.example", "AAAA")
    assert server.queries.count(("host.example", "AAAA")) == 4
