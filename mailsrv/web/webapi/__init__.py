"""The webapi v0: send and manage mail over HTTP/JSON, wire-compatible with mox's webapi.

- `resource.py`: the HTTP surface (routing, Basic auth through ops.login, body parsing,
  error codes, answers).
- `forms.py`: the request from a form field or the body; uploaded files for Send.
- `decode.py`: strict msgspec decoding with Go's leniencies (case-insensitive keys, `null`).
- `types.py`: request/response Structs with mox's field names.
- `methods.py`: one function per method, calling mailsrv/ops/.
- `docs.py`: the HTML index and the OpenAPI 3.1 document.

The user's documentation is docs/webapi.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from twisted.web.resource import IResource

if TYPE_CHECKING:
    from mailsrv.config.types import ListenerConfig
    from mailsrv.server import Server


def webapi_enabled(server: Server) -> bool:
    """`[web] webapi_enabled`, always on in localserve."""
    return server.config.web.webapi_enabled or server.config.localserve


def webapi_resource(server: Server, listener: ListenerConfig) -> IResource:
    """The webapi at `[web] webapi_path` of a web listener; 404 for everything while it is
    not enabled."""
    from twisted.web.pages import notFound

    from mailsrv.web.webapi.resource import WebapiResource

    if not webapi_enabled(server):
        return notFound()
    return cast(IResource, WebapiResource(server, listener))
