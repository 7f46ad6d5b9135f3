# mypy: disable-error-code="no-untyped-call"
# (Twisted services, web and endpoints are unannotated; calling them is fine.)
"""The web listener's stand-in until the web interface lands: a status page on the real
listener wiring (address, port, TLS)."""

from __future__ import annotations

from typing import Any, cast

from twisted.internet.interfaces import IProtocolFactory
from twisted.web.resource import Resource
from twisted.web.server import Request, Site

from mailsrv.server import Server


class _Status(Resource):
    isLeaf = True

    def __init__(self, server: Server) -> None:
        super().__init__()
        self.mailsrv: Server = server

    def render_GET(self, request: Request) -> bytes:
        from mailsrv.certacme import serve_challenge
        from mailsrv.web.mtasts import serve_policy

        for serve in (serve_policy, lambda server, r: serve_challenge(server.acme_challenges, r)):
            body = serve(self.mailsrv, request)
            if body is not None:
                return body
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        return f"mailsrv on {self.mailsrv.config.hostname.unicode}: web interface not built yet\n".encode()


def web_site(server: Server) -> IProtocolFactory:
    from mailsrv.web.channel import deadline_channel

    request_timeout = server.config.limits.http_request_timeout
    # Twisted's idle timeout (12 h by default) restarts on every byte; the channel's own
    # deadline per request does not (mailsrv/web/channel.py).
    site: Any = Site(_Status(server), timeout=request_timeout * 2)
    site.protocol = deadline_channel(request_timeout)
    site.displayTracebacks = False
    return cast(IProtocolFactory, site)
