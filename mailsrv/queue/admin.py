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
from dataclasses import dataclass, field
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS hold_rule (
    id INTEGER PRIMARY KEY,
    sender_domain TEXT NOT NULL DEFAULT '',     -- '' matches any
    sender TEXT NOT NULL DEFAULT '',
    recipient_domain TEXT NOT NULL DEFAULT '',
    recipient TEXT NOT NULL DEFAULT ''
);
"""


def ensure_schema(db: sqlite3.Connection) -> None:
    db.executescript(_SCHEMA)


@dataclass(frozen=True)
class QueueFilter:
    ids: tuple[int, ...] = ()
    sender: str | None = None  # an address, or "@domain" for a whole domain
    recipient: str | None = None  # likewise, for any of the message's recipients
    account: str | None = None
    held: bool | None = None

    def where(self) -> tuple[str, list[object]]:
        clauses: list[str] = []
        args: list[object] = []
        if self.ids:
            clauses.append(f"m.id IN ({','.join('?' * len(self.ids))})")
            args.extend(self.ids)
        if self.sender:
            if self.sender.startswith("@"):
                clauses.append("lower(m.mail_from) LIKE ? ESCAPE '\\'")
                args.append("%@" + _like(self.sender[1:].lower()))
            else:
                clauses.append("lower(m.mail_from) = ?")
                args.append(self.sender.lower())
        if self.recipient:
            if self.recipient.startswith("@"):
                clauses.append("EXISTS (SELECT 1 FROM recipient r2 WHERE r2.message_id = m.id AND r2.domain = ?)")
                args.append(self.recipient[1:].lower())
            else:
                clauses.append(
                    "EXISTS (SELECT 1 FROM recipient r2 WHERE r2.message_id = m.id AND lower(r2.address) = ?)"
                )
                args.append(self.recipient.lower())
        if self.account is not None:
            clauses.append("m.account = ?")
            args.append(self.account)
        if self.held is not None:
            clauses.append("m.hold = ?")
            args.append(int(self.held))
        return (" AND ".join(clauses) or "1"), args


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


@dataclass(frozen=True)
class RecipientInfo:
    address: str
    status: str
    attempts: int
    next_attempt: float
    last_error: str


@dataclass(frozen=True)
class QueuedMessage:
    id: int
    mail_from: str
    account: str
    size: int
    created: float
    held: bool
    recipients: tuple[RecipientInfo, ...] = field(default=())
    retired_until: float | None = None  # None: still queued


def _messages(db: sqlite3.Connection, f: QueueFilter, queued: bool) -> list[QueuedMessage]:
    where, args = f.where()
    state = "IS NULL" if queued else "IS NOT NULL"
    rows = db.execute(
        f"SELECT m.id, m.mail_from, m.account, m.size, m.created, m.hold, m.retired_until FROM message m"
        f" WHERE {where} AND m.retired_until {state} ORDER BY m.id",
        args,
    ).fetchall()
    out = []
    for mid, mail_from, account, size, created, hold, until in rows:
        rcpts = tuple(
            RecipientInfo(str(a), str(s), int(n), float(t), str(e))
            for a, s, n, t, e in db.execute(
                "SELECT address, status, attempts, next_attempt, last_error FROM recipient WHERE message_id = ?"
                " ORDER BY id",
                (mid,),
            )
        )
        out.append(
            QueuedMessage(
                int(mid),
                str(mail_from),
                str(account),
                int(size),
                float(created),
                bool(hold),
                rcpts,
                None if until is None else float(until),
            )
        )
    return out


def list_queue(db: sqlite3.Connection, f: QueueFilter = QueueFilter()) -> list[QueuedMessage]:
    """Messages not finished yet: recipients still to deliver, or a DSN still to hand over."""
    return _messages(db, f, queued=True)


def list_retired(db: sqlite3.Connection, f: QueueFilter = QueueFilter()) -> list[QueuedMessage]:
    """Finished messages kept with their history (their account has a keep period)."""
    return _messages(db, f, queued=False)


def _ids(db: sqlite3.Connection, f: QueueFilter) -> list[int]:
    where, args = f.where()
    return [int(r[0]) for r in db.execute(f"SELECT m.id FROM message m WHERE {where}", args)]


def set_hold(db: sqlite3.Connection, f: QueueFilter, hold: bool) -> int:
    """Holds or releases the matching messages; returns how many changed."""
    ids = _ids(db, QueueFilter(f.ids, f.sender, f.recipient, f.account, not hold))
    db.executemany("UPDATE message SET hold = ? WHERE id = ?", [(int(hold), i) for i in ids])
    db.commit()
    return len(ids)


def retry(db: sqlite3.Connection, f: QueueFilter, now: float | None = None) -> int:
    """Makes the queued recipients of matching messages due now; returns how many."""
    now = time.time() if now is None else now
    ids = _ids(db, f)
    count = 0
    for i in ids:
        count += db.execute(
            "UPDATE recipient SET next_attempt = ? WHERE message_id = ? AND status = 'queued'", (now, i)
        ).rowcount
    db.commit()
    return count


def drop(db: sqlite3.Connection, msg_dir: Path, f: QueueFilter) -> int:
    """Removes matching messages that are still queued (rows, history and content)."""
    ids = [m.id for m in list_queue(db, f)]
    _delete(db, msg_dir, ids)
    return len(ids)


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


@dataclass(frozen=True)
class Attempt:
    """One delivery attempt for one recipient: when, to which host, and the reply."""

    recipient: str
    time: float
    host: str  # "host [ip]" of the last host tried, "" if none was reached
    code: int
    reply: str


def attempt_history(db: sqlite3.Connection, message_id: int) -> list[Attempt]:
    """Every attempt recorded for a message (queued or retired), oldest first."""
    if db.execute("SELECT 1 FROM sqlite_master WHERE name = 'attempt'").fetchone() is None:
        return []  # the queue runner creates the table; a queue it never ran has no attempts
    rows = db.execute(
        "SELECT r.address, a.time, a.host, a.code, a.reply FROM attempt a JOIN recipient r ON r.id = a.recipient_id"
        " WHERE a.message_id = ? ORDER BY a.id",
        (message_id,),
    ).fetchall()
    return [Attempt(str(r[0]), float(r[1]), str(r[2]), int(r[3]), str(r[4])) for r in rows]


def delete_rows(db: sqlite3.Connection, ids: Sequence[int]) -> None:
    """Deletes the rows of messages `ids` (message, recipients, attempts, DSN marks) in the
    caller's transaction; the caller commits, then removes content files."""
    has_attempts = db.execute("SELECT 1 FROM sqlite_master WHERE name = 'attempt'").fetchone() is not None
    has_dsn = db.execute("SELECT 1 FROM sqlite_master WHERE name = 'dsn_sent'").fetchone() is not None
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


@dataclass(frozen=True)
class HoldRule:
    id: int = 0
    sender_domain: str = ""
    sender: str = ""
    recipient_domain: str = ""
    recipient: str = ""

    def matches(self, mail_from: str, recipients: Iterable[str]) -> bool:
        sender = mail_from.lower()
        if self.sender and sender != self.sender.lower():
            return False
        if self.sender_domain and sender.rpartition("@")[2] != self.sender_domain.lower():
            return False
        rcpts = [r.lower() for r in recipients]
        if self.recipient and self.recipient.lower() not in rcpts:
            return False
        if self.recipient_domain and not any(r.rpartition("@")[2] == self.recipient_domain.lower() for r in rcpts):
            return False
        return True


def add_hold_rule(db: sqlite3.Connection, rule: HoldRule) -> int:
    ensure_schema(db)
    cur = db.execute(
        "INSERT INTO hold_rule (sender_domain, sender, recipient_domain, recipient) VALUES (?, ?, ?, ?)",
        (rule.sender_domain.lower(), rule.sender.lower(), rule.recipient_domain.lower(), rule.recipient.lower()),
    )
    db.commit()
    return int(cur.lastrowid or 0)


def remove_hold_rule(db: sqlite3.Connection, rule_id: int) -> bool:
    ensure_schema(db)
    removed = db.execute("DELETE FROM hold_rule WHERE id = ?", (rule_id,)).rowcount
    db.commit()
    return bool(removed)


def hold_rules(db: sqlite3.Connection) -> list[HoldRule]:
    # No CREATE here: executescript would commit the caller's open enqueue transaction.
    if db.execute("SELECT 1 FROM sqlite_master WHERE name = 'hold_rule'").fetchone() is None:
        return []
    return [
        HoldRule(int(r[0]), str(r[1]), str(r[2]), str(r[3]), str(r[4]))
        for r in db.execute("SELECT id, sender_domain, sender, recipient_domain, recipient FROM hold_rule ORDER BY id")
    ]


def apply_hold_rules(db: sqlite3.Connection, message_id: int, mail_from: str, recipients: Iterable[str]) -> bool:
    """Marks a newly queued message held when a rule matches (no commit: the caller's
    enqueue transaction commits it together with the message rows)."""
    rcpts = list(recipients)
    if any(rule.matches(mail_from, rcpts) for rule in hold_rules(db)):
        db.execute("UPDATE message SET hold = 1 WHERE id = ?", (message_id,))
        return True
    return False
