from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mailsrv.ops import accounts, domains
from mailsrv.server import Server
from tests.ops.world import make_server, result


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    """A server with domain example.org and account alice (alice@example.org)."""
    s = make_server(tmp_path)
    domains.add(s, domains.AddDomain(domain="example.org"))
    result(accounts.add(s, accounts.AddAccount(account="alice", address="alice@example.org", password="alice-secret")))
    yield s
    s.close()
