"""Queue administration: listing with filters, hold/release/drop/retry, hold rules and the
retired list. The backend of `mailsrv queue ...` (through the control socket) and later of
the admin web API; every function works on the queue database in one transaction.

Invariants:
- A filter with no fields set matches every message; fields combine with AND.
- Hold rules apply to messages when they are queued (`apply_hold_rules`, called by
  `OutgoingQueue.enqueue`), never retroactively; `hold`/`release` change existing ones.
- The queue list and the retired list partition the messages: a message is in the queue
  until the runner finishes it (`message.retired_until` NULL: recipients still to deliver,
  or all done and a DSN still to hand over), then retired (its rows and attempt history
  kept, its content removed) until `retired_until`, when `purge_retired` forgets it.
- `drop` removes queued messages' rows and content without a DSN (an admin decision);
  `purge_retired` only ever removes retired rows, so it never loses mail or a DSN.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import msgspec

from mailsrv.address import AddressError, Domain
from mailsrv.queue import outbox
from mailsrv.queue.interfaces import (
    LOCAL_TRANSPORT,
    MAX_PAGE,
    Attempt,
    HoldRule,
    QueueAnchor,
    QueueCounts,
    QueuedMessage,
    QueueFilter,
    QueuePage,
    QueuePageRequest,
    RecipientInfo,
)
from mailsrv.queue.routes import DIRECT, Routes

_SCHEMA = """
CREATE TABLE IF NOT EXISTS hold_rule (
    id INTEGER PRIMARY KEY,
    sender_domain TEXT NOT NULL DEFAULT '',     -- '' matches any
    sender TEXT NOT NULL DEFAULT '',
    recipient_domain TEXT NOT NULL DEFAULT '',
    recipient TEXT NOT NULL DEFAULT '',
    account TEXT NOT NULL DEFAULT ''            -- the submitting account
);
"""

# What the listing sorts and filters on, kept up to date by the engine: `message.next_attempt`
# is the earliest next attempt of the message's queued recipients (0 when none is queued), so
# sorting and filtering on it walk an index instead of grouping the recipients of every
# message. The trigger keeps it right whoever changes a recipient (the runner, the admin).
INDEXES = """
CREATE INDEX IF NOT EXISTS message_created ON message (created);
CREATE INDEX IF NOT EXISTS message_next ON message (next_attempt);
CREATE INDEX IF NOT EXISTS message_account ON message (account);
CREATE INDEX IF NOT EXISTS recipient_domain ON recipient (domain, message_id);
-- "+status": without it SQLite answers MIN() from recipient_next (status, next_attempt),
-- scanning every queued recipient of the queue for each update.
CREATE TRIGGER IF NOT EXISTS recipient_next_attempt AFTER UPDATE OF status, next_attempt ON recipient
BEGIN
    UPDATE message SET next_attempt = COALESCE(
        (SELECT MIN(next_attempt) FROM recipient WHERE message_id = NEW.message_id AND +status = 'queued'), 0)
    WHERE id = NEW.message_id;
END;
"""


def ensure_schema(db: sqlite3.Connection) -> None:
    db.executescript(_SCHEMA)
    columns = {str(r[1]) for r in db.execute("PRAGMA table_info(hold_rule)")}
    if "account" not in columns:  # hold rules by account came later
        db.execute("ALTER TABLE hold_rule ADD COLUMN account TEXT NOT NULL DEFAULT ''")


def ensure_attempt_transport(db: sqlite3.Connection) -> None:
    """The attempt table (made by the runner) names each attempt's transport since transports came."""
    columns = {str(r[1]) for r in db.execute("PRAGMA table_info(attempt)")}
    if columns and "transport" not in columns:
        db.execute("ALTER TABLE attempt ADD COLUMN transport TEXT NOT NULL DEFAULT ''")


def where_clause(f: QueueFilter) -> tuple[str, list[object]]:
    """The SQL condition on `message m` for a filter, and its arguments."""
    clauses: list[str] = []
    args: list[object] = []
    if f.ids:
        clauses.append(f"m.id IN ({','.join('?' * len(f.ids))})")
        args.extend(f.ids)
    if f.sender:
        if f.sender.startswith("@"):
            clauses.append("lower(m.mail_from) LIKE ? ESCAPE '\\'")
            args.append("%@" + _like(f.sender[1:].lower()))
        else:
            clauses.append("lower(m.mail_from) = ?")
            args.append(f.sender.lower())
    if f.recipient:
        # IN lists from the (domain, message_id) index: the cost follows the matches, not the
        # queue's size (a correlated EXISTS probed every message).
        domain = _domain_key(f.recipient.rpartition("@")[2])
        if f.recipient.startswith("@"):
            clauses.append("m.id IN (SELECT r2.message_id FROM recipient r2 WHERE r2.domain = ?)")
            args.append(domain)
        else:
            clauses.append(
                "m.id IN (SELECT r2.message_id FROM recipient r2 WHERE r2.domain = ? AND lower(r2.address) = ?)"
            )
            args += [domain, f.recipient.lower()]
    if f.account is not None:
        clauses.append("m.account = ?")
        args.append(f.account)
    if f.held is not None:
        clauses.append("m.hold = ?")
        args.append(int(f.held))
    if f.next_before is not None:
        clauses.append("m.next_attempt < ?")
        args.append(f.next_before)
    if f.next_after is not None:
        clauses.append("m.next_attempt >= ?")
        args.append(f.next_after)
    if f.requiretls is not None:
        clauses.append("m.requiretls = ?")
        args.append(int(f.requiretls))
    if f.transport is not None:
        # From the (transport, message_id) index, like the recipient filter.
        clauses.append("m.id IN (SELECT r3.message_id FROM recipient r3 WHERE r3.transport = ?)")
        args.append(f.transport)
    return (" AND ".join(clauses) or "1"), args


def _domain_key(text: str) -> str:
    """A domain as the recipient rows keep it (A-label, lower case)."""
    try:
        return Domain.parse(text).ascii
    except AddressError:
        return text.lower()


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


_SORT_KEYS = {
    "id": "m.id",
    "created": "m.created",
    "size": "m.size",
    "sender": "lower(m.mail_from)",
    "account": "m.account",
    "next_attempt": "m.next_attempt",
}
_ALL = QueueFilter()


def _messages(
    db: sqlite3.Connection,
    f: QueueFilter,
    queued: bool,
    sort: str = "id",
    descending: bool = False,
    after: QueueAnchor | None = None,
    limit: int = -1,
) -> list[tuple[QueuedMessage, int | float | str]]:
    """Messages with their sort key, in (key, id) order; keyset paging after `after`."""
    where, args = where_clause(f)
    key = _SORT_KEYS[sort]
    direction = "DESC" if descending else "ASC"
    state = "IS NULL" if queued else "IS NOT NULL"
    page = ""
    if after is not None:
        # Row values compare lexicographically (SQLite >= 3.15): strictly past the anchor.
        page = f" AND ({key}, m.id) {'<' if descending else '>'} (?, ?)"
        args = [*args, after.key, after.id]
    rows = db.execute(
        "SELECT m.id, m.mail_from, m.account, m.size, m.created, m.hold, m.retired_until, m.next_attempt,"
        f" m.requiretls, {key} FROM message m"
        f" WHERE {where} AND m.retired_until {state}{page} ORDER BY {key} {direction}, m.id {direction} LIMIT ?",
        [*args, limit],
    ).fetchall()
    recipients: dict[int, list[RecipientInfo]] = {int(r[0]): [] for r in rows}
    ids = list(recipients)
    for start in range(0, len(ids), 500):  # SQLite's bound-parameter limit, with room
        chunk = ids[start : start + 500]
        for mid, a, st, n, t, e, tr, fixed in db.execute(
            "SELECT message_id, address, status, attempts, next_attempt, last_error, transport, transport_fixed"
            f" FROM recipient WHERE message_id IN ({','.join('?' * len(chunk))}) ORDER BY id",
            chunk,
        ):
            recipients[int(mid)].append(RecipientInfo(str(a), str(st), int(n), float(t), str(e), str(tr), bool(fixed)))
    return [
        (
            QueuedMessage(
                int(mid),
                str(mail_from),
                str(account),
                int(size),
                float(created),
                bool(hold),
                tuple(recipients[int(mid)]),
                None if until is None else float(until),
                float(next_attempt),
                bool(requiretls),
            ),
            sort_key,
        )
        for mid, mail_from, account, size, created, hold, until, next_attempt, requiretls, sort_key in rows
    ]


def page(db: sqlite3.Connection, request: QueuePageRequest) -> QueuePage:
    """One page of the queue or the retired list (module docstring of queue/interfaces.py)."""
    limit = max(1, min(request.limit, MAX_PAGE))
    rows = _messages(
        db, request.filter, not request.retired, request.sort, request.descending, request.after, limit + 1
    )
    more = len(rows) > limit
    rows = rows[:limit]
    anchor = QueueAnchor(rows[-1][1], rows[-1][0].id) if more else None
    return QueuePage([m for m, _ in rows], anchor)


def count_queued(db: sqlite3.Connection) -> int:
    """How many messages are not finished yet (the queue size /metrics reports)."""
    return int(db.execute("SELECT COUNT(*) FROM message WHERE retired_until IS NULL").fetchone()[0])


def counts(db: sqlite3.Connection) -> QueueCounts:
    row = db.execute(
        "SELECT COALESCE(SUM(retired_until IS NULL), 0), COALESCE(SUM(retired_until IS NULL AND hold = 1), 0),"
        " COALESCE(SUM(retired_until IS NOT NULL), 0) FROM message"
    ).fetchone()
    return QueueCounts(int(row[0]), int(row[1]), int(row[2]))


def list_queue(db: sqlite3.Connection, f: QueueFilter = _ALL) -> list[QueuedMessage]:
    """Messages not finished yet: recipients still to deliver, or a DSN still to hand over."""
    return [m for m, _ in _messages(db, f, queued=True)]


def list_retired(db: sqlite3.Connection, f: QueueFilter = _ALL) -> list[QueuedMessage]:
    """Finished messages kept with their history (their account has a keep period)."""
    return [m for m, _ in _messages(db, f, queued=False)]


def _ids(db: sqlite3.Connection, f: QueueFilter, queued: bool = False) -> list[int]:
    where, args = where_clause(f)
    if queued:
        where += " AND m.retired_until IS NULL"
    return [int(r[0]) for r in db.execute(f"SELECT m.id FROM message m WHERE {where}", args)]


def set_hold(db: sqlite3.Connection, f: QueueFilter, hold: bool) -> int:
    """Holds or releases the matching messages; returns how many changed."""
    ids = _ids(db, msgspec.structs.replace(f, held=not hold))
    db.executemany("UPDATE message SET hold = ? WHERE id = ?", [(int(hold), i) for i in ids])
    db.commit()
    return len(ids)


def retry(db: sqlite3.Connection, f: QueueFilter, now: float | None = None) -> int:
    """Makes the queued recipients of matching messages due now; returns how many."""
    return set_next_attempt(db, f, time.time() if now is None else now)


def set_next_attempt(db: sqlite3.Connection, f: QueueFilter, when: float) -> int:
    """Sets the next attempt of the queued recipients of matching queued messages; returns how many."""
    count = 0
    for i in _ids(db, f, queued=True):
        count += db.execute(
            "UPDATE recipient SET next_attempt = ? WHERE message_id = ? AND status = 'queued'", (when, i)
        ).rowcount
    db.commit()
    return count


def set_requiretls(db: sqlite3.Connection, f: QueueFilter, required: bool) -> int:
    """Sets REQUIRETLS (RFC 8689) on matching queued messages; returns how many changed."""
    ids = _ids(db, msgspec.structs.replace(f, requiretls=not required), queued=True)
    db.executemany("UPDATE message SET requiretls = ? WHERE id = ?", [(int(required), i) for i in ids])
    db.commit()
    return len(ids)


def set_transport(db: sqlite3.Connection, f: QueueFilter, transport: str | None, routes: Routes | None) -> int:
    """Fixes the transport of the queued recipients of matching queued messages (None: back to
    what the routes choose, evaluated now); returns how many recipients. Send later's recipients
    on this server (LOCAL_TRANSPORT) are delivered here whatever is asked: they never change."""
    count = 0
    for i in _ids(db, f, queued=True):
        if transport is not None:
            count += db.execute(
                "UPDATE recipient SET transport = ?, transport_fixed = 1"
                " WHERE message_id = ? AND +status = 'queued' AND transport != ?",
                (transport, i, LOCAL_TRANSPORT),
            ).rowcount
            continue
        message = db.execute("SELECT account, mail_from FROM message WHERE id = ?", (i,)).fetchone()
        rows = db.execute(
            "SELECT id, domain, attempts FROM recipient WHERE message_id = ? AND +status = 'queued' AND transport != ?",
            (i, LOCAL_TRANSPORT),
        ).fetchall()
        for rid, domain, attempts in rows:
            chosen = (
                DIRECT if routes is None else routes.choose(str(message[0]), str(message[1]), str(domain), attempts)
            )
            db.execute("UPDATE recipient SET transport = ?, transport_fixed = 0 WHERE id = ?", (chosen, rid))
        count += len(rows)
    db.commit()
    return count


def fail(db: sqlite3.Connection, f: QueueFilter, reply: str, now: float | None = None) -> list[int]:
    """Fails the queued recipients of matching queued messages with `reply`, recorded as an
    attempt and an outbox event like a permanent failure from a peer; returns the messages'
    ids (the engine then has the runner send their DSNs and finish them)."""
    now = time.time() if now is None else now
    code = int(reply[:3]) if reply[:3].isdigit() else 550
    has_attempts = db.execute("SELECT 1 FROM sqlite_master WHERE name = 'attempt'").fetchone() is not None
    ids = _ids(db, f, queued=True)
    for i in ids:
        rows = db.execute(
            "SELECT id, address FROM recipient WHERE message_id = ? AND +status = 'queued'", (i,)
        ).fetchall()
        for rid, address in rows:
            db.execute(
                "UPDATE recipient SET status = 'failed', attempts = attempts + 1, next_attempt = ?, last_error = ?"
                " WHERE id = ?",
                (now, reply[:1000], rid),
            )
            if has_attempts:
                db.execute(
                    "INSERT INTO attempt (recipient_id, message_id, time, host, code, reply)"
                    " VALUES (?, ?, ?, '', ?, ?)",
                    (rid, i, now, code, reply[:1000]),
                )
            outbox.record(db, now, "failed", i, str(address), code=code, reply=reply)
    db.commit()
    return ids


def drop(db: sqlite3.Connection, msg_dir: Path, f: QueueFilter) -> int:
    """Removes matching messages that are still queued (rows, history and content)."""
    messages = list_queue(db, f)
    now = time.time()
    for m in messages:
        # "canceled" events for the recipients still queued, in the transaction that deletes them.
        for r in m.recipients:
            if r.status == "queued":
                outbox.record(db, now, "canceled", m.id, r.address, reply="dropped by an administrator")
    _delete(db, msg_dir, [m.id for m in messages])
    return len(messages)


def purge_retired(db: sqlite3.Connection, msg_dir: Path, now: float, f: QueueFilter | None = None) -> int:
    """Forgets retired messages: with no filter those whose keep period ended by `now`
    (what the queue service does hourly), with one every matching retired message."""
    if f is None:
        ids = expired_retired(db, now)
    else:
        ids = [m.id for m in list_retired(db, f)]
    _delete(db, msg_dir, ids)
    return len(ids)


def expired_retired(db: sqlite3.Connection, now: float, limit: int = -1) -> list[int]:
    """Ids of retired messages whose keep period ended by `now` (at most `limit`; -1: all)."""
    rows = db.execute(
        "SELECT id FROM message WHERE retired_until IS NOT NULL AND retired_until <= ? ORDER BY id LIMIT ?",
        (now, limit),
    )
    return [int(r[0]) for r in rows]


def _delete(db: sqlite3.Connection, msg_dir: Path, ids: Sequence[int]) -> None:
    delete_rows(db, ids)
    db.commit()
    # Rows first, content after: a crash in between leaves an orphan file, which the
    # queue removes at start; a row never points at a missing file.
    for i in ids:
        (msg_dir / str(i)).unlink(missing_ok=True)


def attempt_history(db: sqlite3.Connection, message_id: int) -> list[Attempt]:
    """Every attempt recorded for a message (queued or retired), oldest first."""
    if db.execute("SELECT 1 FROM sqlite_master WHERE name = 'attempt'").fetchone() is None:
        return []  # the queue runner creates the table; a queue it never ran has no attempts
    rows = db.execute(
        "SELECT r.address, a.time, a.host, a.code, a.reply, a.transport FROM attempt a"
        " JOIN recipient r ON r.id = a.recipient_id WHERE a.message_id = ? ORDER BY a.id",
        (message_id,),
    ).fetchall()
    return [Attempt(str(r[0]), float(r[1]), str(r[2]), int(r[3]), str(r[4]), str(r[5])) for r in rows]


def delete_rows(db: sqlite3.Connection, ids: Sequence[int], runner_tables: bool | None = None) -> None:
    """Deletes the rows of messages `ids` (message, recipients, attempts, DSN marks) in the
    caller's transaction; the caller commits, then removes content files. `runner_tables`:
    whether the runner's `attempt` and `dsn_sent` tables exist (None: look)."""
    if runner_tables is None:
        has_attempts = db.execute("SELECT 1 FROM sqlite_master WHERE name = 'attempt'").fetchone() is not None
        has_dsn = db.execute("SELECT 1 FROM sqlite_master WHERE name = 'dsn_sent'").fetchone() is not None
    else:
        has_attempts = has_dsn = runner_tables
    for i in ids:
        if has_dsn:
            db.execute(
                "DELETE FROM dsn_sent WHERE recipient_id IN (SELECT id FROM recipient WHERE message_id = ?)", (i,)
            )
        if has_attempts:
            db.execute("DELETE FROM attempt WHERE message_id = ?", (i,))
        db.execute("DELETE FROM recipient WHERE message_id = ?", (i,))
        db.execute("DELETE FROM message WHERE id = ?", (i,))


# -- hold rules -------------------------------------------------------------------------


def add_hold_rule(db: sqlite3.Connection, rule: HoldRule) -> int:
    ensure_schema(db)
    cur = db.execute(
        "INSERT INTO hold_rule (sender_domain, sender, recipient_domain, recipient, account) VALUES (?, ?, ?, ?, ?)",
        (
            rule.sender_domain.lower(),
            rule.sender.lower(),
            rule.recipient_domain.lower(),
            rule.recipient.lower(),
            rule.account,
        ),
    )
    db.commit()
    return int(cur.lastrowid or 0)


def remove_hold_rule(db: sqlite3.Connection, rule_id: int) -> bool:
    ensure_schema(db)
    removed = db.execute("DELETE FROM hold_rule WHERE id = ?", (rule_id,)).rowcount
    db.commit()
    return bool(removed)


def hold_rules(db: sqlite3.Connection, table_exists: bool = False) -> list[HoldRule]:
    # No CREATE here: executescript would commit the caller's open enqueue transaction.
    if not table_exists and db.execute("SELECT 1 FROM sqlite_master WHERE name = 'hold_rule'").fetchone() is None:
        return []
    return [
        HoldRule(int(r[0]), str(r[1]), str(r[2]), str(r[3]), str(r[4]), str(r[5]))
        for r in db.execute(
            "SELECT id, sender_domain, sender, recipient_domain, recipient, account FROM hold_rule ORDER BY id"
        )
    ]


def apply_hold_rules(
    db: sqlite3.Connection,
    message_id: int,
    mail_from: str,
    recipients: Iterable[str],
    account: str = "",
    rules: Sequence[HoldRule] | None = None,
) -> bool:
    """Marks a newly queued message held when a rule matches (no commit: the caller's
    enqueue transaction commits it together with the message rows). `rules`: the hold rules
    when the caller has them (None: read them)."""
    rcpts = list(recipients)
    if any(rule.matches(mail_from, rcpts, account) for rule in (hold_rules(db) if rules is None else rules)):
        db.execute("UPDATE message SET hold = 1 WHERE id = ?", (message_id,))
        return True
    return False
