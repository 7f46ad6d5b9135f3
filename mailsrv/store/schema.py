"""The SQLite schema of an account's index and how the database is opened.

Versions: 1 had mailboxes, messages (flags, part tree) and expunge records. 2 adds the summary
of every message and its sort keys (`summary.py`) and thread ids (`thread.py`). 3 adds the
account's change log (`changelog.py`; empty at first: a consumer starts from seq 0).
The `account_data` table (webmail settings, remembered answers) and the `delivered` table
(delivery ids of recent appends, for idempotent deliveries) are new in any version and need
no filling, so they change no version number.
`open_index` brings an older index up to date in place: it adds the columns and tables, and
reports the version it found so that the store fills the new columns
(`SQLiteAccountStore` reads the message files for that) before it sets the new version.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

SCHEMA_VERSION = 3

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS mailbox (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    special_use TEXT,
    uidvalidity INTEGER NOT NULL,
    uidnext INTEGER NOT NULL,
    highest_modseq INTEGER NOT NULL,
    messages INTEGER NOT NULL DEFAULT 0,
    unseen INTEGER NOT NULL DEFAULT 0,
    deleted INTEGER NOT NULL DEFAULT 0,
    size INTEGER NOT NULL DEFAULT 0,
    deleted_size INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS subscription (name TEXT PRIMARY KEY) WITHOUT ROWID;
-- id is also the message file's name; each copy of a message has its own id and file (link).
CREATE TABLE IF NOT EXISTS message (
    id INTEGER PRIMARY KEY,
    mailbox_id INTEGER NOT NULL REFERENCES mailbox(id),
    uid INTEGER NOT NULL,
    modseq INTEGER NOT NULL,
    flags TEXT NOT NULL,
    size INTEGER NOT NULL,
    internal_date INTEGER NOT NULL,
    tz_offset INTEGER NOT NULL,
    part_tree TEXT NOT NULL,
    -- Version 2 (see _ADDED_COLUMNS): the msgspec JSON of interfaces.Summary ('' until filled
    -- in by a migration) and the sort keys of list_messages.
    summary TEXT NOT NULL DEFAULT '',
    sent_date INTEGER NOT NULL DEFAULT 0,
    sort_from TEXT NOT NULL DEFAULT '',
    sort_subject TEXT NOT NULL DEFAULT '',
    thread_id INTEGER NOT NULL DEFAULT 0,
    UNIQUE (mailbox_id, uid)
);
CREATE INDEX IF NOT EXISTS message_modseq ON message (mailbox_id, modseq);
-- Expunge records for QRESYNC VANISHED (RFC 7162 §3.2.5.1).
CREATE TABLE IF NOT EXISTS expunged (
    mailbox_id INTEGER NOT NULL,
    uid INTEGER NOT NULL,
    modseq INTEGER NOT NULL,
    PRIMARY KEY (mailbox_id, uid)
) WITHOUT ROWID;
-- Every Message-ID a message named (own, In-Reply-To, References) -> its thread (thread.py).
CREATE TABLE IF NOT EXISTS thread_ref (msgid TEXT PRIMARY KEY, thread_id INTEGER NOT NULL) WITHOUT ROWID;
-- Version 3: the account's change log (changelog.py); data is LoggedChange as JSON.
CREATE TABLE IF NOT EXISTS change_log (seq INTEGER PRIMARY KEY, data TEXT NOT NULL);
-- Small per-account application state (AccountStore.get_data/put_data): not mail.
CREATE TABLE IF NOT EXISTS account_data (
    namespace TEXT NOT NULL,
    key TEXT NOT NULL,
    value BLOB NOT NULL,
    PRIMARY KEY (namespace, key)
) WITHOUT ROWID;
-- The `delivery_id` of recent appends and what they stored (a retried delivery
-- returns the first result); rows older than interfaces.DELIVERY_ID_DAYS are trimmed.
CREATE TABLE IF NOT EXISTS delivered (
    delivery_id TEXT PRIMARY KEY,
    mailbox_id INTEGER NOT NULL,
    uidvalidity INTEGER NOT NULL,
    uid INTEGER NOT NULL,
    modseq INTEGER NOT NULL,
    time INTEGER NOT NULL
) WITHOUT ROWID;
-- For trimming by time. (time, uid), not (time) alone: the rows of one second then follow
-- each other (UIDs grow), where (time) ordered them by delivery id (a hash) inside the second,
-- a page rewritten per delivery. Indexes of before had delivered_time (time): replaced.
DROP INDEX IF EXISTS delivered_time;
CREATE INDEX IF NOT EXISTS delivered_by_time ON delivered (time, uid);
-- Casefolded base subject -> the latest thread with it, for replies without references.
CREATE TABLE IF NOT EXISTS thread_subject (
    base TEXT PRIMARY KEY,
    thread_id INTEGER NOT NULL,
    date INTEGER NOT NULL
) WITHOUT ROWID;
"""

# Columns added after version 1: (table, column, definition) for ALTER TABLE.
_ADDED_COLUMNS = (
    ("message", "summary", "TEXT NOT NULL DEFAULT ''"),
    ("message", "sent_date", "INTEGER NOT NULL DEFAULT 0"),
    ("message", "sort_from", "TEXT NOT NULL DEFAULT ''"),
    ("message", "sort_subject", "TEXT NOT NULL DEFAULT ''"),
    ("message", "thread_id", "INTEGER NOT NULL DEFAULT 0"),
    # The highest UID given out as \Recent (account.claim_recent); NULL: not known yet.
    ("mailbox", "recent_floor", "INTEGER"),
)

# On columns that older versions lack, so created after _ADDED_COLUMNS. One index per order
# of list_messages: a page is a range scan from its anchor, whatever the mailbox size.
_INDEXES = """
CREATE INDEX IF NOT EXISTS message_by_date ON message (mailbox_id, sent_date, uid);
CREATE INDEX IF NOT EXISTS message_by_arrival ON message (mailbox_id, internal_date, uid);
CREATE INDEX IF NOT EXISTS message_by_from ON message (mailbox_id, sort_from, uid);
CREATE INDEX IF NOT EXISTS message_by_subject ON message (mailbox_id, sort_subject, uid);
CREATE INDEX IF NOT EXISTS message_by_size ON message (mailbox_id, size, uid);
CREATE INDEX IF NOT EXISTS message_thread ON message (thread_id);
"""


def open_index(path: Path) -> tuple[sqlite3.Connection, int]:
    """Opens (creating) an account index; returns it and the schema version it had (the
    current one for a new index). A commit only writes the WAL (synchronous=NORMAL) and
    never checkpoints on the committing thread: `walsync.IndexSync` makes commits durable
    and checkpoints, in the fsync pool."""
    db = sqlite3.connect(path, isolation_level="DEFERRED", check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("PRAGMA wal_autocheckpoint=0")
    db.execute("PRAGMA foreign_keys=ON")
    # Statement journals in memory: on disk, every write transaction created, opened and
    # unlinked a temporary file (8 syscalls per commit on the reactor thread).
    db.execute("PRAGMA temp_store=MEMORY")
    db.executescript(_SCHEMA)
    db.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)", (SCHEMA_VERSION,))
    found = int(db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0])
    for table, column, definition in _ADDED_COLUMNS:
        columns = {str(r[1]) for r in db.execute(f"PRAGMA table_info({table})")}
        if column not in columns:
            db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {definition}")
    db.executescript(_INDEXES)
    db.commit()
    return db, found


def set_version(db: sqlite3.Connection) -> None:
    """Records that the index is fully at SCHEMA_VERSION (after the store filled new columns)."""
    db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (SCHEMA_VERSION,))
    db.commit()
