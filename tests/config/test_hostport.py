"""Endpoints in config files (DNS nameservers, the sendmail submission server)."""

from __future__ import annotations

import pytest

from mailsrv.config.hostport import parse_host_port


def test_forms() -> None:
    assert parse_host_port("127.0.0.1", 53) == ("127.0.0.1", 53)
    assert parse_host_port(" 127.0.0.1:5353 ", 53) == ("127.0.0.1", 5353)
    assert parse_host_port("[::1]:5353", 53) == ("::1", 5353)
    assert parse_host_port("[::1]", 587) == ("::1", 587)
    assert parse_host_port("::1", 53) == ("::1", 53)


@pytest.mark.parametrize("bad", ["localhost", "1.2.3.4:0", "1.2.3.4:x", "[::1]x", "1.2.3.4:70000", ""])
def test_rejects(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_host_port(bad, 53)


def test_config_loading_does_not_import_dns() -> None:
    """The config layer sits below dns/ (DESIGN.md layering); loading must not pull it in."""
    import subprocess
    import sys

    code = "import sys, mailsrv.config.load; print(any(m.startswith('mailsrv.dns') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
