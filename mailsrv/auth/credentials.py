"""The credential database, `data/auth.db` (SQLite).

Per account it holds what `mailsrv.auth.passwords.derive_credentials` produces (argon2 hash,
SCRAM-SHA-1/256 secrets, CRAM-MD5 states), the TLS public keys registered for client
certificate login and the hashes of its webapi tokens (mailsrv/auth/apitokens.py).

Invariants:
- The plaintext password is never stored, and never logged.
- Derivation (argon2, PBKDF2) runs in the reactor's thread pool; the SQLite connection is
  used only from the thread that opened it (the reactor thread in the daemon, the caller's
  thread in the CLI), and writes are single transactions: a password change replaces the
  hash and every derived secret at once, so mechanisms never disagree about a password.
- A TLS public key is identified by its fingerprint, the SHA-256 of its DER
  SubjectPublicKeyInfo (`mailsrv.tlsutil.spki_fingerprint`), unique across all accounts.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives import serialization
from twisted.internet.defer import Deferred, DeferredSemaphore
from twisted.internet.threads import deferToThreadPool

from mailsrv.auth.apitokens import ApiTokenTable
from mailsrv.auth.interfaces import ScramSecret
from mailsrv.auth.passwords import (
    DEFAULT_SCRAM_ITERATIONS,
    SCRAM_HASHES,
    DerivedCredentials,
    PasswordHasher,
    derive_credentials,
)
from mailsrv.pools import Runner

if TYPE_CHECKING:
    from twisted.internet.interfaces import IReactorThreads

_SCHEMA = """
CREATE TABLE IF NOT EXISTS passwords (
    account TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    cram_md5 BLOB NOT NULL,
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS scram_secrets (
    account TEXT NOT NULL REFERENCES passwords(account) ON DELETE CASCADE,
    hash TEXT NOT NULL,
    salt BLOB NOT NULL,
    iterations INTEGER NOT NULL,
    stored_key BLOB NOT NULL,
    server_key BLOB NOT NULL,
    PRIMARY KEY (account, hash)
);
CREATE TABLE IF NOT EXISTS tls_public_keys (
    fingerprint BLOB PRIMARY KEY,
    account TEXT NOT NULL,
    name TEXT NOT NULL,
    key_type TEXT NOT NULL,
    login_address TEXT,
    no_imap_preauth INTEGER NOT NULL DEFAULT 0,
    cert_pem TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS tls_public_keys_account ON tls_public_keys(account);
CREATE TABLE IF NOT EXISTS server_secrets (
    name TEXT PRIMARY KEY,
    secret BLOB NOT NULL
);
-- Bumped by every password change, removal and disabling of an account (and of the admin
-- password, as ADMIN_PASSWORD_GENERATION): a web session made under an older generation ends.
CREATE TABLE IF NOT EXISTS credential_generations (
    account TEXT PRIMARY KEY,
    generation INTEGER NOT NULL
);
"""

# The generation key of the web admin password (an account name never starts with "/").
ADMIN_PASSWORD_GENERATION = "/admin"


class DuplicateTLSPublicKey(Exception):
    """The fingerprint is already registered (for this or another account)."""


@dataclass(frozen=True)
class StoredCredentials:
    account: str
    password_hash: str
    scram: dict[str, ScramSecret]
    cram_md5: bytes


@dataclass(frozen=True)
class TLSPublicKey:
    """A registered client-certificate public key. `login_address` is the address the
    login is attributed to (None: the account's primary address); `no_imap_preauth`
    keeps IMAP from greeting with PREAUTH so the client can still log in explicitly."""

    fingerprint: bytes
    account: str
    name: str
    key_type: str
    login_address: str | None
    no_imap_preauth: bool
    cert_pem: str
    created: float


def tls_public_key_from_pem(
    account: str,
    name: str,
    cert_pem: str,
    login_address: str | None = None,
    no_imap_preauth: bool = False,
) -> TLSPublicKey:
    """A TLSPublicKey for a PEM certificate (its fingerprint and key type computed here).
    Raises ValueError when the PEM does not hold a certificate."""
    from mailsrv.tlsutil import key_type, load_pem_certificate, spki_fingerprint

    cert = load_pem_certificate(cert_pem)
    pem = cert.public_bytes(serialization.Encoding.PEM).decode("ascii")
    return TLSPublicKey(
        fingerprint=spki_fingerprint(cert),
        account=account,
        name=name,
        key_type=key_type(cert),
        login_address=login_address,
        no_imap_preauth=no_imap_preauth,
        cert_pem=pem,
        created=time.time(),
    )


class CredentialStore:
    """Credentials of local accounts in `<data_dir>/auth.db`."""

    def __init__(
        self,
        data_dir: Path | str,
        reactor: IReactorThreads | None = None,
        hasher: PasswordHasher | None = None,
        scram_iterations: int = DEFAULT_SCRAM_ITERATIONS,
        hash_concurrency: int | None = None,
        run_hashing: Runner | None = None,
    ) -> None:
        self.path = Path(data_dir) / "auth.db"
        # The hashing pool (mailsrv.pools): a login flood waits there, not in front of fsyncs.
        self._run_hashing = run_hashing
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._reactor = reactor
        self.hasher = hasher if hasher is not None else PasswordHasher()
        self.scram_iterations = scram_iterations
        self._hash_slots = DeferredSemaphore(hash_concurrency or max(1, os.cpu_count() or 1))
        self._db = sqlite3.connect(self.path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        # A password change that was acknowledged must survive a crash.
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.executescript(_SCHEMA)
        self._change_listeners: list[Callable[[str], None]] = []
        self._secrets: dict[str, bytes] = {}
        # Generations read so far; valid while no other connection (the CLI, another process)
        # committed to auth.db, which PRAGMA data_version tells without reading a table.
        self._generations: dict[str, int] = {}
        self._data_version = -1
        # Per-account webapi tokens (mailsrv/auth/apitokens.py), hashed under a key of this installation.
        self.api_tokens = ApiTokenTable(self._db, lambda: self.server_secret("api-token"))

    def close(self) -> None:
        self.api_tokens.write_uses()
        self._db.close()

    def on_change(self, listener: Callable[[str], None]) -> None:
        """`listener(account)` runs after the account's password changed or it was removed
        (the verified-credentials cache forgets it)."""
        self._change_listeners.append(listener)

    def _changed(self, account: str) -> None:
        for listener in self._change_listeners:
            listener(account)

    def server_secret(self, name: str) -> bytes:
        """A random 32-byte secret made once per installation and kept in auth.db (e.g. the
        key of SCRAM's fake salts: the same for every listener and across restarts)."""
        secret = self._secrets.get(name)
        if secret is None:
            with _transaction(self._db):
                self._db.execute(
                    "INSERT OR IGNORE INTO server_secrets (name, secret) VALUES (?, ?)", (name, os.urandom(32))
                )
            row = self._db.execute("SELECT secret FROM server_secrets WHERE name = ?", (name,)).fetchone()
            secret = self._secrets[name] = bytes(row[0])
        return secret

    def hash_in_thread(self, fn: Any, *args: Any) -> Deferred[Any]:
        """Runs a password hashing function in the reactor's thread pool, at most
        `hash_concurrency` at a time: argon2 takes 64 MiB and a core per call, and a login
        flood must neither exhaust memory nor starve other thread-pool work (fsync)."""
        reactor: Any = self._reactor
        if reactor is None:
            from twisted.internet import reactor
        if self._run_hashing is not None:
            return self._hash_slots.run(self._run_hashing, fn, *args)
        return self._hash_slots.run(deferToThreadPool, reactor, reactor.getThreadPool(), fn, *args)

    # --- Passwords -----------------------------------------------------------------------
    def set_password(self, account: str, password: str) -> Deferred[None]:
        """Derives every secret in a thread, then stores them in one transaction."""
        d: Deferred[DerivedCredentials] = self.hash_in_thread(
            derive_credentials, password, self.hasher, self.scram_iterations
        )

        def store(derived: DerivedCredentials) -> None:
            self.store_derived(account, derived)

        return d.addCallback(store)

    def set_password_blocking(self, account: str, password: str) -> None:
        """For the CLI when no daemon runs: derives on the calling thread."""
        self.store_derived(account, derive_credentials(password, self.hasher, self.scram_iterations))

    # --- Credential generations ------------------------------------------------------------
    def generation(self, account: str) -> int:
        """The account's credential generation (0 before any change). Web sessions compare it on
        every request: answered from memory unless another process wrote auth.db meanwhile."""
        (version,) = self._db.execute("PRAGMA data_version").fetchone()
        if version != self._data_version:
            self._generations.clear()
            self._data_version = version
        found = self._generations.get(account)
        if found is None:
            row = self._db.execute(
                "SELECT generation FROM credential_generations WHERE account = ?", (account,)
            ).fetchone()
            found = self._generations[account] = int(row[0]) if row else 0
        return found

    def bump_generation(self, account: str) -> None:
        """Ends the web sessions of `account` made so far (disabling; the admin password)."""
        with _transaction(self._db):
            self._bump(account)

    def _bump(self, account: str) -> None:
        # Inside a transaction; data_version does not change for our own commits: forget the entry.
        self._db.execute(
            "INSERT INTO credential_generations (account, generation) VALUES (?, 1)"
            " ON CONFLICT (account) DO UPDATE SET generation = generation + 1",
            (account,),
        )
        self._generations.pop(account, None)

    def store_derived(self, account: str, derived: DerivedCredentials) -> None:
        with _transaction(self._db):
            self._bump(account)
            self._db.execute("DELETE FROM scram_secrets WHERE account = ?", (account,))
            self._db.execute(
                "INSERT OR REPLACE INTO passwords (account, password_hash, cram_md5, updated) VALUES (?, ?, ?, ?)",
                (account, derived.password_hash, derived.cram_md5, time.time()),
            )
            for hash_name, s in derived.scram.items():
                self._db.execute(
                    "INSERT INTO scram_secrets (account, hash, salt, iterations, stored_key, server_key)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (account, hash_name, s.salt, s.iterations, s.stored_key, s.server_key),
                )
        self._changed(account)

    def get(self, account: str) -> StoredCredentials | None:
        """The stored credentials, or None when the account has no password."""
        row = self._db.execute("SELECT password_hash, cram_md5 FROM passwords WHERE account = ?", (account,)).fetchone()
        if row is None:
            return None
        scram: dict[str, ScramSecret] = {}
        for hash_name, salt, iterations, stored_key, server_key in self._db.execute(
            "SELECT hash, salt, iterations, stored_key, server_key FROM scram_secrets WHERE account = ?",
            (account,),
        ):
            if hash_name in SCRAM_HASHES:
                scram[hash_name] = ScramSecret(bytes(salt), int(iterations), bytes(stored_key), bytes(server_key))
        return StoredCredentials(account, str(row[0]), scram, bytes(row[1]))

    def remove_account(self, account: str) -> None:
        """Forgets the password, every TLS public key and every API token of `account`."""
        with _transaction(self._db):
            self._bump(account)
            self._db.execute("DELETE FROM scram_secrets WHERE account = ?", (account,))
            self._db.execute("DELETE FROM passwords WHERE account = ?", (account,))
            self._db.execute("DELETE FROM tls_public_keys WHERE account = ?", (account,))
            self.api_tokens.remove_account(account)
        self._changed(account)

    # --- TLS public keys -----------------------------------------------------------------
    def add_tls_public_key(self, key: TLSPublicKey) -> None:
        """Raises DuplicateTLSPublicKey when the fingerprint is already registered."""
        try:
            with _transaction(self._db):
                self._db.execute(
                    "INSERT INTO tls_public_keys (fingerprint, account, name, key_type, login_address,"
                    " no_imap_preauth, cert_pem, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        key.fingerprint,
                        key.account,
                        key.name,
                        key.key_type,
                        key.login_address,
                        int(key.no_imap_preauth),
                        key.cert_pem,
                        key.created,
                    ),
                )
        except sqlite3.IntegrityError:
            raise DuplicateTLSPublicKey("TLS public key already registered") from None

    def list_tls_public_keys(self, account: str | None = None) -> list[TLSPublicKey]:
        """The keys of `account` (all keys when None), oldest first."""
        cols = "fingerprint, account, name, key_type, login_address, no_imap_preauth, cert_pem, created"
        if account is None:
            rows = self._db.execute(f"SELECT {cols} FROM tls_public_keys ORDER BY created, fingerprint")
        else:
            rows = self._db.execute(
                f"SELECT {cols} FROM tls_public_keys WHERE account = ? ORDER BY created, fingerprint",
                (account,),
            )
        return [_key_from_row(r) for r in rows]

    def get_tls_public_key(self, fingerprint: bytes) -> TLSPublicKey | None:
        row = self._db.execute(
            "SELECT fingerprint, account, name, key_type, login_address, no_imap_preauth, cert_pem, created"
            " FROM tls_public_keys WHERE fingerprint = ?",
            (fingerprint,),
        ).fetchone()
        return None if row is None else _key_from_row(row)

    def remove_tls_public_key(self, fingerprint: bytes, account: str | None = None) -> bool:
        """Removes the key (only if it belongs to `account` when given); True if removed."""
        if account is None:
            cur = self._db.execute("DELETE FROM tls_public_keys WHERE fingerprint = ?", (fingerprint,))
        else:
            cur = self._db.execute(
                "DELETE FROM tls_public_keys WHERE fingerprint = ? AND account = ?", (fingerprint, account)
            )
        return cur.rowcount > 0


def _key_from_row(row: tuple[Any, ...]) -> TLSPublicKey:
    return TLSPublicKey(
        fingerprint=bytes(row[0]),
        account=str(row[1]),
        name=str(row[2]),
        key_type=str(row[3]),
        login_address=None if row[4] is None else str(row[4]),
        no_imap_preauth=bool(row[5]),
        cert_pem=str(row[6]),
        created=float(row[7]),
    )


class _transaction:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on error (autocommit connection)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self._db.execute("COMMIT" if exc_type is None else "ROLLBACK")
