"""Login rate limiting: failures per remote IP and per (IP, account) in a sliding window.

A login attempt is counted as a failure *before* its credentials are checked
(`begin`, then `LoginAttempt.name` when the login name is known) and uncounted only when it
succeeds. So check and count are one step: 50 parallel wrong logins from one IP with a limit
of 10 run at most 10 password hashes, and an exchange that is abandoned half-way (a SCRAM
client that took the salt and went away, a dropped connection) counts as the failure it is.

Invariants:
- Keys: the IP (IPv6 per /64, an IPv4-mapped address as IPv4), and the pair (IP, account).
  There is no lockout per account alone: one attacker must not be able to lock the real
  user out from everywhere; guessing from many addresses is bounded per address.
- Accounts are keyed by their normalised login name (`mailsrv.auth.loginname.login_key`):
  an address as `Address.key()` (so soft hyphens, full-width letters and a trailing dot in
  the domain give the same key), any other name NFC and case-folded.
- A success uncounts its own attempt and clears its (IP, account) failures, never the IP's
  (a valid login must not reset an attacker's budget for guessing other accounts).
- Memory is bounded by the number of keys with a failure inside the window: stale keys are
  swept as time passes.
- Time comes from an injectable clock (`IReactorTime.seconds`), so tests use task.Clock.
"""

from __future__ import annotations

import ipaddress
from collections import deque
from typing import Protocol

from mailsrv.auth.interfaces import RateLimited
from mailsrv.auth.loginname import login_key as account_key
from mailsrv.config.types import LimitsConfig


class Clock(Protocol):
    """The part of `IReactorTime` used here (the reactor, or `task.Clock` in tests)."""

    def seconds(self) -> float: ...


def ip_key(ip: str) -> str:
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


# Keys: (ip,) and (ip, account); values: times of failures inside the window, oldest first.
_Key = tuple[str, ...]


class LoginAttempt:
    """One login attempt, counted as a failure until `succeeded()`."""

    def __init__(self, limiter: LoginRateLimiter, ip: str, started: float) -> None:
        self._limiter = limiter
        self.ip = ip_key(ip)
        self._started = started
        self.account: str | None = None
        self._open = True

    def name(self, login: str) -> None:
        """The login name is known now: raises RateLimited when this IP has used up its
        guesses for that account, else counts the attempt against it too. A second call (an
        exchange naming another account) moves the count."""
        self._limiter._name(self, account_key(login))

    def succeeded(self) -> None:
        if self._open:
            self._open = False
            self._limiter._succeeded(self)

    def failed(self) -> None:
        """Nothing to undo: the failure was counted when the attempt began."""
        self._open = False

    def cancel(self) -> None:
        """Uncounts the attempt without a success (the backend could not answer: no guess
        was checked)."""
        if self._open:
            self._open = False
            self._limiter._uncount(self)


class LoginRateLimiter:
    def __init__(self, limits: LimitsConfig, clock: Clock) -> None:
        self._limits = limits
        self._clock = clock
        self._failures: dict[_Key, deque[float]] = {}
        self._last_sweep = clock.seconds()

    def _now(self) -> float:
        return self._clock.seconds()

    def _count(self, key: _Key, now: float) -> int:
        times = self._failures.get(key)
        if times is None:
            return 0
        cutoff = now - self._limits.login_failure_window
        while times and times[0] <= cutoff:
            times.popleft()
        if not times:
            del self._failures[key]
            return 0
        return len(times)

    def _add(self, key: _Key, when: float) -> None:
        self._failures.setdefault(key, deque()).append(when)

    def _discard(self, key: _Key, when: float) -> None:
        times = self._failures.get(key)
        if times is None:
            return
        try:
            times.remove(when)
        except ValueError:
            pass  # already out of the window
        if not times:
            del self._failures[key]

    def begin(self, ip: str, login: str | None = None) -> LoginAttempt:
        """Starts an attempt from `ip`, counted as a failure at once; RateLimited (and nothing
        counted) when the IP, or the (IP, `login`) pair, has no guess left."""
        now = self._now()
        self._sweep(now)
        attempt = LoginAttempt(self, ip, now)
        if self._count((attempt.ip,), now) >= self._limits.login_failures_per_ip:
            raise RateLimited("too many failed logins from this address")
        if login is not None:
            self._check_pair(attempt.ip, account_key(login), now)
        self._add((attempt.ip,), now)
        if login is not None:
            attempt.account = account_key(login)
            self._add((attempt.ip, attempt.account), now)
        return attempt

    def _check_pair(self, ip: str, account: str, now: float) -> None:
        if self._count((ip, account), now) >= self._limits.login_failures_per_account:
            raise RateLimited("too many failed logins for this account from this address")

    def _name(self, attempt: LoginAttempt, account: str) -> None:
        if attempt.account == account:
            return
        now = self._now()
        self._check_pair(attempt.ip, account, now)
        if attempt.account is not None:
            self._discard((attempt.ip, attempt.account), attempt._started)
        attempt.account = account
        self._add((attempt.ip, account), attempt._started)

    def _succeeded(self, attempt: LoginAttempt) -> None:
        self._discard((attempt.ip,), attempt._started)
        if attempt.account is not None:
            self._failures.pop((attempt.ip, attempt.account), None)

    def _uncount(self, attempt: LoginAttempt) -> None:
        self._discard((attempt.ip,), attempt._started)
        if attempt.account is not None:
            self._discard((attempt.ip, attempt.account), attempt._started)

    def record_failure(self, ip: str, login: str | None = None) -> None:
        """Counts a failure that was no login attempt of its own (a client certificate whose
        account may no longer log in)."""
        now = self._now()
        key = ip_key(ip)
        self._add((key,), now)
        if login is not None:
            self._add((key, account_key(login)), now)

    def reset(self, ip: str | None = None, account: str | None = None) -> int:
        """Forgets failures (`mailsrv ratelimit reset`): of `ip` (its own count and all its
        pairs), of `account` (a login name) from every IP, of the one pair when both are
        given, of everything when neither is. Returns how many counters were dropped."""
        ipk = ip_key(ip) if ip is not None else None
        acc = account_key(account) if account is not None else None
        doomed = [
            key
            for key in self._failures
            if (ipk is None or key[0] == ipk) and (key[1:] == (acc,) if acc is not None else True)
        ]
        for key in doomed:
            del self._failures[key]
        return len(doomed)

    def _sweep(self, now: float) -> None:
        if now - self._last_sweep < self._limits.login_failure_window:
            return
        self._last_sweep = now
        for key in list(self._failures):
            self._count(key, now)
