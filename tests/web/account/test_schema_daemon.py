"""Generated requests (schemathesis, from the account API's served OpenAPI document) against
the daemon with a logged-in session: whatever the parameters, never a 5xx or a traceback."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.daemon import RunningDaemon, start_daemon
from tests.web.apiclient import ApiClient

PREFIX = "/webaccount/"


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningDaemon]:
    d = start_daemon(tmp_path_factory.mktemp("schema") / "d")
    try:
        yield d
    finally:
        d.stop()


def test_generated_calls_never_fail_on_the_server(daemon: RunningDaemon) -> None:
    import schemathesis
    from hypothesis import HealthCheck, given, settings

    client = ApiClient.for_daemon(daemon, PREFIX)
    client.login("alice@example.org", "alicepass")
    base = f"http://127.0.0.1:{daemon.ports['http']}{PREFIX}api"
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
    auth = {"Cookie": f"mailsrvsession={client.cookies['mailsrvsession']}", "x-mailsrv-csrf": client.csrf or ""}
    checked = []
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.path == "/Logout":  # would end the session the other calls use
            continue

        @settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        @given(case=operation.as_strategy())
        def check(case: schemathesis.Case) -> None:
            response = case.call(base_url=base, headers=auth)
            assert response.status_code < 500, (case.body, response.text)
            assert "Traceback" not in response.text

        check()
        checked.append(operation.path)
    assert len(checked) >= 25, checked
    # The session survived it all (a new connection: the first one has idled out meanwhile).
    again = ApiClient.for_daemon(daemon, PREFIX, cookies=dict(client.cookies), csrf=client.csrf)
    assert again.call("Account")["account"] == "alice"
    assert "Traceback" not in daemon.log()
