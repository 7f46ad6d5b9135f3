"""Bringing an account's index up to the current schema version off the reactor thread.

`open_index` adds new columns and tables at once (cheap); filling them (summaries, sort keys
and thread ids of messages stored before version 2) reads every message file, seconds for a
large account. `migrate(index, files)` does that on its own connection, in a pool thread:
the registry starts it when an account with an old index is first opened and answers
StoreUnavailable (retry later: SMTP 451, IMAP NO [UNAVAILABLE]) for that account until it
has finished, so the store is never used half migrated and the reactor never waits for it.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

from twisted.logger import Logger

from mailsrv.message.part import Part
from mailsrv.store.listing import summary_columns
from mailsrv.store.schema import SCHEMA_VERSION, open_index, set_version
from mailsrv.store.summary import summarize

log = Logger()

# Bytes of a message file read to fill in the summary of a message stored before version 2.
FILL_PREFIX = 256 * 1024


def _fsync(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def index_version(index: Path) -> int:
    """The schema version an existing index is fully at (SCHEMA_VERSION for a new one)."""
    if not index.exists():
        return SCHEMA_VERSION
    db = sqlite3.connect(index)
    try:
        row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    except sqlite3.OperationalError:
        return SCHEMA_VERSION  # no meta table: new, or not an index (the open reports that)
    finally:
        db.close()
    return int(row[0]) if row else SCHEMA_VERSION


def fill_summaries(db: sqlite3.Connection, path_of: Callable[[int], Path]) -> int:
    """Migration to version 2: summaries and thread ids of the existing messages, in the
    order they were stored (so that threads form as they would have at delivery). Returns
    how many messages it filled in; commits."""
    todo = db.execute("SELECT id, internal_date, part_tree FROM message WHERE summary = '' ORDER BY id").fetchall()
    if not todo:
        return 0
    try:
        for message_id, internal_date, tree_json in todo:
            tree = Part.from_json(str(tree_json))
            try:
                with open(path_of(int(message_id)), "rb") as f:
                    raw = f.read(FILL_PREFIX)
            except OSError:
                raw = b""  # the envelope in the part tree still gives most fields
            summary = summarize(raw, tree, int(internal_date))
            db.execute(
                "UPDATE message SET summary = ?, sent_date = ?, sort_from = ?, sort_subject = ?, thread_id = ?"
                " WHERE id = ?",
                (*summary_columns(db, summary, int(message_id)), message_id),
            )
        db.commit()
    except BaseException:
        db.rollback()
        raise
    return len(todo)


def migrate(account: str, root: Path) -> None:
    """Brings the index under `root` to SCHEMA_VERSION (blocking: a pool thread), durably."""
    from mailsrv.store.files import message_path

    index = root / "index.db"
    db, found = open_index(index)
    try:
        if found >= SCHEMA_VERSION:
            return
        started = time.monotonic()
        log.info(
            "migrating the index of {account} from version {old} to {new}",
            account=account,
            old=found,
            new=SCHEMA_VERSION,
        )
        filled = fill_summaries(db, lambda message_id: message_path(root / "msg", message_id))
        if filled:
            log.info("filled in summaries of {n} messages of {account}", n=filled, account=account)
        set_version(db)
        _fsync(index.with_name(index.name + "-wal"))  # durable before the store is used
        log.info("index of {account} migrated in {seconds:.1f}s", account=account, seconds=time.monotonic() - started)
    finally:
        db.close()
