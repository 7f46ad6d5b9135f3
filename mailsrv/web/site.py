# mypy: disable-error-code="no-untyped-call,misc"
# (twisted.web is unannotated: calling and subclassing its classes is fine.)
"""The web site of one HTTP listener: well-known paths first, then the interfaces at their
configured prefixes (`[web]` in the config), everything else 404.

Interfaces register here, one line each, in `INTERFACES` (name → a function of the server
and the listener that returns the interface's resource, usually a Klein app's `.resource()`);
`WELL_KNOWN` maps exact paths served on every listener (autoconfig, autodiscover). The admin
interface is only mounted on loopback listeners unless `[web] admin_on_all_listeners`.

Every response carries the security headers (mailsrv/web/headers.py); request bodies over
`[limits] http_max_body` (or `http_max_upload` for the paths in `UPLOAD_PATHS`) are refused
with 413 before they are read; each request must arrive within the channel's deadline
(mailsrv/web/channel.py).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any, cast

from twisted.internet.interfaces import IProtocolFactory
from twisted.logger import Logger
from twisted.web.resource import IResource, Resource
from twisted.web.server import Request, Site

from mailsrv.config.types import LimitsConfig, ListenerConfig
from mailsrv.server import Server
from mailsrv.web.account import IMPORT_PATH as ACCOUNT_IMPORT_PATH
from mailsrv.web.account import account_interface
from mailsrv.web.account.api import AccountAPI
from mailsrv.web.admin import admin_interface
from mailsrv.web.admin.api import AdminAPI
from mailsrv.web.autoconfig import CLIENT_CONFIG_PATHS
from mailsrv.web.headers import set_security_headers
from mailsrv.web.static import not_found
from mailsrv.web.webapi import webapi_resource
from mailsrv.web.webmail.api import WebmailAPI
from mailsrv.web.webmail.resource import webmail_resource

log = Logger()

ResourceMaker = Callable[[Server, ListenerConfig], IResource]


def message_upload_limit(limits: LimitsConfig) -> int:
    """`http_max_upload`, but no more than a body that can carry a message of `max_message_size`
    (base64 in a form or JSON field: 4/3, plus room for the other fields): a larger one could
    never be sent, so it gets 413 before it is read."""
    return min(limits.http_max_upload, limits.max_message_size * 4 // 3 + 1024 * 1024)


# The web interfaces by name; each helper adds its line. The name picks `[web] <name>_path`.
INTERFACES: dict[str, ResourceMaker] = {
    "account": account_interface,
    "admin": admin_interface,
    "webapi": webapi_resource,
    "webmail": webmail_resource,
}
# The API class of each interface (jsonapi.ApiInterface subclass), by the same name: `npm run gen`
# writes its OpenAPI document to web/openapi/<name>.json and its TypeScript types (mailsrv/web/openapi.py).
API_CLASSES: dict[str, type] = {"account": AccountAPI, "admin": AdminAPI, "webmail": WebmailAPI}
# Exact paths answered on every HTTP listener before the interfaces.
WELL_KNOWN: dict[bytes, ResourceMaker] = {**CLIENT_CONFIG_PATHS}
# (interface, path below its prefix[, limit]) that take bodies up to `[limits] http_max_upload`, or up to
# the limit the function of the limits config gives.
UPLOAD_PATHS: list[tuple[str, bytes] | tuple[str, bytes, Callable[[LimitsConfig], int]]] = [
    ("account", ACCOUNT_IMPORT_PATH),  # mail import (mbox, Maildir, zip, tgz)
    ("webapi", b"Send", message_upload_limit),  # Send: attachments, up to max_message_size
    ("webmail", b"upload", message_upload_limit),
]


def interface_path(server: Server, name: str) -> str:
    """The URL path prefix of an interface ("/webaccount/"), from `[web] <name>_path`."""
    path: str = getattr(server.config.web, f"{name}_path")
    return path


def is_loopback(listener: ListenerConfig) -> bool:
    try:
        return ipaddress.ip_address(listener.address).is_loopback
    except ValueError:
        return False


def _segments(prefix: str) -> list[bytes]:
    return [s.encode("ascii") for s in prefix.strip("/").split("/") if s]


class _NotFound(Resource):
    isLeaf = True

    def render(self, request: Request) -> bytes:
        return not_found(request)


class _Served(Resource):
    """A leaf answering with a function of the request: the MTA-STS policy and ACME answers."""

    isLeaf = True

    def __init__(self, serve: Callable[[Any], bytes | None]) -> None:
        super().__init__()
        self.serve = serve

    def render_GET(self, request: Request) -> bytes:
        body = self.serve(request)
        return not_found(request) if body is None else body


class _Redirect(Resource):
    isLeaf = True

    def __init__(self, location: bytes) -> None:
        super().__init__()
        self.location = location

    def render(self, request: Request) -> bytes:
        request.setResponseCode(302)
        request.setHeader(b"location", self.location)
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        return b"see " + self.location + b"\n"


class SiteRoot(Resource):
    """Routes by path: well-known paths, then interface prefixes (longest first)."""

    def __init__(self, server: Server, listener: ListenerConfig) -> None:
        super().__init__()
        from mailsrv.certacme import serve_challenge
        from mailsrv.web.mtasts import serve_policy

        self.well_known: dict[bytes, Any] = {path: make(server, listener) for path, make in WELL_KNOWN.items()}
        self.well_known[b"/.well-known/mta-sts.txt"] = _Served(lambda r: serve_policy(server, r))
        self.acme = _Served(lambda r: serve_challenge(server.acme_challenges, r))
        if listener.name == server.config.web.metrics_listener:
            from mailsrv.web.metrics import MetricsResource

            self.well_known[b"/metrics"] = MetricsResource(server)
        self.mounts: list[tuple[list[bytes], Any]] = []
        for name, make in INTERFACES.items():
            if name == "admin" and not (server.config.web.admin_on_all_listeners or is_loopback(listener)):
                continue
            self.mounts.append((_segments(interface_path(server, name)), make(server, listener)))
        self.mounts.sort(key=lambda mount: -len(mount[0]))
        webmail = server.config.web.webmail_path
        self.home: Any = _Redirect(webmail.encode("ascii")) if "webmail" in INTERFACES else None
        self.not_found = _NotFound()

    def getChildWithDefault(self, name: bytes, request: Any) -> Any:
        # Twisted has moved `name` to prepath; the rest of the decoded path is in postpath.
        full: list[bytes] = [name, *request.postpath]
        exact = b"/" + b"/".join(full)
        if exact in self.well_known:
            request.postpath.clear()
            return self.well_known[exact]
        if full[:2] == [b".well-known", b"acme-challenge"]:
            return self.acme
        for segments, resource in self.mounts:
            n = len(segments)
            if full[:n] != segments:
                continue
            if len(full) == n and n > 0:
                # "/webaccount" without its slash: relative URLs of the page need it.
                return _Redirect(b"/" + b"/".join(segments) + b"/")
            request.prepath.extend(request.postpath[: n - 1] if n else [])
            del request.postpath[: max(n - 1, 0)]
            if n == 0:  # mounted at "/": the whole path is the interface's
                request.postpath.insert(0, request.prepath.pop())
            return resource
        if full == [b""] and self.home is not None:
            return self.home
        return self.not_found

    def render(self, request: Request) -> bytes:
        return not_found(request)


class MailsrvRequest(Request):
    """A request with the body limit (413 before reading more) and the security headers."""

    _body_limit: int = 0
    _body_received: int = 0
    _refused: bool = False
    # Set by a resource whose success already logged the mail log's "accepted" line (webapi Send):
    # the access log line would only repeat it.
    traced_by_maillog: bool = False

    def gotLength(self, length: int | None) -> None:
        site = getattr(self.channel, "site", None)
        path = getattr(self.channel, "_path", b"")
        self._body_limit = site.body_limit(path) if isinstance(site, MailsrvSite) else 1 << 62
        if length is not None and length > self._body_limit:
            self._refuse()
            return
        super().gotLength(length)

    def handleContentChunk(self, data: bytes) -> None:
        if self._refused:
            return
        self._body_received += len(data)
        if self._body_received > self._body_limit:  # chunked: the length shows as it comes
            self._refuse()
            return
        super().handleContentChunk(data)

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        if self._refused:
            return
        # Twisted parses the Content-Type of every POST with the email package (~0.1 ms) to look
        # for form data, then the form itself; a JSON API call has none, and the webapi parses its
        # own form (a second parse of a multipart body with its files would be wasted).
        ctype = self.requestHeaders.getRawHeaders(b"content-type") or [b""]
        site = getattr(self.channel, "site", None)
        if ctype[0].startswith(b"application/json") or (isinstance(site, MailsrvSite) and site.reads_own_form(path)):
            self._parsePOSTFormSubmission = False
        super().requestReceived(command, path, version)

    def _refuse(self) -> None:
        self._refused = True
        channel = self.channel
        if channel is None or channel.transport is None:
            return
        body = b"request body too large\n"
        peer = getattr(channel.transport.getPeer(), "host", "?")
        log.info("HTTP request body over {limit} octets from {peer}: 413", limit=self._body_limit, peer=peer)
        transport: Any = channel.transport
        transport.write(
            b"HTTP/1.1 413 Content Too Large\r\ncontent-type: text/plain; charset=utf-8\r\n"
            b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(body), body)
        )
        channel.loseConnection()


class MailsrvSite(Site):
    requestFactory = MailsrvRequest
    displayTracebacks = False

    def __init__(self, server: Server, listener: ListenerConfig, resource: IResource, **kwargs: Any) -> None:
        super().__init__(resource, **kwargs)
        self.mailsrv = server
        limits = server.config.limits
        self.max_body = limits.http_max_body
        self.max_upload = limits.http_max_upload
        # Not when mounted at "/": every other interface's form posts would start with it.
        webapi = interface_path(server, "webapi")
        self.webapi_path = webapi.encode("ascii") if webapi != "/" else b"\0"
        self.upload_limits: dict[bytes, int] = {}
        for iface, sub, *limit in UPLOAD_PATHS:
            path = interface_path(server, iface).encode("ascii") + sub
            self.upload_limits[path] = limit[0](limits) if limit else self.max_upload

    def reads_own_form(self, raw_path: bytes) -> bool:
        """Whether the resource at this path parses its request body itself (the webapi)."""
        return raw_path.startswith(self.webapi_path)

    def body_limit(self, raw_path: bytes) -> int:
        path = raw_path.split(b"?", 1)[0]
        return self.upload_limits.get(path, self.max_body)

    def log(self, request: Any) -> None:
        if getattr(request, "traced_by_maillog", False):
            return
        super().log(request)

    def getResourceFor(self, request: Request) -> IResource:
        request.setHeader(b"server", b"mailsrv")
        set_security_headers(request, self.mailsrv.config.web.hsts_max_age)
        return cast(IResource, super().getResourceFor(request))


def web_site(server: Server, listener: ListenerConfig) -> IProtocolFactory:
    """The protocol factory of one HTTP listener."""
    from mailsrv.web.channel import deadline_channel

    request_timeout = server.config.limits.http_request_timeout
    # Twisted's idle timeout (12 h by default) restarts on every byte; the channel's own
    # deadline per request does not (mailsrv/web/channel.py).
    root = cast(IResource, SiteRoot(server, listener))
    site: Any = MailsrvSite(server, listener, root, timeout=request_timeout * 2)
    site.protocol = deadline_channel(request_timeout)
    return cast(IProtocolFactory, site)
