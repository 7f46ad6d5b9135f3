"""Route selection (mailsrv/queue/routes.py): first match in order, every given condition,
`direct` when nothing matches, and a cost that stays flat."""

from __future__ import annotations

import time

from mailsrv.config.transports import RouteConfig, TransportConfig, TransportsConfig
from mailsrv.queue.routes import DIRECT, Routes


def _routes(*rules: RouteConfig) -> Routes:
    transports = {DIRECT: TransportConfig(DIRECT, "direct")}
    for rule in rules:
        transports.setdefault(rule.transport, TransportConfig(rule.transport, "submission", host="relay.example"))
    return Routes(TransportsConfig(transports, rules))


def test_no_routes_is_always_direct() -> None:
    routes = Routes()
    assert routes.trivial
    assert routes.choose("alice", "alice@example.org", "example.com", 5) == DIRECT


def test_conditions_combine_and_the_first_match_wins() -> None:
    routes = _routes(
        RouteConfig("slow", recipient_domains=frozenset({"example.com"}), minimum_attempts=2),
        RouteConfig(
            "alices", accounts=frozenset({"alice"}), sender_domains=frozenset({"example.org", "bücher.example"})
        ),
        RouteConfig("everyone-to-net", recipient_domains=frozenset({"example.net"})),
    )
    assert routes.choose("bob", "bob@example.org", "example.com", 0) == DIRECT
    assert routes.choose("bob", "bob@example.org", "example.com", 2) == "slow"  # after two attempts
    assert routes.choose("alice", "alice@example.org", "example.com", 0) == "alices"
    assert routes.choose("alice", "alice@EXAMPLE.org", "example.com", 0) == "alices"  # domains compare lower case
    assert routes.choose("alice", "alice@Bücher.example", "example.com", 0) == "alices"  # as written (U-label)
    assert routes.choose("alice", "alice@other.example", "example.com", 0) == DIRECT  # both conditions needed
    assert routes.choose("alice", "", "example.com", 0) == DIRECT  # the null sender has no domain
    assert routes.choose("", "", "example.net", 0) == "everyone-to-net"  # system mail (DSNs) too
    assert routes.choose("alice", "alice@example.org", "example.com", 3) == "slow"  # order decides


def test_fingerprint_follows_the_configuration_not_the_process() -> None:
    a = _routes(RouteConfig("p", recipient_domains=frozenset({"a.example", "b.example", "c.example"})))
    b = _routes(RouteConfig("p", recipient_domains=frozenset({"c.example", "b.example", "a.example"})))
    c = _routes(RouteConfig("p", recipient_domains=frozenset({"a.example"})))
    assert a.fingerprint() == b.fingerprint() != c.fingerprint()
    assert Routes().fingerprint() != a.fingerprint()


def test_choosing_costs_microseconds_with_many_rules() -> None:
    rules = [RouteConfig(f"t{i}", recipient_domains=frozenset({f"d{i}.example"})) for i in range(50)]
    routes = _routes(*rules)
    start = time.process_time()
    for _ in range(10_000):
        routes.choose("alice", "alice@example.org", "nowhere.example", 0)  # the worst case: no rule matches
    per_call = (time.process_time() - start) / 10_000
    assert per_call < 100e-6, per_call  # ~10 µs on this machine; an upper bound for a loaded CI box


def test_an_accounts_own_routes_come_first() -> None:
    own = {"alice": (RouteConfig("mine", recipient_domains=frozenset({"example.com"})),)}
    config = _routes(RouteConfig("global")).config
    routes = Routes(config, lambda account: own.get(account, ()))
    assert not routes.trivial
    assert routes.choose("alice", "alice@example.org", "example.com") == "mine"
    assert routes.choose("alice", "alice@example.org", "example.net") == "global"  # hers do not match
    assert routes.choose("bob", "bob@example.org", "example.com") == "global"
    assert routes.choose("", "", "example.com") == "global"  # system mail has no account
    own["alice"] = ()  # an edit of the dynamic config applies at the next call
    assert routes.choose("alice", "alice@example.org", "example.com") == "global"
