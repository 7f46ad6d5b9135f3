"""Shared fixtures: `daemon` runs the real mailsrv daemon (see tests/daemon.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.daemon import RunningDaemon, start_daemon


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[RunningDaemon]:
    running = start_daemon(tmp_path / "daemon")
    try:
        yield running
    finally:
        running.kill()
