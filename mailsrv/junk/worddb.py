"""The per-account word database: token counts per class, message totals, what was trained, sender reputation.

SQLite in WAL mode. Invariants:
- ``train`` then ``untrain`` of the same message restores every count exactly (the trained table remembers the
  class and the tokenisation a message was trained with; a token whose counts both reach 0 is deleted).
- A message is trained at most once: training it again as the other class first untrains the old class.
- Every change is one transaction: counts, totals and the trained row never disagree after a crash.
Blocking: callers on the reactor run these methods in a thread (``mailsrv.junk.service``).

Concurrency: one writer (the caller serialises writes and the reads they depend on) and any number of readers:
``totals``, ``counts`` and ``sender_counts`` read through a connection of the calling thread (WAL readers do not
wait for each other or for the writer), so classifications of one account run in parallel. The totals are also
kept in memory by the writer (this object is the database's only writer), so "nothing trained yet" is known
without a query (``cached_totals``).
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterable
from pathlib import Path

HAM = "ham"
SPAM = "spam"
_COLUMN = {HAM: "ham", SPAM: "spam"}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS words (token TEXT PRIMARY KEY, ham INTEGER NOT NULL, spam INTEGER NOT NULL)
    WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS totals (id INTEGER PRIMARY KEY CHECK (id = 1), ham INTEGER NOT NULL,
    spam INTEGER NOT NULL);
INSERT OR IGNORE INTO totals (id, ham, spam) VALUES (1, 0, 0);
CREATE TABLE IF NOT EXISTS trained (message_key TEXT PRIMARY KEY, class TEXT NOT NULL, ngrams TEXT NOT NULL,
    senders TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS senders (sender TEXT PRIMARY KEY, ham INTEGER NOT NULL, spam INTEGER NOT NULL)
    WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS settings (id INTEGER PRIMARY KEY CHECK (id = 1), json TEXT NOT NULL);
"""


class WordDB:
    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            # The database reveals what the account's mail says: private to the service user.
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            os.close(fd)
        self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(_SCHEMA)
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._totals: tuple[int, int] | None = None
        self._totals_lock = threading.Lock()
        self._writes = 0  # changes of the totals so far: a read older than the last change is not cached

    def close(self) -> None:
        with self._readers_lock:
            readers, self._readers = self._readers, []
        for reader in readers:
            reader.close()
        self.db.close()

    def _reader(self) -> sqlite3.Connection:
        """The calling thread's read connection (an in-memory database has only the writer's)."""
        if self.path == ":memory:":
            return self.db
        reader: sqlite3.Connection | None = getattr(self._local, "db", None)
        if reader is None:
            reader = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._local.db = reader
            with self._readers_lock:
                self._readers.append(reader)
        return reader

    @property
    def cached_totals(self) -> tuple[int, int] | None:
        """(ham, spam) messages trained, as last read or written here; None before the first read."""
        return self._totals

    def totals(self) -> tuple[int, int]:
        cached = self._totals
        if cached is not None:
            return cached
        writes = self._writes
        row = self._reader().execute("SELECT ham, spam FROM totals WHERE id = 1").fetchone()
        totals = int(row[0]), int(row[1])
        with self._totals_lock:
            if self._writes == writes:  # no change was committed meanwhile: this read is current
                self._totals = totals
        return totals

    def _set_totals(self, totals: tuple[int, int]) -> None:
        """After the writer's commit: a reader never sees totals the database does not have yet."""
        with self._totals_lock:
            self._writes += 1
            self._totals = totals

    def counts(self, tokens: Iterable[str]) -> dict[str, tuple[int, int]]:
        """(ham, spam) of each given token that has been seen (one query: the tokens travel as a JSON array)."""
        rows = self._reader().execute(
            "SELECT w.token, w.ham, w.spam FROM json_each(?) AS t JOIN words AS w ON w.token = t.value",
            (json.dumps(list(tokens)),),
        )
        return {token: (int(ham), int(spam)) for token, ham, spam in rows}

    def trained_class(self, message_key: str) -> tuple[str, str, str] | None:
        """(class, ngrams, senders) a message was trained with, or None."""
        row = self.db.execute(
            "SELECT class, ngrams, senders FROM trained WHERE message_key = ?", (message_key,)
        ).fetchone()
        return None if row is None else (str(row[0]), str(row[1]), str(row[2]))

    def apply(
        self,
        message_key: str,
        tokens: Iterable[str],
        senders: Iterable[str],
        klass: str,
        delta: int,
        ngrams: str,
    ) -> None:
        """Add (delta=+1, recording the message) or remove (delta=-1, forgetting it) one message's tokens."""
        column = _COLUMN[klass]
        token_rows = [(t, delta) for t in tokens]
        sender_list = sorted(set(senders))
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            self._add(self.db, "words", "token", column, token_rows)
            self._add(self.db, "senders", "sender", column, [(s, delta) for s in sender_list])
            self.db.execute(f"UPDATE totals SET {column} = {column} + ? WHERE id = 1", (delta,))
            if delta > 0:
                self.db.execute(
                    "INSERT INTO trained (message_key, class, ngrams, senders) VALUES (?, ?, ?, ?)",
                    (message_key, klass, ngrams, "\n".join(sender_list)),
                )
            else:
                self.db.execute("DELETE FROM trained WHERE message_key = ?", (message_key,))
            row = self.db.execute("SELECT ham, spam FROM totals WHERE id = 1").fetchone()
        self._set_totals((int(row[0]), int(row[1])))

    @staticmethod
    def _add(db: sqlite3.Connection, table: str, key: str, column: str, rows: list[tuple[str, int]]) -> None:
        if not rows:
            return
        if rows[0][1] > 0:
            # One upsert per token: a new token starts at the delta, a known one adds it.
            db.executemany(
                f"INSERT INTO {table} ({key}, ham, spam) VALUES (?, ?, ?) "
                f"ON CONFLICT({key}) DO UPDATE SET {column} = {column} + excluded.{column}",
                [(k, d if column == "ham" else 0, d if column == "spam" else 0) for k, d in rows],
            )
            return
        db.executemany(f"UPDATE {table} SET {column} = max({column} + ?, 0) WHERE {key} = ?", [(d, k) for k, d in rows])
        db.executemany(f"DELETE FROM {table} WHERE {key} = ? AND ham = 0 AND spam = 0", [(k,) for k, _ in rows])

    def sender_counts(self, senders: Iterable[str]) -> dict[str, tuple[int, int]]:
        result: dict[str, tuple[int, int]] = {}
        wanted = set(senders)
        reader = self._reader() if wanted else self.db
        for sender in wanted:
            row = reader.execute("SELECT ham, spam FROM senders WHERE sender = ?", (sender,)).fetchone()
            if row is not None:
                result[sender] = (int(row[0]), int(row[1]))
        return result

    def prune_singletons(self) -> int:
        """Deletes tokens seen in one trained message only; returns how many. Such tokens are not evidence while
        `rare_word_cutoff` is 2 or more, so verdicts do not change; a pruned token seen again counts from 1."""
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            cursor = self.db.execute("DELETE FROM words WHERE ham + spam <= 1")
        return int(cursor.rowcount)

    def word_count(self) -> int:
        return int(self.db.execute("SELECT count(*) FROM words").fetchone()[0])

    def reset(self) -> None:
        """Forget everything learned (settings stay)."""
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            for table in ("words", "trained", "senders"):
                self.db.execute(f"DELETE FROM {table}")
            self.db.execute("UPDATE totals SET ham = 0, spam = 0 WHERE id = 1")
        self._set_totals((0, 0))

    def load_settings_json(self) -> str | None:
        row = self._reader().execute("SELECT json FROM settings WHERE id = 1").fetchone()
        return None if row is None else str(row[0])

    def save_settings_json(self, text: str) -> None:
        with self.db:
            self.db.execute(
                "INSERT INTO settings (id, json) VALUES (1, ?) ON CONFLICT(id) DO UPDATE SET json = ?", (text, text)
            )
