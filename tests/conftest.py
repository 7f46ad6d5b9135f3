"""Shared fixtures: `daemon` runs the real mailsrv daemon (see tests/daemon.py)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from tests.daemon import RunningDaemon, start_daemon
from tests.tools import require_program

# tox (the README's test command, and so CI) runs the property tests with a fixed seed, so
# that a run passes or fails the same way every time; `pytest` run directly explores new
# random examples each time (HYPOTHESIS_PROFILE=explore). A failure found either way gets a
# regression test of its own (e.g. tests/message/test_shapes.py).
settings.register_profile("ci", derandomize=True, print_blob=True)
settings.register_profile("explore", print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "explore"))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "needs_program(name, package): the test runs a Debian program (tests/tools.py)")


def pytest_runtest_setup(item: pytest.Item) -> None:
    for marker in item.iter_markers("needs_program"):
        require_program(marker.args[0], package=marker.kwargs["package"])


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[RunningDaemon]:
    running = start_daemon(tmp_path / "daemon")
    try:
        yield running
    finally:
        running.kill()
