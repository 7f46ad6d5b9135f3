"""`pip install .` and `pip install -e .` (strict editable mode) both install the twistd
dropin: in a fresh virtual environment, `twistd --help` lists `mailsrv`.

These build real venvs and install the dependencies from the package index (or pip's cache),
so they take a while; they are what a new user does."""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

import pytest

from tests.daemon import REPO, connect_when_up


def _copy_checkout(target: Path) -> Path:
    """The tracked files of the checkout, so parallel builds never share build/ dirs."""
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout.split(b"\0")
    for name in filter(None, files):
        source = REPO / name.decode()
        if not source.is_file():
            continue  # deleted in the work tree
        dest = target / name.decode()
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(source.read_bytes())
    return target


@pytest.mark.slow
@pytest.mark.parametrize(
    "install_args",
    [["."], ["-e", ".", "--config-settings", "editable_mode=strict"]],
    ids=["plain", "editable-strict"],
)
def test_install_provides_twistd_dropin(tmp_path: Path, install_args: list[str]) -> None:
    checkout = _copy_checkout(tmp_path / "src")
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *install_args],
        cwd=checkout,
        check=True,
        timeout=900,
    )
    # Run from elsewhere so the checkout is not on sys.path: only the install counts.
    out = subprocess.run(
        [str(env_dir / "bin" / "twistd"), "--help"], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert "mailsrv" in out.stdout
    cli = subprocess.run(
        [str(env_dir / "bin" / "mailsrv"), "--help"], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert "localserve" in cli.stdout, cli.stderr
    # Twisted's own plugins must still be there: we never ship twisted/plugins/__init__.py.
    assert "web" in out.stdout
    help_text = subprocess.run(
        [str(env_dir / "bin" / "twistd"), "mailsrv", "--help"], cwd=tmp_path, capture_output=True, text=True
    ).stdout
    assert "--localserve" in help_text
    if install_args == ["."]:
        _readme_localserve_answers(env_dir / "bin" / "python", tmp_path)


def _readme_localserve_answers(python: Path, tmp_path: Path) -> None:
    """The README's first command after the install: `python3 -m mailsrv.cli localserve` starts a
    server that answers, from outside the checkout, and stops with exit code 0 on SIGTERM."""
    import imaplib
    import signal

    from tests.e2e.test_daemon import _free_localserve_offset

    offset = _free_localserve_offset()
    args = ["-m", "mailsrv.cli", "localserve", "--dir", str(tmp_path / "ls"), "--port-offset", str(offset)]
    proc = subprocess.Popen([str(python), *args], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        imap = connect_when_up(proc, lambda: imaplib.IMAP4("127.0.0.1", 1143 + offset, timeout=10), 60)
        imap.login("user@localhost", "localserve")
        imap.logout()
    finally:
        proc.send_signal(signal.SIGTERM)
        out = proc.communicate(timeout=30)[0].decode()
    assert proc.returncode == 0, out
    assert "password 'localserve'" in out and "Traceback" not in out


def test_no_init_in_twisted_plugins() -> None:
    assert not (REPO / "twisted" / "__init__.py").exists()
    assert not (REPO / "twisted" / "plugins" / "__init__.py").exists()
    assert sys.version_info >= (3, 11)


def test_every_package_of_mailsrv_is_in_the_wheel() -> None:
    """pyproject.toml lists the packages by hand (DESIGN.md "twistd dropin"): a new subpackage left out
    of the list is missing from every install, while tests run from the checkout still pass."""
    import tomllib

    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    present = {".".join(init.parent.relative_to(REPO).parts) for init in (REPO / "mailsrv").rglob("__init__.py")}
    assert present - listed == set(), f"add to pyproject.toml's packages: {sorted(present - listed)}"
