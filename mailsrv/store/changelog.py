"""The account's change log: one row per change, written in the change's own transaction.

Rows hold the msgspec JSON of `interfaces.LoggedChange`. A change's sequence number is one
more than the log's highest, taken in the same transaction, so they follow commit order and
never repeat, also after the oldest rows are trimmed (trimming keeps the newest;
`meta.change_trimmed` is the highest trimmed seq: a consumer behind it must reload). Indexes
of before kept the last seq in the `meta` row `change_seq`, which still counts where it is
higher. The log keeps the latest `KEEP` changes.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable

import msgspec

from mailsrv.store.interfaces import ChangeFeed, ChangeKind, InvalidRequest, LoggedChange, MailboxCounts

KEEP = 20_000  # entries kept: a day of a busy account, minutes of a hostile one
_TRIM_EVERY = 256  # trim at every 256th change, so one trim deletes a batch
MAX_LIMIT = 10_000

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(LoggedChange).decode


_LAST_SEQ = (
    "SELECT MAX(COALESCE((SELECT MAX(seq) FROM change_log), 0),"
    " COALESCE((SELECT value FROM meta WHERE key = 'change_seq'), 0))"
)


def _meta(db: sqlite3.Connection, key: str) -> int:
    row = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return int(row[0]) if row else 0


def _counts(db: sqlite3.Connection, mailbox_ids: Iterable[int]) -> tuple[MailboxCounts, ...]:
    out = []
    for mailbox_id in dict.fromkeys(mailbox_ids):  # once each, in order
        row = db.execute(
            "SELECT name, messages, unseen, size, highest_modseq FROM mailbox WHERE id = ?", (mailbox_id,)
        ).fetchone()
        if row is not None:
            out.append(MailboxCounts(mailbox_id, str(row[0]), int(row[1]), int(row[2]), int(row[3]), int(row[4])))
    return tuple(out)


def log_change(
    db: sqlite3.Connection,
    kind: ChangeKind,
    mailbox_id: int = 0,
    uids: Iterable[int] = (),
    modseq: int = 0,
    to_mailbox_id: int = 0,
    to_uids: Iterable[int] = (),
    names: Iterable[str] = (),
    counts: tuple[MailboxCounts, ...] | None = None,
) -> int:
    """Adds the entry (with the counters of the mailboxes involved, as they are now in this
    transaction: `counts` when the caller has them, else read here) and returns its seq.
    Call it inside the change's transaction, after the counters were updated."""
    seq = last_change(db) + 1
    entry = LoggedChange(
        seq=seq,
        kind=kind,
        time=int(time.time()),
        mailbox_id=mailbox_id,
        uids=tuple(uids),
        modseq=modseq,
        to_mailbox_id=to_mailbox_id,
        to_uids=tuple(to_uids),
        names=tuple(names),
        counts=counts if counts is not None else _counts(db, [i for i in (mailbox_id, to_mailbox_id) if i]),
    )
    db.execute("INSERT INTO change_log (seq, data) VALUES (?, ?)", (seq, _encode(entry).decode()))
    if seq % _TRIM_EVERY == 0 and seq > KEEP:
        db.execute("DELETE FROM change_log WHERE seq <= ?", (seq - KEEP,))
        db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('change_trimmed', ?)", (seq - KEEP,))
    return seq


def last_change(db: sqlite3.Connection) -> int:
    """The newest seq: the log's highest (trimming keeps the newest entries), or the one an
    index of before kept in `meta.change_seq`. One read, cheaper than an upsert returning
    the next value, and the meta page is not rewritten by every commit."""
    return int(db.execute(_LAST_SEQ).fetchone()[0])


def changes_after(db: sqlite3.Connection, seq: int, limit: int) -> ChangeFeed:
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidRequest(f"a change feed page has 1 to {MAX_LIMIT} entries")
    last = last_change(db)
    if seq < _meta(db, "change_trimmed") or seq > last or seq < 0:
        return ChangeFeed((), last, more=False, reload=True)
    rows = db.execute("SELECT data FROM change_log WHERE seq > ? ORDER BY seq LIMIT ?", (seq, limit)).fetchall()
    changes = tuple(_decode(str(r[0])) for r in rows)
    next_seq = changes[-1].seq if changes else seq
    return ChangeFeed(changes, next_seq, more=next_seq < last, reload=False)
