"""DKIM key files: created 0600, never overwritten, their record reprinted, and submission
signatures verifying against the published record."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import pytest
from twisted.internet import reactor

from mailsrv.dns.dkim import verify_dkim_sync
from mailsrv.dns.dkimkeys import create_key, key_path, public_record, sign_submission
from mailsrv.dns.resolver import Resolver
from tests.dnsserver import DNSServer

R: Any = reactor
MSG = b"From: alice@a.example\r\nTo: bob@b.example\r\nSubject: s\r\n\r\nbody\r\n"


@pytest.mark.parametrize("kind", ["ed25519", "rsa"])
def test_keys_and_signing(tmp_path: Path, kind: Any) -> None:
    txt = create_key(tmp_path, "A.Example", "sel1", kind)
    path = key_path(tmp_path, "a.example", "sel1")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert public_record(tmp_path, "a.example", "sel1") == txt
    with pytest.raises(FileExistsError):
        create_key(tmp_path, "a.example", "sel1", kind)
    assert not list(path.parent.glob(".*.tmp"))
    signature = sign_submission(tmp_path, "a.example", "sel1", MSG)
    with DNSServer() as server:
        server.set("sel1._domainkey.a.example", "TXT", txt)
        [v] = verify_dkim_sync(Resolver(R, [server.address], timeout=0.5), signature + MSG)
    assert v.result == "pass"
    assert sign_submission(tmp_path, "a.example", None, MSG) == b""
    assert sign_submission(tmp_path, "a.example", "other", MSG) == b""
    for bad in ("../x", "a b", ""):
        with pytest.raises(ValueError):
            key_path(tmp_path, "a.example", bad)
