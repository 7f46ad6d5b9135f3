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
from mailsrv.queue.remote import deliver_to_domain, tls_optional
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

    def deliver(
        self, policy: Policy | None, ca: bool, message: bytes = MESSAGE, requiretls: bool = False
    ) -> defer.Deferred[Any]:
        options = SessionOptions(helo_name="mx.a.example", timeouts=FAST, ca_file=self.dir / "c.pem" if ca else None)
        return defer.ensureDeferred(
            deliver_to_domain(
                R,
                self.resolver,
                "b.example",
                Envelope("a@a.example", ("x@b.example",)),
                message,
                options,
                self.smtp.port,
                StaticPolicies(policy),
                requiretls=requiretls,
                tls_optional=tls_optional(message),
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

    def test_tls_required_no_ignores_the_policy(self) -> defer.Deferred[None]:
        async def go() -> None:
            # RFC 8689 §3: the sender says TLS is optional: an unverifiable host still gets it.
            ok = Policy("enforce", ("mx1.b.example",), 86400)
            r = await self.deliver(ok, ca=False, message=b"TLS-Required: No\r\n" + MESSAGE)
            assert r.replies["x@b.example"].code == 250

        return defer.ensureDeferred(go())

    def test_requiretls(self) -> defer.Deferred[None]:
        async def go() -> None:
            ok = Policy("enforce", ("mx1.b.example",), 86400)
            # No policy to authenticate the MX: fails at once, no connection (RFC 8689 §4.2.1).
            before = len(self.smtp.commands)
            r = await self.deliver(None, ca=True, requiretls=True)
            assert (r.replies["x@b.example"].code, r.replies["x@b.example"].enhanced) == (550, "5.7.30")
            assert len(self.smtp.commands) == before
            # Verified TLS, but the peer does not offer REQUIRETLS: permanent, nothing sent.
            r = await self.deliver(ok, ca=True, requiretls=True)
            assert (r.replies["x@b.example"].code, r.replies["x@b.example"].enhanced) == (550, "5.7.30")
            assert self.smtp.received == [] and not any(c.upper().startswith("MAIL") for c in self.smtp.commands)
            # The peer offers it: MAIL carries REQUIRETLS.
            self.smtp.extensions = (*self.smtp.extensions, "REQUIRETLS")
            r = await self.deliver(ok, ca=True, requiretls=True)
            assert r.replies["x@b.example"].code == 250
            assert any(c.upper().startswith("MAIL") and c.endswith(" REQUIRETLS") for c in self.smtp.commands)
            # TLS-Required: No does not weaken REQUIRETLS (§3: ignored when both are given).
            r = await self.deliver(ok, ca=False, message=b"TLS-Required: No\r\n" + MESSAGE, requiretls=True)
            assert r.replies["x@b.example"].temporary

        return defer.ensureDeferred(go())


def test_tls_optional_reads_only_the_header() -> None:
    assert tls_optional(b"Subject: x\r\ntls-required:  no \r\n\r\nbody\r\n")
    assert not tls_optional(b"Subject: x\r\n\r\nTLS-Required: No\r\n")
    assert not tls_optional(b"TLS-Required: Yes\r\n\r\n")
