"""Delivery of one queued message to the recipients of one destination domain over SMTP.

Invariants:
- Route (RFC 5321 §5.1): the domain's MX hosts in preference order; no MX records means
  the domain itself is the host (implicit MX); a null MX (RFC 7505) or a domain that does
  not exist is a permanent failure; a DNS lookup that fails temporarily is a temporary one.
- Hosts and their addresses are tried in order until one session gives definitive answers;
  a host that cannot be reached, times out, breaks the protocol or fails TLS only moves
  on to the next (RFC 5321 §5.1 "try the next"). The last host's failure is the outcome.
- MTA-STS (RFC 8461 §5): when the domain's policy is in "enforce" mode, only MX hosts the
  policy lists are used, each with verified TLS for its name; no matching host is a
  temporary failure (4.7.5). "testing" and "none" policies change nothing.
- REQUIRETLS (RFC 8689 §4.2.1): the MX hosts must be authenticated, which here means listed
  by the domain's MTA-STS policy ("enforce" or "testing"; DNSSEC is not checked), each
  session verifies the host's certificate and the peer must offer REQUIRETLS. Without such
  a policy, or a peer without REQUIRETLS, the recipients fail at once (5.7.30).
- A message with `TLS-Required: No` (RFC 8689 §3) and without REQUIRETLS ignores MTA-STS:
  STARTTLS stays opportunistic.
- Never raises for network, DNS or peer behaviour: the result has a reply per recipient.
- `on_accepted(host, outcomes)` is awaited as soon as a host accepted the message for some
  recipients, before the session ends (see `mailsrv.smtpclient.session`).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from mailsrv.dns.mtasts import Policy
from mailsrv.dns.resolver import DNSNotFound, DNSTemporaryError, Resolver
from mailsrv.smtpclient import DeliveryResult, Envelope, RecipientOutcome, Reply, SessionOptions, send_message
from mailsrv.smtpclient.cache import ConnectionCache

MAX_HOSTS = 10  # MX hosts tried per attempt; a hostile zone could list hundreds


class PolicySource(Protocol):
    """Where MTA-STS policies come from (`mailsrv.dns.mtasts.MTASTSPolicies`)."""

    async def policy(self, domain: str) -> Policy | None: ...


@dataclass(frozen=True)
class HostAttempt:
    host: str
    ip: str
    outcome: str  # short text for the attempt history


AcceptedByHost = Callable[["HostAttempt", Sequence[RecipientOutcome]], Awaitable[None]]


@dataclass(frozen=True)
class DomainDelivery:
    replies: dict[str, Reply]  # recipient -> final reply of this attempt
    hosts: tuple[HostAttempt, ...] = field(default=())
    # Recipients whose DSN request went on to a host offering DSN (RFC 3461 §5.2.2.2).
    dsn_passed: frozenset[str] = frozenset()


def _all(recipients: Sequence[str], reply: Reply) -> dict[str, Reply]:
    return {r: reply for r in recipients}


async def route(resolver: Resolver, domain: str) -> tuple[str, ...] | Reply:
    """The hosts to try for `domain`, or the reply that ends this attempt."""
    try:
        mx = await resolver.mx(domain)
    except DNSNotFound:
        return Reply(550, (f"5.1.2 domain {domain} does not exist",))
    except DNSTemporaryError as e:
        return Reply(451, (f"4.4.3 MX lookup for {domain} failed: {e}",))
    if mx.null_mx:
        return Reply(556, (f"5.1.10 {domain} does not accept mail (null MX, RFC 7505)",))
    if not mx.records:
        return (domain,)  # RFC 5321 §5.1: implicit MX
    return mx.hosts[:MAX_HOSTS]


async def deliver_to_domain(
    reactor: Any,
    resolver: Resolver,
    domain: str,
    envelope: Envelope,
    message: bytes,
    options: SessionOptions,
    port: int = 25,
    policies: PolicySource | None = None,
    on_accepted: AcceptedByHost | None = None,
    connections: ConnectionCache | None = None,
    requiretls: bool = False,
    tls_optional: bool = False,
) -> DomainDelivery:
    hosts = await route(resolver, domain)
    if isinstance(hosts, Reply):
        return DomainDelivery(_all(envelope.recipients, hosts))
    enforce = False
    policy = None
    if policies is not None and (requiretls or not tls_optional):
        policy = await policies.policy(domain)
    if requiretls:
        if policy is None or policy.mode == "none":
            refusal = f"5.7.30 REQUIRETLS: no MTA-STS policy of {domain} authenticates its MX hosts"
            return DomainDelivery(_all(envelope.recipients, Reply(550, (refusal,))))
        enforce = True
        hosts = tuple(h for h in hosts if policy.allows(h))
        if not hosts:
            refusal = f"5.7.30 REQUIRETLS: no MX host of {domain} matches its MTA-STS policy"
            return DomainDelivery(_all(envelope.recipients, Reply(550, (refusal,))))
        options = replace(options, requiretls=True)
    elif policy is not None and policy.mode == "enforce":
        enforce = True
        hosts = tuple(h for h in hosts if policy.allows(h))
        if not hosts:
            return DomainDelivery(
                _all(envelope.recipients, Reply(451, (f"4.7.5 no MX host of {domain} matches its MTA-STS policy",)))
            )
    tried: list[HostAttempt] = []
    last: DeliveryResult | None = None
    last_reply = Reply(451, (f"4.4.4 no usable address for any MX host of {domain}",))
    for host in hosts:
        try:
            addresses = await resolver.addresses(host)
        except DNSNotFound:
            tried.append(HostAttempt(host, "", "host does not exist"))
            continue
        except DNSTemporaryError as e:
            tried.append(HostAttempt(host, "", f"address lookup failed: {e}"))
            last_reply = Reply(451, (f"4.4.3 address lookup for {host} failed",))
            continue
        for ip in addresses:
            session = replace(options, tls_hostname=options.tls_hostname or host)
            if enforce:
                session = replace(session, tls="verify", tls_hostname=host)
            hook = None
            if on_accepted is not None:
                hook = accepted_at(on_accepted, HostAttempt(host, ip, "accepted"))
            result = await send_message(reactor, ip, port, envelope, message, session, hook, connections)
            last = result
            if result.failure is not None and not result.failure.permanent and result.failure.reply is None:
                # Could not talk to this host at all: try the next one.
                tried.append(HostAttempt(host, ip, str(result.failure)))
                continue
            tried.append(HostAttempt(host, ip, str(result.failure) if result.failure else "session completed"))
            passed = frozenset(o.address for o in result.recipients if o.dsn_passed)
            return DomainDelivery({o.address: o.reply for o in result.recipients}, tuple(tried), passed)
    if last is not None:
        return DomainDelivery({o.address: o.reply for o in last.recipients}, tuple(tried))
    return DomainDelivery(_all(envelope.recipients, last_reply), tuple(tried))


def accepted_at(
    on_accepted: AcceptedByHost, host: HostAttempt
) -> Callable[[Sequence[RecipientOutcome]], Awaitable[None]]:
    async def hook(outcomes: Sequence[RecipientOutcome]) -> None:
        await on_accepted(host, outcomes)

    return hook


_TLS_REQUIRED_NO = re.compile(rb"(?im)^TLS-Required:[ \t]*No[ \t]*\r?$")


def tls_optional(message: bytes) -> bool:
    """Whether the message's header says `TLS-Required: No` (RFC 8689 §3)."""
    end = message.find(b"\r\n\r\n")
    header = message if end < 0 else message[: end + 2]
    return _TLS_REQUIRED_NO.search(header) is not None
