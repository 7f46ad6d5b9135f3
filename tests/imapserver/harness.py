"""An in-process IMAP session over StringTransport with a real SQLite store, the fake
synchronous account provider of the SASL tests and a task.Clock as the Server's reactor.
The Server's other collaborators are real (credentials, queue, rules) but unused by IMAP;
its resolver points at the discard port on loopback and is never asked.

The store runs on that clock with inline pools (`mailsrv.pools.inline_pools`): its file
writes and fsyncs happen in the test's thread and its group commits when the clock is
advanced, which `Client.send` does (by 0 seconds) after every input, so a command that
waits for the store has answered when `send` returns."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, TypeVar, cast

from twisted.internet import reactor as global_reactor
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

from mailsrv.address import Domain
from mailsrv.auth.credentials import CredentialStore
from mailsrv.auth.ratelimit import LoginRateLimiter
from mailsrv.config.types import IMAPConfig, LimitsConfig, ListenerConfig, StaticConfig
from mailsrv.dns.authresults import MailAuthenticator
from mailsrv.dns.resolver import Resolver
from mailsrv.imapserver.factory import SessionFactory
from mailsrv.imapserver.session import Session
from mailsrv.pools import inline_pools
from mailsrv.queue.store import SQLiteOutgoingQueue
from mailsrv.rules import RulesStore
from mailsrv.server import Server
from mailsrv.store.registry import SQLiteStoreRegistry
from tests.sasl.fakes import FakeProvider

T = TypeVar("T")
LISTENER = ListenerConfig(name="imap", protocol="imap", address="127.0.0.1", port=143, tls="starttls")


def make_server(
    data_dir: Path,
    *,
    limits: LimitsConfig | None = None,
    login_disabled: bool = False,
    quota: int | None = None,
    reactor: Any = None,
) -> Server:
    """A Server on a task.Clock with the store on inline pools, or, given `reactor` (real
    sockets), on that reactor with the store in its thread pool."""
    config = StaticConfig(
        source=data_dir / "mailsrv.toml",
        hostname=Domain.parse("mail.example.org"),
        data_dir=data_dir,
        listeners=(LISTENER,),
        limits=limits or LimitsConfig(),
        imap=IMAPConfig(login_disabled_without_tls=login_disabled),
    )
    clock = Clock()
    resolver = Resolver(global_reactor, [("127.0.0.1", 9)], 0.5)
    stores = (
        SQLiteStoreRegistry(data_dir, quota_for=lambda account: quota, reactor=clock, pools=inline_pools())
        if reactor is None
        else SQLiteStoreRegistry(data_dir, quota_for=lambda account: quota, reactor=reactor)
    )
    return Server(
        reactor=reactor or cast(Any, clock),
        config=config,
        dynamic=cast(Any, None),
        stores=stores,
        accounts=cast(Any, FakeProvider()),
        rate_limiter=LoginRateLimiter(config.limits, clock),
        tls=None,
        credentials=CredentialStore(data_dir, reactor=reactor),
        queue=SQLiteOutgoingQueue(data_dir),
        rules=RulesStore(data_dir),
        resolver=resolver,
        mail_auth=MailAuthenticator(resolver, config.hostname.ascii),
    )


def settled(server: Server, d: Deferred[T]) -> T:
    """The result of a store call made outside a session (a test's own APPEND), once the
    store's work due now has run on the clock; raises what the call failed with."""
    cast(Clock, server.reactor).advance(0)
    results: list[T] = []
    failures: list[Failure] = []
    d.addCallbacks(results.append, failures.append)
    if failures:
        failures[0].raiseException()
    assert results, "the store call is still waiting"
    return results[0]


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
        self.settle()
        return self.take()

    def settle(self) -> None:
        """Runs the store's work due now (group commits, file batches) to the end."""
        cast(Clock, self.server.reactor).advance(0)

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
