"""QueueService on a real `Server` (Server.create from files): remote delivery through the
[dns] resolver on loopback and [smtp] remote_port, and a failure DSN stored in the sender's
INBOX."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from twisted.internet import defer, reactor, task
from twisted.trial.unittest import TestCase

from mailsrv.address import Address
from mailsrv.config.load import load_static
from mailsrv.ops.delivery import deliver_dsn
from mailsrv.queue.service import QueueService
from mailsrv.server import Server
from tests.dnsserver import DNSServer
from tests.smtpclient.fakeserver import FakeSMTPServer

R: Any = reactor
MESSAGE = b"From: alice@a.example\r\nTo: x@b.example\r\nSubject: out\r\n\r\nhello\r\n"


class Service(TestCase):
    def setUp(self) -> None:
        self.dir = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.dns = DNSServer()
        self.addCleanup(self.dns.close)
        self.peer = FakeSMTPServer(rcpt_reply=lambda r: b"550 5.1.1 no such user" if r.startswith("bad") else b"250 ok")
        self.addCleanup(self.peer.close)
        self.dns.set("b.example", "MX", "10 mx.b.example.")
        self.dns.set("mx.b.example", "A", "127.0.0.1")
        (self.dir / "mailsrv.toml").write_text(
            'hostname = "mx.a.example"\ndata_dir = "data"\n'
            f"[smtp]\nremote_port = {self.peer.port}\n"
            f'[dns]\nnameservers = ["{self.dns.nameserver}"]\ntimeout = 1\n'
        )
        (self.dir / "data").mkdir()
        (self.dir / "data" / "dynamic.toml").write_text(
            '[domains."a.example"]\n[accounts.alice]\ndomain = "a.example"\naddresses = ["alice@a.example"]\n'
            'retired_keep = "1h"\n'
        )
        self.server = Server.create(load_static(self.dir / "mailsrv.toml"), R)
        self.addCleanup(self.server.close)

    def test_delivery_and_dsn_to_sender_inbox(self) -> defer.Deferred[None]:
        server = self.server

        async def notify(mail_from: str, dsn: bytes) -> None:
            await deliver_dsn(server, mail_from, dsn)

        service = QueueService(server, notify)

        async def go() -> None:
            assert self.server.queue is not None
            rcpts = [Address.parse("x@b.example"), Address.parse("bad@b.example")]
            await self.server.queue.enqueue(Address.parse("alice@a.example"), rcpts, MESSAGE, "alice", False)
            service.startService()
            try:
                # Up to 20 s: under a loaded CI machine 4 s was sometimes not enough.
                for _ in range(1000):
                    if {r.status for r in self.server.queue.recipients()} == {"delivered", "failed"}:
                        break
                    await task.deferLater(R, 0.02, lambda: None)
            finally:
                await service.stopService()
            assert [(r.address, r.status) for r in self.server.queue.recipients()] == [
                ("x@b.example", "delivered"),
                ("bad@b.example", "failed"),
            ]
            assert self.peer.received[0][1] == ["x@b.example"]
            store = self.server.stores.open("alice")
            [dsn] = store.messages(store.mailbox("INBOX").id)
            data = store.read(dsn.message_id)
            assert b"Content-Type: multipart/report; report-type=delivery-status" in data
            assert b"Final-Recipient: rfc822; bad@b.example\r\nAction: failed\r\nStatus: 5.1.1" in data

        return defer.ensureDeferred(go())
