# mypy: disable-error-code="no-untyped-call"
# (twisted.web is unannotated; calling it is fine.)
"""Mail client self-configuration over HTTP: Thunderbird autoconfig and Outlook autodiscover.

- `GET /mail/config-v1.1.xml?emailaddress=...` and the same under `/.well-known/autoconfig/`
  (Thunderbird asks `autoconfig.<domain>` first, then the domain's well-known path),
- `POST /autodiscover/autodiscover.xml` with the request XML (Outlook; also
  `/Autodiscover/Autodiscover.xml`, the spelling Outlook uses).

The documents come from `mailsrv.ops.clientconfig`; an address outside our domains is 404,
a malformed one (or a hostile XML body) is 400 with a one-line reason.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, cast

from twisted.web.resource import IResource, Resource
from twisted.web.server import Request

from mailsrv.ops import clientconfig
from mailsrv.ops.errors import InvalidInput, NotFound

if TYPE_CHECKING:
    from mailsrv.config.types import ListenerConfig
    from mailsrv.server import Server

# Paths (as the site sees them, bytes) -> resource kind.
AUTOCONFIG_PATHS = (b"/mail/config-v1.1.xml", b"/.well-known/autoconfig/mail/config-v1.1.xml")
AUTODISCOVER_PATHS = (b"/autodiscover/autodiscover.xml", b"/Autodiscover/Autodiscover.xml")


def _refuse(request: Request, status: int, text: str) -> bytes:
    request.setResponseCode(status)
    request.setHeader(b"content-type", b"text/plain; charset=utf-8")
    return text.encode() + b"\n"


class Autoconfig(Resource):
    """Thunderbird's clientConfig document for `?emailaddress=`."""

    isLeaf = True

    def __init__(self, server: Server) -> None:
        super().__init__()
        self.mailsrv = server

    def render_GET(self, request: Request) -> bytes:
        values = (request.args or {}).get(b"emailaddress") or []
        if not values:
            return _refuse(request, 400, "missing parameter emailaddress")
        try:
            settings = clientconfig.settings_for(self.mailsrv, values[0].decode("utf-8", "replace"))
        except InvalidInput as e:
            return _refuse(request, 400, e.message)
        except NotFound as e:
            return _refuse(request, 404, e.message)
        request.setHeader(b"content-type", b"application/xml; charset=utf-8")
        return clientconfig.thunderbird_autoconfig(settings)


class Autodiscover(Resource):
    """Outlook's POX autodiscover: the request XML names the address."""

    isLeaf = True

    def __init__(self, server: Server) -> None:
        super().__init__()
        self.mailsrv = server

    def render_GET(self, request: Request) -> bytes:
        request.setHeader(b"allow", b"POST")
        return _refuse(request, 405, "POST the autodiscover request XML")

    def render_POST(self, request: Request) -> bytes:
        body = request.content.read(clientconfig.MAX_AUTODISCOVER_REQUEST + 1) if request.content else b""
        try:
            address = clientconfig.autodiscover_address(body)
            settings = clientconfig.settings_for(self.mailsrv, address)
        except InvalidInput as e:
            return _refuse(request, 400, e.message)
        except NotFound as e:
            return _refuse(request, 404, e.message)
        request.setHeader(b"content-type", b"application/xml; charset=utf-8")
        return clientconfig.autodiscover_response(settings)


def well_known_resources(server: Server) -> dict[bytes, Resource]:
    """Every client-configuration path with its resource, for the site's well-known routes."""
    autoconfig, autodiscover = Autoconfig(server), Autodiscover(server)
    return {**dict.fromkeys(AUTOCONFIG_PATHS, autoconfig), **dict.fromkeys(AUTODISCOVER_PATHS, autodiscover)}


def _autoconfig(server: Server, listener: ListenerConfig) -> IResource:
    return cast(IResource, Autoconfig(server))


def _autodiscover(server: Server, listener: ListenerConfig) -> IResource:
    return cast(IResource, Autodiscover(server))


# For the site's WELL_KNOWN routes: path -> resource maker of (server, listener).
CLIENT_CONFIG_PATHS: dict[bytes, Callable[[Server, ListenerConfig], IResource]] = {
    **dict.fromkeys(AUTOCONFIG_PATHS, _autoconfig),
    **dict.fromkeys(AUTODISCOVER_PATHS, _autodiscover),
}
