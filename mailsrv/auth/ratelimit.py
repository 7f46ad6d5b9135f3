"""Login rate limiting: failures per remote IP and per account in a sliding window.

Protocols call `check(ip, account)` before verifying credentials (it raises RateLimited),
then `record_failure` or `record_success` with the outcome. `account` is the login name
as given, folded, so guessing against unknown names is limited too.

Invariants:
- Only failures count; a success clears that account's failures but never the IP's (a
  valid login must not reset an attacker's budget for guessing other accounts).
- Memory is bounded by the number of keys with a failure inside the window: stale keys are
  swept as time passes.
- Time comes from an injectable clock (`IReactorTime.seconds`), so tests use task.Clock.
"""

from __future__ import annotations

import ipaddress
import unicodedata
from collections import deque
from typing import Protocol

from mailsrv.auth.interfaces import RateLimited
from mailsrv.config.types import LimitsConfig


class Clock(Protocol):
    """The part of `IReactorTime` used here (the reactor, or `task.Clock` in tests)."""

    def seconds(self) -> float: ...


def _ip_key(ip: str) -> str:
    # IPv6 clients usually own a /64: count the prefix, or one host could rotate addresses.
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            return str(addr.ipv4_mapped)
        return str(ipaddress.IPv6Network((addr, 64), strict=False))
    return str(addr)


def _account_key(account: str) -> str:
    return unicodedata.normalize("NFC", account.strip().casefold())


class LoginRateLimiter:
    def __init__(self, limits: LimitsConfig, clock: Clock) -> None:
        self._limits = limits
        self._clock = clock
        self._by_ip: dict[str, deque[float]] = {}
        self._by_account: dict[str, deque[float]] = {}
        self._last_sweep = clock.seconds()

    def _now(self) -> float:
        return self._clock.seconds()

    def _count(self, table: dict[str, deque[float]], key: str, now: float) -> int:
        times = table.get(key)
        if times is None:
            return 0
        cutoff = now - self._limits.login_failure_window
        while times and times[0] <= cutoff:
            times.popleft()
        if not times:
            del table[key]
            return 0
        return len(times)

    def check(self, ip: str, account: str | None) -> None:
        """Raises RateLimited when `ip` or `account` reached its failure limit."""
        now = self._now()
        if self._count(self._by_ip, _ip_key(ip), now) >= self._limits.login_failures_per_ip:
            raise RateLimited("too many failed logins from this address")
        if account is not None:
            count = self._count(self._by_account, _account_key(account), now)
            if count >= self._limits.login_failures_per_account:
                raise RateLimited("too many failed logins for this account")

    def record_failure(self, ip: str, account: str | None) -> None:
        now = self._now()
        self._sweep(now)
        self._by_ip.setdefault(_ip_key(ip), deque()).append(now)
        if account is not None:
            self._by_account.setdefault(_account_key(account), deque()).append(now)

    def record_success(self, ip: str, account: str | None) -> None:
        if account is not None:
            self._by_account.pop(_account_key(account), None)

    def _sweep(self, now: float) -> None:
        if now - self._last_sweep < self._limits.login_failure_window:
            return
        self._last_sweep = now
        for table in (self._by_ip, self._by_account):
            for key in list(table):
                self._count(table, key, now)
