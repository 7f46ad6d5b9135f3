"""Configuration loading: every problem is one line naming file, key and problem."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mailsrv.address import Address
from mailsrv.config import ConfigError, DynamicConfigError, DynamicConfigStore, load_static
from mailsrv.config.types import AccountConfig, AliasConfig

BASE = 'hostname = "mail.example.org"\ndata_dir = "data"\n'


def _static(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "mailsrv.toml"
    p.write_text(text)
    return p


def test_minimal_config_and_relative_paths(tmp_path: Path) -> None:
    config = load_static(_static(tmp_path, BASE + '[[listeners]]\nprotocol = "imap"\nport = 143\n'))
    assert config.data_dir == tmp_path / "data"
    assert config.listeners[0].address == "0.0.0.0" and config.listeners[0].tls == "none"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("hostname = 5\n", "mailsrv.toml: hostname: expected a string, got integer"),
        (BASE + '[[listeners]]\nprotocol = "imap"\nport = 70000\n', "listeners[0].port: expected a port number"),
        (BASE + '[[listeners]]\nprotocol = "pop3"\nport = 110\n', "listeners[0].protocol: expected one of"),
        (BASE + '[[listeners]]\nprotocol = "imap"\nport = 993\ntls = "implicit"\n', "no [[tls]] key pair"),
        (
            BASE + '[[listeners]]\nprotocol = "imap"\nport = true\n',
            "listeners[0].port: expected an integer, got boolean",
        ),
        (BASE + '[[tls]]\ncert_file = "nope.pem"\nkey_file = "nope.key"\n', "tls[0].cert_file: file"),
        (BASE + "[imap]\nidle_timeot = 5\n", "imap.idle_timeot: unknown key"),
        ('data_dir = "d"\n', "hostname: missing"),
        ('hostname = "a b"\ndata_dir = "d"\n', "hostname: invalid domain"),
        ("[unclosed\n", "invalid TOML"),
        (
            BASE + '[ldap]\nuris = ["http://x"]\nuser_base = "dc=x"\nuser_filter = "(mail={address})"\n',
            "ldap.uris[0]: expected an ldap://",
        ),
    ],
)
def test_static_errors(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as e:
        load_static(_static(tmp_path, text))
    assert message in str(e.value)
    assert "\n" not in str(e.value)


def _dynamic(tmp_path: Path, text: str = "") -> DynamicConfigStore:
    p = tmp_path / "dynamic.toml"
    if text:
        p.write_text(text)
    return DynamicConfigStore(p)


def test_dynamic_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=re.escape("accounts.a.domain: domain 'x.example' is not configured")):
        _dynamic(tmp_path, '[accounts.a]\ndomain = "x.example"\naddresses = ["a@x.example"]\n')
    with pytest.raises(ConfigError, match="already used by account 'a'"):
        _dynamic(
            tmp_path,
            '[domains."x.example"]\n[accounts.a]\ndomain = "x.example"\naddresses = ["a@x.example"]\n'
            '[accounts.b]\ndomain = "x.example"\naddresses = ["A@X.example"]\n',
        )


def test_mutations_rewrite_atomically_and_lookup(tmp_path: Path) -> None:
    store = _dynamic(tmp_path)
    seen: list[object] = []
    store.add_listener(seen.append)
    store.add_domain("b\u00fccher.example")
    store.add_account("erin", "e\u0301rin@b\u00fccher.example")
    assert len(seen) == 2
    again = DynamicConfigStore(tmp_path / "dynamic.toml")
    found = again.lookup(Address.parse("\u00c9RIN+news@xn--bcher-kva.example"))
    assert isinstance(found, AccountConfig) and found.name == "erin"
    assert again.lookup(Address.parse("nobody@b\u00fccher.example")) is None
    with pytest.raises(DynamicConfigError, match="already used"):
        store.add_account("erin2", "\u00e9rin@b\u00fccher.example")
    with pytest.raises(DynamicConfigError, match="still used by: erin"):
        store.remove_domain("b\u00fccher.example")
    assert not list(tmp_path.glob(".dynamic.toml.*"))
    store.set_aliases(
        {
            Address.parse("list@b\u00fccher.example").key(): AliasConfig(
                Address.parse("list@b\u00fccher.example"), (Address.parse("\u00e9rin@b\u00fccher.example"),)
            )
        }
    )
    assert isinstance(store.lookup(Address.parse("list@b\u00fccher.example")), AliasConfig)


def test_reload_keeps_old_config_on_bad_edit(tmp_path: Path) -> None:
    store = _dynamic(tmp_path)
    store.add_domain("example.org")
    path = tmp_path / "dynamic.toml"
    path.write_text('[domains."example.org"]\n[domains."example.net"]\n')
    assert store.reload_if_changed()
    assert "example.net" in store.current.domains
    path.write_text("[domains.\n")
    assert not store.reload_if_changed()
    assert "example.net" in store.current.domains
