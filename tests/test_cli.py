"""The `mailsrv` CLI, with the daemon running (control socket) and without it (files)."""

from __future__ import annotations

import imaplib
import os
import subprocess
import sys
from pathlib import Path

from tests.daemon import REPO, RunningDaemon, write_config


def _cli(*args: str, input: str | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run(
        [sys.executable, "-m", "mailsrv.cli", *args],
        input=input,
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=120,
    )


def test_account_commands_through_running_daemon(daemon: RunningDaemon) -> None:
    r = daemon.cli("account", "add", "carol", "Carol@Example.org", "--password", "carolpass1")
    assert r.returncode == 0, r.stderr
    assert "carol" in daemon.cli("account", "list").stdout
    # The daemon applied it at once: carol logs in without a restart.
    imap = imaplib.IMAP4("127.0.0.1", daemon.ports["imap"])
    imap.starttls(daemon.ssl_context())
    imap.login("carol@example.org", "carolpass1")
    imap.logout()
    r = daemon.cli("account", "setpassword", "carol", input="newpassword2\n")
    assert r.returncode == 0, r.stderr
    imap = imaplib.IMAP4("127.0.0.1", daemon.ports["imap"])
    imap.starttls(daemon.ssl_context())
    imap.login("carol", "newpassword2")
    imap.logout()
    r = daemon.cli("account", "add", "dave", "alice@example.org", "--password", "davepass12")
    assert r.returncode == 1
    assert r.stderr.startswith("mailsrv: ") and "already used" in r.stderr and "Traceback" not in r.stderr
    r = daemon.cli("domain", "rm", "example.org")
    assert r.returncode == 1 and "still used by" in r.stderr
    assert daemon.cli("account", "rm", "carol").returncode == 0
    assert "carol" not in daemon.cli("account", "list").stdout
    assert "Traceback" not in daemon.stop()


def test_commands_without_daemon_work_on_files(tmp_path: Path) -> None:
    d = write_config(tmp_path / "d")
    assert d.cli("domain", "add", "b\u00fccher.example").returncode == 0
    r = d.cli("domain", "list")
    assert "xn--bcher-kva.example (b\u00fccher.example)" in r.stdout
    r = d.cli("account", "add", "erin", "e\u0301rin@b\u00fccher.example", "--password", "erinpass1")
    assert r.returncode == 0, r.stderr
    d.start()
    imap = imaplib.IMAP4("127.0.0.1", d.ports["imap"])
    imap.starttls(d.ssl_context())
    # The NFC form of the address logs in the account created with the NFD form.
    imap.authenticate("PLAIN", lambda _: "\0\u00e9rin@b\u00fccher.example\0erinpass1".encode())
    imap.logout()
    d.stop()


def test_errors_are_one_line(tmp_path: Path) -> None:
    r = _cli("--config", str(tmp_path / "missing.toml"), "account", "list")
    assert r.returncode == 1
    assert r.stderr.strip().count("\n") == 0 and "file not found" in r.stderr
    d = write_config(tmp_path / "d")
    r = d.cli("account", "add", "x", "not-an-address", "--password", "longenough")
    assert r.returncode == 1 and "invalid address" in r.stderr and "Traceback" not in r.stderr
    r = d.cli("account", "add", "x", "x@example.org", "--password", "short")
    assert r.returncode == 1 and "too short" in r.stderr


def test_quickstart_writes_a_config_the_daemon_accepts(tmp_path: Path) -> None:
    r = _cli("quickstart", "example.net", "admin@example.net", "--dir", str(tmp_path / "q"))
    assert r.returncode == 0, r.stderr
    assert "MX 10 mail.example.net." in r.stdout
    assert "_domainkey.example.net." in r.stdout and "k=ed25519" in r.stdout and "k=rsa" in r.stdout
    assert "password: " in r.stdout
    r = _cli("--config", str(tmp_path / "q" / "mailsrv.toml"), "account", "list")
    assert "admin@example.net" in r.stdout
    again = _cli("quickstart", "example.net", "admin@example.net", "--dir", str(tmp_path / "q"))
    assert again.returncode == 1 and "not overwriting" in again.stderr


def test_quickstart_dkim_records_match_the_stored_keys(tmp_path: Path) -> None:
    import base64
    import re
    import tomllib

    from cryptography.hazmat.primitives import serialization

    r = _cli("quickstart", "example.net", "admin@example.net", "--dir", str(tmp_path / "q"))
    assert r.returncode == 0, r.stderr
    published = {}
    for line in r.stdout.splitlines():
        m = re.match(r"\s*(\w+)\._domainkey\.example\.net\.\s+TXT\s+(.*)$", line)
        if m:
            strings = re.findall(r'"([^"]*)"', m.group(2))
            assert all(len(s) <= 255 for s in strings)  # RFC 1035 §3.3.14 character-strings
            published[m.group(1)] = "".join(strings)
    assert len(published) == 2
    paths = sorted((tmp_path / "q" / "data" / "dkim" / "example.net").iterdir())
    # <selector>.pem, the name the signer reads; both selectors sign (dkim_selectors).
    assert [p.name for p in paths] == [f"{s}.pem" for s in sorted(published)]
    dynamic = tomllib.loads((tmp_path / "q" / "data" / "dynamic.toml").read_text())
    assert dynamic["domains"]["example.net"]["dkim_selectors"] == sorted(published)
    static = tomllib.loads((tmp_path / "q" / "mailsrv.toml").read_text())
    assert static["smtp"]["postmaster_account"] == "admin"
    for path in paths:
        selector = path.name.removesuffix(".pem")
        kind = "rsa" if "k=rsa" in published[selector] else "ed25519"
        assert path.stat().st_mode & 0o077 == 0
        key = serialization.load_pem_private_key(path.read_bytes(), None)
        if kind == "rsa":
            pub = key.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        else:
            pub = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        assert published[selector] == f"v=DKIM1; k={kind}; p={base64.b64encode(pub).decode()}"


def test_ratelimit_reset_lets_a_locked_out_account_in(tmp_path: Path) -> None:
    """Issue 17 item 6: bad logins locked an account out with no way to undo it but waiting."""
    from tests.daemon import start_daemon

    daemon = start_daemon(tmp_path / "d", extra_static="\n[limits]\nlogin_failures_per_account = 2\n")
    try:
        address, password = daemon.accounts["alice"]

        def login(secret: str) -> None:
            imap = imaplib.IMAP4("127.0.0.1", daemon.ports["imap"])
            try:
                imap.starttls(daemon.ssl_context())
                imap.login(address, secret)
            finally:
                imap.shutdown()

        for _ in range(2):
            try:
                login("wrong password")
            except imaplib.IMAP4.error as e:
                assert "AUTHENTICATIONFAILED" in str(e)
        try:
            login(password)
            raise AssertionError("not rate-limited")
        except imaplib.IMAP4.error as e:
            assert "UNAVAILABLE" in str(e)
        out = daemon.cli_ok("ratelimit", "reset", "--ip", "127.0.0.1", "--account", address.upper())
        assert "1 dropped" in out
        login(password)
        r = daemon.cli("ratelimit", "reset", "--ip", "nonsense")
        assert r.returncode == 1 and "invalid IP address" in r.stderr
    finally:
        daemon.kill()
