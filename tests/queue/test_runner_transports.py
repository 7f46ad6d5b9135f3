"""The runner delivering through transports (mailsrv/queue/runner.py, smarthost.py): a smarthost
with TLS verified and a login, no MX lookup; `minimum_attempts` moving a recipient to a
fallback at the right attempt; the history naming each attempt's transport; an administrator's
transport that no longer exists; REQUIRETLS through a smarthost; a refused login deferring; and
the re-evaluation of recorded transports when the routes change."""

from __future__ import annotations

import base64
import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from twisted.trial.unittest import TestCase

from mailsrv.address import Address
from mailsrv.config.transports import DIRECT, RouteConfig, TransportConfig, TransportsConfig
from mailsrv.queue.admin import attempt_history
from mailsrv.queue.interfaces import QueueFilter
from mailsrv.queue.routes import Routes
from mailsrv.queue.runner import QueueRunner
from mailsrv.queue.store import SQLiteOutgoingQueue
from mailsrv.tlsutil import generate_self_signed
from tests.dnsserver import DNSServer
from tests.ports import free_port
from tests.queue.runner_setup import make_runner
from tests.smtpclient.fakeserver import FakeSMTPServer

MESSAGE = b"From: a@a.example\r\nTo: x@b.example\r\nSubject: q\r\n\r\nhello\r\n"


class RunnerTransports(TestCase):
    def setUp(self) -> None:
        self.dir = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.dns = DNSServer()
        self.addCleanup(self.dns.close)
        self.queue = SQLiteOutgoingQueue(self.dir / "data")
        self.addCleanup(self.queue.close)
        self.now = [time.time() + 60]
        self.cert, self.key = self.dir / "cert.pem", self.dir / "key.pem"
        generate_self_signed(["relay.example"], self.cert, self.key)

    async def notify(self, mail_from: str, dsn: bytes) -> None:
        pass

    def smarthost(self, behaviour: str = "implicit-tls", extensions: tuple[str, ...] = ()) -> FakeSMTPServer:
        server = FakeSMTPServer(
            behaviour, extensions=("PIPELINING", "8BITMIME", "AUTH PLAIN", *extensions), tls_files=(self.cert, self.key)
        )
        self.addCleanup(server.close)
        return server

    def relay(self, server: FakeSMTPServer, **settings: Any) -> TransportConfig:
        values: dict[str, Any] = {
            "kind": "submissions",
            "host": "127.0.0.1",
            "port": server.port,
            "tls_name": "relay.example",
            "tls_ca_file": self.cert,
            "username": "u",
            "password": "secret",
        }
        values.update(settings)
        return TransportConfig("relay", **values)

    def runner(self, *transports: TransportConfig, routes: tuple[RouteConfig, ...] = ()) -> QueueRunner:
        config = TransportsConfig(
            {DIRECT: TransportConfig(DIRECT, "direct"), **{t.name: t for t in transports}}, routes
        )
        runner = make_runner(self.queue, self.dns, free_port(), self.now, self.notify, lambda account: 3600)
        runner.routes = self.queue.routes = Routes(config)
        runner.transports = config.transports
        return runner

    async def enqueue(self, requiretls: bool = False) -> int:
        sender, rcpt = Address.parse("a@a.example"), Address.parse("x@b.example")
        return await self.queue.enqueue(sender, [rcpt], MESSAGE, "alice", False, requiretls=requiretls)

    def recipient(self) -> tuple[str, int, str, int, str]:
        row = self.queue.db.execute(
            "SELECT status, attempts, transport, transport_fixed, last_error FROM recipient"
        ).fetchone()
        return (str(row[0]), int(row[1]), str(row[2]), int(row[3]), str(row[4]))

    async def test_smarthost_with_verified_tls_and_login_needs_no_mx(self) -> None:
        server = self.smarthost()
        runner = self.runner(self.relay(server), routes=(RouteConfig("relay"),))
        message_id = await self.enqueue()
        assert self.recipient()[2] == "relay"  # the routes' choice, recorded when queued
        await runner.run_once()
        assert [(f, r) for f, r, _ in server.received] == [("a@a.example", ["x@b.example"])]
        assert any(c.startswith("AUTH PLAIN ") for c in server.commands)
        plain = next(c for c in server.commands if c.startswith("AUTH PLAIN ")).split(" ")[2]
        assert base64.b64decode(plain) == b"\0u\0secret"
        assert self.recipient()[:3] == ("delivered", 1, "relay")
        (attempt,) = attempt_history(self.queue.db, message_id)
        assert (attempt.transport, attempt.host, attempt.code) == ("relay", "127.0.0.1 [127.0.0.1]", 250)

    async def test_refused_login_defers_with_a_clear_error(self) -> None:
        server = self.smarthost()
        runner = self.runner(self.relay(server, password="wrong"), routes=(RouteConfig("relay"),))
        await self.enqueue()
        await runner.run_once()
        status, attempts, transport, _fixed, error = self.recipient()
        assert (status, attempts, transport) == ("queued", 1, "relay") and server.received == []
        assert error == (
            "451 4.7.0 login to smarthost relay failed: authentication refused: 535 5.7.8 bad credentials"
        ), error

    async def test_unverifiable_certificate_is_a_temporary_failure(self) -> None:
        server = self.smarthost()
        runner = self.runner(self.relay(server, tls_name="other.example"), routes=(RouteConfig("relay"),))
        await self.enqueue()
        await runner.run_once()
        status, _attempts, _transport, _fixed, error = self.recipient()
        # Implicit TLS: the failed check ends the connection before SMTP starts.
        assert status == "queued" and error.startswith("451 4.") and "mismatch" in error.lower(), error
        assert not any(c.startswith("AUTH") for c in server.commands)  # no password to an unverified peer

    async def test_minimum_attempts_moves_a_recipient_to_the_fallback(self) -> None:
        server = self.smarthost()
        self.dns.add("b.example", "MX", "10 mx.b.example.")
        self.dns.add("mx.b.example", "A", "127.0.0.1")  # nothing listens on the runner's port
        runner = self.runner(self.relay(server), routes=(RouteConfig("relay", minimum_attempts=1),))
        message_id = await self.enqueue()
        assert self.recipient()[2] == DIRECT
        await runner.run_once()
        status, attempts, transport, fixed, _error = self.recipient()
        assert (status, attempts, transport, fixed) == ("queued", 1, "relay", 0)  # the next attempt's
        self.now[0] += 3600
        await runner.run_once()
        assert self.recipient()[:3] == ("delivered", 2, "relay")
        history = attempt_history(self.queue.db, message_id)
        assert [(a.transport, a.code // 100) for a in history] == [(DIRECT, 4), ("relay", 2)]

    async def test_an_administrators_transport_that_is_gone_defers(self) -> None:
        runner = self.runner()
        await self.enqueue()
        self.queue.db.execute("UPDATE recipient SET transport = 'gone', transport_fixed = 1")
        self.queue.db.commit()
        await runner.run_once()
        status, _attempts, transport, fixed, error = self.recipient()
        assert (status, transport, fixed) == ("queued", "gone", 1)
        assert error.startswith("451 4.3.5 transport gone is not configured"), error

    async def test_requiretls_needs_a_verifying_transport(self) -> None:
        server = self.smarthost("good", ("REQUIRETLS",))
        unverified = self.relay(server, kind="submission", tls_verify=False)
        runner = self.runner(unverified, routes=(RouteConfig("relay"),))
        await self.enqueue(requiretls=True)
        await runner.run_once()
        status, _attempts, _transport, _fixed, error = self.recipient()
        assert status == "failed" and error.startswith("550 5.7.30 REQUIRETLS: transport relay does not verify"), error
        assert server.commands == []  # not even connected

    async def test_requiretls_through_a_verified_smarthost_that_offers_it(self) -> None:
        server = self.smarthost("good", ("REQUIRETLS",))
        runner = self.runner(self.relay(server, kind="submission"), routes=(RouteConfig("relay"),))
        await self.enqueue(requiretls=True)
        await runner.run_once()
        assert self.recipient()[0] == "delivered"
        assert "STARTTLS" in server.commands
        assert any(c.startswith("MAIL FROM:<a@a.example>") and "REQUIRETLS" in c for c in server.commands)

    async def test_requiretls_fails_at_a_smarthost_without_it(self) -> None:
        server = self.smarthost("good")
        runner = self.runner(self.relay(server, kind="submission"), routes=(RouteConfig("relay"),))
        await self.enqueue(requiretls=True)
        await runner.run_once()
        status, _attempts, _transport, _fixed, error = self.recipient()
        assert status == "failed" and "5.7.30" in error and server.received == [], error

    async def test_recorded_transports_follow_changed_routes_at_start(self) -> None:
        server = self.smarthost()
        await self.enqueue()  # no routes yet: direct
        await self.enqueue()
        self.queue.db.execute("UPDATE recipient SET transport = 'direct', transport_fixed = 1 WHERE message_id = 2")
        self.queue.db.commit()
        runner = self.runner(self.relay(server), routes=(RouteConfig("relay", accounts=frozenset({"alice"})),))
        assert await runner.reroute() == 1  # the fixed one stays
        rows = self.queue.db.execute("SELECT message_id, transport FROM recipient ORDER BY message_id").fetchall()
        assert rows == [(1, "relay"), (2, "direct")]
        assert await runner.reroute() == 0  # same routes: nothing to do
        self.queue.db.execute("UPDATE recipient SET transport = 'stale' WHERE message_id = 1")
        self.queue.db.commit()
        assert await runner.reroute() == 0  # still the same routes: not even looked at


class DirectFromSourceAddress(TestCase):
    """A `direct` transport with `source_ip` connects to the MX host from that address."""

    def setUp(self) -> None:
        self.dir = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.dns = DNSServer()
        self.addCleanup(self.dns.close)
        self.queue = SQLiteOutgoingQueue(self.dir / "data")
        self.addCleanup(self.queue.close)
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(4)
        self.addCleanup(self.listener.close)
        self.peers: list[str] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        try:
            conn, peer = self.listener.accept()
        except OSError:
            return
        self.peers.append(peer[0])
        conn.sendall(b"554 5.7.1 no service for you\r\n")  # enough to see who called
        conn.close()

    async def test_source_ip(self) -> None:
        self.dns.add("b.example", "MX", "10 mx.b.example.")
        self.dns.add("mx.b.example", "A", "127.0.0.1")
        second = TransportConfig("second-ip", "direct", source_ip="127.0.0.2")
        config = TransportsConfig({DIRECT: TransportConfig(DIRECT, "direct"), "second-ip": second})
        now = [time.time() + 60]

        async def notify(mail_from: str, dsn: bytes) -> None:
            pass

        runner = make_runner(self.queue, self.dns, self.listener.getsockname()[1], now, notify, lambda a: 3600)
        runner.routes = self.queue.routes = Routes(config)
        runner.transports = config.transports
        sender, rcpt = Address.parse("a@a.example"), Address.parse("x@b.example")
        await self.queue.enqueue(sender, [rcpt], MESSAGE, "alice", False)
        await self.queue.set_transport(QueueFilter(), "second-ip")
        await runner.run_once()
        assert self.peers == ["127.0.0.2"]
        (attempt,) = attempt_history(self.queue.db, 1)
        assert attempt.transport == "second-ip" and attempt.code == 554
