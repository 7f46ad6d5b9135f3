# mypy: disable-error-code="no-untyped-call,misc"
"""One web interface as a resource: `api/` is its JSON API (jsonapi.ApiResource), a few named
children (uploads, downloads) if it has them, everything else its asset folder
(`mailsrv/web/static/<iface>/`, index.html at the root)."""

from __future__ import annotations

from typing import Any

from twisted.web.resource import Resource

from mailsrv.web.jsonapi import ApiInterface, ApiResource
from mailsrv.web.static import StaticFolder, interface_assets


class InterfaceResource(Resource):
    def __init__(self, api: ApiInterface, assets: StaticFolder | str, children: dict[bytes, Any] | None = None) -> None:
        super().__init__()
        self.api = ApiResource(api)
        self.assets = interface_assets(assets) if isinstance(assets, str) else assets
        self.named: dict[bytes, Any] = {b"api": self.api, **(children or {})}

    def getChildWithDefault(self, name: bytes, request: Any) -> Any:
        child = self.named.get(name)
        if child is not None:
            return child
        # An asset: the folder resolves the whole remaining path itself.
        request.postpath.insert(0, request.prepath.pop())
        return self.assets

    def render(self, request: Any) -> bytes:  # the interface path without its slash: site.py redirects
        return self.assets.render(request)
