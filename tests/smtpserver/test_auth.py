"""SMTP AUTH through the login policy (mailsrv.ops.login), over the harness."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailsrv.config.types import LimitsConfig
from tests.smtpserver.harness import Client, Harness


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    h = Harness(tmp_path / "data", limits=LimitsConfig(login_failures_per_ip=2))
    yield h
    h.close()


def _tls(c: Client) -> Client:
    # As after STARTTLS (AUTH is offered only over TLS); no channel binding over the harness.
    c.session.tls = True
    return c


def _salt_taken(c: Client) -> bytes:
    _tls(c)
    assert c.cmd("EHLO client.example").startswith(b"250")
    out = c.cmd("AUTH SCRAM-SHA-256 " + base64.b64encode(b"n,,n=alice,r=abcdefgh").decode())
    assert out.startswith(b"334 "), out
    return base64.b64decode(out[4:].strip())


def test_scram_abandoned_after_the_salt_counts_as_a_failed_login(harness: Harness) -> None:
    """Issue 17 item 6: '*' after the server-first-message recorded no failure."""
    for _ in range(2):
        c = harness.client("submission")
        _salt_taken(c)
        assert c.cmd("*").startswith(b"501")
    c = _tls(harness.client("submission"))
    c.cmd("EHLO client.example")
    assert c.cmd("AUTH SCRAM-SHA-256").startswith(b"454 4.7.0")
