"""Localserve queue delivery: copies into the sending account, simulated outcomes."""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from twisted.internet import defer, reactor
from twisted.trial.unittest import TestCase

from mailsrv.address import Address
from mailsrv.config.load import load_static
from mailsrv.ops.delivery import deliver_dsn
from mailsrv.queue.localserve import LocalserveDeliverer, simulated_reply
from mailsrv.queue.runner import QueueRunner, RunnerOptions, backoff
from mailsrv.server import Server

R: Any = reactor
MESSAGE = b"From: alice@a.example\r\nTo: ok@x.example\r\nSubject: app mail\r\n\r\nhello\r\n"


def test_simulated_replies() -> None:
    assert simulated_reply("ok@x.example", 0).code == 250
    assert simulated_reply("TempFail@x.example", 99).code == 451
    assert [simulated_reply("tempfail2@x.example", n).code for n in range(4)] == [451, 451, 250, 250]
    assert simulated_reply("permfail@x.example", 0).code == 550


class Localserve(TestCase):
    def setUp(self) -> None:
        self.dir = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, self.dir, True)
        (self.dir / "mailsrv.toml").write_text(
            'hostname = "localhost"\ndata_dir = "data"\nlocalserve = true\n[dns]\nnameservers = ["127.0.0.1:9"]\n'
        )
        (self.dir / "data").mkdir()
        (self.dir / "data" / "dynamic.toml").write_text(
            '[domains."a.example"]\n[accounts.alice]\ndomain = "a.example"\naddresses = ["alice@a.example"]\n'
        )
        self.server = Server.create(load_static(self.dir / "mailsrv.toml"), R)
        self.addCleanup(self.server.close)

    def test_outcomes(self) -> defer.Deferred[None]:
        server = self.server
        assert server.queue is not None and server.resolver is not None
        now = [time.time() + 60]

        async def notify(mail_from: str, dsn: bytes) -> None:
            await deliver_dsn(server, mail_from, dsn)

        runner = QueueRunner(
            R,
            server.queue,
            server.resolver,
            RunnerOptions(helo_name="localhost"),
            clock=lambda: now[0],
            notify=notify,
            deliverer=LocalserveDeliverer(server),
            retired_keep=lambda account: 3600,  # finished rows stay for the assertions below
        )

        async def go() -> None:
            assert server.queue is not None
            rcpts = [Address.parse(a) for a in ("ok@x.example", "tempfail1@x.example", "permfail@x.example")]
            await server.queue.enqueue(Address.parse("alice@a.example"), rcpts, MESSAGE, "alice", False)
            await runner.run_once()
            assert [(r.address, r.status) for r in server.queue.recipients()] == [
                ("ok@x.example", "delivered"),
                ("tempfail1@x.example", "queued"),
                ("permfail@x.example", "failed"),
            ]
            now[0] += backoff(1) + 1
            await runner.run_once()
            assert {r.status for r in server.queue.recipients()} == {"delivered", "failed"}
            store = server.stores.open("alice")
            texts = [store.read(m.message_id) for m in store.messages(store.mailbox("INBOX").id)]
            assert len(texts) == 3  # copy, DSN for permfail, copy after the retry
            assert texts[0].endswith(MESSAGE) and texts[2].endswith(MESSAGE)
            assert b"Final-Recipient: rfc822; permfail@x.example" in texts[1]

        return defer.ensureDeferred(go())

    def test_an_attempt_made_again_stores_one_copy(self) -> defer.Deferred[None]:
        """The same attempt run again (its outcome lost in a crash before the queue recorded it) stores no second
        copy; a later attempt that delivers to other recipients stores its own."""
        from mailsrv.queue.runner import GroupToDeliver
        from mailsrv.smtpclient import Envelope

        deliverer = LocalserveDeliverer(self.server)

        def group(recipients: tuple[str, ...], attempts: tuple[int, ...]) -> GroupToDeliver:
            envelope = Envelope("alice@a.example", recipients)
            return GroupToDeliver(7, "alice", "x.example", envelope, MESSAGE, attempts)

        async def go() -> None:
            store = self.server.stores.open("alice")
            await deliverer(group(("ok@x.example", "tempfail1@x.example"), (0, 0)))
            await deliverer(group(("ok@x.example", "tempfail1@x.example"), (0, 0)))
            self.assertEqual(store.mailbox("INBOX").messages, 1)
            await deliverer(group(("tempfail1@x.example",), (1,)))  # the retry delivers it
            self.assertEqual(store.mailbox("INBOX").messages, 2)

        return defer.ensureDeferred(go())
