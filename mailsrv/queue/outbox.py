"""The queue's event outbox: one row per delivery outcome, written in the same transaction as
the change it reports (the recipient's new status, an admin's drop), so a reader of the outbox
(mailsrv/ops/events.py, then the webhook queue) never sees an event without its change or
misses one whose change was committed, across restarts and crashes.

Events from outside the queue (an incoming DSN about a queued message, a delivery to an
account with an incoming webhook) are written with `record_event`, committed before the
delivery that caused them is acknowledged to the sending server.

Rows are facts in the queue's own words; ops turns them into typed events. `seq` only grows
(AUTOINCREMENT: never reused after rows are acknowledged and deleted), so it is the reader's
cursor. A row copies what the webhooks need of its message (fromid, Message-ID, subject,
Extra): the message may be gone by the time the event is read.
"""

from __future__ import annotations

import sqlite3

import msgspec

from mailsrv.queue.interfaces import QueueEvent

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    time REAL NOT NULL,
    kind TEXT NOT NULL,               -- delivered, suppressed, delayed, failed, ..., incoming
    message_id INTEGER NOT NULL,      -- the queue id (0: none)
    account TEXT NOT NULL,            -- the submitting account ("" for system messages)
    mail_from TEXT NOT NULL,
    recipient TEXT NOT NULL,
    host TEXT NOT NULL DEFAULT '',    -- "host [ip]" that answered, "" if none
    code INTEGER NOT NULL DEFAULT 0,  -- the SMTP reply code, 0 if none
    reply TEXT NOT NULL DEFAULT ''
);
"""

# Columns added after the first release, applied by the queue's migration.
ADDED_COLUMNS = (
    ("outbox", "dsn", "INTEGER NOT NULL DEFAULT 0"),
    ("outbox", "suppressing", "INTEGER NOT NULL DEFAULT 0"),
    ("outbox", "fromid", "TEXT NOT NULL DEFAULT ''"),
    ("outbox", "header_message_id", "TEXT NOT NULL DEFAULT ''"),
    ("outbox", "subject", "TEXT NOT NULL DEFAULT ''"),
    ("outbox", "extra", "TEXT NOT NULL DEFAULT ''"),  # JSON object, '' for none
    ("outbox", "payload", "BLOB NOT NULL DEFAULT x''"),
)

_encoder = msgspec.json.Encoder()
_extra_decoder = msgspec.json.Decoder(dict[str, str])


def encode_extra(extra: dict[str, str]) -> str:
    return _encoder.encode(extra).decode() if extra else ""


def decode_extra(text: str) -> dict[str, str]:
    return _extra_decoder.decode(text) if text else {}


def record(
    db: sqlite3.Connection,
    time: float,
    kind: str,
    message_id: int,
    recipient: str,
    host: str = "",
    code: int = 0,
    reply: str = "",
    suppressing: bool = False,
) -> None:
    """Adds an event for `recipient` of queued message `message_id` in the caller's open
    transaction (the caller commits it together with the change)."""
    db.execute(
        "INSERT INTO outbox (time, kind, message_id, account, mail_from, recipient, host, code, reply, suppressing,"
        " fromid, header_message_id, subject, extra)"
        " SELECT ?, ?, id, account, mail_from, ?, ?, ?, ?, ?, fromid, header_message_id, subject, extra"
        " FROM message WHERE id = ?",
        (time, kind, recipient, host, code, reply[:1000], int(suppressing), message_id),
    )


def record_event(db: sqlite3.Connection, e: QueueEvent) -> int:
    """Adds an event given whole (an incoming DSN or delivery) in the caller's transaction;
    its cursor. Empty meta fields come from the queued message `e.message_id`, if any."""
    meta = None
    if e.message_id:
        meta = db.execute(
            "SELECT fromid, header_message_id, subject, extra FROM message WHERE id = ?", (e.message_id,)
        ).fetchone()
    fromid, header_message_id, subject, extra = (str(v) for v in meta) if meta else ("", "", "", "")
    cur = db.execute(
        "INSERT INTO outbox (time, kind, message_id, account, mail_from, recipient, host, code, reply, dsn,"
        " suppressing, fromid, header_message_id, subject, extra, payload)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            e.time,
            e.kind,
            e.message_id,
            e.account,
            e.mail_from,
            e.recipient,
            e.host,
            e.code,
            e.reply[:1000],
            int(e.dsn),
            int(e.suppressing),
            e.fromid or fromid,
            e.header_message_id or header_message_id,
            e.subject or subject,
            encode_extra(e.extra) if e.extra else extra,
            e.payload,
        ),
    )
    return int(cur.lastrowid or 0)


_COLUMNS = (
    "seq, time, kind, message_id, account, mail_from, recipient, host, code, reply, dsn, suppressing,"
    " fromid, header_message_id, subject, extra, payload"
)


def _event(r: tuple[object, ...]) -> QueueEvent:
    return QueueEvent(
        seq=int(r[0]),  # type: ignore[call-overload]
        time=float(r[1]),  # type: ignore[arg-type]
        kind=str(r[2]),  # type: ignore[arg-type]
        message_id=int(r[3]),  # type: ignore[call-overload]
        account=str(r[4]),
        mail_from=str(r[5]),
        recipient=str(r[6]),
        host=str(r[7]),
        code=int(r[8]),  # type: ignore[call-overload]
        reply=str(r[9]),
        dsn=bool(r[10]),
        suppressing=bool(r[11]),
        fromid=str(r[12]),
        header_message_id=str(r[13]),
        subject=str(r[14]),
        extra=decode_extra(str(r[15])),
        payload=bytes(r[16]) if r[16] else b"",  # type: ignore[call-overload]
    )


MAX_BATCH_BYTES = 16 * 1024 * 1024  # of payloads per read: incoming webhook bodies can be megabytes each


def after(db: sqlite3.Connection, seq: int, limit: int) -> list[QueueEvent]:
    """Up to `limit` events after `seq`, fewer when their payloads pass MAX_BATCH_BYTES (at
    least one, whatever its size)."""
    rows = db.execute(
        f"SELECT {_COLUMNS} FROM (SELECT {_COLUMNS},"
        " SUM(length(payload)) OVER (ORDER BY seq ROWS UNBOUNDED PRECEDING) AS total"
        " FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?) WHERE total - length(payload) < ? ORDER BY seq",
        (seq, limit, MAX_BATCH_BYTES),
    ).fetchall()
    return [_event(r) for r in rows]


def acknowledge(db: sqlite3.Connection, upto: int) -> int:
    """Forgets events up to `upto` (the reader has handled them); returns how many."""
    count = db.execute("DELETE FROM outbox WHERE seq <= ?", (upto,)).rowcount
    db.commit()
    return int(count)
