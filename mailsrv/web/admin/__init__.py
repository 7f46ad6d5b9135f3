"""The admin interface (`[web] admin_path`, /webadmin/ by default; loopback listeners only
unless `[web] admin_on_all_listeners`): `api/` is the JSON API (mailsrv/web/admin/api.py),
everything else the page's assets (mailsrv/web/static/admin/, built from web/ts/admin/)."""

from __future__ import annotations

from typing import cast

from twisted.web.resource import IResource

from mailsrv.config.types import ListenerConfig
from mailsrv.server import Server
from mailsrv.web.admin.api import AdminAPI
from mailsrv.web.interface import InterfaceResource


def admin_interface(server: Server, listener: ListenerConfig) -> IResource:
    api = AdminAPI(server, server.config.web.admin_path)
    return cast(IResource, InterfaceResource(api, "admin"))
