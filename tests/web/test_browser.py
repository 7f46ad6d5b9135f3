"""The framework in a real browser: the example page (tests/web/example_ts/main.ts) asks for a
login when its API says user:noAuth, retries the call after it, stays logged in across a
reload (cookie + CSRF token in localStorage), logs out; nothing violates the CSP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.daemon import RunningDaemon, write_config


@pytest.fixture
def example_daemon(tmp_path: Path) -> Iterator[RunningDaemon]:
    d = write_config(tmp_path / "d")
    d.python_args = ("-m", "tests.web.exampleapi")
    d.start()
    try:
        yield d
    finally:
        d.stop()


def test_login_retry_reload_logout(page: Any, example_daemon: RunningDaemon) -> None:
    url = f"http://127.0.0.1:{example_daemon.ports['http']}/webaccount/"
    page.goto(url)
    page.fill("input[name=username]", "alice@example.org")
    page.fill("input[name=password]", "wrong")
    page.click("button[type=submit]")
    page.wait_for_selector(".login-status:has-text('authentication failed')")
    page.fill("input[name=password]", "alicepass")
    page.click("button[type=submit]")
    assert page.text_content("#who", timeout=20_000) == "Logged in as alice"
    assert page.text_content("#items") == "2 items"  # the call after the retried one
    page.reload()
    assert page.text_content("#who") == "Logged in as alice"
    assert page.locator("form.login").count() == 0
    page.click("#logout")
    page.wait_for_selector("form.login")
