"""Listening TCP sockets for the configured listeners.

An IPv6 listener is IPv6 only (IPV6_V6ONLY): `::` and `0.0.0.0` on the same port are then
two listeners, as quickstart writes them, instead of the first taking IPv4 too (Linux's
default, bindv6only=0) and the second failing with "address in use". IPv4 peers thus always
appear with their IPv4 address, never as ::ffff:a.b.c.d, for SPF, rate limits and logs.
"""

from __future__ import annotations

import socket
from typing import Any

from twisted.internet.interfaces import IListeningPort, IProtocolFactory

BACKLOG = 128


def listen_tcp(reactor: Any, address: str, port: int, factory: IProtocolFactory) -> IListeningPort:
    """Listens on address:port; raises OSError (e.g. EADDRINUSE) at once."""
    if ":" not in address:
        port_: IListeningPort = reactor.listenTCP(port, factory, backlog=BACKLOG, interface=address)
        return port_
    sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Twisted's own ports
        sock.bind((address, port))
        sock.listen(BACKLOG)
        sock.setblocking(False)
        # The reactor takes a duplicate of the descriptor; this one is closed below.
        adopted: IListeningPort = reactor.adoptStreamPort(sock.fileno(), socket.AF_INET6, factory)
        return adopted
    finally:
        sock.close()


def ipv6_available(address: str = "::1") -> bool:
    """Whether this machine can listen on the IPv6 `address` (`::1`, or `::` for every
    address): generated configurations add IPv6 listeners only then."""
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            probe.bind((address, 0))
    except OSError:
        return False
    return True
