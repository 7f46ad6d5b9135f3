"""Credential generations in auth.db (mailsrv/auth/credentials.py): bumped by a password change,
a removal and bump_generation; read from memory until another connection (another process,
such as the CLI) commits, which PRAGMA data_version reveals. And the web session store's
migration of sessions made before generations existed."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from mailsrv.auth.credentials import ADMIN_PASSWORD_GENERATION, CredentialStore
from mailsrv.auth.passwords import PasswordHasher
from mailsrv.web.sessions import SessionStore


def _store(path: Path) -> CredentialStore:
    return CredentialStore(path, hasher=PasswordHasher.for_tests())


def test_changes_bump_the_generation(tmp_path: Path) -> None:
    store = _store(tmp_path)
    try:
        assert store.generation("alice") == 0
        store.set_password_blocking("alice", "first-password")
        assert store.generation("alice") == 1
        store.set_password_blocking("alice", "second-password")
        store.bump_generation("alice")
        assert store.generation("alice") == 3 and store.generation("bob") == 0
        store.remove_account("alice")
        assert store.generation("alice") == 4  # a new account of that name starts above the old sessions
        store.bump_generation(ADMIN_PASSWORD_GENERATION)
        assert store.generation(ADMIN_PASSWORD_GENERATION) == 1
    finally:
        store.close()


def test_another_connection_is_seen_without_a_query_per_call(tmp_path: Path) -> None:
    daemon, cli = _store(tmp_path), _store(tmp_path)
    try:
        assert daemon.generation("alice") == 0
        queries: list[str] = []
        daemon._db.set_trace_callback(queries.append)
        for _ in range(3):
            assert daemon.generation("alice") == 0
        assert all(q.startswith("PRAGMA data_version") for q in queries), queries  # the cache answers
        cli.set_password_blocking("alice", "changed-elsewhere")  # another connection commits
        assert daemon.generation("alice") == 1
        daemon._db.set_trace_callback(None)
        # What a session check costs when nothing changed: one PRAGMA and a dict lookup.
        start = time.process_time()
        for _ in range(10_000):
            daemon.generation("alice")
        per_call = (time.process_time() - start) / 10_000
        assert per_call < 200e-6, per_call
    finally:
        daemon.close()
        cli.close()


def test_sessions_from_before_generations_are_kept_until_a_change(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "websessions.db")
    db.executescript(
        "CREATE TABLE session (token_hash BLOB PRIMARY KEY, kind TEXT NOT NULL, principal TEXT NOT NULL,"
        " csrf_hash BLOB NOT NULL, created REAL NOT NULL, last_used REAL NOT NULL) WITHOUT ROWID;"
    )
    db.close()
    sessions = SessionStore(tmp_path, lambda: 1000.0, 3600, 86400)
    try:
        token, _, _ = sessions.create("account", "alice")
        found = sessions.lookup(token)
        assert found is not None and found.generation == 0
        sessions.set_generation(found, 5)
        again = sessions.lookup(token)
        assert again is not None and again.generation == 5
    finally:
        sessions.close()
