"""Where webhooks may go: URL checks when an account saves one, and the connection endpoint
that refuses loopback, link-local, private and other non-global addresses when the request
is made (unless `[webhooks] allow_private_targets`, or localserve). The address is checked
after resolving, on the address actually connected to, so a name that resolves to
127.0.0.1 (or changes its answer between check and use: DNS rebinding) cannot reach
services on the server's own network.
"""

from __future__ import annotations

import ipaddress
from typing import Any
from urllib.parse import urlsplit

from twisted.internet import defer
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP6ClientEndpoint, wrapClientTLS
from twisted.web.client import BrowserLikePolicyForHTTPS
from twisted.web.iweb import IAgentEndpointFactory
from zope.interface import implementer

MAX_URL = 2048


class TargetRefused(Exception):
    """The URL's host is an address webhooks may not be sent to."""


def check_url(url: str) -> str:
    """An http(s) URL with a host and nothing odd; returns it. Raises ValueError with the reason."""
    if len(url) > MAX_URL:
        raise ValueError(f"URL longer than {MAX_URL} characters")
    if any(c.isspace() or ord(c) < 32 for c in url):
        raise ValueError("URL with white space or control characters")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ValueError("URL must start with http:// or https://")
    if not parts.hostname:
        raise ValueError("URL without a host")
    if parts.username or parts.password:
        raise ValueError("credentials go into the Authorization value, not the URL")
    try:
        _port = parts.port
    except ValueError:
        raise ValueError("URL with an invalid port") from None
    return url


def allowed_address(ip: str, allow_private: bool) -> bool:
    """Whether a webhook may connect to `ip`."""
    address = ipaddress.ip_address(ip.split("%")[0])
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_unspecified or address.is_multicast:
        return False
    if allow_private:
        return True
    return address.is_global and not (address.is_loopback or address.is_link_local or address.is_private)


class _CheckedEndpoint:
    """Resolves the host, refuses disallowed addresses, connects to the first allowed one."""

    def __init__(self, reactor: Any, resolve: Any, host: str, port: int, tls: Any, allow_private: bool, timeout: float):
        self.reactor = reactor
        self.resolve = resolve
        self.host = host
        self.port = port
        self.tls = tls
        self.allow_private = allow_private
        self.timeout = timeout

    def connect(self, factory: Any) -> defer.Deferred[Any]:
        return defer.ensureDeferred(self._connect(factory))

    async def _connect(self, factory: Any) -> Any:
        try:
            ipaddress.ip_address(self.host)
            addresses: tuple[str, ...] = (self.host,)
        except ValueError:
            addresses = tuple(await self.resolve(self.host))
        allowed = [a for a in addresses if allowed_address(a, self.allow_private)]
        if not allowed:
            raise TargetRefused(f"{self.host}: no address webhooks may be sent to ({', '.join(addresses) or 'none'})")
        last: Exception | None = None
        for ip in allowed[:4]:
            cls = TCP6ClientEndpoint if ":" in ip else TCP4ClientEndpoint
            endpoint: Any = cls(self.reactor, ip, self.port, timeout=self.timeout)
            if self.tls is not None:
                endpoint = wrapClientTLS(self.tls, endpoint)
            try:
                return await endpoint.connect(factory)
            except Exception as e:  # try the next address
                last = e
        assert last is not None
        raise last


@implementer(IAgentEndpointFactory)
class CheckedEndpointFactory:
    """For `Agent.usingEndpointFactory`: every connection goes through `_CheckedEndpoint`.
    `resolve(host)` gives the host's addresses (the server's DNS resolver)."""

    def __init__(self, reactor: Any, resolve: Any, allow_private: bool, timeout: float) -> None:
        self.reactor = reactor
        self.resolve = resolve
        self.allow_private = allow_private
        self.timeout = timeout
        self.policy = BrowserLikePolicyForHTTPS()  # type: ignore[no-untyped-call]

    def endpointForURI(self, uri: Any) -> Any:
        host = uri.host.decode("ascii") if isinstance(uri.host, bytes) else str(uri.host)
        host = host.strip("[]")
        tls = None
        if uri.scheme == b"https":
            tls = self.policy.creatorForNetloc(uri.host, uri.port)
        return _CheckedEndpoint(self.reactor, self.resolve, host, int(uri.port), tls, self.allow_private, self.timeout)
