# mypy: disable-error-code="no-untyped-call"
# (twisted.web's Resource and Request methods are unannotated.)
"""Serving one interface's asset folder (`mailsrv/web/static/<iface>/`): `index.html` at the
interface root, files by name below it, nothing outside it.

Twisted has already split the path at '/' and percent-decoded each segment, so an encoded
slash or dot arrives here as a real one inside a segment. Every segment must be a plain
name (letters, digits, `._-`, not starting with a dot): that refuses `..`, `%2e%2e`,
`%2f`, NUL and backslashes before the file system is asked; the resolved path is checked to
be inside the folder as well (symlinks). Responses carry an ETag and `no-cache`, so a
browser revalidates and an unchanged asset costs a 304.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

from twisted.web.resource import Resource
from twisted.web.server import Request

STATIC_ROOT = Path(__file__).resolve().parent / "static"
_NAME = re.compile(rb"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
CONTENT_TYPES = {
    ".html": b"text/html; charset=utf-8",
    ".js": b"text/javascript; charset=utf-8",
    ".css": b"text/css; charset=utf-8",
    ".json": b"application/json",
    ".svg": b"image/svg+xml",
    ".png": b"image/png",
    ".ico": b"image/x-icon",
    ".txt": b"text/plain; charset=utf-8",
    ".map": b"application/json",
    ".woff2": b"font/woff2",
}


def asset_path(folder: Path, segments: list[bytes]) -> Path | None:
    """The file the path segments below `folder` name, or None when they name nothing
    servable (a bad segment, a path leaving the folder, a missing file or a directory
    without index.html). An empty last segment means the folder's index.html."""
    names = list(segments)
    if not names or names[-1] == b"":
        names = [*names[:-1], b"index.html"]
    if len(names) > 16 or not all(_NAME.fullmatch(name) for name in names):
        return None
    root = folder.resolve()
    path = root.joinpath(*(name.decode("ascii") for name in names))
    try:
        resolved = path.resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    if not resolved.is_relative_to(root) or not resolved.is_file():
        return None
    return resolved


class StaticFolder(Resource):
    """The files of one folder, by the request's remaining path (`request.postpath`)."""

    isLeaf = True

    def __init__(self, folder: Path) -> None:
        super().__init__()
        self.folder = folder

    def render_GET(self, request: Request) -> bytes:
        path = asset_path(self.folder, list(request.postpath or [b""]))
        if path is None:
            return not_found(request)
        data = path.read_bytes()
        etag = b'"' + hashlib.sha256(data).hexdigest()[:32].encode() + b'"'
        request.setHeader(b"content-type", CONTENT_TYPES.get(path.suffix, b"application/octet-stream"))
        request.setHeader(b"cache-control", b"no-cache")
        request.setHeader(b"etag", etag)
        if request.getHeader(b"if-none-match") == etag:
            request.setResponseCode(304)
            return b""
        return data

    def render_HEAD(self, request: Request) -> bytes:
        return self.render_GET(request)

    def render(self, request: Request) -> bytes:
        if request.method in (b"GET", b"HEAD"):
            return super().render(request)  # type: ignore[no-any-return]
        # Twisted's own 405 page is HTML built by a deprecated helper: a short text instead.
        request.setResponseCode(405)
        request.setHeader(b"allow", b"GET, HEAD")
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        return b"method not allowed\n"


def interface_assets(iface: str) -> StaticFolder:
    """The asset folder of one interface (`mailsrv/web/static/<iface>/`)."""
    return StaticFolder(STATIC_ROOT / iface)


def not_found(request: Any) -> bytes:
    request.setResponseCode(404)
    request.setHeader(b"content-type", b"text/plain; charset=utf-8")
    return b"not found\n"
