"""MTA-STS (RFC 8461): whether a destination domain requires verified TLS to its MX hosts.

Invariants:
- Discovery: the `_mta-sts.<domain>` TXT record (exactly one starting "v=STSv1", §3.1); then
  the policy from https://mta-sts.<domain>/.well-known/mta-sts.txt over HTTPS with a
  verified certificate for that name, no redirects (§3.3), at most 64 KiB, within a timeout.
  The policy host's address comes from our resolver (tests run it on loopback).
- A policy is cached per domain for its max_age (bounded to one year) and refreshed when the
  TXT id changes; a failed fetch keeps using a cached, unexpired policy (§5.1).
- `mode: enforce` means: deliver only to MX hosts matching an `mx:` pattern, with verified
  TLS (§5); "testing" and "none" change nothing in delivery.
- Nothing here raises to the caller for network or format problems: no usable policy is
  `None` (deliver as without MTA-STS).
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from twisted.internet import defer
from twisted.internet import endpoints as _endpoints
from twisted.internet.protocol import Protocol, connectionDone
from twisted.python.failure import Failure
from twisted.web import client as _client
from twisted.web.client import ResponseDone
from twisted.web.http import PotentialDataLoss
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAgentEndpointFactory
from zope.interface import implementer

from mailsrv.dns.resolver import DNSError, Resolver
from mailsrv.tlsutil import client_tls_options

endpoints: Any = _endpoints  # partly untyped
web_client: Any = _client

MAX_POLICY_SIZE = 64 * 1024
MAX_AGE_LIMIT = 31557600  # RFC 8461 §3.2: max_age at most one year

Mode = Literal["enforce", "testing", "none"]


@dataclass(frozen=True)
class Policy:
    mode: Mode
    mx: tuple[str, ...]
    max_age: int

    def allows(self, host: str) -> bool:
        """RFC 8461 §4.1: exact match or "*.example.com" matching one leftmost label."""
        host = host.rstrip(".").lower()
        for pattern in self.mx:
            if pattern.startswith("*."):
                suffix = pattern[1:]
                if host.endswith(suffix) and "." not in host[: -len(suffix)] and host[: -len(suffix)]:
                    return True
            elif host == pattern:
                return True
        return False


def parse_txt(records: tuple[bytes, ...]) -> str | None:
    """The id of the single STSv1 TXT record, or None (§3.1)."""
    found = []
    for raw in records:
        text = raw.decode("ascii", "replace")
        fields = [f.strip() for f in text.split(";") if f.strip()]
        if not fields or fields[0].replace(" ", "") != "v=STSv1":
            continue
        ident = None
        for f in fields[1:]:
            name, _, value = f.partition("=")
            if name.strip() == "id" and value.strip().isalnum() and len(value.strip()) <= 32:
                ident = value.strip()
        if ident is None:
            return None
        found.append(ident)
    return found[0] if len(found) == 1 else None


def parse_policy(text: str) -> Policy | None:
    """A policy file (§3.2), or None when it is not a valid one."""
    values: dict[str, str] = {}
    mx: list[str] = []
    for line in text.replace("\r\n", "\n").split("\n"):
        if not line.strip():
            continue
        key, sep, value = line.partition(":")
        if not sep:
            return None
        key, value = key.strip(), value.strip()
        if key == "mx":
            mx.append(value.lower().rstrip("."))
        elif key not in values:
            values[key] = value
    if values.get("version") != "STSv1":
        return None
    mode = values.get("mode")
    if mode not in ("enforce", "testing", "none"):
        return None
    age = values.get("max_age", "")
    if not age.isdigit():
        return None
    if mode != "none" and not mx:
        return None
    return Policy(mode, tuple(mx), min(int(age), MAX_AGE_LIMIT))  # type: ignore[arg-type]


@implementer(IAgentEndpointFactory)
class _ResolvedEndpoints:
    """HTTPS endpoints whose address comes from our resolver, verified for the URI's host."""

    def __init__(self, reactor: Any, ip: str, port: int, ca_file: Path | None) -> None:
        self.reactor, self.ip, self.port, self.ca_file = reactor, ip, port, ca_file

    def endpointForURI(self, uri: Any) -> Any:
        host = uri.host.decode("ascii")
        family = (
            endpoints.TCP6ClientEndpoint if ipaddress.ip_address(self.ip).version == 6 else endpoints.TCP4ClientEndpoint
        )
        tcp = family(self.reactor, self.ip, self.port, timeout=10)
        return endpoints.wrapClientTLS(client_tls_options(host, verify=True, ca_file=self.ca_file), tcp)


class MTASTSPolicies:
    """Fetches and caches MTA-STS policies. `https_port` and `ca_file` exist for tests."""

    def __init__(
        self,
        reactor: Any,
        resolver: Resolver,
        timeout: float = 30,
        https_port: int = 443,
        ca_file: Path | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.reactor = reactor
        self.resolver = resolver
        self.timeout = timeout
        self.https_port = https_port
        self.ca_file = ca_file
        self.clock = clock
        self._cache: dict[str, tuple[float, str, Policy]] = {}  # domain -> (expires, id, policy)

    async def policy(self, domain: str) -> Policy | None:
        domain = domain.rstrip(".").lower()
        now = self.clock()
        cached = self._cache.get(domain)
        try:
            ident = parse_txt(await self.resolver.txt(f"_mta-sts.{domain}"))
        except DNSError:
            ident = None
        if cached is not None and cached[0] > now and (ident is None or ident == cached[1]):
            return cached[2]
        if ident is None:
            return cached[2] if cached is not None and cached[0] > now else None
        fetched = await self._fetch(domain)
        if fetched is None:
            return cached[2] if cached is not None and cached[0] > now else None
        self._cache[domain] = (now + fetched.max_age, ident, fetched)
        return fetched

    async def _fetch(self, domain: str) -> Policy | None:
        try:
            text = await fetch_policy_text(
                self.reactor, self.resolver, domain, self.https_port, self.ca_file, self.timeout
            )
        except PolicyUnavailable:
            return None
        return parse_policy(text)


class PolicyUnavailable(Exception):
    """The policy file could not be fetched; the message says why (for the admin's DNS check)."""


async def fetch_policy_text(
    reactor: Any,
    resolver: Resolver,
    domain: str,
    https_port: int = 443,
    ca_file: Path | None = None,
    timeout: float = 30,
) -> str:
    """The text of https://mta-sts.<domain>/.well-known/mta-sts.txt (§3.3: verified TLS, no
    redirects, at most MAX_POLICY_SIZE), from the first address of the policy host that gives
    it; PolicyUnavailable with the last reason otherwise."""
    host = f"mta-sts.{domain}"
    try:
        addresses = await resolver.addresses(host)
    except DNSError as e:
        raise PolicyUnavailable(f"{host}: {e}") from None
    if not addresses:
        raise PolicyUnavailable(f"{host} has no address")
    reason = ""
    for ip in addresses:
        try:
            agent = web_client.Agent.usingEndpointFactory(reactor, _ResolvedEndpoints(reactor, ip, https_port, ca_file))
            d = agent.request(b"GET", f"https://{host}/.well-known/mta-sts.txt".encode(), Headers({}))
            d.addTimeout(timeout, reactor)
            response = await d
            if response.code != 200:  # §3.3: no redirects, only 200 counts
                response.deliverBody(_Discard())
                reason = f"{ip}: HTTP status {response.code}"
                continue
            if response.length is not web_client.UNKNOWN_LENGTH and response.length > MAX_POLICY_SIZE:
                response.deliverBody(_Discard())
                reason = f"{ip}: policy larger than {MAX_POLICY_SIZE} octets"
                continue
            reader = _BoundedBody(MAX_POLICY_SIZE)
            response.deliverBody(reader)
            reader.done.addTimeout(timeout, reactor)
            body = await reader.done
        except Exception as e:
            reason = f"{ip}: {_describe(e)}"
            continue
        if body is None:
            reason = f"{ip}: policy larger than {MAX_POLICY_SIZE} octets"
            continue
        return body.decode("utf-8", "replace")
    raise PolicyUnavailable(reason)


def _describe(error: Exception) -> str:
    """A short reason for a failed fetch (Twisted wraps TLS and connection errors in lists)."""
    inner = getattr(error, "reasons", None)
    if inner:
        return "; ".join(_describe(f.value) for f in inner)[:300]
    return (str(error) or type(error).__name__)[:300]


class _Discard(Protocol):
    """Drops a response body we do not want."""

    def connectionMade(self) -> None:
        transport: Any = self.transport
        transport.stopProducing()


class _BoundedBody(Protocol):
    """Collects a response body of at most `limit` bytes; `done` fires with it, or with None
    (and the connection dropped) as soon as more arrives: a hostile policy host sending an
    endless chunked body costs us `limit` bytes, not memory without bound."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.chunks: list[bytes] = []
        self.size = 0
        self.done: defer.Deferred[bytes | None] = defer.Deferred()

    def dataReceived(self, data: bytes) -> None:
        if self.done.called:
            return
        self.size += len(data)
        if self.size > self.limit:
            self.chunks = []
            self.done.callback(None)
            transport: Any = self.transport
            transport.stopProducing()
            return
        self.chunks.append(data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self.done.called:
            return
        # ResponseDone: the whole body; PotentialDataLoss: no length given, the server closed.
        if isinstance(reason.value, (ResponseDone, PotentialDataLoss)):
            self.done.callback(b"".join(self.chunks))
        else:
            self.done.errback(reason)
