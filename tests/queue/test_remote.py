"""Remote delivery routing with MTA-STS enforcement: only policy-listed MX hosts, verified
TLS to them; a policy no MX matches is a temporary failure without any connection."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from twisted.internet import defer, reactor
from twisted.trial.unittest import TestCase

from mailsrv.dns.mtasts import Policy
from mailsrv.dns.resolver import Resolver
from mailsrv.queue.remote import deliver_to_domain
from mailsrv.smtpclient import Envelope, SessionOptions, Timeouts
from mailsrv.tlsutil import generate_self_signed
from tests.dnsserver import DNSServer
from tests.smtpclient.fakeserver import FakeSMTPServer

R: Any = reactor
FAST = Timeouts(connect=1, greeting=1, command=1, data_start=1, data_end=1, tls_handshake=1)
MESSAGE = b"From: a@a.example\r\n\r\nhi\r\n"


class StaticPolicies:
    def __init__(self, policy: Policy | None) -> None:
        self._policy = policy

    async def policy(self, domain: str) -> Policy | None:
        return self._policy


class MTASTSEnforced(TestCase):
    def setUp(self) -> None:
        self.dir = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, self.dir, True)
        generate_self_signed(["mx1.b.example"], self.dir / "c.pem", self.dir / "k.pem")
        self.smtp = FakeSMTPServer(tls_files=(self.dir / "c.pem", self.dir / "k.pem"))
        self.addCleanup(self.smtp.close)
        self.dns = DNSServer()
        self.addCleanup(self.dns.close)
        self.dns.set("b.example", "MX", "10 mx1.b.example.")
        self.dns.set("mx1.b.example", "A", "127.0.0.1")
        self.resolver = Resolver(R, [self.dns.address], timeout=0.5)

    def deliver(self, policy: Policy | None, ca: bool) -> defer.Deferred[Any]:
        options = SessionOptions(helo_name="mx.a.example", timeouts=FAST, ca_file=self.dir / "c.pem" if ca else None)
        return defer.ensureDeferred(
            deliver_to_domain(
                R,
                self.resolver,
                "b.example",
                Envelope("a@a.example", ("x@b.example",)),
                MESSAGE,
                options,
                self.smtp.port,
                StaticPolicies(policy),
            )
        )

    def test_enforce(self) -> defer.Deferred[None]:
        async def go() -> None:
            ok = Policy("enforce", ("mx1.b.example",), 86400)
            r = await self.deliver(ok, ca=True)
            assert r.replies["x@b.example"].code == 250
            # The certificate cannot be verified: temporary failure, nothing delivered in plaintext.
            r = await self.deliver(ok, ca=False)
            assert r.replies["x@b.example"].temporary and len(self.smtp.received) == 1
            # No MX matches the policy: temporary, no connection at all.
            before = len(self.smtp.commands)
            r = await self.deliver(Policy("enforce", ("other.b.example",), 86400), ca=False)
            assert r.replies["x@b.example"].code == 451 and r.replies["x@b.example"].enhanced == "4.7.5"
            assert len(self.smtp.commands) == before
            # "testing" changes nothing: opportunistic TLS without verification delivers.
            r = await self.deliver(Policy("testing", ("other.b.example",), 86400), ca=False)
            assert r.replies["x@b.example"].code == 250

        return defer.ensureDeferred(go())
