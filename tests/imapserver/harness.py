"""An in-process IMAP session over StringTransport with a real SQLite store, the fake
synchronous account provider of the SASL tests and a task.Clock as the Server's reactor.
The Server's other collaborators are real (credentials, queue, rules) but unused by IMAP;
its resolver points at the discard port on loopback and is never asked."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, cast

from twisted.internet import reactor
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from mailsrv.address import Domain
from mailsrv.auth.credentials import CredentialStore
from mailsrv.auth.ratelimit import LoginRateLimiter
from mailsrv.config.types import IMAPConfig, LimitsConfig, ListenerConfig, StaticConfig
from mailsrv.dns.authresults import MailAuthenticator
from mailsrv.dns.resolver import Resolver
from mailsrv.imapserver.factory import SessionFactory
from mailsrv.imapserver.session import Session
from mailsrv.queue.store import SQLiteOutgoingQueue
from mailsrv.rules import RulesStore
from mailsrv.server import Server
from mailsrv.store.registry import SQLiteStoreRegistry
from tests.sasl.fakes import FakeProvider

LISTENER = ListenerConfig(name="imap", protocol="imap", address="127.0.0.1", port=143, tls="starttls")


def make_server(
    data_dir: Path,
    *,
    limits: LimitsConfig | None = None,
    login_disabled: bool = False,
    quota: int | None = None,
) -> Server:
    config = StaticConfig(
        source=data_dir / "mailsrv.toml",
        hostname=Domain.parse("mail.example.org"),
        data_dir=data_dir,
        listeners=(LISTENER,),
        limits=limits or LimitsConfig(),
        imap=IMAPConfig(login_disabled_without_tls=login_disabled),
    )
    clock = Clock()
    resolver = Resolver(reactor, [("127.0.0.1", 9)], 0.5)
    return Server(
        reactor=cast(Any, clock),
        config=config,
        dynamic=cast(Any, None),
        stores=SQLiteStoreRegistry(data_dir, quota_for=lambda account: quota),
        accounts=cast(Any, FakeProvider()),
        rate_limiter=LoginRateLimiter(config.limits, clock),
        tls=None,
        credentials=CredentialStore(data_dir, reactor=reactor),
        queue=SQLiteOutgoingQueue(data_dir),
        rules=RulesStore(data_dir),
        resolver=resolver,
        mail_auth=MailAuthenticator(resolver, config.hostname.ascii),
    )


class Client:
    """Feeds bytes to one session and returns what it wrote."""

    def __init__(self, server: Server, listener: ListenerConfig = LISTENER) -> None:
        self.server = server
        self.factory = SessionFactory(server, listener)
        session = self.factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 4711))
        assert isinstance(session, Session)
        self.session = session
        self.transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 4711))
        self.session.makeConnection(self.transport)
        self.greeting = self.take()

    def take(self) -> bytes:
        out = self.transport.value()
        self.transport.clear()
        return out

    def send(self, data: bytes) -> bytes:
        self.session.dataReceived(data)
        return self.take()

    def cmd(self, line: str | bytes) -> bytes:
        raw = line.encode() if isinstance(line, str) else line
        return self.send(raw + b"\r\n")

    def login(self, user: str = "alice", password: str = "correct horse") -> bytes:
        out = self.cmd(f'L1 LOGIN {user} "{password}"')
        assert b"L1 OK" in out, out
        return out


def tagged(out: bytes, tag: str) -> bytes:
    m = re.search(rb"^" + re.escape(tag.encode()) + rb" (OK|NO|BAD)[^\r]*", out, re.M)
    assert m, out
    return m.group(0)
