"""HTTP against a site in memory: raw request bytes into the real protocol factory (our
channel, request class and resources) over a StringTransport, the raw response back.

For routing, headers and limits without sockets; what a user sees is tested over real
sockets against the daemon (tests/web/test_site.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.interfaces import ISSLTransport
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from zope.interface import implementer


@implementer(ISSLTransport)
class _TLSStringTransport(StringTransport):
    def getPeerCertificate(self) -> None:
        return None

    def setTcpNoDelay(self, enabled: bool) -> None:
        pass


@dataclass
class Response:
    status: int
    headers: dict[str, str]  # the last of repeated fields
    body: bytes
    raw: bytes = field(repr=False, default=b"")
    cookies: list[str] = field(default_factory=list)  # every Set-Cookie value


def parse_response(raw: bytes) -> Response:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers: dict[str, str] = {}
    cookies: list[str] = []
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
        if name.strip().lower() == "set-cookie":
            cookies.append(value.strip())
    if headers.get("transfer-encoding") == "chunked":
        out, rest = b"", body
        while rest:
            size_line, _, rest = rest.partition(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                break
            out, rest = out + rest[:size], rest[size + 2 :]
        body = out
    return Response(status, headers, body, raw, cookies)


def exchange(site: Any, raw: bytes, *, secure: bool = False, peer: str = "127.0.0.1") -> Response:
    response = exchange_or_none(site, raw, secure=secure, peer=peer)
    assert response is not None, "no response"
    return response


def exchange_or_none(site: Any, raw: bytes, *, secure: bool = False, peer: str = "127.0.0.1") -> Response | None:
    """Sends one raw request; returns the response written so far (resources that answer
    at once: static files, 404s, redirects, refusals)."""
    clock = Clock()
    protocol = site.buildProtocol(IPv4Address("TCP", peer, 40000))
    protocol.callLater = clock.callLater
    transport = (_TLSStringTransport if secure else StringTransport)(
        hostAddress=IPv4Address("TCP", "127.0.0.1", 80), peerAddress=IPv4Address("TCP", peer, 40000)
    )
    protocol.makeConnection(transport)
    protocol.dataReceived(raw)
    value = transport.value()
    protocol.connectionLost(None)
    return parse_response(value) if value else None


def get(site: Any, path: str, *, host: str = "mail.example.org", secure: bool = False, **headers: str) -> Response:
    extra = "".join(f"{k.replace('_', '-')}: {v}\r\n" for k, v in headers.items())
    return exchange(site, f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n".encode(), secure=secure)
