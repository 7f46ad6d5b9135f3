"""The queue's event outbox: one row per delivery outcome, written in the same transaction as
the change it reports (the recipient's new status, an admin's drop), so a reader of the outbox
(mailsrv/ops/events.py, then webhooks) never sees an event without its change or misses one
whose change was committed, across restarts and crashes.

Rows are facts in the queue's own words; ops turns them into typed events. `seq` only grows
(AUTOINCREMENT: never reused after rows are acknowledged and deleted), so it is the reader's
cursor.
"""

from __future__ import annotations

import sqlite3

from mailsrv.queue.interfaces import QueueEvent

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    time REAL NOT NULL,
    kind TEXT NOT NULL,               -- delivered, delayed, failed, canceled
    message_id INTEGER NOT NULL,      -- the queue id
    account TEXT NOT NULL,            -- the submitting account ("" for system messages)
    mail_from TEXT NOT NULL,
    recipient TEXT NOT NULL,
    host TEXT NOT NULL DEFAULT '',    -- "host [ip]" that answered, "" if none
    code INTEGER NOT NULL DEFAULT 0,  -- the SMTP reply code, 0 if none
    reply TEXT NOT NULL DEFAULT ''
);
"""


def record(
    db: sqlite3.Connection,
    time: float,
    kind: str,
    message_id: int,
    recipient: str,
    host: str = "",
    code: int = 0,
    reply: str = "",
) -> None:
    """Adds an event for `recipient` of queued message `message_id` in the caller's open
    transaction (the caller commits it together with the change)."""
    db.execute(
        "INSERT INTO outbox (time, kind, message_id, account, mail_from, recipient, host, code, reply)"
        " SELECT ?, ?, id, account, mail_from, ?, ?, ?, ? FROM message WHERE id = ?",
        (time, kind, recipient, host, code, reply[:1000], message_id),
    )


def after(db: sqlite3.Connection, seq: int, limit: int) -> list[QueueEvent]:
    rows = db.execute(
        "SELECT seq, time, kind, message_id, account, mail_from, recipient, host, code, reply FROM outbox"
        " WHERE seq > ? ORDER BY seq LIMIT ?",
        (seq, limit),
    ).fetchall()
    return [QueueEvent(*r) for r in rows]


def acknowledge(db: sqlite3.Connection, upto: int) -> int:
    """Forgets events up to `upto` (the reader has handled them); returns how many."""
    count = db.execute("DELETE FROM outbox WHERE seq <= ?", (upto,)).rowcount
    db.commit()
    return int(count)
