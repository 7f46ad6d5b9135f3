"""mailsrv/ops/queue.py over the real SQLite queue (rows written directly: no runner, no
reactor threads, no sockets): keyset pages in every sort order neither repeat nor skip, filters,
hold/release/retry/drop/purge, history, hold rules, keep, and the typed refusals."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mailsrv.ops import queue as ops_queue
from mailsrv.ops.errors import InvalidInput, NotFound
from mailsrv.queue.interfaces import QueuePage
from mailsrv.queue.store import SQLiteOutgoingQueue
from tests.ops.fakes import make_server, result_of

SENDERS = ["alice@example.org", "Bob@example.org", "carol@example.net", ""]


def _insert(q: SQLiteOutgoingQueue, mid: int, sender: str, account: str, size: int, created: float) -> None:
    q.db.execute(
        "INSERT INTO message (id, mail_from, account, size, smtputf8, created) VALUES (?, ?, ?, ?, 0, ?)",
        (mid, sender, account, size, created),
    )
    for rcpt in (f"r{mid}@remote.example", f"x{mid % 3}@other.example"):
        q.db.execute(
            "INSERT INTO recipient (message_id, address, domain, next_attempt) VALUES (?, ?, ?, ?)",
            (mid, rcpt, rcpt.rpartition("@")[2], created),
        )
    if mid == 7:  # the one whose content a test looks at
        q.path(mid).write_bytes(b"Subject: x\r\n\r\nx\r\n")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Any]:
    s = make_server(tmp_path)
    q = SQLiteOutgoingQueue(tmp_path)
    s.queue = q
    rng = random.Random(7)
    for mid in range(1, 601):
        # Few distinct sizes, senders and times: ties in the sort key must not repeat or skip.
        _insert(
            q,
            mid,
            rng.choice(SENDERS),
            rng.choice(["alice", "bob", ""]),
            rng.choice([100, 200, 300]),
            1000.0 + mid // 7,
        )
    q.db.commit()
    yield s
    q.close()


def _all_pages(server: Any, name: str = "queue.list", limit: int = 37, **options: Any) -> list[int]:
    fn = ops_queue.list_retired if name == "queue.retired" else ops_queue.list_queue
    ids: list[int] = []
    after = None
    while True:
        page = result_of(fn(server, ops_queue.ListMessages(limit=limit, after=after, **options)))
        assert isinstance(page, QueuePage), page
        assert len(page.messages) <= limit
        ids += [m.id for m in page.messages]
        if page.next is None:
            return ids
        assert len(page.messages) == limit
        after = page.next


@pytest.mark.parametrize("sort", ["id", "created", "size", "sender", "account"])
@pytest.mark.parametrize("descending", [False, True])
def test_pages_in_every_order_neither_repeat_nor_skip(server: Any, sort: str, descending: bool) -> None:
    rows = server.queue.db.execute("SELECT id, created, size, lower(mail_from), account FROM message").fetchall()
    column = ["id", "created", "size", "sender", "account"].index(sort)
    expected = [r[0] for r in sorted(rows, key=lambda r: (r[column], r[0]), reverse=descending)]
    assert _all_pages(server, sort=sort, descending=descending) == expected


def test_pages_stay_consistent_while_the_queue_changes(server: Any) -> None:
    q = server.queue
    first = result_of(ops_queue.list_queue(server, ops_queue.ListMessages(limit=100)))
    # Messages before the anchor finish, new ones are queued: the next pages go on from the anchor.
    q.db.execute("DELETE FROM recipient WHERE message_id <= 50")
    q.db.execute("DELETE FROM message WHERE id <= 50")
    _insert(q, 5000, "late@example.org", "", 1, 0.0)
    q.db.commit()
    rest: list[int] = []
    after = first.next
    while after is not None:
        page = result_of(ops_queue.list_queue(server, ops_queue.ListMessages(limit=300, after=after)))
        rest += [m.id for m in page.messages]
        after = page.next
    ids = [m.id for m in first.messages] + rest
    assert ids == [*range(1, 601), 5000]


def test_filters_combine_and_the_page_carries_recipients(server: Any) -> None:
    ids = _all_pages(server, sender="@example.org", account="alice", recipient="x1@other.example", limit=1000)
    rows = server.queue.db.execute(
        "SELECT id FROM message WHERE lower(mail_from) LIKE '%@example.org' AND account = 'alice' AND id % 3 = 1"
    ).fetchall()
    assert ids == sorted(r[0] for r in rows) and ids
    page = result_of(ops_queue.list_queue(server, ops_queue.ListMessages(ids=[5])))
    [message] = page.messages
    assert [r.address for r in message.recipients] == ["r5@remote.example", "x2@other.example"]
    assert message.retired_until is None and not message.held


def test_bad_limit_is_refused(server: Any) -> None:
    for limit in (0, 1001):
        assert isinstance(result_of(ops_queue.list_queue(server, ops_queue.ListMessages(limit=limit))), InvalidInput)


def test_hold_release_retry_wake_the_runner(server: Any) -> None:
    kicks: list[int] = []
    server.queue.on_enqueued.append(kicks.append)
    selection = ops_queue.Selection(ids=[1, 2, 3])
    assert result_of(ops_queue.hold(server, selection)).count == 3
    assert result_of(ops_queue.hold(server, selection)).count == 0  # already held
    assert _all_pages(server, held=True, limit=1000) == [1, 2, 3]
    assert kicks == []
    assert result_of(ops_queue.release(server, ops_queue.Selection(ids=[1]))).count == 1
    assert result_of(ops_queue.retry(server, ops_queue.Selection(ids=[2]))).count == 2  # recipients
    assert kicks == [0, 0]


def test_drop_needs_a_filter_or_all(server: Any) -> None:
    assert isinstance(result_of(ops_queue.drop(server, ops_queue.Drop())), InvalidInput)
    assert result_of(ops_queue.drop(server, ops_queue.Drop(ids=[7]))).count == 1
    assert not server.queue.path(7).exists() and 7 not in _all_pages(server, limit=1000)
    assert result_of(ops_queue.drop(server, ops_queue.Drop(all=True))).count == 599


def test_retired_purge_and_history(server: Any) -> None:
    q = server.queue
    q.db.execute("UPDATE message SET retired_until = 2000 WHERE id IN (10, 11)")
    q.db.commit()
    assert _all_pages(server, "queue.retired") == [10, 11]
    assert 10 not in _all_pages(server, limit=1000)
    history = result_of(ops_queue.history(server, ops_queue.MessageId(id=10)))
    assert history.message.retired_until == 2000 and history.attempts == []
    assert isinstance(result_of(ops_queue.history(server, ops_queue.MessageId(id=99999))), NotFound)
    # A filter forgets matching retired messages now; never a queued one.
    assert result_of(ops_queue.purge(server, ops_queue.Selection(ids=[10, 12]))).count == 1
    # No filter: those whose keep period ended (2000 is long past).
    assert result_of(ops_queue.purge(server, ops_queue.Selection())).count == 1
    assert _all_pages(server, "queue.retired") == []


def test_hold_rules(server: Any) -> None:
    rule = result_of(ops_queue.add_hold_rule(server, ops_queue.NewHoldRule(recipient_domain="Remote.Example")))
    assert rule.id and rule.recipient_domain == "remote.example"
    assert result_of(ops_queue.hold_rules(server, ops_queue.ListHoldRules())) == [rule]
    assert isinstance(result_of(ops_queue.remove_hold_rule(server, ops_queue.HoldRuleId(id=999))), NotFound)
    result_of(ops_queue.remove_hold_rule(server, ops_queue.HoldRuleId(id=rule.id)))
    assert result_of(ops_queue.hold_rules(server, ops_queue.ListHoldRules())) == []


def test_keep_period(server: Any) -> None:
    assert ops_queue.keep(server, ops_queue.Keep(account="alice")).retired_keep == 0
    assert ops_queue.keep(server, ops_queue.Keep(account="alice", keep="1d")).retired_keep == 86400
    with pytest.raises(InvalidInput):
        ops_queue.keep(server, ops_queue.Keep(account="alice", keep="soon"))
    with pytest.raises(NotFound):
        ops_queue.keep(server, ops_queue.Keep(account="nobody"))


def _set_next(server: Any) -> None:
    """Gives each queued recipient a next attempt (the trigger keeps the message's earliest)."""
    q = server.queue
    q.db.execute("UPDATE recipient SET next_attempt = 5000 + (message_id * 37) % 101 + (id % 2)")
    q.db.commit()


@pytest.mark.parametrize("descending", [False, True])
def test_sort_by_next_attempt_pages_neither_repeat_nor_skip(server: Any, descending: bool) -> None:
    _set_next(server)
    rows = server.queue.db.execute(
        "SELECT m.id, MIN(r.next_attempt) FROM message m JOIN recipient r ON r.message_id = m.id GROUP BY m.id"
    ).fetchall()
    expected = [r[0] for r in sorted(rows, key=lambda r: (r[1], r[0]), reverse=descending)]
    assert _all_pages(server, sort="next_attempt", descending=descending) == expected
    page = result_of(ops_queue.list_queue(server, ops_queue.ListMessages(ids=[3])))
    assert page.messages[0].next_attempt == min(r.next_attempt for r in page.messages[0].recipients)


def test_next_attempt_filters_and_setting_it(server: Any) -> None:
    _set_next(server)
    early = _all_pages(server, next_before=5050.0, limit=1000)
    late = _all_pages(server, next_after=5050.0, limit=1000)
    assert sorted(early + late) == list(range(1, 601)) and early and late
    kicks: list[int] = []
    server.queue.on_enqueued.append(kicks.append)
    count = result_of(ops_queue.set_next_attempt(server, ops_queue.SetNextAttempt(ids=[1, 2], when=9e9))).count
    assert count == 4 and kicks == []  # recipients; a future time wakes nobody
    assert _all_pages(server, next_after=9e9, limit=1000) == [1, 2]
    assert result_of(ops_queue.set_next_attempt(server, ops_queue.SetNextAttempt(ids=[1], when=0))).count == 2
    assert kicks == [0]


def test_requiretls_on_a_selection(server: Any) -> None:
    assert result_of(ops_queue.set_requiretls(server, ops_queue.SetRequireTLS(ids=[4, 5], required=True))).count == 2
    assert result_of(ops_queue.set_requiretls(server, ops_queue.SetRequireTLS(ids=[4, 5], required=True))).count == 0
    assert _all_pages(server, requiretls=True, limit=1000) == [4, 5]
    page = result_of(ops_queue.list_queue(server, ops_queue.ListMessages(ids=[4])))
    assert page.messages[0].requiretls
    assert result_of(ops_queue.set_requiretls(server, ops_queue.SetRequireTLS(ids=[4], required=False))).count == 1


def test_drop_with_dsn_fails_the_recipients(server: Any) -> None:
    from mailsrv.queue.runner import _HISTORY_SCHEMA

    server.queue.db.executescript(_HISTORY_SCHEMA)  # the runner's tables: attempts are recorded
    wanted: list[int] = []
    server.queue.on_finish_wanted.append(lambda: wanted.append(1))
    req = ops_queue.Drop(ids=[8, 9], dsn=True, reason="stop   this\r\nnow")
    assert result_of(ops_queue.drop(server, req)).count == 2
    assert wanted == [1]
    history = result_of(ops_queue.history(server, ops_queue.MessageId(id=8)))
    assert [(a.code, a.reply) for a in history.attempts] == [(550, "550 5.3.0 stop this now")] * 2
    assert {r.status for r in history.message.recipients} == {"failed"}


def test_hold_rule_by_account(server: Any) -> None:
    assert isinstance(result_of(ops_queue.add_hold_rule(server, ops_queue.NewHoldRule(account="nobody"))), NotFound)
    rule = result_of(ops_queue.add_hold_rule(server, ops_queue.NewHoldRule(account="alice")))
    assert rule.account == "alice"
    from mailsrv.queue.admin import apply_hold_rules

    q = server.queue
    _insert(q, 7001, "a@example.org", "alice", 1, 1.0)
    _insert(q, 7002, "a@example.org", "bob", 1, 1.0)
    assert apply_hold_rules(q.db, 7001, "a@example.org", ["x@remote.example"], "alice")
    assert not apply_hold_rules(q.db, 7002, "a@example.org", ["x@remote.example"], "bob")
    q.db.commit()
    assert _all_pages(server, held=True, limit=1000) == [7001]
