"""The SQLite schema of an account's index and how the database is opened."""

from __future__ import annotations

import sqlite3
from pathlib import Path

SCHEMA_VERSION = 1

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
"""


def open_index(path: Path) -> sqlite3.Connection:
    """Opens (creating) an account index. synchronous=FULL makes every commit durable when
    it returns, which the append path relies on before it answers."""
    db = sqlite3.connect(path, isolation_level="DEFERRED", check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("PRAGMA foreign_keys=ON")
    db.executescript(_SCHEMA)
    db.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)", (SCHEMA_VERSION,))
    db.commit()
    return db
