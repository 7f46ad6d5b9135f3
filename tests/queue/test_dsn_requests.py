"""The queue honours DSN requests (RFC 3461): NOTIFY per recipient decides which DSNs go out,
RET and ENVID what they carry; to a peer offering DSN the request goes on with the message
and success is the peer's to report. Against FakeSMTPServer with or without DSN."""

from __future__ import annotations

import email
import email.policy
import shutil
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

from twisted.internet import defer, reactor
from twisted.trial.unittest import TestCase

from mailsrv.address import Address
from mailsrv.dsnparams import NO_MESSAGE_DSN, MessageDSN, RecipientDSN
from mailsrv.queue.runner import QueueRunner
from mailsrv.queue.store import _SCHEMA, SQLiteOutgoingQueue
from tests.dnsserver import DNSServer
from tests.queue.runner_setup import make_runner
from tests.smtpclient.fakeserver import FakeSMTPServer

R: Any = reactor
MESSAGE = b"From: a@a.example\r\nTo: x@b.example\r\nSubject: q\r\n\r\nhello body\r\n"
BASE_EXTENSIONS = ("PIPELINING", "8BITMIME", "SIZE 100000")


def _status_part(dsn: bytes) -> str:
    msg = email.message_from_bytes(dsn, policy=email.policy.default)
    assert msg.get_content_type() == "multipart/report" and len(msg.get_payload()) == 3
    return dsn.decode().split("Content-Type: message/delivery-status")[1].split("--=_dsn")[0]


class DSNRequests(TestCase):
    def setUp(self) -> None:
        self.dir = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.dns = DNSServer()
        self.addCleanup(self.dns.close)
        self.dns.set("b.example", "A", "127.0.0.1")
        self.queue = SQLiteOutgoingQueue(self.dir / "data")
        self.addCleanup(self.queue.close)
        self.now = [time.time() + 60]
        self.dsns: list[tuple[str, bytes]] = []

    async def notify(self, mail_from: str, dsn: bytes) -> None:
        self.dsns.append((mail_from, dsn))

    def peer(self, *extensions: str, rcpt_reply: Any = None) -> FakeSMTPServer:
        kwargs = {"rcpt_reply": rcpt_reply} if rcpt_reply is not None else {}
        s = FakeSMTPServer(extensions=BASE_EXTENSIONS + extensions, **kwargs)
        self.addCleanup(s.close)
        return s

    def runner(self, port: int) -> QueueRunner:
        # Finished messages keep their rows for the checks.
        return make_runner(self.queue, self.dns, port, self.now, self.notify, lambda account: 3600.0)

    async def enqueue(self, rcpts: dict[str, RecipientDSN], dsn: MessageDSN = NO_MESSAGE_DSN) -> int:
        return await self.queue.enqueue(
            Address.parse("a@a.example"),
            [Address.parse(a) for a in rcpts],
            MESSAGE,
            "alice",
            False,
            dsn=dsn,
            recipient_dsn=list(rcpts.values()),
        )

    def test_notify_never_and_success_suppress_failure_dsns_ret_full_returns_the_body(self) -> defer.Deferred[None]:
        s = self.peer(rcpt_reply=lambda r: b"550 5.1.1 unknown")
        runner = self.runner(s.port)

        async def go() -> None:
            mid = await self.enqueue(
                {
                    "never@b.example": RecipientDSN(("NEVER",)),
                    "success@b.example": RecipientDSN(("SUCCESS",)),
                    "default@b.example": RecipientDSN(),
                    "failure@b.example": RecipientDSN(("FAILURE",), "rfc822;Orig@b.example"),
                },
                MessageDSN("FULL", "env-1"),
            )
            await runner.run_once()
            assert {r.status for r in self.queue.recipients()} == {"failed"}
            [(to, dsn)] = self.dsns
            status = _status_part(dsn)
            assert to == "a@a.example" and status.count("Action: failed") == 2, status
            assert "default@b.example" in status and "failure@b.example" in status
            assert "never@b.example" not in status and "success@b.example" not in status
            assert "Original-Recipient: rfc822;Orig@b.example\r\nFinal-Recipient: rfc822; failure@b.example" in status
            assert "Original-Envelope-Id: env-1\r\n" in status
            returned = email.message_from_bytes(dsn, policy=email.policy.default).get_payload()[2]
            assert returned.get_content_type() == "message/rfc822" and b"hello body" in dsn
            assert not self.queue.path(mid).exists()  # finished: no DSN owed any more

        return defer.ensureDeferred(go())

    def test_success_at_a_peer_without_dsn_is_reported_as_relayed(self) -> defer.Deferred[None]:
        s = self.peer()
        runner = self.runner(s.port)

        async def go() -> None:
            await self.enqueue(
                {
                    "x@b.example": RecipientDSN(("SUCCESS", "FAILURE"), "rfc822;x@b.example"),
                    "y@b.example": RecipientDSN(),
                },
                MessageDSN("FULL", "env 2"),
            )
            await runner.run_once()
            assert [r.status for r in self.queue.recipients()] == ["delivered", "delivered"]
            # The peer does not offer DSN: nothing of the request goes to it.
            assert not any("NOTIFY" in c or "RET=" in c or "ENVID" in c for c in s.commands), s.commands
            [(_to, dsn)] = self.dsns
            status = _status_part(dsn)
            assert "Final-Recipient: rfc822; x@b.example\r\nAction: relayed\r\nStatus: 2.0.0" in status, status
            assert "y@b.example" not in status and "Original-Envelope-Id: env 2" in status
            assert b"hello body" not in dsn  # RET=FULL returns the body in failure DSNs only (RFC 3461 §4.3)
            await runner.run_once()
            assert len(self.dsns) == 1

        return defer.ensureDeferred(go())

    def test_a_peer_offering_dsn_gets_the_request_and_reports_success_itself(self) -> defer.Deferred[None]:
        s = self.peer("DSN")
        runner = self.runner(s.port)

        async def go() -> None:
            await self.enqueue(
                {
                    "x@b.example": RecipientDSN(("SUCCESS", "FAILURE"), "rfc822;x+y@b.example"),
                    "y@b.example": RecipientDSN(),
                },
                MessageDSN("HDRS", "env=3"),
            )
            await runner.run_once()
            assert [r.status for r in self.queue.recipients()] == ["delivered", "delivered"]
            mail = next(c for c in s.commands if c.startswith("MAIL"))
            assert mail.endswith(" RET=HDRS ENVID=env+3D3"), mail
            rcpts = [c for c in s.commands if c.startswith("RCPT")]
            assert rcpts == [
                "RCPT TO:<x@b.example> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;x+2By@b.example",
                "RCPT TO:<y@b.example>",
            ]
            assert self.dsns == []
            passed = [r[0] for r in self.queue.db.execute("SELECT dsn_passed FROM recipient ORDER BY id")]
            assert passed == [1, 1]

        return defer.ensureDeferred(go())

    def test_notify_without_delay_gets_no_delay_dsn(self) -> defer.Deferred[None]:
        self.dns.servfail.add("b.example")
        runner = self.runner(1)

        async def go() -> None:
            await self.enqueue({"f@b.example": RecipientDSN(("FAILURE",)), "d@b.example": RecipientDSN()})
            for _ in range(3):
                self.now[0] += 3 * 3600
                await runner.run_once()
            [(_to, delayed)] = self.dsns
            assert b"Action: delayed" in delayed and b"d@b.example" in delayed and b"f@b.example" not in delayed

        return defer.ensureDeferred(go())


def test_a_queue_database_from_before_dsn_opens_and_takes_dsn_requests(tmp_path: Path) -> None:
    root = tmp_path / "data" / "queue"
    root.mkdir(parents=True)
    db = sqlite3.connect(root / "index.db")
    db.executescript(_SCHEMA)  # the first release's tables, without any added column
    db.execute(
        "INSERT INTO message (id, mail_from, account, size, smtputf8, created) VALUES (1, 'a@a.example', 'a', 1, 0, 0)"
    )
    db.commit()
    db.close()
    (root / "msg").mkdir()
    (root / "msg" / "1").write_bytes(b"x")
    queue = SQLiteOutgoingQueue(tmp_path / "data")
    try:
        row = queue.db.execute("SELECT ret, envid FROM message WHERE id = 1").fetchone()
        assert row == ("", "")
        columns = {r[1] for r in queue.db.execute("PRAGMA table_info(recipient)")}
        assert {"notify", "orcpt", "dsn_passed"} <= columns
    finally:
        queue.close()
