"""DKIM key files: created 0600, never overwritten, their record reprinted, and submission
signatures verifying against the published record."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import pytest
from twisted.internet import reactor

from mailsrv.dns.dkim import verify_dkim_sync
from mailsrv.dns.dkimkeys import (
    create_domain_keys,
    create_key,
    find_key,
    key_path,
    key_problems,
    public_record,
    sign_submission,
)
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
    signature, problems = sign_submission(tmp_path, "a.example", ("sel1",), MSG)
    assert problems == []
    with DNSServer() as server:
        server.set("sel1._domainkey.a.example", "TXT", txt)
        [v] = verify_dkim_sync(Resolver(R, [server.address], timeout=0.5), signature + MSG)
    assert v.result == "pass"
    assert sign_submission(tmp_path, "a.example", (), MSG) == (b"", [])
    # A selector without a key signs nothing and says why; the others still sign.
    both, problems = sign_submission(tmp_path, "a.example", ("other", "sel1"), MSG)
    assert both.startswith(b"DKIM-Signature:") and both.count(b"DKIM-Signature:") == 1
    [problem] = problems
    assert problem.startswith("selector other: no key file")
    for bad in ("../x", "a b", ""):
        with pytest.raises(ValueError):
            key_path(tmp_path, "a.example", bad)


def test_domain_keys_sign_with_both_and_old_quickstart_names_still_load(tmp_path: Path) -> None:
    records = create_domain_keys(tmp_path, "a.example", "202612")
    assert [(sel, txt.split(";")[1].strip()) for sel, txt in records] == [
        ("202612e", "k=ed25519"),
        ("202612r", "k=rsa"),
    ]
    # Run again: the keys stay (never overwritten), the records are the same.
    assert create_domain_keys(tmp_path, "a.example", "202612") == records
    signatures, problems = sign_submission(tmp_path, "a.example", ("202612e", "202612r"), MSG)
    assert problems == [] and signatures.count(b"DKIM-Signature:") == 2
    assert key_problems(tmp_path, "a.example", ("202612e", "202612r")) == []
    # What quickstart wrote before: <selector>.<kind>.pem.
    key_path(tmp_path, "a.example", "202612e").rename(tmp_path / "dkim" / "a.example" / "202612e.ed25519.pem")
    assert find_key(tmp_path, "a.example", "202612e") == tmp_path / "dkim" / "a.example" / "202612e.ed25519.pem"
    assert public_record(tmp_path, "a.example", "202612e") == records[0][1]
    (tmp_path / "dkim" / "a.example" / "202612r.pem").write_bytes(b"not a key")
    problems = key_problems(tmp_path, "a.example", ("202612e", "202612r", "gone"))
    assert len(problems) == 2 and "202612r" in problems[0] and "unusable" in problems[0] and "gone" in problems[1]


def test_a_key_is_loaded_once_for_many_signatures(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loading an RSA key checks it (~70 ms of CPU): every submitted message paid it twice
    (ed25519 and RSA signatures) before the parsed key was cached."""
    from cryptography.hazmat.primitives import serialization

    from mailsrv.dns import dkim

    pem, _ = dkim.generate_dkim_key("rsa")
    loads: list[bytes] = []
    original = serialization.load_pem_private_key

    def counting(data: bytes, password: Any = None, **kw: Any) -> Any:
        loads.append(data)
        return original(data, password, **kw)

    monkeypatch.setattr(serialization, "load_pem_private_key", counting)
    message = b"From: a@example.org\r\nSubject: s\r\n\r\nbody\r\n"
    for _ in range(3):
        assert dkim.sign(message, "example.org", "s1", pem).startswith(b"DKIM-Signature:")
    assert len(loads) == 1
