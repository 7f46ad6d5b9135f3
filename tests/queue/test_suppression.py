"""Suppression lists in the queue (mailsrv/queue/suppression.py, the runner): the base-address
rule, which failures suppress, the third failure in a row, and that later messages to a
suppressed address fail at once with a "suppressed" event, a DSN and no delivery attempt."""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from mailsrv.address import Address
from mailsrv.dns.resolver import Resolver
from mailsrv.queue import suppression
from mailsrv.queue.interfaces import MessageMeta
from mailsrv.queue.remote import DomainDelivery
from mailsrv.queue.runner import GroupToDeliver, QueueRunner, RunnerOptions
from mailsrv.queue.store import SQLiteOutgoingQueue
from mailsrv.smtpclient import Reply

R: Any = reactor


@pytest.mark.parametrize(
    ("address", "base"),
    [
        ("Bob.Smith+news@Example.ORG", "bob.smith@example.org"),
        ("bob-smith@example.org", "bob-smith@example.org"),  # "-" is not cut
        ("B.o.b+x+y@GMail.com", "bob@gmail.com"),  # Gmail ignores dots
        ("b.o.b@googlemail.com", "bob@googlemail.com"),
        ("b.o.b@outlook.com", "b.o.b@outlook.com"),  # others do not
    ],
)
def test_base_address(address: str, base: str) -> None:
    assert suppression.base_address(address) == base


def test_base_address_uses_the_domains_own_separator() -> None:
    seps = {"ours.example": "-", "plain.example": None}

    def separator_of(domain: str) -> str | None:
        return seps.get(domain, "+")

    assert suppression.base_address("a-b+c@ours.example", separator_of) == "a@ours.example"
    assert suppression.base_address("a-b+c@plain.example", separator_of) == "a-b+c@plain.example"
    assert suppression.base_address("a-b+c@other.example", separator_of) == "a-b@other.example"


@pytest.mark.parametrize(
    ("reply", "suppresses"),
    [
        (Reply(550, ("5.1.1 no such user",)), True),
        (Reply(521, ("no mail here",)), True),
        (Reply(551, ("user not local",)), True),
        (Reply(553, ("bad mailbox name",)), True),
        (Reply(556, ("5.1.10 null MX",)), True),
        (Reply(554, ("5.1.2 bad destination system",)), True),
        (Reply(554, ("5.2.1 mailbox disabled",)), True),
        (Reply(554, ("5.7.1 refused",)), True),
        (Reply(552, ("5.2.2 mailbox full",)), False),
        (Reply(554, ("5.7.0 policy",)), False),
        (Reply(451, ("4.1.1 try later",)), False),
        (Reply(450, ("4.2.1 busy",)), False),
    ],
)
def test_which_failures_suppress(reply: Reply, suppresses: bool) -> None:
    assert suppression.suppresses(reply) is suppresses


class RunnerSuppression(TestCase):
    def setUp(self) -> None:
        self.dir = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.queue = SQLiteOutgoingQueue(self.dir)
        self.now = [time.time() + 60]
        self.replies: dict[str, Reply] = {}
        self.attempted: list[str] = []
        self.dsns: list[bytes] = []

    def tearDown(self) -> None:
        self.queue.close()

    async def _deliver(self, group: GroupToDeliver) -> DomainDelivery:
        self.attempted += group.envelope.recipients
        return DomainDelivery({r: self.replies.get(r, Reply(250, ("2.0.0 ok",))) for r in group.envelope.recipients})

    async def _notify(self, mail_from: str, dsn: bytes) -> None:
        self.dsns.append(dsn)

    def _runner(self) -> QueueRunner:
        return QueueRunner(
            R,
            self.queue,
            Resolver(R, [("127.0.0.1", 9)], timeout=1),
            RunnerOptions(helo_name="mx.a.example"),
            clock=lambda: self.now[0],
            deliverer=self._deliver,
            notify=self._notify,
        )

    async def _send(self, *rcpts: str, account: str = "alice") -> int:
        return await self.queue.enqueue(
            Address.parse("alice@a.example"),
            [Address.parse(r) for r in rcpts],
            b"Subject: hi\r\nMessage-ID: <m1@a.example>\r\n\r\nx\r\n",
            account,
            False,
            meta=MessageMeta(header_message_id="<m1@a.example>", subject="hi", extra={"Order": "7"}),
        )

    async def _events(self) -> list[Any]:
        events = await self.queue.events_after(0, 1000)
        await self.queue.acknowledge_events(events[-1].seq if events else 0)
        return events

    async def test_hard_failure_suppresses_and_later_messages_fail_at_once(self) -> None:
        self.replies["gone@b.example"] = Reply(550, ("5.1.1 no such user",))
        await self._send("gone@b.example", "ok@b.example")
        await self._runner().run_once()
        events = {e.recipient: e for e in await self._events()}
        failed = events["gone@b.example"]
        assert failed.kind == "failed" and failed.suppressing and failed.code == 550
        assert (failed.subject, failed.header_message_id, failed.extra) == ("hi", "<m1@a.example>", {"Order": "7"})
        assert events["ok@b.example"].kind == "delivered" and not events["ok@b.example"].suppressing
        [entry] = await self.queue.suppressions("alice")
        assert (entry.base_address, entry.original_address, entry.manual) == ("gone@b.example", "gone@b.example", False)
        assert "5.1.1" in entry.reason
        # A variant of the address, later: no attempt, a "suppressed" event and a DSN.
        self.attempted.clear()
        self.dsns.clear()
        qid = await self._send("Gone+tag@b.example", "ok@b.example")
        await self._runner().run_once()
        assert self.attempted == ["ok@b.example"]
        [suppressed] = [e for e in await self._events() if e.recipient == "Gone+tag@b.example"]
        assert suppressed.kind == "suppressed" and suppressed.message_id == qid and suppressed.extra == {"Order": "7"}
        assert len(self.dsns) == 1 and b"Gone+tag@b.example" in self.dsns[0]
        # Another account's mail still goes there.
        self.attempted.clear()
        await self._send("gone+x@b.example", account="bob")
        await self._runner().run_once()
        assert self.attempted == ["gone+x@b.example"]

    async def test_third_failure_in_a_row_suppresses_and_a_delivery_resets_the_count(self) -> None:
        self.replies["flaky@b.example"] = Reply(554, ("5.0.0 something",))
        for _ in range(2):
            await self._send("flaky@b.example")
            await self._runner().run_once()
        assert await self.queue.suppressions("alice") == []
        self.replies.pop("flaky@b.example")  # delivered once: the count starts again
        await self._send("flaky@b.example")
        await self._runner().run_once()
        self.replies["flaky@b.example"] = Reply(554, ("5.0.0 something",))
        for _ in range(2):
            await self._send("flaky@b.example")
            await self._runner().run_once()
        assert await self.queue.suppressions("alice") == []
        await self._events()
        await self._send("flaky@b.example")
        await self._runner().run_once()
        [entry] = await self.queue.suppressions("alice")
        assert entry.base_address == "flaky@b.example" and "3 failures in a row" in entry.reason
        [event] = await self._events()
        assert event.kind == "failed" and event.suppressing

    async def test_temporary_failures_and_system_messages_do_not_suppress(self) -> None:
        self.replies["later@b.example"] = Reply(451, ("4.1.1 later",))
        self.replies["gone@b.example"] = Reply(550, ("5.1.1 no such user",))
        await self._send("later@b.example")
        await self._send("gone@b.example", account="")  # a DSN bounce, say: no account
        await self._runner().run_once()
        assert await self.queue.suppressions("alice") == [] and await self.queue.suppressions("") == []

    async def test_an_account_without_a_list_costs_no_lookups_and_one_added_later_counts(self) -> None:
        """Deliveries for an account that has neither suppression entries nor counted failures
        read and write no suppression table; an entry added by the admin, or present when the
        queue is opened again, is honoured."""
        statements: list[str] = []
        self.queue.db.set_trace_callback(statements.append)
        await self._send("ok@b.example")
        await self._runner().run_once()
        assert self.attempted == ["ok@b.example"]
        assert not [s for s in statements if "suppression" in s], statements
        await self.queue.add_suppression("alice", "blocked@b.example", "blocked@b.example", True, "asked")
        self.queue.db.set_trace_callback(None)
        self.attempted.clear()
        await self._send("blocked@b.example", "ok@b.example")
        await self._runner().run_once()
        assert self.attempted == ["ok@b.example"]
        # Opened again (a restart): the list is known from the database.
        self.queue.close()
        self.queue = SQLiteOutgoingQueue(self.dir)
        self.attempted.clear()
        await self._send("blocked+x@b.example")
        await self._runner().run_once()
        assert self.attempted == []
