"""Playwright on Debian's chromium for the web interface tests (no browser download).

    def test_page(page: Page, web_daemon: RunningDaemon) -> None:
        page.goto(f"http://127.0.0.1:{port}/webaccount/")

`browser` (one per test module: Playwright's sync API cannot run twice at once in a process,
so a module-scoped browser never overlaps another module's) skips with a reason naming the Debian package `chromium`
when it is missing, and fails instead under CI (MAILSRV_REQUIRE_TOOLS, tests/tools.py).
`page` is a fresh context (no cookies, no localStorage) per test; it fails the test when the
page logs a Content-Security-Policy violation or an uncaught error.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.tools import require_program


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    chromium = require_program("chromium", "chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context()
    context.set_default_timeout(20_000)
    new_page = context.new_page()
    problems: list[str] = []
    new_page.on("pageerror", lambda error: problems.append(f"uncaught: {error}"))
    new_page.on(
        "console",
        lambda message: problems.append(message.text) if "Content Security Policy" in message.text else None,
    )
    try:
        yield new_page
    finally:
        context.close()
    assert not problems, problems
