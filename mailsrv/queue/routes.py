"""Which transport delivers a queued recipient: the configured routes, compiled once.

    routes = Routes(config.transports)
    routes.choose(account, mail_from, recipient_domain, attempts)  -> "direct" or a transport name

Invariants:
- Routes are tried in configuration order; the first whose every given condition holds wins
  (recipient domain, sender domain, submitting account, attempts already made >= minimum);
  none matching is the built-in `direct`.
- Per call the cost is a few set lookups per rule (the rules are compiled at load); with no
  routes at all it is a constant. The queue calls it when a message is queued and again at
  every attempt, so `minimum_attempts` and a changed configuration take effect at the next
  attempt (an administrator's override, `recipient.transport_fixed`, is never re-evaluated).
"""

from __future__ import annotations

import hashlib

from mailsrv.config.transports import DIRECT, RouteConfig, TransportsConfig

__all__ = ["DIRECT", "Routes"]


class Routes:
    def __init__(self, config: TransportsConfig | None = None) -> None:
        config = config or TransportsConfig()
        self.config = config
        self._rules: tuple[RouteConfig, ...] = config.routes
        self._uses_sender = any(r.sender_domains for r in self._rules)

    @property
    def trivial(self) -> bool:
        """No routes: every recipient goes `direct` unless an administrator says otherwise."""
        return not self._rules

    def choose(self, account: str, mail_from: str, recipient_domain: str, attempts: int = 0) -> str:
        """The transport for a recipient in `recipient_domain` (an A-label) of a message from
        `mail_from` ("" for the null sender) submitted by `account` ("" for system mail)."""
        if not self._rules:
            return DIRECT
        sender_domain = mail_from.rpartition("@")[2].lower() if self._uses_sender else ""
        for rule in self._rules:
            if rule.recipient_domains and recipient_domain not in rule.recipient_domains:
                continue
            if rule.sender_domains and (not sender_domain or sender_domain not in rule.sender_domains):
                continue
            if rule.accounts and account not in rule.accounts:
                continue
            if attempts < rule.minimum_attempts:
                continue
            return rule.transport
        return DIRECT

    def fingerprint(self) -> str:
        """Changes when the routes or the set of transports change (the queue then re-evaluates
        the recipients it keeps)."""
        rules = [
            (r.transport, sorted(r.recipient_domains), sorted(r.sender_domains), sorted(r.accounts), r.minimum_attempts)
            for r in self._rules
        ]
        text = repr((sorted(self.config.transports), rules))  # sorted: set order varies between processes
        return hashlib.sha256(text.encode()).hexdigest()[:32]
