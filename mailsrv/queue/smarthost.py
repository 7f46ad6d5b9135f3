"""Delivery of one queued message's recipients through a smarthost transport
(`[transports.NAME]` of kind submissions, submission or smtp: mailsrv/config/transports.py).

Invariants:
- The smarthost's addresses come from our resolver (an IP literal is used as it is); they
  are tried in order until one session gives definitive answers, as for MX hosts.
- TLS: `submissions` is TLS from the first byte (RFC 8314 §3.3), `submission` and
  `smtp` with `tls = "required"` need STARTTLS; the certificate is verified against
  `tls_name` (default: the host) unless the transport says `tls_verify = false`.
- The login (when configured) uses the strongest SASL mechanism both sides offer
  (SCRAM-PLUS, SCRAM, then PLAIN: mailsrv/sasl/client.py), only ever inside TLS.
- A refused or impossible login is a temporary failure with a clear reply (4.7.0 ...):
  the password is ours to fix, so the mail waits instead of bouncing.
- MTA-STS does not apply: it authenticates the recipient domain's MX hosts, and the
  smarthost is not one; the transport's own TLS settings do. REQUIRETLS (RFC 8689 §4.2.1)
  needs a verified TLS connection to the smarthost and a smarthost that offers REQUIRETLS
  (which then carries the requirement on); a transport that does not verify fails such a
  message at once (5.7.30). `TLS-Required: No` changes nothing here.
- Never raises for network, DNS or peer behaviour: the result has a reply per recipient.
"""

from __future__ import annotations

import ipaddress
from dataclasses import replace
from typing import Any

from mailsrv.config.transports import TransportConfig
from mailsrv.dns.resolver import DNSNotFound, DNSTemporaryError, Resolver
from mailsrv.queue.remote import AcceptedByHost, DomainDelivery, HostAttempt, accepted_at
from mailsrv.smtpclient import DeliveryResult, Envelope, Reply, SessionOptions, send_message
from mailsrv.smtpclient.cache import ConnectionCache

MAX_ADDRESSES = 10


def smarthost_session(transport: TransportConfig, base: SessionOptions) -> SessionOptions:
    """The client session options for `transport`, from the runner's defaults."""
    verify = transport.tls_verify
    return replace(
        base,
        tls="verify" if verify else transport.tls,
        implicit_tls=transport.kind == "submissions",
        tls_hostname=transport.tls_name or transport.host,
        ca_file=transport.tls_ca_file or base.ca_file,
        username=transport.username,
        password=transport.password,
        allow_plaintext_auth_without_tls=False,
    )


async def addresses(resolver: Resolver, host: str) -> list[str] | Reply:
    try:
        ipaddress.ip_address(host)
        return [host]
    except ValueError:
        pass
    try:
        found = await resolver.addresses(host)
    except DNSNotFound:
        return Reply(451, (f"4.4.4 smarthost {host} does not exist (check the transport's host)",))
    except DNSTemporaryError as e:
        return Reply(451, (f"4.4.3 address lookup for smarthost {host} failed: {e}",))
    if not found:
        return Reply(451, (f"4.4.4 smarthost {host} has no address",))
    return list(found)[:MAX_ADDRESSES]


async def deliver_via_smarthost(
    reactor: Any,
    resolver: Resolver,
    transport: TransportConfig,
    envelope: Envelope,
    message: bytes,
    base: SessionOptions,
    on_accepted: AcceptedByHost | None = None,
    connections: ConnectionCache | None = None,
    requiretls: bool = False,
) -> DomainDelivery:
    recipients = envelope.recipients
    if requiretls and not transport.tls_verify:
        refusal = Reply(550, (f"5.7.30 REQUIRETLS: transport {transport.name} does not verify TLS to its smarthost",))
        return DomainDelivery({r: refusal for r in recipients})
    found = await addresses(resolver, transport.host)
    if isinstance(found, Reply):
        return DomainDelivery({r: found for r in recipients})
    session = smarthost_session(transport, base)
    if requiretls:
        session = replace(session, requiretls=True)
    tried: list[HostAttempt] = []
    last: DeliveryResult | None = None
    for ip in found:
        hook = None if on_accepted is None else accepted_at(on_accepted, HostAttempt(transport.host, ip, "accepted"))
        result = await send_message(reactor, ip, transport.port, envelope, message, session, hook, connections)
        last = result
        failure = result.failure
        if failure is not None and failure.kind == "auth":
            # Our login is refused or impossible: every address would say the same.
            tried.append(HostAttempt(transport.host, ip, str(failure)))
            reply = Reply(451, (f"4.7.0 login to smarthost {transport.name} failed: {' '.join(str(failure).split())}",))
            return DomainDelivery({r: reply for r in recipients}, tuple(tried))
        if failure is not None and not failure.permanent and failure.reply is None:
            tried.append(HostAttempt(transport.host, ip, str(failure)))  # not reached: the next address
            continue
        tried.append(HostAttempt(transport.host, ip, str(failure) if failure else "session completed"))
        passed = frozenset(o.address for o in result.recipients if o.dsn_passed)
        return DomainDelivery({o.address: o.reply for o in result.recipients}, tuple(tried), passed)
    assert last is not None
    return DomainDelivery({o.address: o.reply for o in last.recipients}, tuple(tried))
