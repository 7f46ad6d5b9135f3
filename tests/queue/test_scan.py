"""The runner's scan for due work: earliest first, within the per-domain and total limits,
read a page at a time (a group with more recipients than a page, and groups behind it, still
start), and no scan for a message just queued whose destinations are all busy."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase

import mailsrv.queue.runner as runner_module
from mailsrv.address import Address
from mailsrv.queue.remote import DomainDelivery
from mailsrv.queue.runner import GroupToDeliver, QueueRunner, RunnerOptions
from mailsrv.queue.store import SQLiteOutgoingQueue

MESSAGE = b"From: a@a.example\r\nTo: x@b.example\r\n\r\nhello\r\n"


class Scan(TestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.now = [time.time() + 3600]  # enqueue stamps the real time: all of it is due
        self.queue = SQLiteOutgoingQueue(
            Path(tempfile.mkdtemp()), run_fsync=defer.maybeDeferred, run_files=defer.maybeDeferred
        )
        self.addCleanup(self.queue.close)
        self.started: list[GroupToDeliver] = []
        self.pending: list[defer.Deferred[DomainDelivery]] = []
        self.runner = QueueRunner(
            self.clock,
            self.queue,
            resolver=None,  # type: ignore[arg-type]  # the deliverer needs no DNS
            options=RunnerOptions(helo_name="mx.a.example", max_per_domain=2, max_total=5),
            clock=lambda: self.now[0],
            deliverer=self.deliver,
        )

    def deliver(self, group: GroupToDeliver) -> defer.Deferred[DomainDelivery]:
        self.started.append(group)
        d: defer.Deferred[DomainDelivery] = defer.Deferred()
        self.pending.append(d)
        return d

    def enqueue(self, *rcpts: str) -> defer.Deferred[int]:
        time.sleep(0.002)  # distinct arrival times: the scan's order is the arrival order
        return self.queue.enqueue(Address.parse("a@a.example"), [Address.parse(r) for r in rcpts], MESSAGE, "", False)

    def test_earliest_first_within_the_limits_a_page_at_a_time(self) -> defer.Deferred[None]:
        self.patch(runner_module, "SCAN_PAGE", 3)

        async def go() -> None:
            big = await self.enqueue(*(f"u{i}@b.example" for i in range(7)))  # more rows than a page
            second_b = await self.enqueue("v@b.example")
            third_b = await self.enqueue("w@b.example")  # b.example is full by then
            c = await self.enqueue("x@c.example")
            d = await self.enqueue("y@d.example", "z@e.example")  # two groups
            f = await self.enqueue("q@f.example")  # beyond the total of 5
            self.runner.start_due()
            assert [(g.message_id, g.domain) for g in self.started] == [
                (big, "b.example"),
                (second_b, "b.example"),
                (c, "c.example"),
                (d, "d.example"),
                (d, "e.example"),
            ]
            assert len(self.started[0].envelope.recipients) == 7
            assert third_b and f  # not started: limits
            self.runner.start_due()  # nothing new while all five run
            assert len(self.started) == 5

        return defer.ensureDeferred(go())

    def test_no_scan_for_a_new_message_whose_destinations_are_busy(self) -> defer.Deferred[None]:
        scans: list[int] = []
        real = self.runner.start_due

        def counting() -> list[defer.Deferred[None]]:
            scans.append(1)
            return real()

        self.runner.start_due = counting  # type: ignore[method-assign]

        async def go() -> None:
            first = await self.enqueue("a@b.example")
            second = await self.enqueue("b@b.example")
            self.runner.start_due()
            assert len(self.started) == 2 and len(scans) == 1
            busy = await self.enqueue("c@b.example")
            self.runner.kick_for(busy)
            self.clock.advance(0)
            assert len(scans) == 1  # b.example has its two sessions: no scan
            elsewhere = await self.enqueue("d@c.example", "e@b.example")
            self.runner.kick_for(elsewhere)
            self.clock.advance(0)
            assert len(scans) == 2  # c.example is free
            assert [g.domain for g in self.started] == ["b.example", "b.example", "c.example"]
            assert first and second

        return defer.ensureDeferred(go())

    def test_the_hooks_of_a_message_just_queued_know_its_domains(self) -> defer.Deferred[None]:
        seen: list[object] = []
        self.queue.on_enqueued.append(lambda mid: seen.append(self.queue.just_queued(mid)))

        async def go() -> None:
            mid = await self.enqueue("a@b.example", "c@D.example", "e@b.example")
            assert seen == [frozenset({"b.example", "d.example"})]
            assert self.queue.just_queued(mid) is None  # only while its hooks run

        return defer.ensureDeferred(go())
