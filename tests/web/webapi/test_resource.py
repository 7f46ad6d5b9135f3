"""The webapi resource in-process, on a real `Server` with an inline thread pool: the login
cache spares argon2 per call, request decoding (Go's leniencies), error mapping, and a server
error that never shows a traceback."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
from twisted.logger import formatEvent, globalLogPublisher
from twisted.web.server import NOT_DONE_YET
from twisted.web.test.requesthelper import DummyRequest

from mailsrv.config.types import WebConfig
from mailsrv.ops import accounts, domains
from mailsrv.server import Server
from mailsrv.web.webapi import webapi_resource
from mailsrv.web.webapi.decode import RequestError, decode_request
from mailsrv.web.webapi.resource import WebapiResource
from mailsrv.web.webapi.types import SendRequest
from tests.ops.world import make_server, result


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    s = make_server(tmp_path, web=WebConfig(webapi_enabled=True))
    domains.add(s, domains.AddDomain(domain="example.org"))
    for name in ("alice", "bob"):
        result(
            accounts.add(s, accounts.AddAccount(account=name, address=f"{name}@example.org", password=f"{name}-secret"))
        )
    yield s
    s.close()


def _request(method: str, request: Any, user: str = "alice@example.org", password: str = "alice-secret") -> Any:
    req = DummyRequest([method.encode()])
    req.method = b"POST"
    req.isSecure = lambda: False  # type: ignore[attr-defined]
    req.requestHeaders.setRawHeaders(b"content-type", [b"application/json"])
    token = base64.b64encode(f"{user}:{password}".encode())
    req.requestHeaders.setRawHeaders(b"authorization", [b"Basic " + token])
    req.content = BytesIO(json.dumps(request).encode() if not isinstance(request, bytes) else request)
    return req


def _call(
    resource: Any, method: str, request: Any, user: str = "alice@example.org", password: str = "alice-secret"
) -> tuple[int, bytes]:
    req = _request(method, request, user, password)
    body = resource.render(req)
    assert body is NOT_DONE_YET
    assert req.finished, "the inline reactor completes every call at once"
    return req.responseCode or 200, b"".join(req.written)


class CountingAccounts:
    def __init__(self, server: Server) -> None:
        self.calls = 0
        inner = server.accounts
        original = inner.check_password

        def counting(login: str, password: str) -> Any:
            self.calls += 1
            return original(login, password)

        inner.check_password = counting  # type: ignore[method-assign]


def test_repeated_calls_hash_the_password_once(server: Server) -> None:
    counter = CountingAccounts(server)
    resource = WebapiResource(server, None)  # type: ignore[arg-type]
    for _ in range(5):
        status, body = _call(resource, "MessageGet", {"MsgID": 12345})
        assert status == 400 and json.loads(body)["Code"] == "messageNotFound"
    assert counter.calls == 1
    # A wrong password is checked (and counted) every time: never served from the cache.
    for _ in range(2):
        assert _call(resource, "MessageGet", {"MsgID": 1}, password="wrong")[0] == 401
    assert counter.calls == 3


def test_unexpected_failure_is_a_server_code_without_traceback(server: Server, monkeypatch: Any) -> None:
    import mailsrv.web.webapi.methods as methods

    async def broken(call: Any, req: Any) -> Any:
        raise RuntimeError("secret internals")

    monkeypatch.setitem(
        methods.METHODS,
        "MessageGet",
        methods.METHODS["MessageGet"].__class__("MessageGet", methods.METHODS["MessageGet"].request, None, broken, "x"),
    )
    status, body = _call(WebapiResource(server, None), "MessageGet", {"MsgID": 1})  # type: ignore[arg-type]
    error = json.loads(body)
    assert status == 400 and error["Code"] == "server" and "incident" in error["Message"]
    assert "secret" not in error["Message"] and "Traceback" not in error["Message"]


def test_store_unavailable_is_503_with_retry_after(server: Server, monkeypatch: Any) -> None:
    import mailsrv.web.webapi.methods as methods
    from mailsrv.ops.errors import StoreUnavailable
    from mailsrv.store.interfaces import StoreUnavailable as StoreLayerUnavailable

    for error in (StoreUnavailable("the mail store is busy"), StoreLayerUnavailable("the mail store is busy")):

        async def down(call: Any, req: Any, error: Exception = error) -> Any:
            raise error

        original = methods.METHODS["MessageGet"]
        monkeypatch.setitem(
            methods.METHODS, "MessageGet", original.__class__("MessageGet", original.request, None, down, "x")
        )
        events: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(events.append)
        try:
            req = _request("MessageGet", {"MsgID": 1})
            WebapiResource(server, None).render(req)  # type: ignore[arg-type]
        finally:
            globalLogPublisher.removeObserver(events.append)
        error_answer = json.loads(b"".join(req.written))
        assert req.responseCode == 503, error
        assert error_answer["Code"] == "serverUnavailable" and "the mail store is busy" in error_answer["Message"]
        assert req.responseHeaders.getRawHeaders(b"retry-after") == [b"30"]
        [logged] = [e for e in events if "the mail store is busy" in formatEvent(e)]
        assert "log_failure" not in logged  # one line, no traceback
        monkeypatch.setitem(methods.METHODS, "MessageGet", original)


def test_disabled_unless_enabled_or_localserve(tmp_path: Path) -> None:
    for directory, static, served in (("off", {}, False), ("localserve", {"localserve": True}, True)):
        s = make_server(tmp_path / directory, **static)
        try:
            resource = webapi_resource(s, None)  # type: ignore[arg-type]
            assert isinstance(resource, WebapiResource) == served, directory
        finally:
            s.close()


def test_decoding_is_strict_then_go_lenient() -> None:
    req = decode_request(
        b'{"to": [{"address": "a@x", "NAME": "A"}], "text": "t", "Extra": {"userId": "1"}}', SendRequest
    )
    assert req.To[0].Address == "a@x" and req.To[0].Name == "A" and req.Text == "t"
    assert req.Extra == {"userId": "1"}  # map keys are data: never re-cased
    req = decode_request(b'{"To": null, "Date": null, "RequireTLS": null, "Headers": null, "Text": "t"}', SendRequest)
    assert req.To == [] and req.Date is None and req.RequireTLS is None
    for raw, code in [
        (b"{", "badJSON"),
        (b"[]", "badType"),
        (b'{"Nope": 1}', "unknownField"),
        (b'{"To": [{"Address": 1}]}', "badType"),
    ]:
        with pytest.raises(RequestError) as e:
            decode_request(raw, SendRequest)
        assert e.value.code == code, e.value.message
    with pytest.raises(RequestError) as e:
        decode_request(b'{"To": [{"Address": "a@x", "Nick": 1}]}', SendRequest)
    assert "Nick" in e.value.message and "To[0]" in e.value.message
