"""Sessions and the API over real sockets against the daemon running the example interface
(tests/web/exampleapi.py): a session survives a daemon restart; over HTTPS the cookie is
Secure; a TLS client certificate alone logs nobody in; generated requests from the served
OpenAPI document never get a 5xx."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.daemon import RunningDaemon, write_config
from tests.ports import free_port
from tests.web.apiclient import ApiCallError, ApiClient

PREFIX = "/webaccount/"


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningDaemon]:
    https = free_port()
    extra = (
        f'\n[[listeners]]\nname = "https"\nprotocol = "http"\naddress = "127.0.0.1"\nport = {https}\ntls = "implicit"\n'
    )
    d = write_config(tmp_path_factory.mktemp("web") / "d", extra_static=extra)
    d.ports["https"] = https
    d.python_args = ("-m", "tests.web.exampleapi")
    d.start()
    try:
        yield d
    finally:
        d.stop()


def test_session_survives_restart(daemon: RunningDaemon) -> None:
    client = ApiClient.for_daemon(daemon, PREFIX)
    client.login("alice@example.org", "alicepass")
    assert client.call("Whoami") == "alice"
    daemon.stop()
    daemon.start()
    again = ApiClient.for_daemon(daemon, PREFIX, cookies=dict(client.cookies), csrf=client.csrf)
    assert again.call("Whoami") == "alice"
    again.call("Logout")
    with pytest.raises(ApiCallError) as info:
        again.call("Whoami")
    assert info.value.code in ("user:noAuth", "user:badAuth")


def test_https_cookie_is_secure(daemon: RunningDaemon) -> None:
    client = ApiClient.for_daemon(daemon, PREFIX, port_name="https")
    token = client.call("LoginPrep")
    response = client.raw("Login", json.dumps({"params": [token, "bob@example.org", "bobpass"]}).encode())
    session = [c for c in response.cookies if c.startswith("mailsrvsession=")]
    assert session and "secure" in session[0].lower() and "samesite=strict" in session[0].lower()
    client.csrf = json.loads(response.body)["result"]
    assert client.call("Whoami") == "bob"


def test_client_certificate_does_not_log_in(daemon: RunningDaemon, tmp_path: Path) -> None:
    from mailsrv.tlsutil import generate_self_signed

    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    generate_self_signed(["alice"], cert, key)
    daemon.cli_ok("config", "tlspubkey", "add", "alice", str(cert))
    context = daemon.ssl_context()
    context.load_cert_chain(str(cert), str(key))
    conn = http.client.HTTPSConnection("127.0.0.1", daemon.ports["https"], context=context, timeout=20)
    conn.request("POST", f"{PREFIX}api/Whoami", body=b'{"params": []}')
    response = conn.getresponse()
    assert response.status == 401 and json.loads(response.read())["error"]["code"] == "user:noAuth"
    conn.close()


def test_openapi_generated_requests_get_no_server_error(daemon: RunningDaemon) -> None:
    import schemathesis
    from hypothesis import HealthCheck, given, settings

    client = ApiClient.for_daemon(daemon, PREFIX)
    client.login("bob@example.org", "bobpass")
    base = f"http://127.0.0.1:{daemon.ports['http']}{PREFIX}api"
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
    auth = {"Cookie": f"mailsrvsession={client.cookies['mailsrvsession']}", "x-mailsrv-csrf": client.csrf or ""}
    checked = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.path in ("/Logout", "/EndOtherSessions"):  # would end the session the others use
            continue

        @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        @given(case=operation.as_strategy())
        def check(case: schemathesis.Case) -> None:
            response = case.call(base_url=base, headers=auth)
            assert response.status_code < 500, (case.body, response.text)
            assert "Traceback" not in response.text

        check()
        checked += 1
    assert checked >= 4
