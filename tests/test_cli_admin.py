"""The admin CLI additions of issue 14, without a daemon (files): `setadminpassword`, quickstart
printing the web admin password, `alias addmember` refusing a non-account, hold rules by
account, `domain check` on a domain with no DNS."""

from __future__ import annotations

import re
import stat
from pathlib import Path

from mailsrv.auth import adminpassword
from mailsrv.auth.passwords import PasswordHasher
from tests.daemon import write_config
from tests.test_cli import _cli


def test_setadminpassword_stores_a_private_hash(tmp_path: Path) -> None:
    d = write_config(tmp_path / "d")
    r = d.cli("setadminpassword", input="short\n")
    assert r.returncode == 1 and "at least 8" in r.stderr and "Traceback" not in r.stderr
    r = d.cli("setadminpassword", input="admin-secret-1\n")
    assert r.returncode == 0, r.stderr
    path = adminpassword.path(d.data_dir)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "admin-secret-1" not in path.read_text()
    assert adminpassword.verify(d.data_dir, "admin-secret-1", PasswordHasher())
    assert not adminpassword.verify(d.data_dir, "admin-secret-2", PasswordHasher())


def test_quickstart_sets_and_prints_the_admin_password(tmp_path: Path) -> None:
    r = _cli("quickstart", "example.net", "admin@example.net", "--dir", str(tmp_path / "q"))
    assert r.returncode == 0, r.stderr
    match = re.search(r"Web admin interface: (\S+) .*login admin, password: (\S+)", r.stdout)
    assert match, r.stdout
    assert match.group(1) == "http://127.0.0.1:8080/webadmin/"
    assert adminpassword.verify(tmp_path / "q" / "data", match.group(2), PasswordHasher())
    # The admin interface gets a loopback listener of its own (the others listen on every address).
    config = (tmp_path / "q" / "mailsrv.toml").read_text()
    assert 'name = "admin"\nprotocol = "http"\naddress = "127.0.0.1"\nport = 8080' in config


def test_alias_members_must_be_accounts(tmp_path: Path) -> None:
    d = write_config(tmp_path / "d")
    assert d.cli("alias", "add", "team@example.org", "alice@example.org").returncode == 0
    r = d.cli("alias", "addmember", "team@example.org", "nobody@example.org")
    assert r.returncode == 1 and "not an account's address" in r.stderr and "Traceback" not in r.stderr
    r = d.cli("alias", "add", "other@example.org", "someone@elsewhere.example")
    assert r.returncode == 1 and "not an account's address" in r.stderr


def test_hold_rule_by_account(tmp_path: Path) -> None:
    d = write_config(tmp_path / "d")
    r = d.cli("queue", "holdrules", "add", "--account", "nobody")
    assert r.returncode == 1 and "no such account" in r.stderr
    assert d.cli("queue", "holdrules", "add", "--account", "alice").returncode == 0
    assert "account=alice" in d.cli("queue", "holdrules", "list").stdout


def test_domain_check_without_dns_says_what_to_publish(tmp_path: Path) -> None:
    d = write_config(tmp_path / "d")  # its DNS server has no records at all
    r = d.cli("domain", "check", "example.org")
    assert r.returncode == 0, r.stderr
    assert "ERROR    MX:" in r.stdout and "publish: example.org.  MX 10 mail.example.org." in r.stdout


def test_domain_set_and_show(tmp_path: Path) -> None:
    d = write_config(tmp_path / "d")
    r = d.cli(
        "domain",
        "set",
        "example.org",
        "--dmarc-reports",
        "alice+dmarc@example.org",
        "--tlsrpt-reports",
        "tls@elsewhere.example",
        "--mta-sts-mode",
        "enforce",
        "--mta-sts-max-age",
        "1d",
    )
    assert r.returncode == 0, r.stderr
    assert "DMARC reports to:   alice+dmarc@example.org" in r.stdout
    assert "MTA-STS mode:       enforce (enforce), max_age 86400 (1d)" in r.stdout
    ident = re.search(r'_mta-sts.example.org.  TXT "v=STSv1; id=(\w+)"', r.stdout)
    assert ident, r.stdout
    shown = d.cli("domain", "show", "example.org")
    assert shown.returncode == 0 and shown.stdout == r.stdout
    r = d.cli("domain", "set", "example.org", "--dmarc-reports", "nobody@example.org")
    assert r.returncode == 1 and "no account has the address" in r.stderr and "Traceback" not in r.stderr
    r = d.cli("domain", "set", "example.org")
    assert r.returncode == 1 and "nothing to change" in r.stderr
    r = d.cli("domain", "set", "example.org", "--mta-sts-mode", "", "--mta-sts-max-age", "0")
    assert "MTA-STS mode:       testing (default), max_age 604800 (default)" in r.stdout
    assert ident.group(1) not in r.stdout  # another policy, another id


def test_domain_reports(tmp_path: Path) -> None:
    d = write_config(tmp_path / "d")
    r = d.cli("domain", "reports", "example.org")
    assert r.returncode == 0, r.stderr
    assert "DMARC: 0 messages passed, 0 failed" in r.stdout and "TLS: 0 sessions succeeded" in r.stdout
    r = d.cli("domain", "reports", "nope.example")
    assert r.returncode == 1 and "no such domain" in r.stderr
