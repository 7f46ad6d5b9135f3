# mypy: disable-error-code="no-untyped-call"
# (Twisted services, web and endpoints are unannotated; calling them is fine.)
"""Stand-ins for protocols whose issues have not landed yet.

The listener wiring is real (address, port, TLS); only the protocol behind it is missing.
SMTP listeners answer with 421 (RFC 5321 §3.8: service not available) so a client gets a
clear, temporary refusal; the web listener serves a status page.
"""

from __future__ import annotations

from typing import Any, cast

from twisted.internet.interfaces import IProtocolFactory
from twisted.internet.protocol import Factory, Protocol
from twisted.web.resource import Resource
from twisted.web.server import Request, Site

from mailsrv.config.types import ListenerConfig
from mailsrv.server import Server


class _NotYet(Protocol):
    def connectionMade(self) -> None:
        transport: Any = self.transport
        transport.write(b"421 4.3.2 this mailsrv build has no SMTP service yet\r\n")
        transport.loseConnection()


def placeholder_factory(listener: ListenerConfig) -> IProtocolFactory:
    return cast(IProtocolFactory, Factory.forProtocol(_NotYet))


class _Status(Resource):
    isLeaf = True

    def __init__(self, server: Server) -> None:
        super().__init__()
        self.mailsrv: Server = server

    def render_GET(self, request: Request) -> bytes:
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        return f"mailsrv on {self.mailsrv.config.hostname.unicode}: web interface not built yet\n".encode()


def web_site(server: Server) -> IProtocolFactory:
    site: Any = Site(_Status(server))
    site.displayTracebacks = False
    return cast(IProtocolFactory, site)
