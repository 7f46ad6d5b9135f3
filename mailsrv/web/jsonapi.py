# mypy: disable-error-code="no-untyped-call,misc"
# (twisted.web is unannotated: calling and subclassing its classes is fine.)
"""The typed JSON API of the web interfaces (mox's sherpa, made ours).

An interface's API is a class whose methods are marked with `@api`:

    class AccountAPI(SessionAPI):
        @api
        async def Account(self, call: Call) -> AccountInfo: ...
        @api
        async def SetFullName(self, call: Call, name: str) -> None: ...

Parameter and result types are msgspec Structs or builtins (the ops layer's own structs where
they fit); annotations are read with `typing.get_type_hints`, so the names must be importable
at run time in the interface's module. Served by `ApiResource` as `POST <prefix>/<Method>`
with `{"params": [...]}` → 200 `{"result": ...}`, or `{"error": {"code", "message"}}` with
an HTTP status by kind: `user:...` 400 (`user:invalidInput` names the `field`), `user:noAuth`
and `user:badAuth` 401, `user:rateLimited` 429, `user:notFound` 404 for an unknown method,
`server:unavailable` 503 (the mail store is down for now: retry later; logged as one line),
`server:temporary` 503, `server:error` 500 (logged with an id; the client sees only the id).

Every parameter is decoded strictly before the method runs: the count, each type, missing and
unknown fields of structs (ops structs need not forbid them themselves). `GET <prefix>/openapi.json`
is the OpenAPI 3.1 document made from the same annotations (mailsrv/web/openapi.py).
"""

from __future__ import annotations

import inspect
import secrets
import typing
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import msgspec
from msgspec import inspect as mi
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from mailsrv.ops import errors as ops_errors
from mailsrv.server import Server
from mailsrv.store import interfaces as si

log = Logger()
F = TypeVar("F", bound=Callable[..., Awaitable[Any]])
MAX_PARAMS_DEPTH = 32  # nesting the unknown-field check follows


class ApiError(Exception):
    """An error answered with this code (`user:noAuth`, `user:badAuth`, ...)."""

    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field


def no_auth(message: str = "not logged in") -> ApiError:
    return ApiError("user:noAuth", message)


def bad_auth(message: str = "session expired or invalid, log in again") -> ApiError:
    return ApiError("user:badAuth", message)


@dataclass
class Call:
    """What an API method knows of its call: the server, who is logged in (`principal`, set
    by the interface's `authenticate`), the peer's IP address and the request itself (for
    cookies, uploads and downloads)."""

    server: Server
    request: Any
    peer: str
    secure: bool
    principal: str | None = None
    session: Any = None  # the interface's session object, when it has sessions


@dataclass(frozen=True)
class Method:
    name: str
    function: Callable[..., Awaitable[Any]]
    params: tuple[tuple[str, Any], ...]  # (name, type)
    result: Any
    auth: bool
    doc: str
    # Per parameter: its msgspec decoder and type description (for the unknown-field check), made once.
    decoders: tuple[tuple[msgspec.json.Decoder[Any], Any], ...] = ()


@typing.overload
def api(function: F) -> F: ...
@typing.overload
def api(*, auth: bool = True) -> Callable[[F], F]: ...
def api(function: F | None = None, *, auth: bool = True) -> F | Callable[[F], F]:
    """Marks an API method; `auth=False` for methods callable without a session (LoginPrep, Login)."""

    def mark(f: F) -> F:
        f.__mailsrv_api__ = auth  # type: ignore[attr-defined]
        return f

    return mark(function) if function is not None else mark


def api_methods(cls: type) -> dict[str, Method]:
    """The `@api` methods of an interface class, by name, with their parameter and result types."""
    methods: dict[str, Method] = {}
    for name in dir(cls):
        function = getattr(cls, name)
        auth = getattr(function, "__mailsrv_api__", None)
        if auth is None:
            continue
        hints = typing.get_type_hints(function)
        names = list(inspect.signature(function).parameters)[2:]  # self, call
        params = tuple((p, hints[p]) for p in names)
        doc = inspect.getdoc(function) or ""
        decoders = tuple((msgspec.json.Decoder(annotation), mi.type_info(annotation)) for _, annotation in params)
        methods[name] = Method(name, function, params, hints.get("return", type(None)), auth, doc, decoders)
    return methods


class ApiInterface:
    """Base of an interface's API class. `authenticate` decides who calls (sessions.py's
    SessionAPI implements it with the session cookie and the CSRF header)."""

    title = "mailsrv API"

    def __init__(self, server: Server) -> None:
        self.server = server

    async def authenticate(self, call: Call) -> None:
        """Sets `call.principal` or raises `no_auth()`/`bad_auth()`."""
        raise no_auth()


class _Params(msgspec.Struct, forbid_unknown_fields=True):
    params: list[msgspec.Raw] = msgspec.field(default_factory=list)


_STATUS = {
    "user:noAuth": 401,
    "user:badAuth": 401,
    "user:rateLimited": 429,
    "server:unavailable": 503,
    "server:temporary": 503,
}
_OPS_CODES: tuple[tuple[type[Exception], str], ...] = (
    (ops_errors.NotFound, "user:notFound"),
    (ops_errors.Exists, "user:exists"),
    (ops_errors.InvalidInput, "user:invalidInput"),
    (ops_errors.PermissionDenied, "user:permissionDenied"),
    (ops_errors.LimitExceeded, "user:limitExceeded"),
    (ops_errors.UserError, "user:error"),
    (ops_errors.AuthFailed, "user:badAuth"),
    (ops_errors.RateLimited, "user:rateLimited"),
    (ops_errors.StoreUnavailable, "server:unavailable"),
    (ops_errors.TemporaryFailure, "server:temporary"),
)


def api_error(error: Exception) -> ApiError | None:
    """The API error an ops error (or ApiError) maps to; None for anything else (a bug)."""
    if isinstance(error, ApiError):
        return error
    if isinstance(error, si.StoreUnavailable):  # a method that reads the store itself
        return ApiError("server:unavailable", str(error) or "the mail store is unavailable, try again later")
    for cls, code in _OPS_CODES:
        if isinstance(error, cls):
            assert isinstance(error, ops_errors.OpsError)
            return ApiError(code, error.message, getattr(error, "field", None))
    return None


def _unknown_field(value: Any, info: Any, path: str, depth: int = 0) -> str | None:
    """The path of the first object key the type has no field for (msgspec ignores them)."""
    if depth > MAX_PARAMS_DEPTH:
        return None
    if isinstance(info, mi.StructType) and isinstance(value, dict):
        fields = {f.encode_name: f for f in info.fields}
        for key, item in value.items():
            if key not in fields and key != info.tag_field:
                return f"{path}.{key}"
            if key in fields:
                found = _unknown_field(item, fields[key].type, f"{path}.{key}", depth + 1)
                if found:
                    return found
    elif isinstance(info, (mi.ListType, mi.SetType, mi.FrozenSetType, mi.VarTupleType)) and isinstance(value, list):
        for i, item in enumerate(value):
            found = _unknown_field(item, info.item_type, f"{path}[{i}]", depth + 1)
            if found:
                return found
    elif isinstance(info, mi.DictType) and isinstance(value, dict):
        for key, item in value.items():
            found = _unknown_field(item, info.value_type, f"{path}.{key}", depth + 1)
            if found:
                return found
    elif isinstance(info, mi.UnionType) and value is not None:
        structs = [t for t in info.types if isinstance(t, mi.StructType)]
        if len(structs) == 1:
            return _unknown_field(value, structs[0], path, depth + 1)
    return None


_ANY: msgspec.json.Decoder[Any] = msgspec.json.Decoder()


def _may_hold_objects(info: Any) -> bool:
    """Whether a value of this type can contain a JSON object (only those can have unknown fields)."""
    return not isinstance(info, (mi.StrType, mi.IntType, mi.FloatType, mi.BoolType, mi.NoneType, mi.BytesType))


def decode_params(method: Method, body: bytes) -> list[Any]:
    """The typed arguments for `method` from a request body; ApiError naming the field on any
    mismatch. An empty body is no parameters."""
    try:
        envelope = msgspec.json.decode(body, type=_Params) if body.strip() else _Params()
    except msgspec.ValidationError as e:
        raise ApiError("user:invalidInput", f'request: {e}; expected {{"params": [...]}}') from None
    except msgspec.DecodeError as e:
        raise ApiError("user:invalidInput", f"malformed JSON: {e}") from None
    expected = [name for name, _ in method.params]
    if len(envelope.params) != len(expected):
        raise ApiError(
            "user:invalidInput",
            f"{method.name} takes {len(expected)} parameters ({', '.join(expected) or 'none'}), "
            f"got {len(envelope.params)}",
        )
    args: list[Any] = []
    for (name, _), (decoder, info), raw in zip(method.params, method.decoders, envelope.params, strict=True):
        try:
            value = decoder.decode(raw)
        except msgspec.ValidationError as e:
            text = str(e).replace("`$", f"`{name}")
            raise ApiError("user:invalidInput", f"parameter {name}: {text}", name) from None
        unknown = _unknown_field(_ANY.decode(raw), info, name) if _may_hold_objects(info) else None
        if unknown:
            raise ApiError("user:invalidInput", f"parameter {name}: unknown field `{unknown}`", unknown)
        args.append(value)
    return args


def _peer(request: Any) -> str:
    return str(getattr(request.getClientAddress(), "host", ""))


class ApiResource(Resource):
    """Serves one interface's API: `POST /<Method>` and `GET /openapi.json` below its mount."""

    isLeaf = True

    def __init__(self, interface: ApiInterface) -> None:
        super().__init__()
        self.interface = interface
        self.methods = api_methods(type(interface))

    def render_GET(self, request: Request) -> bytes:
        if request.postpath != [b"openapi.json"]:
            return self._send(request, 404, {"error": {"code": "user:notFound", "message": "no such document"}})
        from mailsrv.web.openapi import openapi_document

        request.setHeader(b"content-type", b"application/json")
        request.setHeader(b"cache-control", b"no-cache")
        return msgspec.json.encode(openapi_document(self.interface.title, self.methods))

    def render_POST(self, request: Request) -> int | bytes:
        name = b"/".join(request.postpath or []).decode("ascii", "replace")
        method = self.methods.get(name)
        if method is None:
            return self._send(request, 404, {"error": {"code": "user:notFound", "message": f"no API method {name!r}"}})
        Deferred.fromCoroutine(self._call(method, request))
        return NOT_DONE_YET

    async def _call(self, method: Method, request: Request) -> None:
        call = Call(self.interface.server, request, _peer(request), bool(request.isSecure()))
        try:
            body = request.content.read() if request.content is not None else b""
            args = decode_params(method, body)
            if method.auth:
                await self.interface.authenticate(call)
            result = await method.function(self.interface, call, *args)
            status, answer = 200, {"result": result}
        except Exception as e:
            status, answer = self._error(method, e)
        if request.channel is None:  # the client went away
            return
        try:
            data = msgspec.json.encode(answer)
        except Exception as e:  # a result the encoder refuses is a bug of the method
            status, answer = self._error(method, e)
            data = msgspec.json.encode(answer)
        request.setResponseCode(status)
        request.setHeader(b"content-type", b"application/json")
        request.setHeader(b"cache-control", b"no-store")
        # One write with a length: a chunked answer ends with a second small write, which Nagle's
        # algorithm holds until the client's delayed ACK (tens of milliseconds per call).
        request.setHeader(b"content-length", b"%d" % len(data))
        request.write(data)
        request.finish()

    def _error(self, method: Method, error: Exception) -> tuple[int, dict[str, Any]]:
        mapped = api_error(error)
        if mapped is None:
            error_id = secrets.token_hex(6)
            # Called while handling `error`: the logged Failure is that exception.
            log.failure(
                "web API {method} failed: error id {error_id}",
                method=method.name,
                error_id=error_id,
            )
            mapped = ApiError("server:error", f"internal server error (error id {error_id})")
        elif mapped.code == "server:unavailable":
            # Expected while the store is down (disk full, a lock held): one line, no traceback.
            log.warn("web API {method}: {message}", method=method.name, message=mapped.message)
        detail: dict[str, Any] = {"code": mapped.code, "message": mapped.message}
        if mapped.field is not None:
            detail["field"] = mapped.field
        status = _STATUS.get(mapped.code, 500 if mapped.code.startswith("server:") else 400)
        return status, {"error": detail}

    def _send(self, request: Request, status: int, answer: Any) -> bytes:
        request.setResponseCode(status)
        request.setHeader(b"content-type", b"application/json")
        return msgspec.json.encode(answer)
