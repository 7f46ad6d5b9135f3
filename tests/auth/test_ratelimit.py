"""LoginRateLimiter with a fake clock: attempts counted before the check, keys per IP and per
(IP, normalised account), reset."""

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
        rl.begin("192.0.2.1", f"user{i}").failed()
        clock.advance(10)
    with pytest.raises(RateLimited):
        rl.begin("192.0.2.1", "other")
    rl.begin("192.0.2.2", "other")  # another IP is not affected
    clock.advance(31)  # first failure (t=0) leaves the window at t=60
    rl.begin("192.0.2.1", None)
    with pytest.raises(RateLimited):
        rl.begin("192.0.2.1", None)


def test_attempts_count_before_they_finish() -> None:
    """Issue 17 item 6: 50 parallel wrong logins were all checked although the limit was 10.
    An attempt counts from `begin`, so the 11th parallel one is refused before any hash."""
    rl = LoginRateLimiter(LimitsConfig(login_failures_per_ip=10, login_failures_per_account=100), Clock())
    started, refused = [], 0
    for _ in range(50):
        try:
            started.append(rl.begin("192.0.2.7", "alice@example.org"))
        except RateLimited:
            refused += 1
    assert (len(started), refused) == (10, 40)


def test_abandoned_attempt_counts_and_success_uncounts() -> None:
    rl = LoginRateLimiter(LIMITS, Clock())
    rl.begin("192.0.2.1", None).name("alice@example.org")  # never finished: a SCRAM client gone after the salt
    rl.begin("192.0.2.1", "alice@example.org").succeeded()
    rl.begin("192.0.2.1", None).cancel()  # backend down: no guess was checked
    rl.begin("192.0.2.1", "bob@example.org").failed()
    rl.begin("192.0.2.1", None)
    with pytest.raises(RateLimited):
        rl.begin("192.0.2.1", None)


@pytest.mark.parametrize(
    "spelling",
    [
        "user@local\u00adhost",
        "user@\uff4c\uff4f\uff43\uff41\uff4c\uff48\uff4f\uff53\uff54",
        "user@localhost.",
        "USER@LocalHost",
    ],
)
def test_spellings_of_one_account_share_one_budget(spelling: str) -> None:
    """Issue 17 item 6: soft hyphen, full-width letters and a trailing dot each got their own
    guesses; now they are all the key of user@localhost."""
    rl = LoginRateLimiter(LimitsConfig(login_failures_per_ip=100, login_failures_per_account=2), Clock())
    rl.begin("192.0.2.1", "user@localhost").failed()
    rl.begin("192.0.2.1", None).name(spelling)
    with pytest.raises(RateLimited):
        rl.begin("192.0.2.1", "user@localhost")
    with pytest.raises(RateLimited):
        rl.begin("192.0.2.1", spelling)


def test_lockout_is_per_ip_and_account_not_per_account() -> None:
    """Issue 17 item 6: failures from one address locked the account out for everyone."""
    rl = LoginRateLimiter(LimitsConfig(login_failures_per_ip=100, login_failures_per_account=3), Clock())
    for _ in range(3):
        rl.begin("203.0.113.66", "alice@example.org").failed()
    with pytest.raises(RateLimited):
        rl.begin("203.0.113.66", "alice@example.org")
    rl.begin("203.0.113.66", "bob@example.org").failed()  # other accounts from there: per-IP budget
    rl.begin("198.51.100.1", "alice@example.org").succeeded()  # the real user elsewhere gets in


def test_success_clears_its_pair_never_the_ip() -> None:
    rl = LoginRateLimiter(LIMITS, Clock())
    rl.begin("203.0.113.5", "x").failed()
    rl.begin("203.0.113.5", "alice").failed()
    rl.begin("203.0.113.5", "alice").succeeded()
    rl.begin("203.0.113.5", "y").failed()
    with pytest.raises(RateLimited):
        rl.begin("203.0.113.5", "alice")


def test_name_moves_the_count_and_checks_the_pair() -> None:
    rl = LoginRateLimiter(LimitsConfig(login_failures_per_ip=100, login_failures_per_account=1), Clock())
    rl.begin("192.0.2.1", "alice").failed()
    attempt = rl.begin("192.0.2.1", None)
    with pytest.raises(RateLimited):
        attempt.name("ALICE")
    attempt.name("bob")
    with pytest.raises(RateLimited):
        rl.begin("192.0.2.1", "bob")


def test_reset() -> None:
    rl = LoginRateLimiter(LimitsConfig(login_failures_per_ip=2, login_failures_per_account=1), Clock())
    for ip in ("192.0.2.1", "192.0.2.2"):
        rl.begin(ip, "alice@example.org").failed()
        rl.begin(ip, "bob@example.org").failed()
    assert rl.reset(account="Alice@Example.org") == 2
    with pytest.raises(RateLimited):
        rl.begin("192.0.2.1", "alice@example.org")  # the IP's own count stays
    assert rl.reset(ip="192.0.2.1") == 2  # its count and its bob pair
    rl.begin("192.0.2.1", "alice@example.org").succeeded()
    with pytest.raises(RateLimited):
        rl.begin("192.0.2.2", "bob@example.org")
    assert rl.reset() == 2
    rl.begin("192.0.2.2", "bob@example.org").succeeded()


def test_record_failure_counts_a_refused_client_key() -> None:
    rl = LoginRateLimiter(LimitsConfig(login_failures_per_ip=100, login_failures_per_account=1), Clock())
    rl.record_failure("192.0.2.1", "alice")
    with pytest.raises(RateLimited):
        rl.begin("192.0.2.1", "alice")


def test_ipv6_counts_per_64() -> None:
    rl = LoginRateLimiter(LIMITS, Clock())
    for i in range(3):
        rl.begin(f"2001:db8::{i}", None).failed()
    with pytest.raises(RateLimited):
        rl.begin("2001:db8::ffff", None)
    rl.begin("2001:db8:1::1", None)
    for _ in range(2):
        rl.begin("::ffff:192.0.2.9", None)
    with pytest.raises(RateLimited):
        rl.begin("192.0.2.9", None).name("x")
        rl.begin("192.0.2.9", None)


def test_stale_keys_are_swept() -> None:
    clock = Clock()
    rl = LoginRateLimiter(LIMITS, clock)
    for i in range(100):
        rl.begin(f"10.0.0.{i}", f"u{i}").failed()
    clock.advance(61)
    rl.begin("10.1.0.1", None)
    assert len(rl._failures) == 1
