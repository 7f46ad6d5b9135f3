"""MTA-STS: record and policy parsing, MX matching, and fetching the policy over verified
HTTPS from a loopback server whose address the test DNS server gives."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from twisted.internet import defer, reactor, ssl
from twisted.trial.unittest import TestCase
from twisted.web import server
from twisted.web.resource import Resource
from twisted.web.server import Site
from twisted.web.static import Data

from mailsrv.dns.mtasts import MTASTSPolicies, Policy, parse_policy, parse_txt
from mailsrv.dns.resolver import Resolver
from mailsrv.tlsutil import generate_self_signed
from tests.dnsserver import DNSServer

R: Any = reactor
POLICY = "version: STSv1\r\nmode: enforce\r\nmx: mx1.b.example\r\nmx: *.mx.b.example\r\nmax_age: 86400\r\n"


def test_parse_txt() -> None:
    assert parse_txt((b"v=STSv1; id=20261129;",)) == "20261129"
    assert parse_txt((b"v=STSv1; id=1", b"v=STSv1; id=2")) is None
    assert parse_txt((b"v=spf1 -all",)) is None
    assert parse_txt((b"v=STSv1; id=bad-id!",)) is None


def test_parse_policy_and_matching() -> None:
    p = parse_policy(POLICY)
    assert p == Policy("enforce", ("mx1.b.example", "*.mx.b.example"), 86400)
    assert p.allows("MX1.b.example.") and p.allows("a.mx.b.example")
    assert not p.allows("a.b.mx.b.example") and not p.allows("mx.b.example") and not p.allows("evil.example")
    assert parse_policy("version: STSv1\nmode: enforce\nmax_age: 10\n") is None  # no mx
    assert parse_policy("version: STSv2\nmode: none\nmax_age: 10\n") is None
    assert parse_policy("garbage") is None
    assert parse_policy("version: STSv1\nmode: testing\nmx: a\nmax_age: 99999999999\n").max_age == 31557600  # type: ignore[union-attr]


class Fetch(TestCase):
    def setUp(self) -> None:
        self.dir = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, self.dir, True)
        generate_self_signed(["mta-sts.b.example"], self.dir / "cert.pem", self.dir / "key.pem")
        root = Resource()
        wk = Resource()
        root.putChild(b".well-known", wk)
        self.policy = Data(POLICY.encode(), "text/plain")
        wk.putChild(b"mta-sts.txt", self.policy)
        self.well_known = wk
        cert = ssl.PrivateCertificate.loadPEM((self.dir / "cert.pem").read_text() + (self.dir / "key.pem").read_text())
        self.port = R.listenSSL(0, Site(root), cert.options(), interface="127.0.0.1")
        self.addCleanup(self.port.stopListening)
        self.dns = DNSServer()
        self.addCleanup(self.dns.close)
        self.dns.set("_mta-sts.b.example", "TXT", "v=STSv1; id=1")
        self.dns.set("mta-sts.b.example", "A", "127.0.0.1")
        self.now = [1000.0]

    def policies(self, ca: bool = True) -> MTASTSPolicies:
        resolver = Resolver(R, [self.dns.address], timeout=0.5)
        return MTASTSPolicies(
            R,
            resolver,
            timeout=5,
            https_port=self.port.getHost().port,
            ca_file=self.dir / "cert.pem" if ca else None,
            clock=lambda: self.now[0],
        )

    def test_fetch_cache_and_failures(self) -> defer.Deferred[None]:
        async def go() -> None:
            p = self.policies()
            policy = await p.policy("b.example")
            assert policy is not None and policy.mode == "enforce" and policy.allows("mx1.b.example")
            # Cached: a changed file changes nothing until max_age or a new TXT id.
            self.well_known.putChild(b"mta-sts.txt", Data(b"version: STSv1\nmode: none\nmax_age: 5\n", "text/plain"))
            assert await p.policy("b.example") == policy
            self.dns.set("_mta-sts.b.example", "TXT", "v=STSv1; id=2")
            p.resolver.clear_cache()
            changed = await p.policy("b.example")
            assert changed is not None and changed.mode == "none"
            # No TXT record at all: no policy (but a cached one stays valid, RFC 8461 §5.1).
            assert await p.policy("c.example") is None
            # An untrusted certificate is no policy.
            assert await self.policies(ca=False).policy("b.example") is None

        return defer.ensureDeferred(go())

    def test_endless_body_is_cut_at_the_limit(self) -> defer.Deferred[None]:
        dropped: defer.Deferred[None] = defer.Deferred()

        class Endless(Resource):
            isLeaf = True

            def render_GET(self, request: Any) -> int:
                # No Content-Length: chunked, as a hostile host would send it, without end.
                request.notifyFinish().addBoth(lambda _: dropped.callback(None))

                def more() -> None:
                    if not dropped.called:
                        request.write(b"x" * 16384)
                        R.callLater(0, more)

                more()
                return server.NOT_DONE_YET

        async def go() -> None:
            self.well_known.putChild(b"mta-sts.txt", Endless())
            started = R.seconds()
            assert await self.policies().policy("b.example") is None
            # Cut once past 64 KiB, not after reading until the 5 s fetch timeout.
            assert R.seconds() - started < 4
            # We hung up on it: the server sees the connection go.
            await dropped

        return defer.ensureDeferred(go())
