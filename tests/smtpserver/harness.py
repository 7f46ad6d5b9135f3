"""In-process SMTP sessions over StringTransport, like tests/imapserver/harness.py: a real
dynamic config (example.org with alice and bob), real account stores and queue, the fake
account provider of the SASL tests, and a task.Clock as the Server's reactor (command
timeouts without waiting). Deliveries still fsync in the real reactor's thread pool, so a
test that sends DATA runs under trial and waits with `Client.wait_for`. Inbound mail checks
ask `tests/dnsserver.py` (NXDOMAIN for everything), never the real DNS."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, cast

from twisted.internet import reactor
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock, deferLater
from twisted.internet.testing import StringTransport

from mailsrv.address import Domain
from mailsrv.auth.credentials import CredentialStore
from mailsrv.auth.ratelimit import LoginRateLimiter
from mailsrv.config.dynamic import DynamicConfigStore
from mailsrv.config.types import LimitsConfig, ListenerConfig, SMTPConfig, StaticConfig
from mailsrv.dns.authresults import MailAuthenticator
from mailsrv.dns.resolver import Resolver
from mailsrv.queue.store import SQLiteOutgoingQueue
from mailsrv.rules import RulesStore
from mailsrv.server import Server
from mailsrv.smtpserver.factory import SMTPFactory
from mailsrv.smtpserver.session import SMTPSession
from mailsrv.store.registry import SQLiteStoreRegistry
from tests.dnsserver import DNSServer
from tests.sasl.fakes import FakeProvider

SMTP = ListenerConfig(name="smtp", protocol="smtp", address="127.0.0.1", port=25, tls="none")
SUBMISSION = ListenerConfig(name="submission", protocol="submission", address="127.0.0.1", port=587, tls="none")

DYNAMIC = """
[domains."example.org"]

[accounts.alice]
domain = "example.org"
addresses = ["alice@example.org"]

[accounts.bob]
domain = "example.org"
addresses = ["bob@example.org"]
"""


class Harness:
    """A `Server` on `data_dir` and what it needs; `close()` releases it all."""

    def __init__(self, data_dir: Path, *, limits: LimitsConfig | None = None, smtp: SMTPConfig | None = None) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self.dns = DNSServer()
        config = StaticConfig(
            source=data_dir / "mailsrv.toml",
            hostname=Domain.parse("mail.example.org"),
            data_dir=data_dir,
            listeners=(SMTP, SUBMISSION),
            limits=limits or LimitsConfig(),
            smtp=smtp or SMTPConfig(),
        )
        config.dynamic_file.write_text(DYNAMIC)
        self.clock = Clock()
        resolver = Resolver(reactor, [self.dns.address], 2.0)
        self.server = Server(
            reactor=cast(Any, self.clock),
            config=config,
            dynamic=DynamicConfigStore(config),
            stores=SQLiteStoreRegistry(data_dir),
            accounts=cast(Any, FakeProvider()),
            rate_limiter=LoginRateLimiter(config.limits, self.clock),
            tls=None,
            credentials=CredentialStore(data_dir, reactor=reactor),
            queue=SQLiteOutgoingQueue(data_dir),
            rules=RulesStore(data_dir),
            resolver=resolver,
            mail_auth=MailAuthenticator(resolver, config.hostname.ascii),
        )
        self.factories = {listener.name: SMTPFactory(self.server, listener) for listener in config.listeners}

    def client(self, listener: str = "smtp", ip: str = "192.0.2.7") -> Client:
        return Client(self.factories[listener], ip)

    def close(self) -> None:
        self.server.close()
        self.dns.close()


class Client:
    """Feeds bytes to one session and returns what it wrote."""

    def __init__(self, factory: SMTPFactory, ip: str) -> None:
        address = IPv4Address("TCP", ip, 4711)
        session = factory.buildProtocol(address)
        assert isinstance(session, SMTPSession)
        self.session = session
        self.transport = StringTransport(peerAddress=address)
        self.session.makeConnection(self.transport)
        self.greeting = self.take()

    def take(self) -> bytes:
        out = self.transport.value()
        self.transport.clear()
        return out

    def send(self, data: bytes) -> bytes:
        self.session.dataReceived(data)
        return self.take()

    def cmd(self, line: str) -> bytes:
        return self.send(line.encode() + b"\r\n")

    @property
    def closed(self) -> bool:
        return bool(self.transport.disconnecting)

    async def wait_for(self, count: int, timeout: float = 10.0) -> list[str]:
        """The final lines of the next `count` replies, letting the real reactor run
        (thread-pool fsyncs) until they are all there."""
        out = b""
        for _ in range(int(timeout / 0.01)):
            out += self.take()
            if len(final_lines(out)) >= count:
                return final_lines(out)
            await deferLater(reactor, 0.01, lambda: None)
        raise AssertionError(f"{count} replies expected, got {out!r}")


def final_lines(out: bytes) -> list[str]:
    """The last line of each reply in `out` ("250 2.0.0 OK", not the "250-" lines)."""
    return [m.decode() for m in re.findall(rb"^\d{3} [^\r\n]*", out, re.M)]
