"""[transports.NAME] and [[routes]] in mailsrv.toml: values, defaults and every refusal naming
the section and key."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

import msgspec
import pytest
import tomli_w

from mailsrv.config import ConfigError, DynamicConfigStore, dump_dynamic, load_dynamic, load_static
from mailsrv.config.transports import DIRECT
from mailsrv.ops.serverinfo import _builtin, _hide_secrets

BASE = 'hostname = "mail.example.org"\ndata_dir = "data"\n'


def _load(tmp_path: Path, text: str):  # type: ignore[no-untyped-def]
    path = tmp_path / "mailsrv.toml"
    path.write_text(BASE + text, encoding="utf-8")
    return load_static(path)


def _error(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as e:
        _load(tmp_path, text)
    return str(e.value)


def _secret(tmp_path: Path, mode: int = 0o600, text: str = "s3cret\n") -> Path:
    path = tmp_path / "provider.pass"
    path.write_text(text)
    os.chmod(path, mode)
    return path


def test_no_transports_means_direct_only(tmp_path: Path) -> None:
    config = _load(tmp_path, "")
    assert list(config.transports.transports) == [DIRECT]
    assert config.transports.routes == () and config.transports.warnings == ()


def test_smarthost_kinds_defaults_and_login(tmp_path: Path) -> None:
    _secret(tmp_path)
    config = _load(
        tmp_path,
        """
[transports.provider]
kind = "submissions"
host = "SMTP.Provider.example"
username = "me@provider.example"
password_file = "provider.pass"

[transports.starttls]
kind = "submission"
host = "192.0.2.7"
tls_name = "relay.example"

[transports.relay]
kind = "smtp"
host = "relay.example"

[transports.relay-strict]
kind = "smtp"
host = "relay.example"
port = 2525
tls = "required"
tls_verify = false

[transports.second-ip]
kind = "direct"
source_ip = "192.0.2.20"
""",
    )
    t = config.transports.transports
    p = t["provider"]
    assert (p.kind, p.host, p.port, p.tls_verify, p.username, p.password) == (
        "submissions",
        "smtp.provider.example",
        465,
        True,
        "me@provider.example",
        "s3cret",
    )
    assert "s3cret" not in repr(p)
    assert (t["starttls"].port, t["starttls"].host, t["starttls"].tls_name) == (587, "192.0.2.7", "relay.example")
    assert (t["relay"].port, t["relay"].tls, t["relay"].tls_verify) == (25, "opportunistic", False)
    assert (t["relay-strict"].port, t["relay-strict"].tls, t["relay-strict"].tls_verify) == (2525, "required", False)
    assert t["second-ip"].source_ip == "192.0.2.20" and not t["second-ip"].smarthost
    assert config.transports.warnings == ()


def test_password_in_the_file_is_accepted_with_a_warning(tmp_path: Path) -> None:
    config = _load(
        tmp_path,
        '[transports.p]\nkind = "submission"\nhost = "relay.example"\nusername = "u"\npassword = "pw"\n',
    )
    assert config.transports.transports["p"].password == "pw"
    (warning,) = config.transports.warnings
    assert warning.startswith("transports.p.password: ") and "password_file" in warning


def test_routes_in_order_with_domains_as_both_label_forms(tmp_path: Path) -> None:
    config = _load(
        tmp_path,
        """
[transports.p]
kind = "submission"
host = "relay.example"

[[routes]]
recipient_domains = ["Bücher.example"]
accounts = ["alice"]
minimum_attempts = 2
transport = "p"

[[routes]]
sender_domains = ["example.org"]
transport = "direct"
""",
    )
    first, second = config.transports.routes
    assert first.recipient_domains == {"xn--bcher-kva.example", "bücher.example"}
    assert (first.accounts, first.minimum_attempts, first.transport) == ({"alice"}, 2, "p")
    assert (second.sender_domains, second.transport) == ({"example.org"}, "direct")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[transports.direct]\nkind = "direct"\n', "transports.direct: direct is the built-in transport"),
        ('[transports."a b"]\nkind = "direct"\n', 'transports."a b": expected a name'),
        ("[transports.p]\n", "transports.p.kind: missing"),
        ('[transports.p]\nkind = "socks"\n', "transports.p.kind: expected one of direct, submissions"),
        ('[transports.p]\nkind = "submission"\n', "transports.p.host: missing"),
        ('[transports.p]\nkind = "submission"\nhost = "bad host"\n', "transports.p.host: expected a host name"),
        ('[transports.p]\nkind = "submission"\nhost = "h.example"\nport = 0\n', "transports.p.port: expected a port"),
        ('[transports.p]\nkind = "submission"\nhost = "h.example"\nport = 70000\n', "transports.p.port: expected"),
        ('[transports.p]\nkind = "submission"\nhost = "h.example"\nhots = 1\n', "transports.p.hots: unknown key"),
        ('[transports.p]\nkind = "direct"\nhost = "h.example"\n', "transports.p.host: unknown key"),
        ('[transports.p]\nkind = "direct"\nsource_ip = "eth0"\n', "transports.p.source_ip: expected an IP address"),
        ('[transports.p]\nkind = "submission"\nsource_ip = "192.0.2.1"\nhost = "h.example"\n', "source_ip: unknown"),
        ('[transports.p]\nkind = "smtp"\nhost = "h.example"\ntls = "none"\n', "transports.p.tls: expected one of"),
        ('[transports.p]\nkind = "submission"\nhost = "h.example"\ntls = "required"\n', "transports.p.tls: unknown"),
        (
            '[transports.p]\nkind = "smtp"\nhost = "h.example"\ntls_verify = true\n',
            "transports.p.tls_verify: opportunistic STARTTLS is never verified",
        ),
        (
            '[transports.p]\nkind = "submission"\nhost = "h.example"\nusername = "u"\n',
            "transports.p.username: a login needs password_file",
        ),
        (
            '[transports.p]\nkind = "smtp"\nhost = "h.example"\nusername = "u"\npassword = "x"\n',
            'transports.p.username: a login needs TLS: set tls = "required"',
        ),
        (
            '[transports.p]\nkind = "submission"\nhost = "h.example"\npassword = "x"\n',
            "transports.p.password: a password needs a username",
        ),
        (
            '[transports.p]\nkind = "submission"\nhost = "h.example"\nusername = "u"\npassword_file = "nope"\n',
            "transports.p.password_file: file",
        ),
        ("[[routes]]\n", "routes[0].transport: missing"),
        ('[[routes]]\ntransport = "smarthost"\n', "routes[0].transport: expected a transport of [transports]"),
        ('[[routes]]\ntransport = "direct"\nrecipient_domains = ["a..b"]\n', "routes[0].recipient_domains[0]: "),
        ('[[routes]]\ntransport = "direct"\nsender_domains = "a.example"\n', "routes[0].sender_domains: expected"),
        ('[[routes]]\ntransport = "direct"\nminimum_attempts = -1\n', "routes[0].minimum_attempts: expected an"),
        ('[[routes]]\ntransport = "direct"\naccount = ["a"]\n', "routes[0].account: unknown key"),
    ],
)
def test_refusals_name_the_section_and_key(tmp_path: Path, text: str, expected: str) -> None:
    message = _error(tmp_path, text)
    assert message.startswith(str(tmp_path / "mailsrv.toml") + ": ")
    assert expected in message, message


def test_password_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    _secret(tmp_path, 0o644)
    message = _error(
        tmp_path,
        '[transports.p]\nkind = "submission"\nhost = "h.example"\nusername = "u"\npassword_file = "provider.pass"\n',
    )
    assert "transports.p.password_file: " in message and "chmod 600" in message


def test_empty_password_file_and_both_password_forms_are_refused(tmp_path: Path) -> None:
    _secret(tmp_path, text="\n")
    head = '[transports.p]\nkind = "submission"\nhost = "h.example"\nusername = "u"\n'
    assert "expected the password on its first line" in _error(tmp_path, head + 'password_file = "provider.pass"\n')
    _secret(tmp_path)
    both = head + 'password_file = "provider.pass"\npassword = "x"\n'
    assert "transports.p.password: give password_file or password, not both" in _error(tmp_path, both)


def test_secrets_are_hidden_in_the_admin_configuration_view(tmp_path: Path) -> None:
    config = _load(
        tmp_path, '[transports.p]\nkind = "submission"\nhost = "h.example"\nusername = "u"\npassword = "pw"\n'
    )
    shown = _hide_secrets(msgspec.to_builtins({"transports": config.transports}, enc_hook=_builtin))
    assert "pw" not in repr(shown) and shown["transports"]["transports"]["p"]["username"] == "u"


def _dynamic(tmp_path: Path, routes: str) -> Path:
    path = tmp_path / "dynamic.toml"
    path.write_text(
        '[domains."example.org"]\n\n[accounts.alice]\ndomain = "example.org"\naddresses = ["alice@example.org"]\n'
        + routes
    )
    return path


def test_account_routes_in_the_dynamic_config_round_trip(tmp_path: Path) -> None:
    static = _load(tmp_path, '[transports.p]\nkind = "submission"\nhost = "relay.example"\n')
    path = _dynamic(
        tmp_path,
        '\n[[accounts.alice.routes]]\nrecipient_domains = ["Bücher.example", "b.example"]\nminimum_attempts = 2\n'
        'transport = "p"\n\n[[accounts.alice.routes]]\ntransport = "direct"\n',
    )
    config = load_dynamic(path, static)
    first, second = config.accounts["alice"].routes
    assert first.recipient_domains == {"xn--bcher-kva.example", "bücher.example", "b.example"}
    assert (first.minimum_attempts, first.transport, first.accounts) == (2, "p", frozenset())
    assert (second.transport, second.recipient_domains) == ("direct", frozenset())
    dumped = dump_dynamic(config)["accounts"]["alice"]["routes"]
    assert dumped == [
        {"recipient_domains": ["b.example", "xn--bcher-kva.example"], "minimum_attempts": 2, "transport": "p"},
        {"transport": "direct"},
    ]
    path.write_text(tomli_w.dumps(dump_dynamic(config)))
    assert load_dynamic(path, static).accounts["alice"].routes == config.accounts["alice"].routes
    assert tomllib.loads(path.read_text())["accounts"]["alice"]["routes"][1] == {"transport": "direct"}


@pytest.mark.parametrize(
    ("routes", "expected"),
    [
        ('transport = "nosuch"\n', "accounts.alice.routes[0].transport: expected a transport of [transports]"),
        ('transport = "p"\naccounts = ["bob"]\n', "accounts.alice.routes[0].accounts: unknown key"),
        ("minimum_attempts = 1\n", "accounts.alice.routes[0].transport: missing"),
    ],
)
def test_account_routes_refusals(tmp_path: Path, routes: str, expected: str) -> None:
    static = _load(tmp_path, '[transports.p]\nkind = "submission"\nhost = "relay.example"\n')
    path = _dynamic(tmp_path, "\n[[accounts.alice.routes]]\n" + routes)
    with pytest.raises(ConfigError) as e:
        load_dynamic(path, static)
    assert expected in str(e.value)
    object.__setattr__(static, "data_dir", tmp_path)  # the store reads data_dir/dynamic.toml
    with pytest.raises(ConfigError) as e:
        DynamicConfigStore(static)
    assert expected in str(e.value)
