"""Issue 17 item 9 against the real daemon: TLS 1.2 offers forward-secret AEAD suites only
(checked with openssl s_client, one handshake per cipher OpenSSL knows), and no SASL
mechanism, not even CRAM-MD5 or SCRAM, is offered or accepted before STARTTLS."""

from __future__ import annotations

import socket
import ssl
import subprocess

from tests.daemon import RunningDaemon
from tests.tools import needs_program


def _tls12_ciphers() -> list[tuple[str, str]]:
    """(name, description) of every TLS 1.2-capable cipher this OpenSSL knows."""
    out = subprocess.run(["openssl", "ciphers", "-v", "ALL:@SECLEVEL=0"], capture_output=True, text=True, check=True)
    rows = [line.split(None, 1) for line in out.stdout.splitlines()]
    return [(name, rest) for name, rest in rows if not rest.startswith("TLSv1.3")]


def _handshake(port: int, cipher: str) -> bool:
    run = subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-tls1_2", "-cipher", f"{cipher}:@SECLEVEL=0"],
        input="",
        capture_output=True,
        text=True,
        timeout=20,
    )
    return f"Cipher is {cipher}" in run.stdout


@needs_program("openssl", "openssl")
def test_tls12_offers_only_ecdhe_aead_suites(daemon: RunningDaemon) -> None:
    port = daemon.ports["imaps"]
    accepted = [(name, desc) for name, desc in _tls12_ciphers() if _handshake(port, name)]
    assert accepted, "no TLS 1.2 suite at all"
    for name, desc in accepted:
        assert "Mac=AEAD" in desc and "Kx=ECDH " in desc, (name, desc)
        assert "Enc=AESGCM" in desc or "Enc=CHACHA20" in desc, (name, desc)
    names = {name for name, _ in accepted}
    assert {"ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-CHACHA20-POLY1305"} <= names
    assert not _handshake(port, "ECDHE-ECDSA-AES128-SHA")


def _lines_until(f: object, tag: bytes) -> bytes:
    out = b""
    while True:
        line = f.readline()  # type: ignore[attr-defined]
        assert line, out
        out += line
        if line.startswith(tag):
            return out


def test_imap_offers_no_sasl_before_starttls(daemon: RunningDaemon) -> None:
    sock = socket.create_connection(("127.0.0.1", daemon.ports["imap"]), timeout=10)
    f = sock.makefile("rb")
    greeting = f.readline()
    assert b"AUTH=" not in greeting
    sock.sendall(b"a CAPABILITY\r\n")
    caps = _lines_until(f, b"a ")
    assert b"LOGINDISABLED" in caps and b"STARTTLS" in caps
    assert b"AUTH=" not in caps, caps
    for mechanism in (b"CRAM-MD5", b"SCRAM-SHA-256", b"PLAIN"):
        sock.sendall(b"b AUTHENTICATE " + mechanism + b"\r\n")
        answer = _lines_until(f, b"b ")
        assert answer.startswith((b"b NO", b"b BAD")), answer
    sock.sendall(b"c STARTTLS\r\n")
    assert _lines_until(f, b"c ").startswith(b"c OK")
    tls = daemon.ssl_context().wrap_socket(sock)
    tf = tls.makefile("rb")
    tls.sendall(b"d CAPABILITY\r\n")
    caps = _lines_until(tf, b"d ")
    for mechanism in (b"AUTH=SCRAM-SHA-256", b"AUTH=CRAM-MD5", b"AUTH=PLAIN"):
        assert mechanism in caps, caps
    tls.close()


def test_submission_offers_no_auth_before_starttls(daemon: RunningDaemon) -> None:
    sock = socket.create_connection(("127.0.0.1", daemon.ports["submission"]), timeout=10)
    f = sock.makefile("rb")
    f.readline()
    sock.sendall(b"EHLO client.example\r\n")
    ehlo = _lines_until(f, b"250 ")
    assert b"STARTTLS" in ehlo and b"AUTH" not in ehlo, ehlo
    sock.sendall(b"AUTH CRAM-MD5\r\n")
    assert f.readline()[:1] == b"5"
    sock.sendall(b"STARTTLS\r\n")
    assert f.readline().startswith(b"220")
    tls = daemon.ssl_context().wrap_socket(sock, server_hostname="localhost")
    tf = tls.makefile("rb")
    tls.sendall(b"EHLO client.example\r\n")
    ehlo = _lines_until(tf, b"250 ")
    assert b"AUTH SCRAM-SHA-256-PLUS" in ehlo, ehlo
    tls.close()


def test_python_client_still_negotiates(daemon: RunningDaemon) -> None:
    ctx = daemon.ssl_context()
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    with socket.create_connection(("127.0.0.1", daemon.ports["imaps"]), timeout=10) as raw:
        with ctx.wrap_socket(raw) as tls:
            name, _, _ = tls.cipher()
            assert "GCM" in name or "CHACHA20" in name, name
