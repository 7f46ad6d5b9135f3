"""Verified-credentials cache: a password that was just verified is not hashed again.

Argon2 costs about 120 ms of CPU per verification; clients that log in again and again (a
phone polling, a webapi caller with Basic auth on every request) would pay it every time.
After a successful password verification the cache remembers, for a short time, that this
login name with this password is this account.

Invariants:
- Neither the password nor anything that verifies it offline is kept: an entry is keyed by
  HMAC-SHA-256 under a random key made per process (so a memory dump does not even allow
  testing guesses after the process is gone), over the login name as typed and the
  password. The stored argon2 hash stays the only verifier on disk.
- An entry lives `ttl` seconds at most and the cache holds at most `max_entries` (the least
  recently used go first).
- Entries of an account are dropped when its password changes or it is removed
  (`forget_account`, called by the credential store), and a hit is used only when the
  account provider still resolves the login name to the same enabled account (the caller
  checks: a disabled or deleted account is not logged in from the cache).
- Only successes are cached: a wrong password is always verified (and rate limited).
"""

from __future__ import annotations

import hmac
import os
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from mailsrv.auth.interfaces import LoginIdentity

DEFAULT_TTL = 60.0
DEFAULT_MAX_ENTRIES = 10_000


class Clock(Protocol):
    def seconds(self) -> float: ...


@dataclass(frozen=True)
class _Entry:
    identity: LoginIdentity
    expires: float


class VerifiedCredentialsCache:
    def __init__(self, clock: Clock, ttl: float = DEFAULT_TTL, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        self._clock = clock
        self.ttl = ttl
        self.max_entries = max_entries
        self._hmac_key = os.urandom(32)
        self._entries: OrderedDict[bytes, _Entry] = OrderedDict()
        # Bumped whenever entries are dropped for a change (password, account): a
        # verification that began before the change must not be cached after it.
        self.epoch = 0

    def _key(self, login: str, password: str) -> bytes:
        # Length-prefix the login so ("a", "bc") and ("ab", "c") differ.
        name = login.encode("utf-8", "surrogatepass")
        data = len(name).to_bytes(4, "big") + name + password.encode("utf-8", "surrogatepass")
        return hmac.digest(self._hmac_key, data, "sha256")

    def get(self, login: str, password: str) -> LoginIdentity | None:
        if self.ttl <= 0:
            return None
        key = self._key(login, password)
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.expires <= self._clock.seconds():
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry.identity

    def put(self, login: str, password: str, identity: LoginIdentity, epoch: int | None = None) -> None:
        """Remembers a verified login; ignored when `epoch` (read before the verification
        began) is no longer current, i.e. a password or account changed meanwhile."""
        if self.ttl <= 0 or self.max_entries <= 0 or (epoch is not None and epoch != self.epoch):
            return
        key = self._key(login, password)
        self._entries[key] = _Entry(identity, self._clock.seconds() + self.ttl)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def forget(self, login: str, password: str) -> None:
        self._entries.pop(self._key(login, password), None)

    def forget_account(self, account: str) -> None:
        """Drops every entry of `account` (password changed, account disabled or removed)."""
        self.epoch += 1
        for key in [k for k, e in self._entries.items() if e.identity.account == account]:
            del self._entries[key]

    def forget_unless(self, keep: Callable[[str], bool]) -> None:
        """Drops the entries of every account for which `keep(account)` is false (the dynamic
        config changed: accounts removed or disabled)."""
        doomed = [k for k, e in self._entries.items() if not keep(e.identity.account)]
        if doomed:
            self.epoch += 1
        for key in doomed:
            del self._entries[key]

    def clear(self) -> None:
        self.epoch += 1
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
