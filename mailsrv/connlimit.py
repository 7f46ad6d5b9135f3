"""Connection caps in front of every listener (issue 17 item 3).

One address (an IPv4 address, or an IPv6 /64: one subscriber's network) may hold at most
`max_connections_per_ip` connections on each listener, and the whole daemon at most
`max_connections`, a figure kept below the open-file limit so that the store, the queue
and the logs always have descriptors left. Without the caps, 1,100 idle HTTP connections
from one address exhausted the 1,024 descriptors and Twisted's EMFILE recovery closed
other clients' SMTP and IMAP connections.

A connection over a cap is answered in the listener's protocol where that costs nothing
(SMTP 421, IMAP BYE, HTTP 503 on plaintext listeners; implicit TLS listeners just close)
and closed at once, before any TLS: a refused peer gets no handshake.
"""

from __future__ import annotations

import ipaddress
import resource
from dataclasses import dataclass
from typing import Any

from twisted.internet.interfaces import IAddress
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger

from mailsrv.metrics import CONNECTIONS, CONNECTIONS_OPEN, CONNECTIONS_REFUSED

log = Logger()

# Descriptors kept free for the store, the queue, DNS, logs and TLS key files: a quarter of
# the limit, at least this many.
MIN_DESCRIPTOR_RESERVE = 256
# Where the soft open-file limit is raised to at start, when the hard limit allows.
WANTED_OPEN_FILES = 65536

REFUSALS = {
    "smtp": b"421 4.7.0 too many connections, try again later\r\n",
    "submission": b"421 4.7.0 too many connections, try again later\r\n",
    "imap": b"* BYE too many connections, try again later\r\n",
    "http": b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
}


def address_key(host: str) -> str:
    """The unit a per-address cap counts: the IPv4 address, or the /64 of an IPv6 one
    (an IPv4-mapped IPv6 address counts as the IPv4 address)."""
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((int(ip) >> 64 << 64, 64)))
    return str(ip)


def raise_open_file_limit() -> int:
    """Raises the soft RLIMIT_NOFILE towards WANTED_OPEN_FILES (never above the hard limit)
    and returns the soft limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = WANTED_OPEN_FILES if hard == resource.RLIM_INFINITY else min(WANTED_OPEN_FILES, hard)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
        except (ValueError, OSError):
            pass
    return int(soft) if soft != resource.RLIM_INFINITY else WANTED_OPEN_FILES


def global_cap(open_files: int, configured: int) -> int:
    """Connections the daemon accepts in total: `configured` when set (0: derived), never
    more than the open-file limit minus the reserve."""
    reserve = max(MIN_DESCRIPTOR_RESERVE, open_files // 4)
    ceiling = max(open_files - reserve, 16)
    return min(configured, ceiling) if configured > 0 else ceiling


@dataclass
class ConnectionCounter:
    """The daemon-wide count, shared by every listener's LimitedFactory."""

    limit: int
    open: int = 0
    refused: int = 0
    warned: bool = False


class _Refusal(Protocol):
    def __init__(self, message: bytes) -> None:
        self.message = message

    def connectionMade(self) -> None:
        transport: Any = self.transport
        if self.message:
            transport.write(self.message)
        transport.loseConnection()


class LimitedFactory(Factory):
    """Puts the per-address and global caps in front of one listener's factory.

    Not a ProtocolWrapper: STARTTLS replaces the transport's protocol with a TLS layer over
    whatever protocol the transport holds, and a wrapper there would hide the session's
    IHandshakeListener (client certificates) from it. The factory hands out the inner
    factory's own protocol and counts its connectionLost instead."""

    noisy = False

    def __init__(
        self, wrapped: Any, counter: ConnectionCounter, per_address: int, refusal: bytes, protocol: str = ""
    ) -> None:
        self.wrapped = wrapped
        self.metrics_label = protocol  # the metrics label (mailsrv/metrics.py)
        self.counter = counter
        self.per_address = per_address
        self.refusal = refusal
        self.per_key: dict[str, int] = {}
        self._over: set[str] = set()

    def doStart(self) -> None:
        self.wrapped.doStart()

    def doStop(self) -> None:
        self.wrapped.doStop()

    def logPrefix(self) -> str:
        return str(self.wrapped.logPrefix())

    def buildProtocol(self, addr: IAddress | None) -> Protocol | None:
        key = address_key(str(getattr(addr, "host", "")))
        counter = self.counter
        if counter.open >= counter.limit:
            counter.refused += 1
            CONNECTIONS_REFUSED.inc()
            if not counter.warned:
                counter.warned = True
                log.warn("connection limit of {limit} reached: refusing new connections", limit=counter.limit)
            return _Refusal(self.refusal)
        if self.per_key.get(key, 0) >= self.per_address:
            if key not in self._over:
                self._over.add(key)
                log.info("{key} holds {n} connections: refusing more", key=key, n=self.per_address)
            CONNECTIONS_REFUSED.inc()
            return _Refusal(self.refusal)
        protocol: Any = self.wrapped.buildProtocol(addr)
        if protocol is None:
            return None
        self.per_key[key] = self.per_key.get(key, 0) + 1
        counter.open += 1
        CONNECTIONS.labels(self.metrics_label).inc()
        CONNECTIONS_OPEN.labels(self.metrics_label).inc()
        lost = protocol.connectionLost

        def connection_lost(reason: Any = None, *args: Any) -> None:
            self._closed(key)
            lost(reason, *args)

        protocol.connectionLost = connection_lost
        return protocol  # type: ignore[no-any-return]

    def _closed(self, key: str) -> None:
        CONNECTIONS_OPEN.labels(self.metrics_label).dec()
        count = self.per_key.get(key, 0) - 1
        if count <= 0:
            self.per_key.pop(key, None)
        else:
            self.per_key[key] = count
        self._over.discard(key)
        self.counter.open -= 1
        if self.counter.open < self.counter.limit:
            self.counter.warned = False
