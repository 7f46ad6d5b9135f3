"""Loading mailsrv.toml and dynamic.toml: every problem is one line naming file, key and problem."""

from __future__ import annotations

import dataclasses
import re
import tomllib
from pathlib import Path

import pytest
import tomli_w

from mailsrv.address import Address, Domain
from mailsrv.config import ConfigError, dump_dynamic, load_dynamic, load_static, types
from mailsrv.config.load import parse_dynamic

ROOT = Path(__file__).resolve().parents[2]
BASE = 'hostname = "mail.example.org"\ndata_dir = "data"\n'
TLS = '[[tls]]\ncert_file = "cert.pem"\nkey_file = "key.pem"\n'


def _write(tmp_path: Path, text: str, name: str = "mailsrv.toml") -> Path:
    (tmp_path / "cert.pem").write_text("not checked here\n")
    (tmp_path / "key.pem").write_text("not checked here\n")
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def _listener(protocol: str = "imap", port: object = 143, **extra: object) -> str:
    lines = ["[[listeners]]", f'protocol = "{protocol}"', f"port = {tomli_w.dumps({'v': port})[4:].strip()}"]
    lines += [f"{k} = {tomli_w.dumps({'v': v})[4:].strip()}" for k, v in extra.items()]
    return "\n".join(lines) + "\n"


def test_minimal_config_defaults_and_relative_paths(tmp_path: Path) -> None:
    config = load_static(_write(tmp_path, BASE + TLS + _listener(tls="starttls")))
    assert config.hostname == Domain.parse("mail.example.org")
    assert config.data_dir == tmp_path / "data"
    assert config.dynamic_file == tmp_path / "data" / "dynamic.toml"
    assert config.tls[0].cert_file == tmp_path / "cert.pem" and config.tls[0].key_file == tmp_path / "key.pem"
    (listener,) = config.listeners
    assert (listener.name, listener.address, listener.port, listener.tls) == ("imap-0", "0.0.0.0", 143, "starttls")
    assert config.ldap is None and config.limits.max_message_size == 50 * 1024 * 1024


def test_relative_paths_resolve_against_the_config_directory_not_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf_dir = tmp_path / "etc"
    conf_dir.mkdir()
    path = _write(conf_dir, BASE + TLS)
    monkeypatch.chdir(tmp_path)
    config = load_static(Path("etc/mailsrv.toml"))
    assert config.data_dir == conf_dir / "data" and config.tls[0].cert_file == conf_dir / "cert.pem"
    assert config.source == path


def test_example_config_in_etc_is_complete_and_valid(tmp_path: Path) -> None:
    text = (ROOT / "etc" / "mailsrv.toml").read_text()
    # Point the TLS files at existing ones; everything else is used as shipped.
    text = text.replace("/etc/mailsrv/tls/fullchain.pem", "cert.pem").replace("/etc/mailsrv/tls/privkey.pem", "key.pem")
    config = load_static(_write(tmp_path, text))
    assert config.hostname.ascii == "mail.example.org"
    assert config.data_dir == Path("/var/lib/mailsrv")
    assert sorted(listener.port for listener in config.listeners) == [25, 80, 143, 443, 465, 587, 993]
    assert {listener.address for listener in config.listeners} == {"0.0.0.0"}


def test_ipv6_listen_address_is_normalised(tmp_path: Path) -> None:
    config = load_static(_write(tmp_path, BASE + _listener(address="0:0::0")))
    assert config.listeners[0].address == "::"


def test_port_zero_may_repeat(tmp_path: Path) -> None:
    config = load_static(_write(tmp_path, BASE + _listener(port=0, name="a") + _listener(port=0, name="b")))
    assert [listener.port for listener in config.listeners] == [0, 0]


STATIC_ERRORS = [
    ("[unclosed\n", "invalid TOML: Expected ']' at the end of a table declaration (at line 1, column 10)"),
    ("hostname = 5\n", "hostname: expected a string, got integer"),
    ('data_dir = "d"\n', "hostname: missing; expected a string"),
    (
        'hostname = "a b"\ndata_dir = "d"\n',
        "hostname: invalid domain 'a b': Codepoint U+0020 at position 2 of 'a b' not allowed",
    ),
    ('hostname = "mail..example"\ndata_dir = "d"\n', "hostname: invalid domain 'mail..example': empty label"),
    (BASE + "colour = 1\n", "colour: unknown key"),
    (BASE + "listeners = 5\n", "listeners: expected an array of tables ([[listeners]]), got integer"),
    (BASE + "[limits]\nmax_message_size = 100\n", "limits.max_message_size: expected an integer >= 1024, got 100"),
    (BASE + "limits = 3\n", "limits: expected a table, got integer"),
    (BASE + _listener() + _listener(port=70000), "listeners[1].port: expected a port number 0-65535, got 70000"),
    (BASE + _listener(port=-1), "listeners[0].port: expected a port number 0-65535, got -1"),
    (BASE + _listener(port="143"), "listeners[0].port: expected a port number 0-65535, got string"),
    (BASE + _listener(port=True), "listeners[0].port: expected a port number 0-65535, got boolean"),
    (BASE + '[[listeners]]\nprotocol = "imap"\n', "listeners[0].port: missing; expected a port number 0-65535"),
    (
        BASE + _listener(protocol="pop3"),
        "listeners[0].protocol: expected one of smtp, submission, imap, http, got 'pop3'",
    ),
    (BASE + TLS + _listener(tls="ssl"), "listeners[0].tls: expected one of none, starttls, implicit, got 'ssl'"),
    (
        BASE + TLS + _listener(protocol="http", port=80, tls="starttls"),
        "listeners[0].tls: expected none or implicit for an http listener (HTTP has no STARTTLS)",
    ),
    (
        BASE + _listener(port=993, tls="implicit"),
        "listeners[0].tls: listener uses TLS (implicit) but no [[tls]] key pair is configured",
    ),
    (
        BASE + _listener(tls="starttls"),
        "listeners[0].tls: listener uses TLS (starttls) but no [[tls]] key pair is configured",
    ),
    (
        BASE + _listener(address="localhost"),
        "listeners[0].address: expected an IP address such as 0.0.0.0, :: or 127.0.0.1, got 'localhost'",
    ),
    (BASE + _listener(name="x") + _listener(name="x", port=993), "listeners[1].name: duplicate listener name 'x'"),
    (
        BASE + _listener(name="x") + _listener(name="y"),
        "listeners[1].port: address 0.0.0.0 port 143 is already used by listener 'x'",
    ),
    (BASE + _listener(imap=True), "listeners[0].imap: unknown key"),
    (
        BASE + '[[tls]]\ncert_file = "nope.pem"\nkey_file = "key.pem"\n',
        "tls[0].cert_file: file '{dir}/nope.pem' does not exist",
    ),
    (BASE + '[[tls]]\ncert_file = "cert.pem"\nkey_file = "."\n', "tls[0].key_file: file '{dir}' is not a regular file"),
    (BASE + '[[tls]]\ncert_file = "cert.pem"\n', "tls[0].key_file: missing; expected a string"),
    (
        BASE + TLS + 'hostnames = ["ok.example", "bad_name.example"]\n',
        "tls[0].hostnames[1]: invalid domain 'bad_name.example': "
        "Codepoint U+005F at position 4 of 'bad_name' not allowed",
    ),
    (BASE + TLS + "hostnames = [1]\n", "tls[0].hostnames[0]: expected a string, got integer"),
    (
        BASE + TLS + 'hostnames = ["*.example.org"]\n' + TLS + 'hostnames = ["mail.example.org", "*.EXAMPLE.org"]\n',
        "tls[1].hostnames[1]: *.example.org is already served by tls[0]",
    ),
    (BASE + "[imap]\nidle_timeot = 5\n", "imap.idle_timeot: unknown key"),
    (BASE + "[imap]\nidle_timeout = 0\n", "imap.idle_timeout: expected an integer >= 1, got 0"),
    (
        BASE + '[imap]\nlogin_disabled_without_tls = "yes"\n',
        "imap.login_disabled_without_tls: expected true or false, got string",
    ),
    (BASE + "[smtp]\nremote_port = 0\n", "smtp.remote_port: expected a port number 1-65535, got 0"),
    (
        BASE + '[web]\nadmin_path = "admin"\n',
        "web.admin_path: expected an ASCII URL path starting and ending with '/', got 'admin'",
    ),
    (
        BASE + '[web]\nadmin_path = "/webmail/"\n',
        "web.admin_path: expected a path different from webmail_path ('/webmail/')",
    ),
    (
        BASE + '[web]\nmetrics_listener = "nope"\n',
        "web.metrics_listener: expected the name of an http listener [], got 'nope'",
    ),
    (BASE + "[limits]\nhttp_max_body = 10\n", "limits.http_max_body: expected an integer >= 1024, got 10"),
    (
        BASE + '[ldap]\nuris = ["http://x"]\nuser_base = "dc=x"\nuser_filter = "(mail={address})"\n',
        "ldap.uris[0]: expected an ldap:// or ldaps:// URI, got 'http://x'",
    ),
    (
        BASE + '[ldap]\nuris = []\nuser_base = "dc=x"\nuser_filter = "(mail={address})"\n',
        "ldap.uris: expected at least one ldap:// or ldaps:// URI",
    ),
    (
        BASE + '[ldap]\nuris = ["ldap://x"]\nuser_base = "dc=x"\nuser_filter = "(mail=x)"\n',
        "ldap.user_filter: expected a filter with an {address} or {username} placeholder",
    ),
    (
        BASE + '[ldap]\nuris = ["ldap://x"]\nuser_base = "dc=x"\nuser_filter = "(mail={address})"\ntimeout = 0\n',
        "ldap.timeout: expected a number of seconds > 0, got 0.0",
    ),
]


@pytest.mark.parametrize(("text", "expected"), STATIC_ERRORS)
def test_static_errors_are_one_line_with_file_and_key(tmp_path: Path, text: str, expected: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as e:
        load_static(path)
    assert str(e.value) == f"{path}: {expected.replace('{dir}', str(tmp_path))}"
    assert "\n" not in str(e.value)


def test_missing_and_undecodable_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"missing\.toml: file not found$"):
        load_static(tmp_path / "missing.toml")
    bad = tmp_path / "latin1.toml"
    bad.write_bytes(b'hostname = "\xe9"\n')
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_static(bad)


# --- dynamic.toml ----------------------------------------------------------------------------

DOMAIN = '[domains."example.org"]\n'


def _account(name: str, *addresses: str, domain: str = "example.org", extra: str = "") -> str:
    quoted = ", ".join(tomli_w.dumps({"v": a})[4:].strip() for a in addresses)
    return f'[accounts.{name}]\ndomain = "{domain}"\naddresses = [{quoted}]\n{extra}'


def test_dynamic_file_loads(tmp_path: Path) -> None:
    text = (
        '[domains."b\u00fccher.example"]\nlocalpart_catchall_separator = "-"\ndkim_selector = "s2026"\n'
        + DOMAIN
        + 'description = "main"\n'
        + _account("erin", "e\u0301rin@b\u00fccher.example", "erin@example.org", domain="xn--bcher-kva.example")
        + 'full_name = "Erin \u00c9"\nquota = 1000\ndisabled = true\n'
        + '[aliases."list@example.org"]\npost_public = true\n'
        + 'members = ["erin@example.org", "e\u0301rin@b\u00fccher.example"]\n'
    )
    config = load_dynamic(_write(tmp_path, text, "dynamic.toml"))
    d = config.domains["xn--bcher-kva.example"]
    assert d.localpart_catchall_separator == "-" and d.dkim_selectors == ("s2026",)
    assert config.domains["example.org"].localpart_catchall_separator == "+"
    erin = config.accounts["erin"]
    assert erin.addresses[0] == Address.parse("\u00e9rin@xn--bcher-kva.example")
    assert erin.addresses[0].localpart.value == "\u00e9rin"  # NFC whatever the file held
    assert (erin.full_name, erin.quota, erin.disabled) == ("Erin \u00c9", 1000, True)
    alias = config.aliases[Address.parse("list@example.org").key()]
    assert alias.post_public and not alias.list_members and len(alias.members) == 2


def test_missing_dynamic_file_is_empty(tmp_path: Path) -> None:
    config = load_dynamic(tmp_path / "nothing.toml")
    assert config.domains == {} and config.accounts == {} and config.aliases == {}


def test_dump_round_trips(tmp_path: Path) -> None:
    text = (
        DOMAIN
        + 'localpart_catchall_separator = ""\n'
        + '[domains."b\u00fccher.example"]\n'
        + _account("a", '"john doe"@example.org', "j\u00fcrgen@b\u00fccher.example", extra="quota = 0\n")
        + '[aliases."l@example.org"]\nmembers = ["j\u00fcrgen@b\u00fccher.example"]\nallow_msg_from = true\n'
    )
    path = _write(tmp_path, text, "dynamic.toml")
    config = load_dynamic(path)
    again = parse_dynamic(path, tomllib.loads(tomli_w.dumps(dump_dynamic(config))))
    assert again == config


def test_domain_reporting_and_mta_sts_settings(tmp_path: Path) -> None:
    text = (
        DOMAIN
        + 'dmarc_reports = "dmarc@example.org"\ntlsrpt_reports = "tls+reports@elsewhere.example"\n'
        + 'mta_sts_mode = "enforce"\nmta_sts_max_age = "1d"\n'
        + '[domains."example.net"]\nmta_sts_max_age = 3600\n'
    )
    path = _write(tmp_path, text, "dynamic.toml")
    config = load_dynamic(path)
    d = config.domains["example.org"]
    assert str(d.dmarc_reports) == "dmarc@example.org" and str(d.tlsrpt_reports) == "tls+reports@elsewhere.example"
    assert (d.mta_sts_mode, d.mta_sts_max_age) == ("enforce", 86400)
    net = config.domains["example.net"]
    assert (net.dmarc_reports, net.mta_sts_mode, net.mta_sts_max_age) == (None, None, 3600)
    assert parse_dynamic(path, tomllib.loads(tomli_w.dumps(dump_dynamic(config)))) == config


DYNAMIC_ERRORS = [
    (
        DOMAIN + 'dmarc_reports = "nope"\n',
        "domains.\"example.org\".dmarc_reports: not an address: 'nope'",
    ),
    (
        DOMAIN + 'tlsrpt_reports = "a!b@example.org"\n',
        'domains."example.org".tlsrpt_reports: expected a localpart of letters, digits and . _ + - only,'
        " got 'a!b@example.org'",
    ),
    (
        DOMAIN + 'mta_sts_mode = "strict"\n',
        "domains.\"example.org\".mta_sts_mode: expected none, testing, enforce or off, got 'strict'",
    ),
    (
        DOMAIN + "mta_sts_max_age = 0\n",
        'domains."example.org".mta_sts_max_age: expected 1s to 31557600 seconds (RFC 8461 §3.2), got 0',
    ),
    (
        DOMAIN + 'mta_sts_max_age = "2y"\n',
        'domains."example.org".mta_sts_max_age: expected a duration such as "7d", "12h" or "30m" (units w d h m s),'
        " got '2y'",
    ),
    ("[domains\n", "invalid TOML: Expected ']' at the end of a table declaration (at line 1, column 9)"),
    ("domains = 1\n", "domains: expected a table, got integer"),
    ("[users]\n", "users: unknown key"),
    (
        '[domains."exa mple.org"]\n',
        "domains.\"exa mple.org\": invalid domain 'exa mple.org': "
        "Codepoint U+0020 at position 4 of 'exa mple' not allowed",
    ),
    (DOMAIN + '[domains."EXAMPLE.org"]\n', 'domains."EXAMPLE.org": domain example.org is configured twice'),
    (DOMAIN + "dkim = 1\n", 'domains."example.org".dkim: unknown key'),
    (
        DOMAIN + 'localpart_catchall_separator = "++"\n',
        'domains."example.org".localpart_catchall_separator: '
        "expected one of !#$%&'*+-/=?^_`{|}~ or an empty string, got '++'",
    ),
    (
        DOMAIN + 'localpart_catchall_separator = "a"\n',
        'domains."example.org".localpart_catchall_separator: '
        "expected one of !#$%&'*+-/=?^_`{|}~ or an empty string, got 'a'",
    ),
    (
        DOMAIN + 'dkim_selector = "a b"\n',
        "domains.\"example.org\".dkim_selector: expected a DNS label such as 'mail2026', got 'a b'",
    ),
    (
        _account("a", "a@x.example", domain="x.example"),
        "accounts.a.domain: domain 'x.example' is not configured in [domains]",
    ),
    (
        DOMAIN + _account("a", "a@x.example"),
        "accounts.a.addresses[0]: domain 'x.example' is not configured in [domains]",
    ),
    (DOMAIN + _account("a"), "accounts.a.addresses: expected at least one address"),
    (DOMAIN + _account("a", "a b@example.org"), "accounts.a.addresses[0]: invalid character ' ' in localpart"),
    (DOMAIN + '[accounts.a]\naddresses = ["a@example.org"]\n', "accounts.a.domain: missing; expected a string"),
    (
        DOMAIN + _account("a", "a@example.org", extra='quota = "1G"\n'),
        "accounts.a.quota: expected an integer, got string",
    ),
    (
        DOMAIN + _account("a", "a@example.org", extra="quota = -1\n"),
        "accounts.a.quota: expected an integer >= 0, got -1",
    ),
    (DOMAIN + _account("a", "a@example.org", extra="password = 1\n"), "accounts.a.password: unknown key"),
    (
        DOMAIN + _account("a", "a@example.org", extra='full_name = "A\\nBcc: x"\n'),
        "accounts.a.full_name: expected text without control characters (newlines, tabs)",
    ),
    (
        DOMAIN + _account('".hidden"', "a@example.org"),
        "accounts.\".hidden\": invalid account name: no '/', '\\', spaces, control characters or leading '.'",
    ),
    (
        DOMAIN + _account('"a/b"', "a@example.org"),
        "accounts.\"a/b\": invalid account name: no '/', '\\', spaces, control characters or leading '.'",
    ),
    (DOMAIN + _account('"e\u0301"', "a@example.org"), 'accounts."e\u0301": account name is not in Unicode NFC form'),
    (
        DOMAIN + _account("alice", "a@example.org") + _account("Alice", "b@example.org"),
        "accounts.Alice: account name differs only in case from account 'alice'",
    ),
    (
        DOMAIN + _account("a", "\u00e9@example.org") + _account("b", "E\u0301@EXAMPLE.org"),
        "accounts.b.addresses[0]: address \u00c9@example.org is already used by account 'a'",
    ),
    (
        DOMAIN + _account("a", "x@example.org", "X@example.org"),
        "accounts.a.addresses[1]: address X@example.org is already used by account 'a'",
    ),
    (
        DOMAIN + _account("a", "list@example.org") + '[aliases."List@example.org"]\nmembers = []\n',
        "aliases.\"List@example.org\": address List@example.org is already used by account 'a'",
    ),
    ('[aliases."l@x.example"]\n', "aliases.\"l@x.example\": domain 'x.example' is not configured in [domains]"),
    (
        DOMAIN + '[aliases."l@example.org"]\nmembers = ["x@remote.example"]\n',
        "aliases.\"l@example.org\".members[0]: domain 'remote.example' is not configured in [domains]",
    ),
    (
        DOMAIN + '[aliases."l@example.org"]\nmembers = ["nope"]\n',
        "aliases.\"l@example.org\".members[0]: not an address: 'nope'",
    ),
    (
        DOMAIN + '[aliases."l@example.org"]\nmembers = ["L@example.org"]\n',
        'aliases."l@example.org".members[0]: an alias cannot be its own member',
    ),
    (
        DOMAIN + '[aliases."l@example.org"]\nmembers = ["a@example.org", "A@example.org"]\n',
        'aliases."l@example.org".members[1]: member A@example.org is listed twice',
    ),
    (
        DOMAIN + '[aliases."l@example.org"]\npost_public = 1\n',
        'aliases."l@example.org".post_public: expected true or false, got integer',
    ),
]


@pytest.mark.parametrize(("text", "expected"), DYNAMIC_ERRORS)
def test_dynamic_errors_are_one_line_with_file_and_key(tmp_path: Path, text: str, expected: str) -> None:
    path = _write(tmp_path, text, "dynamic.toml")
    with pytest.raises(ConfigError) as e:
        load_dynamic(path)
    assert str(e.value) == f"{path}: {expected}"
    assert "\n" not in str(e.value)


def test_example_ldap_section_loads_when_uncommented(tmp_path: Path) -> None:
    text = (ROOT / "etc" / "mailsrv.toml").read_text()
    text = text.replace("/etc/mailsrv/tls/fullchain.pem", "cert.pem").replace("/etc/mailsrv/tls/privkey.pem", "key.pem")
    head, ldap = text.split("# [ldap]")
    text = head + "[ldap]" + ldap.replace("\n# ", "\n")
    text = text.replace("/etc/mailsrv/ldap-password", "cert.pem").replace("/etc/mailsrv/ldap-ca.pem", "key.pem")
    config = load_static(_write(tmp_path, text))
    assert config.ldap is not None and config.ldap.quota_attribute == "mailQuota"


def test_every_key_is_documented_and_in_the_example() -> None:
    docs = (ROOT / "docs" / "config.md").read_text()
    example = (ROOT / "etc" / "mailsrv.toml").read_text()
    static_sections = [
        types.StaticConfig,
        types.ListenerConfig,
        types.TLSKeyPair,
        types.LDAPConfig,
        types.WebConfig,
        types.LimitsConfig,
        types.IMAPConfig,
        types.SMTPConfig,
        types.DNSConfig,
        types.ACMEConfig,
        types.WebhooksConfig,
    ]
    for cls in static_sections:
        for f in dataclasses.fields(cls):
            if f.name == "source":  # the file itself, not a key
                continue
            if cls is types.StaticConfig and f.name in (
                "listeners",
                "tls",
                "ldap",
                "web",
                "limits",
                "imap",
                "smtp",
                "dns",
                "junk",
                "acme",
                "webhooks",
                "transports",
            ):
                assert f"[{f.name}]" in docs and f"[{f.name}]" in example, f"section [{f.name}] undocumented"
                continue
            assert f"`{f.name}`" in docs, f"{cls.__name__}.{f.name} missing from docs/config.md"
            assert re.search(rf"^#? ?{f.name} = ", example, re.M), (
                f"{cls.__name__}.{f.name} missing from etc/mailsrv.toml"
            )
    for cls, prefix in ((types.DomainConfig, "domains.NAME"), (types.AccountConfig, "accounts.NAME")):
        for f in dataclasses.fields(cls):
            if f.name != "name":
                assert f"`{prefix}.{f.name}`" in docs, f"{cls.__name__}.{f.name} missing from docs/config.md"
    for f in dataclasses.fields(types.AliasConfig):
        if f.name != "address":
            assert f"`aliases.ADDRESS.{f.name}`" in docs, f"AliasConfig.{f.name} missing from docs/config.md"


def test_tls_hostnames_are_a_labels_and_may_be_wildcards(tmp_path: Path) -> None:
    config = load_static(_write(tmp_path, BASE + TLS + 'hostnames = ["B\u00fccher.example", "*.Example.ORG"]\n'))
    assert config.tls[0].hostnames == ("xn--bcher-kva.example", "*.example.org")
