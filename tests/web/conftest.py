"""Fixtures of the web tests: the Playwright browser and page (tests/web/browser.py)."""

from tests.web.browser import browser, page

__all__ = ["browser", "page"]
