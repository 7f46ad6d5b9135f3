"""Which transport delivers a queued recipient: the configured routes, compiled once.

    routes = Routes(config.transports, account_routes)
    routes.choose(account, mail_from, recipient_domain, attempts)  -> "direct" or a transport name

Invariants:
- The submitting account's own routes (`[[accounts.NAME.routes]]` in dynamic.toml, read
  through `account_routes` at each call, so an edit applies at once) are tried first, then
  mailsrv.toml's `[[routes]]`, each list in order; the first rule whose every given condition
  holds wins (recipient domain, sender domain, submitting account, attempts already made >=
  minimum); none matching is the built-in `direct`.
- Per call the cost is a few set lookups per rule (mailsrv.toml's are compiled at start) and
  one account lookup; with no routes at all it is a constant. The queue calls it when a
  message is queued and again at every attempt, so `minimum_attempts` and a changed
  configuration take effect at the next attempt (an administrator's override,
  `recipient.transport_fixed`, is never re-evaluated).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

from mailsrv.config.transports import DIRECT, RouteConfig, TransportsConfig

__all__ = ["DIRECT", "AccountRoutes", "Routes"]

# The account's own routes (dynamic config); () for none or an unknown account.
AccountRoutes = Callable[[str], Sequence[RouteConfig]]


def _first(rules: Sequence[RouteConfig], account: str, mail_from: str, recipient_domain: str, attempts: int) -> str:
    sender_domain: str | None = None
    for rule in rules:
        if rule.recipient_domains and recipient_domain not in rule.recipient_domains:
            continue
        if rule.sender_domains:
            if sender_domain is None:
                sender_domain = mail_from.rpartition("@")[2].lower() if mail_from else ""
            if not sender_domain or sender_domain not in rule.sender_domains:
                continue
        if rule.accounts and account not in rule.accounts:
            continue
        if attempts < rule.minimum_attempts:
            continue
        return rule.transport
    return ""


class Routes:
    def __init__(self, config: TransportsConfig | None = None, account_routes: AccountRoutes | None = None) -> None:
        config = config or TransportsConfig()
        self.config = config
        self._rules: tuple[RouteConfig, ...] = config.routes
        self._account_routes = account_routes

    @property
    def trivial(self) -> bool:
        """No routes: every recipient goes `direct` unless an administrator says otherwise."""
        return not self._rules and self._account_routes is None

    def choose(self, account: str, mail_from: str, recipient_domain: str, attempts: int = 0) -> str:
        """The transport for a recipient in `recipient_domain` (an A-label) of a message from
        `mail_from` ("" for the null sender) submitted by `account` ("" for system mail)."""
        if account and self._account_routes is not None:
            own = self._account_routes(account)
            if own:
                found = _first(own, account, mail_from, recipient_domain, attempts)
                if found:
                    return found
        if not self._rules:
            return DIRECT
        return _first(self._rules, account, mail_from, recipient_domain, attempts) or DIRECT

    def fingerprint(self) -> str:
        """Changes when mailsrv.toml's routes or transports change (the queue then re-evaluates
        the recipients it keeps at start; accounts' own routes apply from each next attempt)."""
        rules = [
            (r.transport, sorted(r.recipient_domains), sorted(r.sender_domains), sorted(r.accounts), r.minimum_attempts)
            for r in self._rules
        ]
        text = repr((sorted(self.config.transports), rules))  # sorted: set order varies between processes
        return hashlib.sha256(text.encode()).hexdigest()[:32]
