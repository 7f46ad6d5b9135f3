# mypy: disable-error-code="no-untyped-call,misc"
# (twisted.web is unannotated: calling and subclassing its classes is fine.)
"""The account page (`[web] account_path`, /webaccount/ by default): every setting an account
may change itself (docs/web.md, "The account page").

- `api/`: the JSON API (`AccountAPI`, mailsrv/web/account/api.py) with sessions;
- `import`: upload of mail to import, answered with progress lines (transfer.py);
- `export`: a form post answered with the archive, streamed (transfer.py);
- everything else: the page's assets (mailsrv/web/static/account/, built from web/ts/account/).
"""

from __future__ import annotations

from typing import Any, cast

import msgspec
from twisted.web.resource import IResource, Resource
from twisted.web.server import Request

from mailsrv.config.types import ListenerConfig
from mailsrv.ops.errors import OpsError
from mailsrv.server import Server
from mailsrv.web.account.api import AccountAPI
from mailsrv.web.account.transfer import serve_export, serve_import
from mailsrv.web.interface import InterfaceResource
from mailsrv.web.jsonapi import ApiError, api_error
from mailsrv.web.sessions import CSRF_HEADER

IMPORT_PATH = b"import"  # below the interface path; the site allows [limits] http_max_upload here


def _refusal(request: Request, error: Exception, lines: bool) -> bytes:
    mapped = api_error(error) or ApiError("server:error", "internal error")
    request.setResponseCode(401 if mapped.code in ("user:noAuth", "user:badAuth") else 400)
    detail = {"error": {"code": mapped.code, "message": mapped.message}}
    if lines:
        request.setHeader(b"content-type", b"application/x-ndjson; charset=utf-8")
        return msgspec.json.encode(detail) + b"\n"
    request.setHeader(b"content-type", b"text/plain; charset=utf-8")
    return f"{mapped.message}\n".encode()


class ImportResource(Resource):
    """POST with the file as the body and the CSRF header (the page's XMLHttpRequest)."""

    isLeaf = True

    def __init__(self, api: AccountAPI) -> None:
        super().__init__()
        self.api = api

    def render_POST(self, request: Request) -> Any:
        csrf = request.getHeader(CSRF_HEADER)
        try:
            session = self.api.session_of(request, csrf.decode("ascii", "replace") if csrf else None)
            return serve_import(self.api.server, session.principal, request)
        except (ApiError, OpsError) as e:
            return _refusal(request, e, lines=True)


class ExportResource(Resource):
    """POST of the export form (fields csrf, format, archive, mailbox): the archive."""

    isLeaf = True

    def __init__(self, api: AccountAPI) -> None:
        super().__init__()
        self.api = api

    def render_POST(self, request: Request) -> Any:
        try:
            session = self.api.form_session(request)
            return serve_export(
                self.api.server, session.principal, request, lambda e: _refusal(request, e, lines=False)
            )
        except (ApiError, OpsError) as e:
            return _refusal(request, e, lines=False)


def account_interface(server: Server, listener: ListenerConfig) -> IResource:
    api = AccountAPI(server, server.config.web.account_path)
    children = {IMPORT_PATH: ImportResource(api), b"export": ExportResource(api)}
    return cast(IResource, InterfaceResource(api, "account", children))
