"""LoginRateLimiter with a fake clock."""

from __future__ import annotations

import pytest
from twisted.internet.task import Clock

from mailsrv.auth.interfaces import RateLimited
from mailsrv.auth.ratelimit import LoginRateLimiter
from mailsrv.config.types import LimitsConfig

LIMITS = LimitsConfig(login_failures_per_ip=3, login_failures_per_account=5, login_failure_window=60)


def test_per_ip_sliding_window() -> None:
    clock = Clock()
    rl = LoginRateLimiter(LIMITS, clock)
    for i in range(3):
        rl.check("192.0.2.1", f"user{i}")
        rl.record_failure("192.0.2.1", f"user{i}")
        clock.advance(10)
    with pytest.raises(RateLimited):
        rl.check("192.0.2.1", "other")
    rl.check("192.0.2.2", "other")  # another IP is not affected
    clock.advance(31)  # first failure (t=0) leaves the window at t=60
    rl.check("192.0.2.1", "other")
    rl.record_failure("192.0.2.1", None)
    with pytest.raises(RateLimited):
        rl.check("192.0.2.1", None)


def test_per_account_across_ips_and_success_resets_account_only() -> None:
    clock = Clock()
    rl = LoginRateLimiter(LIMITS, clock)
    for i in range(5):
        rl.record_failure(f"198.51.100.{i}", "Alice@Example.org")
    with pytest.raises(RateLimited):
        rl.check("203.0.113.9", "alice@example.org")
    rl.record_success("203.0.113.9", "alice@example.org")
    rl.check("203.0.113.9", "alice@example.org")
    # Success does not reset the IP budget.
    for _ in range(3):
        rl.record_failure("203.0.113.5", "x")
    rl.record_success("203.0.113.5", "alice@example.org")
    with pytest.raises(RateLimited):
        rl.check("203.0.113.5", "alice@example.org")


def test_ipv6_counts_per_64() -> None:
    rl = LoginRateLimiter(LIMITS, Clock())
    for i in range(3):
        rl.record_failure(f"2001:db8::{i}", None)
    with pytest.raises(RateLimited):
        rl.check("2001:db8::ffff", None)
    rl.check("2001:db8:1::1", None)


def test_stale_keys_are_swept() -> None:
    clock = Clock()
    rl = LoginRateLimiter(LIMITS, clock)
    for i in range(100):
        rl.record_failure(f"10.0.0.{i}", f"u{i}")
    clock.advance(61)
    rl.record_failure("10.1.0.1", None)
    assert len(rl._by_ip) == 1 and len(rl._by_account) == 0
