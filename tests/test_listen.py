"""mailsrv/listen.py: an IPv6 listener is IPv6 only, so `0.0.0.0` and `::` share a port (as
quickstart writes them) and IPv4 peers never appear as ::ffff:a.b.c.d."""

from __future__ import annotations

import socket
from typing import Any

import pytest
from twisted.internet import reactor
from twisted.internet.protocol import Factory, Protocol

from mailsrv.listen import ipv6_available, listen_tcp
from tests.ports import free_port

R: Any = reactor


@pytest.mark.skipif(not ipv6_available("::"), reason="this machine has no IPv6")
def test_ipv4_and_ipv6_wildcards_share_a_port() -> None:
    factory = Factory.forProtocol(Protocol)
    port = free_port()
    v4 = listen_tcp(R, "0.0.0.0", port, factory)
    v6 = listen_tcp(R, "::", port, factory)
    try:
        assert v6.getHost().host == "::" and v6.getHost().port == port
        # The kernel completes the handshakes from its backlog: both accept connections.
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
        socket.create_connection(("::1", port), timeout=5).close()
        with pytest.raises(OSError):
            listen_tcp(R, "::", port, factory)  # a port in use is an error at once
    finally:
        v4.stopListening()
        v6.stopListening()
