"""The JSON API framework and sessions, in memory: the example interface
(tests/web/exampleapi.py) on a real Server with a fake clock (tests/ops/world.py)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from twisted.logger import formatEvent, globalLogPublisher

from mailsrv.config.types import LimitsConfig, ListenerConfig, WebConfig
from mailsrv.ops import accounts, domains
from mailsrv.server import Server
from mailsrv.web import site as site_module
from mailsrv.web.site import web_site
from tests.ops.world import make_server, result
from tests.web import exampleapi
from tests.web.apiclient import ApiCallError, ApiClient

LISTENER = ListenerConfig(name="http", protocol="http", address="127.0.0.1", port=80)
PREFIX = "/webaccount/"
IDLE, MAX_AGE = 3600, 10 * 3600


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    monkeypatch.setattr(site_module, "INTERFACES", {"account": exampleapi.example_interface})
    web = dataclasses.replace(WebConfig(), session_idle_timeout=IDLE, session_max_age=MAX_AGE)
    limits = LimitsConfig(login_failures_per_ip=10, login_failures_per_account=1000, http_max_body=4096)
    s = make_server(tmp_path, web=web, limits=limits)
    domains.add(s, domains.AddDomain(domain="example.org"))
    result(accounts.add(s, accounts.AddAccount(account="alice", address="alice@example.org", password="alicepass")))
    yield s
    s.close()


@pytest.fixture
def site(server: Server) -> Any:
    return web_site(server, LISTENER)


@pytest.fixture
def client(site: Any) -> ApiClient:
    c = ApiClient.in_memory(site, PREFIX)
    c.login("alice@example.org", "alicepass")
    return c


def _error(client: ApiClient, method: str, *params: Any) -> ApiCallError:
    with pytest.raises(ApiCallError) as info:
        client.call(method, *params)
    return info.value


def test_login_and_call(client: ApiClient) -> None:
    assert client.call("Whoami") == "alice"
    box = {"item": {"name": "x", "count": 2}}
    assert client.call("Echo", box, 2) == [{"name": "x", "count": 2, "tags": []}] * 2


def test_cookies_are_strict(site: Any) -> None:
    c = ApiClient.in_memory(site, PREFIX)
    token = c.call("LoginPrep")
    login = c.raw("Login", json.dumps({"params": [token, "alice@example.org", "alicepass"]}).encode())
    session = next(v for v in login.cookies if v.startswith("mailsrvsession=") and "Max-Age=0" not in v)
    for attribute in ("HttpOnly", "SameSite=Strict", f"Path={PREFIX}"):
        assert attribute.lower() in session.lower(), session
    assert "secure" not in session.lower()  # plain HTTP
    https = ApiClient.in_memory(site, PREFIX, secure=True)
    token = https.call("LoginPrep")
    login = https.raw("Login", json.dumps({"params": [token, "alice@example.org", "alicepass"]}).encode())
    assert any(v.startswith("mailsrvsession=") and "; secure" in v.lower() for v in login.cookies)


@pytest.mark.parametrize(
    ("params", "field", "words"),
    [
        ([{"item": {"name": 1}}, 1], "box", "Expected `str`, got `int` - at `box.item.name`"),
        ([{"item": {"count": 1}}, 1], "box", "missing required field `name`"),
        ([{"item": {"name": "x", "extra": 1}}, 1], "box.item.extra", "unknown field `box.item.extra`"),
        ([{"item": {"name": "x"}, "other": 1}, 1], "box.other", "unknown field"),
        ([{"item": {"name": "x", "tags": [1]}}, 1], "box", "at `box.item.tags[0]`"),
        ([{"item": {"name": "x"}}, "1"], "times", "Expected `int`, got `str`"),
        ([{"item": {"name": "x"}}, 1000], "times", "times must be 0 to 100"),
    ],
)
def test_validation_names_the_field(client: ApiClient, params: list[Any], field: str, words: str) -> None:
    error = _error(client, "Echo", *params)
    assert error.status == 400 and error.code == "user:invalidInput", error
    assert error.field == field and words in error.message, error


def test_parameter_count_and_envelope(client: ApiClient) -> None:
    error = _error(client, "Echo", {"item": {"name": "x"}})
    assert error.code == "user:invalidInput" and "takes 2 parameters (box, times), got 1" in error.message
    assert _error(client, "Whoami", 1).code == "user:invalidInput"
    headers = {"x-mailsrv-csrf": client.csrf or ""}
    for body in (b"{", b"not json", b"[1]", b'{"params": 1}', b'{"params": [], "x": 1}', b"\xff\xfe"):
        response = client.raw("Whoami", body, headers)
        answer = json.loads(response.body)
        assert response.status == 400 and answer["error"]["code"] == "user:invalidInput", body
    assert client.raw("Whoami", b"", headers).status == 200  # no params at all: none needed


def test_errors_map_to_codes_and_bugs_hide_the_detail(client: ApiClient, caplog: Any) -> None:
    error = _error(client, "Fail", "notfound")
    assert (error.status, error.code, error.message) == (400, "user:notFound", "no such thing")
    error = _error(client, "Fail", "bug")
    assert error.status == 500 and error.code == "server:error"
    assert "secret" not in error.message and "Traceback" not in error.message and "error id" in error.message
    unknown = client.raw("NoSuchMethod", b'{"params": []}')
    assert unknown.status == 404 and json.loads(unknown.body)["error"]["code"] == "user:notFound"


def test_store_unavailable_is_a_retryable_server_error_logged_in_one_line(client: ApiClient) -> None:
    events: list[dict[str, Any]] = []
    globalLogPublisher.addObserver(events.append)
    try:
        error = _error(client, "Fail", "unavailable")
    finally:
        globalLogPublisher.removeObserver(events.append)
    assert (error.status, error.code, error.message) == (503, "server:unavailable", "the mail store is busy")
    [logged] = [e for e in events if "the mail store is busy" in formatEvent(e)]
    assert "Fail" in formatEvent(logged) and "log_failure" not in logged  # no traceback


def test_no_auth_and_bad_auth(site: Any, client: ApiClient) -> None:
    anonymous = ApiClient.in_memory(site, PREFIX)
    error = _error(anonymous, "Whoami")
    assert (error.status, error.code) == (401, "user:noAuth")
    forged = ApiClient.in_memory(site, PREFIX, cookies={"mailsrvsession": "forged"}, csrf="x")
    assert _error(forged, "Whoami").code == "user:badAuth"
    # A valid cookie without or with a wrong CSRF token is refused.
    assert client.call("Whoami") == "alice"
    with pytest.raises(ApiCallError) as info:
        client.call("Whoami", csrf="")
    assert info.value.code in ("user:badAuth", "user:noAuth")
    headers = {"x-mailsrv-csrf": "wrong"}
    response = client.raw("Whoami", b'{"params": []}', headers)
    assert json.loads(response.body)["error"]["code"] == "user:badAuth"


def test_login_needs_the_prep_token_and_cookie(site: Any) -> None:
    c = ApiClient.in_memory(site, PREFIX)
    assert _error(c, "Login", "made-up", "alice@example.org", "alicepass").code == "user:badAuth"
    token = c.call("LoginPrep")
    other = ApiClient.in_memory(site, PREFIX)  # the token without its cookie (another browser)
    assert _error(other, "Login", token, "alice@example.org", "alicepass").code == "user:badAuth"
    assert _error(c, "Login", token, "alice@example.org", "wrong").code == "user:badAuth"
    assert c.call("Login", token, "alice@example.org", "alicepass")


def test_logout(client: ApiClient) -> None:
    client.call("Logout")
    assert _error(client, "Whoami").code in ("user:noAuth", "user:badAuth")


def test_expiry_sliding_and_absolute_limit(server: Server, client: ApiClient) -> None:
    clock: Any = server.reactor
    for _ in range(10):  # used every 55 minutes: slides past the idle timeout ...
        clock.advance(IDLE - 300)
        assert client.call("Whoami") == "alice"
    clock.advance(MAX_AGE - 10 * (IDLE - 300) + 1)  # less than IDLE since the last use
    # ... but not past the absolute limit.
    assert _error(client, "Whoami").code == "user:badAuth"


def test_idle_expiry(server: Server, client: ApiClient) -> None:
    clock: Any = server.reactor
    clock.advance(IDLE + 1)
    assert _error(client, "Whoami").code == "user:badAuth"


def test_invalidate_other_sessions(site: Any, client: ApiClient) -> None:
    other = ApiClient.in_memory(site, PREFIX)
    other.login("alice@example.org", "alicepass")
    assert client.call("EndOtherSessions") == 1
    assert client.call("Whoami") == "alice"
    assert _error(other, "Whoami").code == "user:badAuth"


def test_sessions_survive_a_new_site_and_store(server: Server, client: ApiClient) -> None:
    server.web_sessions.close()
    server.web_sessions = None
    fresh = ApiClient.in_memory(web_site(server, LISTENER), PREFIX, cookies=client.cookies, csrf=client.csrf)
    assert fresh.call("Whoami") == "alice"


def test_session_file_is_private_and_holds_no_tokens(server: Server, client: ApiClient) -> None:
    path = server.config.data_dir / "websessions.db"
    assert path.stat().st_mode & 0o077 == 0
    raw = path.read_bytes() + b"".join(p.read_bytes() for p in path.parent.glob("websessions.db-*"))
    assert client.cookies["mailsrvsession"].encode() not in raw
    assert (client.csrf or "").encode() not in raw


def test_failed_logins_are_rate_limited(site: Any) -> None:
    c = ApiClient.in_memory(site, PREFIX)
    codes: dict[str, int] = {}
    for _ in range(1000):
        token = c.call("LoginPrep")
        try:
            c.call("Login", token, "alice@example.org", "wrong")
        except ApiCallError as e:
            codes[e.code] = codes.get(e.code, 0) + 1
    assert codes == {"user:badAuth": 10, "user:rateLimited": 990}
    token = c.call("LoginPrep")
    error = _error(c, "Login", token, "alice@example.org", "alicepass")  # even the right password now
    assert (error.status, error.code) == (429, "user:rateLimited")


def test_body_limit_on_the_api(client: ApiClient) -> None:
    response = client.raw("Whoami", b'{"params": ["' + b"x" * 5000 + b'"]}')
    assert response.status == 413


def test_openapi_document(site: Any) -> None:
    from tests.web.memhttp import get

    response = get(site, f"{PREFIX}api/openapi.json")
    assert response.status == 200 and response.headers["content-type"] == "application/json"
    doc = json.loads(response.body)
    assert doc["openapi"].startswith("3.1")
    echo = doc["paths"]["/Echo"]["post"]
    params = echo["requestBody"]["content"]["application/json"]["schema"]["properties"]["params"]
    assert [p["title"] for p in params["prefixItems"]] == ["box", "times"]
    assert params["minItems"] == params["maxItems"] == 2
    assert doc["components"]["schemas"]["Item"]["additionalProperties"] is False
    assert set(doc["paths"]) >= {"/Login", "/LoginPrep", "/Logout", "/Whoami", "/Echo", "/Fail"}
    assert doc["paths"]["/Login"]["post"]["security"] == []


def test_answers_have_a_length_not_chunks(client: ApiClient) -> None:
    # A chunked answer ends with a second small write that Nagle's algorithm holds until the
    # client's delayed ACK: tens of milliseconds per call on a kept connection.
    response = client.raw("Whoami", b'{"params": []}', {"x-mailsrv-csrf": client.csrf or ""})
    assert response.headers.get("content-length") == str(len(response.body))
    assert "transfer-encoding" not in response.headers
    error = client.raw("Fail", b'{"params": ["notfound"]}', {"x-mailsrv-csrf": client.csrf or ""})
    assert error.headers.get("content-length") == str(len(error.body))


def test_sessions_of_a_disabled_or_removed_account_end(server: Server, client: ApiClient, site: Any) -> None:
    other = ApiClient.in_memory(site, PREFIX)
    other.login("alice@example.org", "alicepass")
    accounts.set_disabled(server, accounts.SetDisabled(account="alice", disabled=True))
    error = _error(client, "Whoami")
    assert error.code == "user:badAuth" and "disabled" in error.message
    accounts.set_disabled(server, accounts.SetDisabled(account="alice", disabled=False))
    assert _error(other, "Whoami").code == "user:badAuth"  # every session of the account ended
    other.login("alice@example.org", "alicepass")
    accounts.remove(server, accounts.AccountName(account="alice"))
    assert _error(other, "Whoami").code == "user:badAuth"
