"""Private files (issue 17 item 1): everything quickstart, the daemon and the CLI create
under the data directory is 0700 (directories) or 0600 (files and sockets), whatever the
umask they were started with, and the daemon tightens an existing installation at start."""

from __future__ import annotations

import os
import smtplib
import stat
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mailsrv.filemodes import make_tree_private
from tests.daemon import REPO, wait_until, write_config

MSG = b"From: <x@example.net>\r\nSubject: modes\r\n\r\nhello\r\n"


@contextmanager
def _umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def _not_private(root: Path) -> list[str]:
    """Every path under `root` (itself included) with a group or other permission bit."""
    bad = []
    for directory, dirs, files in os.walk(root):
        for path in [Path(directory), *(Path(directory) / n for n in dirs + files)]:
            st = path.lstat()
            if stat.S_ISLNK(st.st_mode):
                continue
            expected = 0o700 if stat.S_ISDIR(st.st_mode) else 0o600
            if stat.S_IMODE(st.st_mode) != expected:
                bad.append(f"{oct(stat.S_IMODE(st.st_mode))} {path}")
    return sorted(set(bad))


def test_make_tree_private_fixes_modes_and_leaves_symlinks(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.write_text("x")
    outside.chmod(0o644)
    root = tmp_path / "data"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "file").write_text("x")
    (root / "sub" / "file").chmod(0o644)
    (root / "tool").write_text("x")
    (root / "tool").chmod(0o755)
    (root / "sub").chmod(0o755)  # whatever this process's umask (other tests may set 077)
    root.chmod(0o755)
    (root / "link").symlink_to(outside)
    changed = make_tree_private(root)
    assert len(changed) == 4
    assert stat.S_IMODE((root / "tool").stat().st_mode) == 0o700  # owner bits kept
    (root / "tool").unlink()
    assert _not_private(root) == []
    assert stat.S_IMODE(outside.stat().st_mode) == 0o644  # not followed
    assert make_tree_private(root) == []


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run(
        [sys.executable, "-m", "mailsrv.cli", *args], capture_output=True, text=True, env=env, timeout=120
    )


def test_quickstart_creates_private_files_under_umask_022(tmp_path: Path) -> None:
    with _umask(0o022):
        r = _cli("quickstart", "example.net", "admin@example.net", "--dir", str(tmp_path / "q"))
        assert r.returncode == 0, r.stderr
        # The CLI without a daemon opens the stores itself: what it creates is private too.
        r = _cli(
            "--config",
            str(tmp_path / "q" / "mailsrv.toml"),
            "account",
            "add",
            "bob",
            "bob@example.net",
            "--password",
            "bobpass12",
        )
        assert r.returncode == 0, r.stderr
    assert (tmp_path / "q" / "data" / "auth.db").exists()
    assert _not_private(tmp_path / "q") == []


def test_daemon_data_dir_is_private_after_use(tmp_path: Path) -> None:
    with _umask(0o022):
        # An existing installation written under umask 022 (0755 directories, 0644 files).
        daemon = write_config(tmp_path / "d")
        assert _not_private(daemon.data_dir) != []
        daemon.start()
    try:
        assert "path(s) under" in daemon.log() and "private to the service user" in daemon.log()
        with smtplib.SMTP("127.0.0.1", daemon.ports["smtp"]) as s:
            s.sendmail("x@example.net", ["alice@example.org"], MSG)
        # Submission to a remote domain: the queue takes it, fails (NXDOMAIN) and bounces.
        with smtplib.SMTP_SSL("127.0.0.1", daemon.ports["submissions"], context=daemon.ssl_context()) as s:
            s.login("bob@example.org", "bobpass")
            s.sendmail("bob@example.org", ["someone@remote.example"], MSG.replace(b"x@example.net", b"bob@example.org"))
        daemon.cli_ok("account", "add", "carol", "carol@example.org", "--password", "carolpass1")
        wait_until(lambda: len(daemon.inbox("bob@example.org", "bobpass")) == 1, what="the bounce to bob")
        assert len(daemon.inbox("alice@example.org", "alicepass")) == 1
        assert _not_private(daemon.data_dir) == []
    finally:
        daemon.stop()
    assert _not_private(daemon.data_dir) == []


def test_quickstart_then_daemon_then_mail_leave_only_private_files(tmp_path: Path) -> None:
    """The issue's sequence: quickstart, the daemon on its configuration, an inbound
    delivery, a submission through the queue (bounced: the domain does not resolve), the
    CLI; then every path under the data directory is private."""
    import re

    from tests.daemon import RunningDaemon
    from tests.dnsserver import DNSServer
    from tests.ports import free_port

    directory = tmp_path / "q"
    with _umask(0o022):
        r = _cli("quickstart", "example.org", "admin@example.org", "--dir", str(directory), "--password", "adminpw12")
        assert r.returncode == 0, r.stderr
    config = directory / "mailsrv.toml"
    head, *blocks = config.read_text().split("[[listeners]]")
    ports: dict[str, int] = {}
    kept = []
    for block in blocks:
        name = re.search(r'name = "([^"]+)"', block)
        assert name is not None
        if "ipv6" in name.group(1):
            continue
        ports[name.group(1)] = free_port()
        block = re.sub(r'address = "[^"]*"', 'address = "127.0.0.1"', block)
        kept.append(re.sub(r"port = \d+", f"port = {ports[name.group(1)]}", block))
    dns = DNSServer()
    config.write_text(
        head
        + "".join("[[listeners]]" + b for b in kept)
        + f'\n[dns]\nnameservers = ["{dns.nameserver}"]\ntimeout = 2\n'
    )
    daemon = RunningDaemon(
        directory=directory,
        config_path=config,
        ports=ports,
        cert_path=directory / "tls" / "cert.pem",
        log_path=directory / "daemon.log",
    )
    with _umask(0o022):
        daemon.start()
    try:
        with smtplib.SMTP("127.0.0.1", ports["smtp"]) as s:
            s.sendmail("x@example.net", ["admin@example.org"], MSG)
        ctx = daemon.ssl_context()
        with smtplib.SMTP_SSL("127.0.0.1", ports["submissions"], context=ctx) as s:
            s.login("admin@example.org", "adminpw12")
            s.sendmail("admin@example.org", ["a@remote.example"], MSG.replace(b"x@example.net", b"admin@example.org"))
        daemon.cli_ok("account", "add", "carol", "carol@example.org", "--password", "carolpass1")
        wait_until(lambda: len(daemon.inbox("admin@example.org", "adminpw12")) == 2, what="delivery and bounce")
        assert _not_private(directory / "data") == []
    finally:
        daemon.stop()
        dns.close()
    assert _not_private(directory / "data") == []
