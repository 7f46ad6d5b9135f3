"""Localserve's directory: created once, reused on every later start (mail, certificate,
accounts and passwords stay), ports moved by the offset, loopback only."""

from __future__ import annotations

from pathlib import Path

from mailsrv.listen import ipv6_available
from mailsrv.localserve import ADDRESS, PASSWORD, PORTS, banner, prepare


def test_first_start_creates_everything(tmp_path: Path) -> None:
    config = prepare(tmp_path / "ls", port_offset=100)
    ipv4 = [lst for lst in config.listeners if lst.address == "127.0.0.1"]
    assert {(lst.name, lst.port, lst.tls) for lst in ipv4} == {(name, port + 100, tls) for name, _, port, tls in PORTS}
    # The same ports on ::1 where the machine has IPv6; nothing else.
    ipv6 = [lst for lst in config.listeners if lst.address == "::1"]
    expected = {(f"{name}-ipv6", port + 100, tls) for name, _, port, tls in PORTS} if ipv6_available() else set()
    assert {(lst.name, lst.port, lst.tls) for lst in ipv6} == expected
    assert len(config.listeners) == len(ipv4) + len(ipv6)
    assert (tmp_path / "ls" / "tls" / "cert.pem").exists()
    assert (tmp_path / "ls").stat().st_mode & 0o077 == 0
    text = banner(config)
    assert ADDRESS in text and repr(PASSWORD) in text and "127.0.0.1:1243" in text
    assert "account page: http://localhost:1180/webaccount/" in text


def test_second_start_reuses_the_directory(tmp_path: Path) -> None:
    prepare(tmp_path / "ls")
    cert = (tmp_path / "ls" / "tls" / "cert.pem").read_bytes()
    dynamic = (tmp_path / "ls" / "data" / "dynamic.toml").read_bytes()
    marker = tmp_path / "ls" / "data" / "kept"
    marker.write_text("mail lives here")
    config = prepare(tmp_path / "ls", port_offset=5)
    assert (tmp_path / "ls" / "tls" / "cert.pem").read_bytes() == cert
    assert (tmp_path / "ls" / "data" / "dynamic.toml").read_bytes() == dynamic
    assert marker.read_text() == "mail lives here"
    ipv4 = [lst for lst in config.listeners if lst.address == "127.0.0.1"]
    assert sorted(lst.port for lst in ipv4) == sorted(port + 5 for _, _, port, _ in PORTS)
