"""The outgoing chain end to end without daemons: a submitted message is DKIM-signed with the
domain's key file, queued, delivered over SMTP via MX, and the receiving side's evaluation
says spf=pass dkim=pass dmarc=pass; a forged From gets dmarc=fail with p=reject."""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from twisted.internet import defer, reactor
from twisted.trial.unittest import TestCase

from mailsrv.address import Address
from mailsrv.dns.authresults import MailAuthenticator
from mailsrv.dns.dkimkeys import create_key, sign_submission
from mailsrv.dns.resolver import Resolver
from mailsrv.queue.runner import QueueRunner, RunnerOptions
from mailsrv.queue.store import SQLiteOutgoingQueue
from mailsrv.smtpclient import SessionOptions, Timeouts
from tests.dnsserver import DNSServer
from tests.smtpclient.fakeserver import FakeSMTPServer

R: Any = reactor
FAST = Timeouts(connect=1, greeting=1, command=1, data_start=1, data_end=1, tls_handshake=1)


class Chain(TestCase):
    def setUp(self) -> None:
        self.dir = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.peer = FakeSMTPServer()
        self.addCleanup(self.peer.close)
        dns = self.dns = DNSServer()
        self.addCleanup(dns.close)
        dns.set("a.example", "TXT", "v=spf1 ip4:127.0.0.0/8 -all")
        dns.set("sel._domainkey.a.example", "TXT", create_key(self.dir, "a.example", "sel", "ed25519"))
        dns.set("_dmarc.a.example", "TXT", "v=DMARC1; p=reject")
        dns.set("_dmarc.c.example", "TXT", "v=DMARC1; p=reject")
        dns.set("b.example", "MX", "10 mx.b.example.")
        dns.set("mx.b.example", "A", "127.0.0.1")
        self.resolver = Resolver(R, [dns.address], timeout=0.5)
        self.queue = SQLiteOutgoingQueue(self.dir / "data")
        self.addCleanup(self.queue.close)

    def submit_and_receive(self, from_header: str) -> defer.Deferred[Any]:
        message = (
            f"From: {from_header}\r\nTo: bob@b.example\r\nSubject: chain\r\n"
            "Date: Sun, 29 Nov 2026 01:00:00 +0000\r\nMessage-ID: <c@a.example>\r\n\r\nhello Bob\r\n"
        ).encode()
        runner = QueueRunner(
            R,
            self.queue,
            self.resolver,
            RunnerOptions(
                helo_name="mx.a.example",
                remote_port=self.peer.port,
                session=SessionOptions(helo_name="mx.a.example", timeouts=FAST),
            ),
            clock=lambda: time.time() + 60,
        )

        async def go() -> Any:
            signatures, problems = sign_submission(self.dir, "a.example", ("sel",), message)
            assert problems == []
            signed = signatures + message
            await self.queue.enqueue(
                Address.parse("alice@a.example"), [Address.parse("bob@b.example")], signed, "a", False
            )
            await runner.run_once()
            mail_from, rcpts, data = self.peer.received[-1]
            assert (mail_from, rcpts) == ("alice@a.example", ["bob@b.example"])
            helo = next(c for c in self.peer.commands if c.startswith("EHLO ")).split(" ", 1)[1]
            return await MailAuthenticator(self.resolver, "mx.b.example").evaluate(data, mail_from, helo, "127.0.0.1")

        return defer.ensureDeferred(go())

    def test_aligned_mail_passes(self) -> defer.Deferred[None]:
        async def go() -> None:
            r = await self.submit_and_receive("Alice <alice@a.example>")
            value = r.header_value()
            assert (r.spf.result, r.dkim[0].result, r.dmarc.result, r.disposition) == ("pass", "pass", "pass", "none")
            assert "spf=pass smtp.mailfrom=a.example" in value and "dkim=pass header.d=a.example" in value
            assert "dmarc=pass" in value

        return defer.ensureDeferred(go())

    def test_forged_from_is_rejected(self) -> defer.Deferred[None]:
        async def go() -> None:
            r = await self.submit_and_receive("The CEO <ceo@c.example>")
            # SPF and DKIM pass for a.example, but nothing aligns with c.example.
            assert (r.spf.result, r.dkim[0].result) == ("pass", "pass")
            assert (r.dmarc.result, r.disposition) == ("fail", "reject")
            assert "dmarc=fail policy.dmarc=reject header.from=c.example" in r.header_value()

        return defer.ensureDeferred(go())
