"""A raw IMAPS connection to the real daemon, for tests that time single commands (no client library between)."""

from __future__ import annotations

import socket
import ssl

from tests.daemon import RunningDaemon


def raw_login(daemon: RunningDaemon, timeout: float = 60.0) -> ssl.SSLSocket:
    """An IMAPS socket logged in as alice, greeting and LOGIN answer read."""
    raw = socket.create_connection((daemon.address, daemon.ports["imaps"]), timeout=timeout)
    sock = daemon.ssl_context().wrap_socket(raw)
    sock.recv(4096)  # greeting
    sock.sendall(b"a LOGIN alice@example.org alicepass\r\n")
    read_tagged(sock, b"a")
    return sock


def read_tagged(sock: ssl.SSLSocket, tag: bytes) -> bytes:
    """Everything up to and including the tagged answer to `tag`."""
    data = b""
    while not any(line.startswith(tag + b" ") for line in data.split(b"\r\n")):
        chunk = sock.recv(65536)
        assert chunk, data[-500:]
        data += chunk
    return data
