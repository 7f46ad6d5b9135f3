# mypy: disable-error-code="no-untyped-call"
# (twisted.web is unannotated; calling it is fine.)
"""The webapi's HTTP surface at `[web] webapi_path` (default /webapi/v0/).

    GET  <path>               HTML index: the methods, example requests, a form per method
    GET  <path><Method>       the same page, at the method
    GET  <path>openapi.json   OpenAPI 3.1 document of every method
    POST <path><Method>       a call: HTTP Basic auth, the JSON request in form field `request`
                              (urlencoded or multipart, which may carry files) or as the body

Answers: 200 with the JSON result (or the bytes, for MessageRawGet and MessagePartGet);
400 `{"Code", "Message"}` for every refusal (codes: docs/webapi.md); 401 with
`WWW-Authenticate: Basic` for missing or wrong credentials; 429 with `Retry-After` once the
login rate limit refuses the client; 503 with `Retry-After` and `{"Code": "serverUnavailable"}`
while the mail store is unavailable (not a mox code: mox has no such answer); 404 for an
unknown method; 405 for other verbs.

Invariants:
- Credentials go through ops.login, the one login policy: password_login (rate limit, the
  verified-credentials cache: a busy application pays argon2 once per cache period, not per
  call), or token_login when the password is an API token (mailsrv/ops/apitokens.py: one
  HMAC and one indexed lookup). The body is parsed only after the credentials passed.
- Every ops error becomes a 400 with a code (the store being unavailable: the 503); anything
  else is logged with an id and answered `{"Code": "server"}`: a client never sees a traceback.
- A call runs as a coroutine on the reactor; a client that went away gets no answer written.
"""

from __future__ import annotations

import base64
import binascii
import os
from typing import Any

import msgspec
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from mailsrv.config.types import ListenerConfig
from mailsrv.ops.apitokens import looks_like_token
from mailsrv.ops.compose import MessageTooLarge
from mailsrv.ops.errors import (
    AuthFailed,
    InvalidInput,
    OpsError,
    RateLimited,
    SendAsDenied,
    StoreUnavailable,
    TemporaryFailure,
)
from mailsrv.ops.login import Peer, password_login, token_login
from mailsrv.server import Server
from mailsrv.store import interfaces as si
from mailsrv.web.webapi import docs
from mailsrv.web.webapi.decode import RequestError, decode_request
from mailsrv.web.webapi.forms import read_body
from mailsrv.web.webapi.methods import METHODS, Call, MethodError, Raw

log = Logger()

_JSON = b"application/json; charset=utf-8"
UNAVAILABLE_RETRY_AFTER = 30  # seconds a client waits after a 503 serverUnavailable
_ADDRESS_FIELDS = frozenset({"from", "to", "cc", "bcc", "reply_to", "address"})
# Part types a browser would run or render as a page of our origin: served as data instead.
_ACTIVE_TYPES = ("text/html", "image/svg+xml", "text/xml", "application/xml", "application/xhtml+xml")


def error_code(error: OpsError) -> str:
    """The webapi code of an ops error: mox's where mox has one."""
    if isinstance(error, SendAsDenied):
        return "badFrom"
    if isinstance(error, MessageTooLarge):
        return "messageTooLarge"
    if isinstance(error, InvalidInput):
        if error.field == "Extra":
            return "user"
        if error.field in _ADDRESS_FIELDS and "address" in error.message:
            return "badAddress"
        if error.field == "message_id":
            return "malformedMessageID"
        if error.field in ("headers", "subject", "references") or "line break" in error.message:
            return "badHeader"
        return "user"
    if isinstance(error, TemporaryFailure):
        return "server"
    return error.code


class WebapiResource(Resource):
    isLeaf = True

    def __init__(self, server: Server, listener: ListenerConfig) -> None:
        super().__init__()
        self.mailsrv = server
        self.listener = listener

    # --- GET: documentation ---------------------------------------------------------

    def render_GET(self, request: Request) -> bytes:
        name = _method_name(request)
        if name == "openapi.json":
            request.setHeader(b"content-type", _JSON)
            return docs.openapi_document(self.mailsrv.config.web.webapi_path)
        if name == "style.css":  # the site's CSP allows no inline style
            request.setHeader(b"content-type", b"text/css; charset=utf-8")
            return docs.STYLE.encode()
        if name and name not in METHODS:
            return _plain(request, 404, "404 - no such method\n")
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        return docs.index_page(self.mailsrv.config.web.webapi_path, name or None)

    def render_HEAD(self, request: Request) -> bytes:
        return self.render_GET(request)

    # --- POST: calls ----------------------------------------------------------------

    def render_POST(self, request: Request) -> Any:
        name = _method_name(request)
        method = METHODS.get(name)
        if method is None:
            return _plain(request, 404, "404 - no such method\n")
        gone: list[bool] = []
        request.notifyFinish().addErrback(lambda _: gone.append(True))
        d = Deferred.fromCoroutine(self._call(request, name))

        def write(answer: tuple[int, bytes, list[tuple[bytes, bytes]]]) -> None:
            if gone:
                return
            status, body, headers = answer
            request.setResponseCode(status)
            for key, value in headers:
                request.setHeader(key, value)
            # A length, so the answer is one write: chunked encoding would end with a second,
            # small write that Nagle's algorithm holds until the client's delayed ACK.
            request.setHeader(b"content-length", b"%d" % len(body))
            if status == 200 and name == "Send":
                # Logged as the mail log's "accepted" line (ops.compose): no access log line too.
                request.traced_by_maillog = True  # type: ignore[attr-defined]
            request.write(body)
            request.finish()

        d.addCallback(write)
        d.addErrback(lambda f: log.failure("webapi answer not written", f))
        return NOT_DONE_YET

    async def _call(self, request: Request, name: str) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        method = METHODS[name]
        client_ip = _client_ip(request)
        credentials = _basic_credentials(request)
        if credentials is None:
            return _unauthorized("use http basic auth with email address as username")
        user, password = credentials
        # An API token (mailsrv_...) is taken as one, never as a password (docs/webapi.md).
        login = token_login if looks_like_token(password) else password_login
        try:
            identity = await login(self.mailsrv, Peer(client_ip), user, password)
        except RateLimited as e:
            headers = [(b"retry-after", str(int(e.retry_after)).encode())]
            return 429, b"429 - too many auth attempts\n", [(b"content-type", b"text/plain; charset=utf-8"), *headers]
        except AuthFailed:
            return _unauthorized("bad credentials")
        except StoreUnavailable as e:
            return _unavailable(name, e.message)
        except TemporaryFailure as e:
            return _error("server", f"verifying credentials: {e.message}")
        try:
            content_type = (request.getHeader(b"content-type") or b"").decode("latin-1")
            body = read_body(content_type, _body(request))
            req = decode_request(body.request, method.request)
            call = Call(
                server=self.mailsrv,
                account=identity.account,
                login_address=identity.address,
                client_ip=client_ip,
                secure=request.isSecure(),
                request=request,
                files=body.files,
            )
            result = await method.handler(call, req)
        except RequestError as e:
            return _error(e.code, e.message)
        except MethodError as e:
            return _error(e.code, e.message)
        except StoreUnavailable as e:
            return _unavailable(name, e.message)
        except si.StoreUnavailable as e:  # a method that reads the store itself
            return _unavailable(name, str(e) or "the mail store is unavailable")
        except OpsError as e:
            return _error(error_code(e), e.message)
        except Exception:
            incident = os.urandom(4).hex()
            log.failure("webapi {method} failed (incident {incident})", method=name, incident=incident)
            return _error("server", f"unhandled error (incident {incident})")
        if isinstance(result, Raw):
            return 200, result.data, _raw_headers(result)
        return 200, msgspec.json.encode(result) + b"\n", [(b"content-type", _JSON)]


def _method_name(request: Request) -> str:
    path = [p for p in request.postpath if p] if request.postpath else []
    if len(path) != 1:
        return "" if not path else "\0"
    try:
        return str(path[0].decode("ascii"))
    except UnicodeDecodeError:
        return "\0"


def _plain(request: Request, status: int, text: str) -> bytes:
    request.setResponseCode(status)
    request.setHeader(b"content-type", b"text/plain; charset=utf-8")
    return text.encode()


def _body(request: Request) -> bytes:
    content = request.content
    if content is None:
        return b""
    content.seek(0)
    data: bytes = content.read()
    return data


def _client_ip(request: Request) -> str:
    address = request.getClientAddress()
    return str(getattr(address, "host", "") or "")


def _basic_credentials(request: Request) -> tuple[str, str] | None:
    header = request.getHeader(b"authorization")
    if header is None:
        return None
    scheme, _, value = header.strip().partition(b" ")
    if scheme.lower() != b"basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    if not sep or not user:
        return None
    return user, password


def _unauthorized(why: str) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
    headers = [(b"www-authenticate", b'Basic realm="webapi"'), (b"content-type", b"text/plain; charset=utf-8")]
    return 401, f"401 - unauthorized - {why}\n".encode(), headers


def _error(code: str, message: str) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
    body = msgspec.json.encode({"Code": code, "Message": message}) + b"\n"
    return 400, body, [(b"content-type", _JSON)]


def _unavailable(method: str, message: str) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
    """503 with Retry-After: the store is down for now (RFC 9110 §15.6.4); expected, so logged as
    one line without a traceback."""
    log.warn("webapi {method}: {message}", method=method, message=message)
    body = msgspec.json.encode({"Code": "serverUnavailable", "Message": f"{message}; try again later"}) + b"\n"
    return 503, body, [(b"content-type", _JSON), (b"retry-after", str(UNAVAILABLE_RETRY_AFTER).encode())]


def _raw_headers(raw: Raw) -> list[tuple[bytes, bytes]]:
    content_type = raw.content_type.lower()
    headers: list[tuple[bytes, bytes]] = []
    if content_type.startswith(_ACTIVE_TYPES) or "script" in content_type:
        # Never a page of our origin: a browser shows it as a download (the data is the same).
        headers.append((b"content-security-policy", b"sandbox"))
        headers.append((b"content-disposition", b"attachment"))
    headers.append((b"content-type", content_type.encode("ascii", "replace")))
    headers.append((b"x-content-type-options", b"nosniff"))
    return headers
