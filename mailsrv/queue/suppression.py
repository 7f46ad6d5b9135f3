"""Per-account suppression lists: addresses the queue no longer tries to deliver to, kept in
the queue database so that the runner checks and extends them in the transaction that
records an outcome.

The list is keyed by the *base address* (`base_address`): what is left of an address once
the parts that vary for one mailbox are removed, so that `Bob.Smith+news@gmail.com` and
`bobsmith@gmail.com` are one entry. The rule:
- the localpart is cut at the first catchall separator: the domain's configured
  `localpart_catchall_separator` for our own domains, "+" for every other domain (the
  separator of the large providers; "-" is not cut, since it is part of many real names);
- it is lowercased (RFC 5321 §2.4 leaves case to the receiving host, and hardly any host
  distinguishes it);
- dots are removed only for domains known to ignore them (`DOTLESS_DOMAINS`: Gmail's);
- the domain is lowercased, in its A-label form when given as such.

Automatic suppression (`suppresses`): a permanent failure whose reply code is 521, 550,
551, 553 or 556, or whose enhanced code (RFC 3463) says the address or mailbox is bad
(5.1.1, 5.1.2, 5.1.3, 5.1.6), the mailbox is disabled (5.2.1) or delivery is refused
(5.7.1); or the third final failure in a row for the same base address (`FAILURE_LIMIT`),
counted in `suppression_failure` and reset by a delivery.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from mailsrv.queue.interfaces import Suppression
from mailsrv.smtpclient.reply import Reply

if TYPE_CHECKING:
    from mailsrv.config.dynamic import DynamicConfigStore

SCHEMA = """
CREATE TABLE IF NOT EXISTS suppression (
    id INTEGER PRIMARY KEY,
    account TEXT NOT NULL,
    base_address TEXT NOT NULL,
    original_address TEXT NOT NULL,
    manual INTEGER NOT NULL,
    reason TEXT NOT NULL,
    created REAL NOT NULL,
    UNIQUE (account, base_address)
);
CREATE TABLE IF NOT EXISTS suppression_failure (
    account TEXT NOT NULL,
    base_address TEXT NOT NULL,
    count INTEGER NOT NULL,           -- final failures in a row, reset by a delivery
    PRIMARY KEY (account, base_address)
);
"""

DOTLESS_DOMAINS = frozenset({"gmail.com", "googlemail.com"})
DEFAULT_SEPARATOR = "+"
SUPPRESSING_CODES = frozenset({521, 550, 551, 553, 556})
SUPPRESSING_ENHANCED = frozenset({"5.1.1", "5.1.2", "5.1.3", "5.1.6", "5.2.1", "5.7.1"})
FAILURE_LIMIT = 3
MAX_LIST = 100_000  # one account's list is returned whole; bounded so a listing stays finite
MAX_REASON = 1000

# The catchall separator of a domain (A-label, lowercase): the configured one for our own
# domains, None when ours has none, DEFAULT_SEPARATOR for others.
SeparatorOf = Callable[[str], str | None]


def default_separator(domain: str) -> str | None:
    return DEFAULT_SEPARATOR


def separators(dynamic: DynamicConfigStore) -> SeparatorOf:
    """The separator lookup for the configured domains (read at each call: domains change)."""

    def separator_of(domain: str) -> str | None:
        config = dynamic.current.domains.get(domain)
        if config is not None:
            return config.localpart_catchall_separator
        return DEFAULT_SEPARATOR

    return separator_of


def base_address(address: str, separator_of: SeparatorOf = default_separator) -> str:
    """The base address of `address` (module docstring). An address without "@" is returned
    lowercased (the caller validated it)."""
    localpart, at, domain = address.rpartition("@")
    if not at:
        return address.lower()
    domain = domain.lower().rstrip(".")
    sep = separator_of(domain)
    if sep:
        localpart = localpart.split(sep, 1)[0]
    localpart = localpart.lower()
    if domain in DOTLESS_DOMAINS:
        localpart = localpart.replace(".", "")
    return f"{localpart}@{domain}"


def suppresses(reply: Reply) -> bool:
    """Whether this permanent failure puts the address on the suppression list at once."""
    if not reply.permanent:
        return False
    return reply.code in SUPPRESSING_CODES or (reply.enhanced or "") in SUPPRESSING_ENHANCED


def _row(r: tuple[object, ...]) -> Suppression:
    return Suppression(
        id=int(r[0]),  # type: ignore[call-overload]
        account=str(r[1]),
        base_address=str(r[2]),
        original_address=str(r[3]),
        manual=bool(r[4]),
        reason=str(r[5]),
        created=float(r[6]),  # type: ignore[arg-type]
    )


_COLUMNS = "id, account, base_address, original_address, manual, reason, created"


def listing(db: sqlite3.Connection, account: str) -> list[Suppression]:
    rows = db.execute(
        f"SELECT {_COLUMNS} FROM suppression WHERE account = ? ORDER BY id LIMIT ?", (account, MAX_LIST)
    ).fetchall()
    return [_row(r) for r in rows]


def find(db: sqlite3.Connection, account: str, base: str) -> Suppression | None:
    r = db.execute(
        f"SELECT {_COLUMNS} FROM suppression WHERE account = ? AND base_address = ?", (account, base)
    ).fetchone()
    return _row(r) if r is not None else None


def add(
    db: sqlite3.Connection, account: str, base: str, original: str, manual: bool, reason: str, now: float | None = None
) -> tuple[Suppression, bool]:
    """Adds an entry in the caller's transaction; (the entry, whether it is new). An existing
    entry is kept as it is (its first reason stays)."""
    existing = find(db, account, base)
    if existing is not None:
        return existing, False
    db.execute(
        "INSERT INTO suppression (account, base_address, original_address, manual, reason, created)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (account, base, original, int(manual), reason[:MAX_REASON], time.time() if now is None else now),
    )
    db.execute("DELETE FROM suppression_failure WHERE account = ? AND base_address = ?", (account, base))
    found = find(db, account, base)
    assert found is not None
    return found, True


def remove(db: sqlite3.Connection, account: str, base: str) -> bool:
    """Removes an entry in the caller's transaction; whether there was one."""
    db.execute("DELETE FROM suppression_failure WHERE account = ? AND base_address = ?", (account, base))
    return bool(db.execute("DELETE FROM suppression WHERE account = ? AND base_address = ?", (account, base)).rowcount)


def count_failure(db: sqlite3.Connection, account: str, base: str) -> int:
    """One more final failure in a row for `base`, in the caller's transaction; the new count."""
    row = db.execute(
        "INSERT INTO suppression_failure (account, base_address, count) VALUES (?, ?, 1)"
        " ON CONFLICT (account, base_address) DO UPDATE SET count = count + 1 RETURNING count",
        (account, base),
    ).fetchone()
    return int(row[0])


def reset_failures(db: sqlite3.Connection, account: str, base: str) -> None:
    db.execute("DELETE FROM suppression_failure WHERE account = ? AND base_address = ?", (account, base))
