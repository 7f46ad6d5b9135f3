"""Queue delivery: MX routing over the loopback DNS server to smtp-sink (or a fake server),
retries with attempt history, permanent failures, null MX, per-domain grouping."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from twisted.internet import defer, reactor, task
from twisted.trial.unittest import TestCase

from mailsrv.address import Address
from mailsrv.queue.runner import QueueRunner, backoff
from mailsrv.queue.store import SQLiteOutgoingQueue
from mailsrv.smtpclient import SessionOptions
from tests.dnsserver import DNSServer
from tests.ports import free_port
from tests.queue.runner_setup import make_runner
from tests.smtpclient.fakeserver import FakeSMTPServer
from tests.tools import needs_program, require_program

R: Any = reactor


def _as_user() -> list[str]:
    # smtp-sink must be told whom to become when started as root, and refuses -u otherwise.
    return ["-u", "nobody"] if os.geteuid() == 0 else []


MESSAGE = b"From: a@a.example\r\nTo: x@b.example\r\nSubject: q\r\n\r\nhello\r\n"


def test_backoff() -> None:
    assert backoff(1) == 450 and backoff(2) == 900 and backoff(3) == 1800
    assert backoff(30) == 16 * 3600
    assert 3 < sum(backoff(i) for i in range(1, 13)) / 86400 < 4.5


class Runner(TestCase):
    def setUp(self) -> None:
        self.dir = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.dns = DNSServer()
        self.addCleanup(self.dns.close)
        self.queue = SQLiteOutgoingQueue(self.dir / "data")
        self.addCleanup(self.queue.close)
        self.now = [time.time() + 60]  # enqueue stamps time.time(): keep our clock ahead
        self.port = free_port()
        self.dsns: list[tuple[str, bytes]] = []

    async def notify(self, mail_from: str, dsn: bytes) -> None:
        self.dsns.append((mail_from, dsn))

    def runner(self, keep: float = 3600) -> QueueRunner:
        """A runner whose finished messages stay retired for `keep` seconds (their rows are
        what most tests look at)."""
        return make_runner(self.queue, self.dns, self.port, self.now, self.notify, lambda account: keep)

    def start_sink(self) -> None:
        self.dump = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, self.dump, True)
        os.chmod(self.dump, 0o777)
        proc = subprocess.Popen(
            [
                require_program("smtp-sink", package="postfix"),
                *_as_user(),
                "-d",
                f"{self.dump}/%M.",
                f"127.0.0.1:{self.port}",
                "10",
            ],
            stderr=subprocess.DEVNULL,
        )
        self.addCleanup(proc.wait)
        self.addCleanup(proc.kill)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return
            except OSError:
                time.sleep(0.02)
        raise AssertionError(f"smtp-sink did not start: {proc.poll()}")

    def statuses(self) -> list[tuple[str, str, int]]:
        return [(r.address, r.status, r.attempts) for r in self.queue.recipients()]

    @needs_program("smtp-sink", package="postfix")
    def test_down_then_up_delivers_on_retry_with_history(self) -> defer.Deferred[None]:
        self.dns.set("b.example", "MX", "10 mx1.b.example.", "20 mx2.b.example.")
        self.dns.set("mx1.b.example", "A", "127.0.0.1")
        self.dns.set("mx2.b.example", "A", "127.0.0.1")
        runner = self.runner()

        async def go() -> None:
            rcpts = [Address.parse("x@b.example"), Address.parse("y@b.example")]
            mid = await self.queue.enqueue(Address.parse("a@a.example"), rcpts, MESSAGE, "alice", False)
            await runner.run_once()  # nobody listens: both MX hosts refuse
            assert self.statuses() == [("x@b.example", "queued", 1), ("y@b.example", "queued", 1)]
            await runner.run_once()  # not due yet
            assert self.statuses()[0][2] == 1
            self.start_sink()
            self.now[0] += backoff(1) + 1
            await runner.run_once()
            assert self.statuses() == [("x@b.example", "delivered", 2), ("y@b.example", "delivered", 2)], (
                runner.history(mid)
            )
            history = runner.history(mid)
            assert [(h[0], h[3]) for h in history] == [
                ("x@b.example", 451),
                ("y@b.example", 451),
                ("x@b.example", 250),
                ("y@b.example", 250),
            ]
            assert history[2][2] == "mx1.b.example [127.0.0.1]"
            [dump] = [p.read_bytes() for p in self.dump.iterdir()]
            assert dump.count(b"X-Rcpt-Args:") == 2 and b"\nhello\n" in dump
            assert not self.queue.path(mid).exists()

        return defer.ensureDeferred(go())

    def test_permanent_failures(self) -> defer.Deferred[None]:
        self.dns.set("nomail.example", "MX", "0 .")
        s = FakeSMTPServer(rcpt_reply=lambda r: b"550 5.1.1 unknown" if r.startswith("bad") else b"250 ok")
        self.addCleanup(s.close)
        self.port = s.port
        self.dns.set("b.example", "A", "127.0.0.1")  # no MX: implicit MX
        runner = self.runner()

        async def go() -> None:
            rcpts = [
                Address.parse(a) for a in ("u@nomail.example", "u@nxdomain.example", "bad@b.example", "ok@b.example")
            ]
            await self.queue.enqueue(Address.parse("a@a.example"), rcpts, MESSAGE, "alice", False)
            await runner.run_once()
            assert self.statuses() == [
                ("u@nomail.example", "failed", 1),
                ("u@nxdomain.example", "failed", 1),
                ("bad@b.example", "failed", 1),
                ("ok@b.example", "delivered", 1),
            ]
            errors = {r[0]: r[1] for r in self.queue.db.execute("SELECT address, last_error FROM recipient")}
            assert errors["u@nomail.example"].startswith("556 5.1.10")
            assert errors["u@nxdomain.example"].startswith("550 5.1.2")
            assert len(s.received) == 1 and s.received[0][1] == ["ok@b.example"]
            # One DSN for the three failed recipients, none for the delivered one.
            [(to, dsn)] = self.dsns
            assert to == "a@a.example" and dsn.count(b"Action: failed") == 3 and b"ok@b.example" not in dsn

        return defer.ensureDeferred(go())

    def test_expiry_and_hold(self) -> defer.Deferred[None]:
        self.dns.servfail.add("b.example")
        runner = self.runner()

        async def go() -> None:
            mid = await self.queue.enqueue(
                Address.parse("a@a.example"), [Address.parse("x@b.example")], MESSAGE, "a", False
            )
            self.queue.db.execute("UPDATE message SET hold = 1 WHERE id = ?", (mid,))
            await runner.run_once()
            assert self.statuses() == [("x@b.example", "queued", 0)]
            self.queue.db.execute("UPDATE message SET hold = 0 WHERE id = ?", (mid,))
            await runner.run_once()
            assert self.statuses() == [("x@b.example", "queued", 1)]
            last = self.queue.db.execute("SELECT last_error FROM recipient").fetchone()[0]
            assert last.startswith("451 4.4.3")
            assert self.dsns == []
            # After some hours still queued: one delay DSN, then no more until the failure.
            for _ in range(2):
                self.now[0] += 3 * 3600
                await runner.run_once()
            assert self.statuses() == [("x@b.example", "queued", 3)]
            [(_to, delayed)] = self.dsns
            assert b"Action: delayed" in delayed and b"Status: 4.4.3" in delayed
            self.dsns.clear()
            self.now[0] += 5 * 86400
            await runner.run_once()
            assert self.statuses() == [("x@b.example", "failed", 4)]
            assert not self.queue.path(mid).exists()
            assert len(self.dsns) == 1 and b"Status: 5.4.3" in self.dsns[0][1]  # exactly one DSN on expiry
            self.now[0] += 86400
            await runner.run_once()
            assert len(self.dsns) == 1

        return defer.ensureDeferred(go())

    def test_drop_during_an_attempt_records_nothing(self) -> defer.Deferred[None]:
        s = FakeSMTPServer()
        self.addCleanup(s.close)
        self.port = s.port
        self.dns.set("b.example", "A", "127.0.0.1")
        runner = self.runner()

        async def go() -> None:
            from mailsrv.queue.admin import QueueFilter, drop

            mid = await self.queue.enqueue(
                Address.parse("a@a.example"), [Address.parse("x@b.example")], MESSAGE, "a", False
            )
            [attempt] = runner.start_due()  # runs up to its first wait (reading the content)
            assert drop(self.queue.db, self.queue.msg_dir, QueueFilter(ids=(mid,))) == 1
            await attempt
            assert self.statuses() == []
            assert self.queue.db.execute("SELECT COUNT(*) FROM attempt").fetchone()[0] == 0
            assert self.dsns == []

        return defer.ensureDeferred(go())

    def test_stop_does_not_wait_for_a_stalled_peer(self) -> defer.Deferred[None]:
        # A peer that accepts and never greets: with RFC 5321 timeouts (5 minutes) the
        # delivery would hold the daemon's stop that long; stop() gives up after its grace.
        silent = socket.socket()
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        self.addCleanup(silent.close)
        self.port = silent.getsockname()[1]
        self.dns.set("b.example", "A", "127.0.0.1")
        runner = self.runner()
        runner.session = SessionOptions(helo_name="mx.a.example")  # default timeouts

        async def go() -> None:
            await self.queue.enqueue(Address.parse("a@a.example"), [Address.parse("x@b.example")], MESSAGE, "a", False)
            runner.kick()
            await task.deferLater(R, 0.3, lambda: None)  # connected, waiting for a greeting
            started = time.monotonic()
            await runner.stop(grace=0.5)
            assert time.monotonic() - started < 5
            # The cut-off attempt counts as a temporary failure: the message stays queued.
            [(address, status, _)] = self.statuses()
            assert (address, status) == ("x@b.example", "queued")
            [(error,)] = self.queue.db.execute("SELECT last_error FROM recipient").fetchall()
            assert "mailsrv is stopping" in error, error
            runner.kick()  # a stopped runner starts nothing
            assert runner._running == set()

        return defer.ensureDeferred(go())
