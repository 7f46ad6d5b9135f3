# mypy: disable-error-code="no-untyped-call"
# (twisted.web's Resource and Request methods are unannotated.)
"""The webmail's non-JSON resources, all for the session's account:

- `GET msg/<id>/html[?remote=1]`: the message's HTML as its own document, sanitised
  (`ops.webmail.html_document`), for a sandboxed iframe. Its Content-Security-Policy is the
  second wall: no script at all (`sandbox` without allow-scripts, `script-src 'none'`), no
  forms, no plugins, and images/fonts/styles from nowhere but our part URLs unless `remote=1`.
  `cid:` images point at `part/<path>` relative to the document.
- `GET msg/<id>/part/<path>[?download=1]`: one part, decoded. Shown inline only for raster
  images, PDF and plain text; everything else (HTML above all) is a download.
- `GET msg/<id>/raw`: the message as stored, as text.
- `POST upload`: an attachment file as the request body (`x-filename` header, URL-encoded;
  Content-Type its type), answered with the `Upload` JSON; the CSRF header is required. The
  site lets this path take bodies up to `[limits] http_max_upload`.

Authentication is the web session's (`Authenticate`: the account of the request's session,
checking the CSRF header when asked, or None). Errors are plain-text 4xx answers.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, unquote

import msgspec
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from mailsrv.ops import webmail as wmops
from mailsrv.ops import webmail_compose as wc
from mailsrv.ops.errors import LimitExceeded, NotFound, OpsError
from mailsrv.ops.webmail import Webmail
from mailsrv.server import Server

log = Logger()

Authenticate = Callable[[Request, bool], str | None]

_DOC_STYLE = (
    "body{font-family:system-ui,sans-serif;font-size:15px;line-height:1.4;margin:8px;"
    "overflow-wrap:break-word;color:#111;background:#fff}img{max-width:100%;height:auto}"
    "pre{white-space:pre-wrap}blockquote{margin:0 0 0 .8em;padding-left:.6em;border-left:2px solid #ccc}"
)


def html_csp(remote: bool) -> bytes:
    """The policy of a message document: sandboxed (no scripts, no forms, no top navigation),
    links may open new tabs; loads only from us (our part URLs) unless remote is allowed."""
    sources = "'self' data: https: http:" if remote else "'self' data:"
    return (
        f"default-src 'none'; script-src 'none'; img-src {sources}; style-src 'unsafe-inline' "
        f"{'https: http:' if remote else ''}; font-src {sources}; media-src 'none'; form-action 'none'; "
        "base-uri 'none'; frame-ancestors 'self'; "
        "sandbox allow-same-origin allow-popups allow-popups-to-escape-sandbox"
    ).encode()


ATTACHMENT_CSP = b"default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; sandbox; frame-ancestors 'self'"
_INLINE_TYPES = re.compile(r"image/(png|jpeg|gif|webp)|application/pdf|text/plain(;.*)?")


def _text(request: Request, code: int, message: str) -> bytes:
    request.setResponseCode(code)
    request.setHeader(b"content-type", b"text/plain; charset=utf-8")
    return message.encode() + b"\n"


def _disposition(kind: str, filename: str) -> bytes:
    """RFC 6266 with an RFC 8187 UTF-8 name and an ASCII fallback."""
    ascii_name = re.sub(r"[^A-Za-z0-9 ._()-]", "_", filename)[:100] or "file"
    return f"{kind}; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename, safe='')}".encode()


class _Async(Resource):
    """A leaf whose GET/POST runs a coroutine and maps ops errors to 4xx."""

    isLeaf = True

    def __init__(self, server: Server, authenticate: Authenticate) -> None:
        super().__init__()
        self.mailsrv = server
        self.authenticate = authenticate

    def _run(self, request: Request, csrf: bool, work: Callable[[Webmail], Any]) -> Any:
        account = self.authenticate(request, csrf)
        if account is None:
            return _text(request, 403, "not logged in (or the CSRF header is missing)")
        wm = Webmail(self.mailsrv, account)

        async def run() -> None:
            try:
                body: bytes = await work(wm)
            except NotFound as e:
                body = _text(request, 404, e.message)
            except LimitExceeded as e:
                body = _text(request, 413, e.message)
            except OpsError as e:
                body = _text(request, 400, e.message)
            except Exception:
                log.failure("webmail request {path} failed", path=request.path)
                body = _text(request, 500, "server error")
            if not request._disconnected:
                request.write(body)
                request.finish()

        Deferred.fromCoroutine(run())
        return NOT_DONE_YET


class MessageResource(_Async):
    """`msg/<id>/html`, `msg/<id>/part/<path>`, `msg/<id>/raw`."""

    def render_GET(self, request: Request) -> Any:
        segments = [s.decode("ascii", "replace") for s in request.postpath or []]
        if len(segments) < 2 or not segments[0].isdigit() or len(segments[0]) > 18:
            return _text(request, 404, "not found")
        message_id, what = int(segments[0]), segments[1]
        if what == "html" and len(segments) == 2:
            remote = request.args.get(b"remote") == [b"1"]
            return self._run(request, False, lambda wm: self._html(wm, request, message_id, remote))
        if what == "part" and len(segments) == 3:
            download = request.args.get(b"download") == [b"1"]
            return self._run(request, False, lambda wm: self._part(wm, request, message_id, segments[2], download))
        if what == "raw" and len(segments) == 2:
            return self._run(request, False, lambda wm: self._raw(wm, request, message_id))
        return _text(request, 404, "not found")

    async def _html(self, wm: Webmail, request: Request, message_id: int, remote: bool) -> bytes:
        # cid: images load from our part URLs, authorised like this document (csrf field).
        csrf = quote((request.args.get(b"csrf") or [b""])[0].decode("ascii", "replace"), safe="")
        html, _ = await wmops.html_document(wm, message_id, remote, lambda path: f"part/{path}?csrf={csrf}")
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        request.setHeader(b"content-security-policy", html_csp(remote))
        request.setHeader(b"x-frame-options", b"SAMEORIGIN")
        request.setHeader(b"referrer-policy", b"no-referrer")
        request.setHeader(b"cache-control", b"private, no-store")
        doc = (
            '<!doctype html><html><head><meta charset="utf-8"><meta name="referrer" content="no-referrer">'
            f"<style>{_DOC_STYLE}</style></head><body>{html}</body></html>"
        )
        return doc.encode("utf-8")

    async def _part(self, wm: Webmail, request: Request, message_id: int, path: str, download: bool) -> bytes:
        if not re.fullmatch(r"[0-9.]{0,100}", path):
            raise NotFound("no such part")
        data, content_type, filename = await wmops.part(wm, message_id, path)
        inline = not download and _INLINE_TYPES.fullmatch(content_type) is not None
        request.setHeader(b"content-type", content_type.encode() if inline else b"application/octet-stream")
        request.setHeader(b"content-disposition", _disposition("inline" if inline else "attachment", filename))
        request.setHeader(b"content-security-policy", ATTACHMENT_CSP)
        request.setHeader(b"x-frame-options", b"SAMEORIGIN")
        request.setHeader(b"cache-control", b"private, max-age=3600")
        return data

    async def _raw(self, wm: Webmail, request: Request, message_id: int) -> bytes:
        data = await wmops.raw_message(wm, message_id)
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        request.setHeader(b"content-security-policy", ATTACHMENT_CSP)
        request.setHeader(b"cache-control", b"private, no-store")
        return data


class UploadResource(_Async):
    """`POST upload`: one attachment file; answers the `Upload` as JSON."""

    def render_POST(self, request: Request) -> Any:
        return self._run(request, True, lambda wm: self._upload(wm, request))

    async def _upload(self, wm: Webmail, request: Request) -> bytes:
        name = unquote((request.getHeader(b"x-filename") or b"file").decode("ascii", "replace"))
        content_type = (request.getHeader(b"content-type") or b"application/octet-stream").decode("ascii", "replace")
        data = request.content.read() if request.content is not None else b""
        limit = self.mailsrv.config.limits.max_message_size
        store = wc.uploads(self.mailsrv)
        upload = await wm.in_thread(store.put, wm.account, name, content_type.split(";")[0].strip(), data, limit)
        request.setHeader(b"content-type", b"application/json")
        return msgspec.json.encode(upload)
