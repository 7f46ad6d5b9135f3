# mypy: disable-error-code="no-untyped-call"
"""The webmail interface at `[web] webmail_path`: `api/` (api.WebmailAPI), `events` (the
live-update stream), `msg/...` (message documents, parts, raw), `upload` (attachments), and
the page's assets (mailsrv/web/static/webmail/)."""

from __future__ import annotations

from typing import Any, cast

from twisted.web.resource import IResource

from mailsrv.config.types import ListenerConfig
from mailsrv.server import Server
from mailsrv.web.interface import InterfaceResource
from mailsrv.web.jsonapi import ApiError
from mailsrv.web.sessions import CSRF_HEADER
from mailsrv.web.webmail.api import WebmailAPI
from mailsrv.web.webmail.content import MessageResource, UploadResource
from mailsrv.web.webmail.stream import EventStreamResource, EventTokens


def webmail_resource(server: Server, listener: ListenerConfig) -> IResource:
    tokens = EventTokens(server.reactor)  # per listener: the page asks the origin it streams from
    api = WebmailAPI(server, server.config.web.webmail_path, tokens)

    def authenticate(request: Any, csrf_header: bool) -> str | None:
        """The session's account; the CSRF token as header (POST) or `csrf` query field (GET)."""
        try:
            if csrf_header:
                header = request.getHeader(CSRF_HEADER)
                session = api.session_of(request, header.decode("ascii", "replace") if header else None)
            else:
                session = api.form_session(request)
        except ApiError:
            return None
        return session.principal

    children = {
        b"events": EventStreamResource(server, tokens),
        b"msg": MessageResource(server, authenticate),
        b"upload": UploadResource(server, authenticate),
    }
    return cast(IResource, InterfaceResource(api, "webmail", children))
