"""What an administrator meets first with the `mailsrv` command (issue 17 item 13): `--help` with
a description on every subcommand, sizes such as `1G`, a running localserve found without
--config, and root running the CLI without taking the daemon's files away from it."""

from __future__ import annotations

import argparse
import contextlib
import imaplib
import io
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailsrv.cli import build_parser, main
from mailsrv.config.sizes import format_size, parse_size
from tests.daemon import REPO, connect_when_up, wait_until, write_config
from tests.ports import free_port_offset


def test_sizes() -> None:
    assert parse_size("1G") == 1 << 30 and parse_size("500m") == 500 << 20 and parse_size("2048") == 2048
    assert parse_size("1.5G") == 3 << 29 and parse_size("10 KiB") == 10240 and parse_size("3MB") == 3 << 20
    assert parse_size("0") == 0
    for bad in ("", "lots", "-1G", "1.5", "1X", "1e9", "9" * 50):
        with pytest.raises(ValueError, match="invalid size"):
            parse_size(bad)
    assert format_size(1 << 30) == "1G" and format_size(1500) == "1500" and format_size(3 << 29) == "1536M"


def _subcommands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*path, name)
                yield from _subcommands(sub, (*path, name))


def test_every_subcommand_has_help_with_a_description() -> None:
    paths = list(_subcommands(build_parser()))
    assert len(paths) > 40 and ("account", "setquota") in paths and ("queue", "holdrules", "rm") in paths
    for path in paths:
        if path == ("sendmail",):
            continue  # its options are sendmail's: tests/e2e/test_sendmail_daemon.py
        out = io.StringIO()
        with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exit:
            main([*path, "--help"])
        assert exit.value.code == 0, path
        text = out.getvalue()
        # The usage line, then the description (a sentence of its own), then the options.
        description = text.split("\n\n")[1].strip()
        assert description and not description.startswith(("positional", "options")), (path, text)


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(env if env is not None else os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run(
        [sys.executable, "-m", "mailsrv.cli", *args], capture_output=True, text=True, env=env, timeout=120
    )


def test_setquota_takes_sizes(tmp_path: Path) -> None:
    d = write_config(tmp_path / "d")
    r = _cli("--config", str(d.config_path), "account", "setquota", "alice", "1G")
    assert r.returncode == 0 and r.stdout == "quota of alice: 1G (1073741824 octets)\n", r.stderr
    assert "alice@example.org\tquota 1G" in _cli("--config", str(d.config_path), "account", "list").stdout
    r = _cli("--config", str(d.config_path), "account", "setquota", "alice", "lots")
    assert r.returncode == 2 and "invalid size 'lots'" in r.stderr


def test_cli_finds_a_running_localserve_without_config(tmp_path: Path) -> None:
    from mailsrv.localserve import PORTS

    # A short HOME: the control socket's path must fit a Unix socket address (108 bytes).
    home = Path(tempfile.mkdtemp(prefix="ms-home-"))
    env = {k: v for k, v in os.environ.items() if k != "MAILSRV_CONFIG"}
    env["HOME"] = str(home)
    offset = free_port_offset([port for _name, _protocol, port, _tls in PORTS])
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mailsrv.cli", "localserve", "--port-offset", str(offset)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=tmp_path,
    )
    try:
        connect_when_up(proc, lambda: imaplib.IMAP4("127.0.0.1", 1143 + offset, timeout=20), 60).logout()
        control_socket = home / ".local/share/mailsrv-localserve/data/ctl.sock"
        wait_until(control_socket.exists, 30)
        r = _cli("account", "add", "dev2", "dev2@localhost", "--password", "dev2pass12", env=env)
        assert r.returncode == 0, r.stderr
        listed = _cli("account", "list", env=env)
        assert "user\tuser@localhost" in listed.stdout and "dev2\tdev2@localhost" in listed.stdout, listed.stderr
        # The running daemon made the change: the new account logs in at once (over ::1 too,
        # where the machine has IPv6: localserve listens there as well).
        from mailsrv.listen import ipv6_available

        for host in ["127.0.0.1", *(["::1"] if ipv6_available() else [])]:
            imap = imaplib.IMAP4(host, 1143 + offset, timeout=20)
            imap.login("dev2@localhost", "dev2pass12")
            imap.logout()
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def reachable_dir() -> Iterator[Path]:
    """A directory another user can reach (pytest's tmp_path is under root's 0700 directory)."""
    base = Path(tempfile.mkdtemp(prefix="mailsrv-owner-", dir="/tmp"))
    base.chmod(0o711)
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _chown_tree(root: Path, uid: int, gid: int) -> None:
    for path in [root, *root.rglob("*")]:
        os.chown(path, uid, gid, follow_symlinks=False)


def _not_owned_by(root: Path, uid: int, gid: int) -> list[str]:
    return [str(p) for p in [root, *root.rglob("*")] if (p.lstat().st_uid, p.lstat().st_gid) != (uid, gid)]


@pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root")
def test_root_runs_offline_commands_as_the_owner_of_the_data(reachable_dir: Path) -> None:
    """Issue 17 item 13: root running the CLI without a daemon becomes the user who owns the
    data directory before touching it (it used to refuse), so every file the command creates
    or rewrites belongs to that user and the daemon can still open it. Through the running
    daemon, the daemon writes its files itself."""
    import pwd

    nobody = pwd.getpwnam("nobody")
    d = write_config(reachable_dir / "d")
    _chown_tree(d.directory, nobody.pw_uid, nobody.pw_gid)
    before = {p for p in d.data_dir.rglob("*")}
    r = _cli("--config", str(d.config_path), "account", "add", "erin", "erin@example.org", "--password", "erin-pw-1")
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert "erin@example.org" in (d.data_dir / "dynamic.toml").read_text()
    created = {p for p in d.data_dir.rglob("*")} - before
    assert created, "the command created nothing: the test proves nothing"
    assert _not_owned_by(d.directory, nobody.pw_uid, nobody.pw_gid) == []
    assert all(p.stat().st_mode & 0o077 == 0 for p in created), [oct(p.stat().st_mode) for p in created]
    r = _cli("--config", str(d.config_path), "account", "list")
    assert r.returncode == 0 and "erin@example.org" in r.stdout, r.stderr
    # quickstart as root into directories another user owns: as that user too.
    etc, lib = reachable_dir / "etc", reachable_dir / "lib"
    for path in (etc, lib):
        path.mkdir()
        os.chown(path, nobody.pw_uid, nobody.pw_gid)
    r = _cli("quickstart", "example.net", "a@example.net", "--dir", str(etc), "--data-dir", str(lib))
    assert r.returncode == 0, r.stderr
    assert (lib / "dynamic.toml").exists() and (etc / "mailsrv.toml").exists()
    assert _not_owned_by(etc, nobody.pw_uid, nobody.pw_gid) == []
    assert _not_owned_by(lib, nobody.pw_uid, nobody.pw_gid) == []
    # Directories of two different users: which one? Refused.
    os.chown(lib, 0, 0)
    other = reachable_dir / "other"
    other.mkdir()
    os.chown(other, nobody.pw_uid, nobody.pw_gid)
    daemon_user = pwd.getpwnam("daemon")
    os.chown(lib, daemon_user.pw_uid, daemon_user.pw_gid)
    r = _cli("quickstart", "example.net", "a@example.net", "--dir", str(other), "--data-dir", str(lib))
    assert r.returncode == 1 and "belong to different users" in r.stderr, r.stderr
    d.start()
    try:
        r = d.cli("account", "add", "fred", "fred@example.org", "--password", "fred-pw-12")
        assert r.returncode == 0, r.stderr
    finally:
        d.stop()


def test_quickstart_data_dir_and_ipv6_listeners(tmp_path: Path) -> None:
    from mailsrv.config.load import load_static
    from mailsrv.listen import ipv6_available

    r = _cli(
        "quickstart",
        "example.net",
        "admin@example.net",
        "--dir",
        str(tmp_path / "etc"),
        "--data-dir",
        str(tmp_path / "lib"),
    )
    assert r.returncode == 0, r.stderr
    config = load_static(tmp_path / "etc" / "mailsrv.toml")
    assert config.data_dir == tmp_path / "lib" and (tmp_path / "lib" / "dynamic.toml").exists()
    assert not (tmp_path / "etc" / "data").exists()
    ipv4 = {(lst.name, lst.port) for lst in config.listeners if lst.address == "0.0.0.0"}
    ipv6 = {(lst.name.removesuffix("-ipv6"), lst.port) for lst in config.listeners if lst.address == "::"}
    assert ("smtp", 25) in ipv4 and ("https", 443) in ipv4 and ("http", 80) in ipv4 and len(ipv4) == 7
    assert ipv6 == (ipv4 if ipv6_available("::") else set())


def test_production_paths_agree() -> None:
    """README, the systemd unit, the example config and docs/operations.md name the same
    places: config in /etc/mailsrv, data in /var/lib/mailsrv, the `mailsrv` user."""
    readme = (REPO / "README.md").read_text()
    unit = (REPO / "etc" / "mailsrv.service").read_text()
    example = (REPO / "etc" / "mailsrv.toml").read_text()
    operations = (REPO / "docs" / "operations.md").read_text()
    assert "--dir /etc/mailsrv --data-dir /var/lib/mailsrv" in readme
    assert "--config /etc/mailsrv/mailsrv.toml" in readme and "--config /etc/mailsrv/mailsrv.toml" in unit
    assert "User=mailsrv" in unit and "StateDirectory=mailsrv" in unit
    assert 'data_dir = "/var/lib/mailsrv"' in example
    assert "useradd --system" in operations and "--data-dir /var/lib/mailsrv" in operations
    assert "sudo -u mailsrv mailsrv quickstart" in operations
