"""Queue administration: filters, hold/release/retry/drop, hold rules applied at enqueue,
retired list and purge."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from twisted.internet import defer
from twisted.trial.unittest import TestCase

from mailsrv.address import Address
from mailsrv.queue.admin import (
    HoldRule,
    QueueFilter,
    add_hold_rule,
    drop,
    hold_rules,
    list_queue,
    list_retired,
    purge_retired,
    remove_hold_rule,
    retry,
    set_hold,
)
from mailsrv.queue.store import SQLiteOutgoingQueue

MSG = b"From: a@a.example\r\n\r\nx\r\n"


def test_hold_rule_matching() -> None:
    assert HoldRule().matches("a@a.example", ["x@b.example"])  # empty rule: all
    assert HoldRule(sender_domain="A.example").matches("a@a.example", [])
    assert not HoldRule(sender_domain="a.example").matches("a@sub.a.example", [])
    assert HoldRule(recipient_domain="b.example").matches("", ["y@c.example", "x@b.example"])
    assert not HoldRule(sender="a@a.example", recipient="z@b.example").matches("a@a.example", ["x@b.example"])


class Admin(TestCase):
    def setUp(self) -> None:
        self.dir = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.queue = SQLiteOutgoingQueue(self.dir)
        self.addCleanup(self.queue.close)

    def enqueue(self, sender: str, *rcpts: str, account: str = "alice") -> defer.Deferred[int]:
        return self.queue.enqueue(Address.parse(sender), [Address.parse(r) for r in rcpts], MSG, account, False)

    def test_operations(self) -> defer.Deferred[None]:
        db = self.queue.db

        async def go() -> None:
            rule = add_hold_rule(db, HoldRule(recipient_domain="held.example"))
            m1 = await self.enqueue("a@a.example", "x@b.example")
            m2 = await self.enqueue("bob@a.example", "y@held.example", "z@c.example", account="bob")
            m3 = await self.enqueue("c@other.example", "w@c.example", account="carol")
            assert [m.id for m in list_queue(db)] == [m1, m2, m3]
            assert [(m.id, m.held) for m in list_queue(db, QueueFilter(held=True))] == [(m2, True)]
            assert [m.id for m in list_queue(db, QueueFilter(sender="@a.example"))] == [m1, m2]
            assert [m.id for m in list_queue(db, QueueFilter(recipient="@c.example"))] == [m2, m3]
            assert [m.id for m in list_queue(db, QueueFilter(recipient="W@c.example", account="carol"))] == [m3]
            assert [m.id for m in list_queue(db, QueueFilter(sender="%"))] == []  # no LIKE injection
            # Release, hold again, retry.
            assert set_hold(db, QueueFilter(ids=(m2,)), False) == 1
            assert set_hold(db, QueueFilter(ids=(m2,)), False) == 0
            assert set_hold(db, QueueFilter(account="alice"), True) == 1
            db.execute("UPDATE recipient SET next_attempt = 1e12")
            assert retry(db, QueueFilter(ids=(m2,)), now=5.0) == 2
            assert {r.next_attempt for r in list_queue(db, QueueFilter(ids=(m2,)))[0].recipients} == {5.0}
            # Rules: list and remove; later messages are no longer held.
            assert [r.id for r in hold_rules(db)] == [rule]
            assert remove_hold_rule(db, rule) and not remove_hold_rule(db, rule)
            m4 = await self.enqueue("a@a.example", "v@held.example")
            assert not list_queue(db, QueueFilter(ids=(m4,)))[0].held
            # Drop removes rows and content.
            assert drop(db, self.queue.msg_dir, QueueFilter(ids=(m3,))) == 1
            assert not self.queue.path(m3).exists() and m3 not in [m.id for m in list_queue(db)]
            # Retired (the runner's doing): all recipients done, kept until a time.
            db.execute("UPDATE recipient SET status = 'delivered' WHERE message_id = ?", (m1,))
            db.execute("UPDATE message SET retired_until = 1000 WHERE id = ?", (m1,))
            db.execute("UPDATE message SET retired_until = 2000 WHERE id = ?", (m4,))
            db.commit()
            assert [m.id for m in list_retired(db)] == [m1, m4] and m1 not in [m.id for m in list_queue(db)]
            assert list_retired(db, QueueFilter(ids=(m1,)))[0].retired_until == 1000
            # Without a filter only expired ones go; with one, matching retired ones at once.
            assert purge_retired(db, self.queue.msg_dir, now=999) == 0
            assert purge_retired(db, self.queue.msg_dir, now=1000) == 1
            assert [m.id for m in list_retired(db)] == [m4]
            assert purge_retired(db, self.queue.msg_dir, now=0, f=QueueFilter(ids=(m2,))) == 0  # queued: never
            assert purge_retired(db, self.queue.msg_dir, now=0, f=QueueFilter(sender="a@a.example")) == 1
            assert list_retired(db) == [] and [m.id for m in list_queue(db)] == [m2]
            assert db.execute("SELECT COUNT(*) FROM recipient WHERE message_id IN (?, ?)", (m1, m4)).fetchone()[0] == 0

        return defer.ensureDeferred(go())
