"""Connection reuse (mailsrv/smtpclient/cache.py) against tests/smtpclient/fakeserver.py:
several messages over one connection (STARTTLS once), a connection the peer closed while
idle is replaced without losing the message, idle connections end with QUIT."""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any

from twisted.internet import defer, reactor, task
from twisted.trial.unittest import TestCase

from mailsrv.smtpclient import DeliveryResult, Envelope, SessionOptions, Timeouts, send_message
from mailsrv.smtpclient.cache import ConnectionCache
from mailsrv.tlsutil import generate_self_signed
from tests.smtpclient.fakeserver import FakeSMTPServer

R: Any = reactor
FAST = Timeouts(connect=2, greeting=2, command=2, data_start=2, data_end=2, tls_handshake=2)
OPTIONS = SessionOptions(helo_name="client.example", timeouts=FAST)


class Reuse(TestCase):
    def setUp(self) -> None:
        self.cache = ConnectionCache(R, idle_timeout=30)
        self.addCleanup(self.cache.close)

    def server(self, **kw: Any) -> FakeSMTPServer:
        s = FakeSMTPServer(**kw)
        self.addCleanup(s.close)
        return s

    def send(self, port: int, n: int, options: SessionOptions = OPTIONS) -> defer.Deferred[DeliveryResult]:
        message = f"From: a@a.example\r\nSubject: {n}\r\n\r\nbody {n}\r\n".encode()
        envelope = Envelope("a@a.example", (f"r{n}@b.example",))
        return defer.ensureDeferred(send_message(R, "127.0.0.1", port, envelope, message, options, None, self.cache))

    def test_messages_share_one_connection(self) -> defer.Deferred[None]:
        s = self.server()

        async def go() -> None:
            for n in range(3):
                r = await self.send(s.port, n)
                assert r.failure is None and r.recipients[0].reply.code == 250
            assert [rcpts for _, rcpts, _ in s.received] == [["r0@b.example"], ["r1@b.example"], ["r2@b.example"]]
            assert len(s._conns) == 1
            assert [c.split()[0] for c in s.commands].count("EHLO") == 1
            assert "QUIT" not in s.commands and self.cache.idle_count() == 1

        return defer.ensureDeferred(go())

    def test_starttls_once_per_connection(self) -> defer.Deferred[None]:
        directory = Path(self.mktemp())
        directory.mkdir()
        cert, key = directory / "cert.pem", directory / "key.pem"
        generate_self_signed(["localhost"], cert, key)
        s = self.server(tls_files=(cert, key))

        async def go() -> None:
            for n in range(2):
                r = await self.send(s.port, n)
                assert r.tls and r.recipients[0].reply.code == 250
            assert s.commands.count("STARTTLS") == 1 and len(s._conns) == 1

        return defer.ensureDeferred(go())

    def test_other_options_get_their_own_connection(self) -> defer.Deferred[None]:
        s = self.server()

        async def go() -> None:
            await self.send(s.port, 0)
            await self.send(s.port, 1, SessionOptions(helo_name="other.example", timeouts=FAST))
            assert len(s._conns) == 2 and self.cache.idle_count() == 2

        return defer.ensureDeferred(go())

    def test_idle_connection_closed_by_the_peer_is_replaced(self) -> defer.Deferred[None]:
        s = self.server()

        async def go() -> None:
            await self.send(s.port, 0)
            for c in s._conns:
                c.shutdown(socket.SHUT_RDWR)  # the peer's idle timeout
            for wait in (0.0, 0.2):  # before and after the client noticed
                await task.deferLater(R, wait, lambda: None)
                r = await self.send(s.port, len(s.received))
                assert r.failure is None and r.recipients[0].reply.code == 250, r
                for c in s._conns[-1:]:
                    c.shutdown(socket.SHUT_RDWR)
            assert len(s.received) == 3  # each message exactly once

        return defer.ensureDeferred(go())

    def test_close_and_idle_timeout_send_quit(self) -> defer.Deferred[None]:
        s = self.server()
        short = ConnectionCache(R, idle_timeout=0.1)

        async def go() -> None:
            message = b"Subject: x\r\n\r\nx\r\n"
            await send_message(
                R, "127.0.0.1", s.port, Envelope("a@a.example", ("x@b.example",)), message, OPTIONS, None, short
            )
            await self.send(s.port, 1)
            await task.deferLater(R, 0.3, lambda: None)  # `short` expires its connection
            assert short.idle_count() == 0 and self.cache.idle_count() == 1
            self.cache.close()
            deadline = time.monotonic() + 5
            while s.commands.count("QUIT") < 2:
                assert time.monotonic() < deadline, s.commands
                await task.deferLater(R, 0.05, lambda: None)
            assert self.cache.idle_count() == 0

        return defer.ensureDeferred(go())

    def test_max_transactions_then_quit(self) -> defer.Deferred[None]:
        s = self.server()
        self.cache.max_transactions = 2

        async def go() -> None:
            for n in range(3):
                await self.send(s.port, n)
            assert len(s._conns) == 2 and len(s.received) == 3

        return defer.ensureDeferred(go())
