"""Per-account API tokens in auth.db: named secrets an account makes for its applications, used
as the HTTP Basic password of the webapi (mailsrv/ops/apitokens.py has the policy).

Invariants:
- A token is `mailsrv_` and 43 base64url characters (32 random octets); the table keeps only
  HMAC-SHA-256 of it under a per-installation key (auth.db's server secret "api-token"). With
  256 bits of entropy nothing slower is needed: a lookup is one HMAC and one indexed SELECT.
- A token belongs to one account and has a name unique within it. Removing the row revokes the
  token: the next call with it is refused (there is no cache in front of the table).
- Uses are noted in memory and written together at most once a minute (and before a
  listing), so neither a busy application nor many of them turn calls into database writes
  (each a WAL fsync on the reactor thread); `last_used` is therefore to the minute.
"""

from __future__ import annotations

import base64
import hmac
import os
import re
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass

TOKEN_PREFIX = "mailsrv_"
TOKEN_FORMAT = re.compile(r"mailsrv_[A-Za-z0-9_-]{43}")
LAST_USED_GRANULARITY = 60.0  # seconds between writes of the tokens' last uses

SCHEMA = """
CREATE TABLE IF NOT EXISTS api_tokens (
    id INTEGER PRIMARY KEY,
    account TEXT NOT NULL,
    name TEXT NOT NULL,
    token_hash BLOB NOT NULL UNIQUE,
    created REAL NOT NULL,
    expires REAL,
    last_used REAL,
    UNIQUE (account, name)
);
"""


class DuplicateTokenName(Exception):
    """The account has a token of that name already."""


@dataclass(frozen=True)
class ApiToken:
    account: str
    name: str
    created: float
    expires: float | None  # None: never
    last_used: float | None  # None: never used


def new_token() -> str:
    return TOKEN_PREFIX + base64.urlsafe_b64encode(os.urandom(32)).decode("ascii").rstrip("=")


def looks_like_token(text: str) -> bool:
    return text.startswith(TOKEN_PREFIX) and TOKEN_FORMAT.fullmatch(text) is not None


_COLUMNS = "account, name, created, expires, last_used"


def _row(row: tuple[object, ...]) -> ApiToken:
    account, name, created, expires, last_used = row
    return ApiToken(
        account=str(account),
        name=str(name),
        created=float(created),  # type: ignore[arg-type]
        expires=None if expires is None else float(expires),  # type: ignore[arg-type]
        last_used=None if last_used is None else float(last_used),  # type: ignore[arg-type]
    )


class ApiTokenTable:
    """The api_tokens table on the credential store's connection (same thread rules)."""

    def __init__(self, db: sqlite3.Connection, key: Callable[[], bytes]) -> None:
        self._db = db
        self._key_source = key
        self._key: bytes | None = None
        self._uses: dict[bytes, float] = {}  # token hash -> last use not yet written
        self._written = time.time()
        db.executescript(SCHEMA)

    def _hash(self, token: str) -> bytes:
        if self._key is None:
            self._key = self._key_source()
        return hmac.digest(self._key, token.encode("ascii", "replace"), "sha256")

    def add(self, account: str, name: str, expires: float | None) -> tuple[str, ApiToken]:
        """A new token for `account`: (the token, shown once; its record). Raises
        DuplicateTokenName."""
        token = new_token()
        now = time.time()
        try:
            self._db.execute(
                "INSERT INTO api_tokens (account, name, token_hash, created, expires) VALUES (?, ?, ?, ?, ?)",
                (account, name, self._hash(token), now, expires),
            )
        except sqlite3.IntegrityError:
            raise DuplicateTokenName(f"a token named {name!r} exists already") from None
        return token, ApiToken(account, name, now, expires, None)

    def list(self, account: str) -> list[ApiToken]:
        self.write_uses()
        rows = self._db.execute(
            f"SELECT {_COLUMNS} FROM api_tokens WHERE account = ? ORDER BY created, id", (account,)
        ).fetchall()
        return [_row(r) for r in rows]

    def count(self, account: str) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM api_tokens WHERE account = ?", (account,)).fetchone()[0])

    def remove(self, account: str, name: str) -> bool:
        cur = self._db.execute("DELETE FROM api_tokens WHERE account = ? AND name = ?", (account, name))
        return cur.rowcount > 0

    def remove_account(self, account: str) -> int:
        return self._db.execute("DELETE FROM api_tokens WHERE account = ?", (account,)).rowcount

    def accounts(self) -> set[str]:
        return {str(r[0]) for r in self._db.execute("SELECT DISTINCT account FROM api_tokens")}

    def lookup(self, token: str, now: float | None = None) -> ApiToken | None:
        """The token's record, or None when there is no such token; notes its use."""
        if not looks_like_token(token):
            return None
        digest = self._hash(token)
        row = self._db.execute(f"SELECT {_COLUMNS} FROM api_tokens WHERE token_hash = ?", (digest,)).fetchone()
        if row is None:
            return None
        now = time.time() if now is None else now
        self._uses[digest] = now
        if now - self._written >= LAST_USED_GRANULARITY:
            self.write_uses(now)
        return _row(row)

    def write_uses(self, now: float | None = None) -> None:
        """Writes the uses noted since the last write, in one transaction."""
        self._written = time.time() if now is None else now
        if not self._uses:
            return
        uses, self._uses = self._uses, {}
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.executemany(
                "UPDATE api_tokens SET last_used = MAX(COALESCE(last_used, 0), ?) WHERE token_hash = ?",
                [(when, digest) for digest, when in uses.items()],
            )
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")
