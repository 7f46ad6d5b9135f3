"""tests/tools.py: a test that needs a Debian program skips naming the package when the
program is missing, and fails instead under MAILSRV_REQUIRE_TOOLS=1 (as .ci/run sets it).
Proved by running pytest in a subprocess on a small test file with a PATH we control."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.tools import REQUIRE_TOOLS_VARIABLE

REPO = Path(__file__).resolve().parents[1]
ABSENT = "mailsrv-test-absent-program"

INNER_TESTS = f"""
from tests.tools import needs_program, require_program


@needs_program("{ABSENT}", package="absent-pkg")
def test_marked():
    pass


def test_called():
    require_program("{ABSENT}", package="absent-pkg")


@needs_program("fakeprog", package="fake-pkg")
def test_present(tmp_path):
    assert require_program("fakeprog", package="fake-pkg").endswith("/bin/fakeprog")
"""


def run_inner(tmp_path: Path, require: bool) -> str:
    inner = tmp_path / "inner"
    (inner / "bin").mkdir(parents=True, exist_ok=True)
    fake = inner / "bin" / "fakeprog"
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    (inner / "test_inner.py").write_text(INNER_TESTS)
    # The project's conftest supplies the marker's setup hook, as in the real suite.
    (inner / "conftest.py").write_text("from tests.conftest import pytest_configure, pytest_runtest_setup  # noqa\n")
    env = {k: v for k, v in os.environ.items() if k != REQUIRE_TOOLS_VARIABLE and not k.startswith("PYTEST")}
    env.update(PATH=str(inner / "bin"), PYTHONPATH=str(REPO))
    if require:
        env[REQUIRE_TOOLS_VARIABLE] = "1"
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-rsf", "-p", "no:cacheprovider", "-p", "no:xdist", str(inner)],
        cwd=inner,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return run.stdout + run.stderr


def test_missing_program_skips_naming_the_debian_package(tmp_path: Path) -> None:
    out = run_inner(tmp_path, require=False)
    assert "1 passed, 2 skipped" in out, out
    assert f"{ABSENT} is not installed (Debian package absent-pkg)" in out, out


def test_require_tools_turns_the_skips_into_failures(tmp_path: Path) -> None:
    out = run_inner(tmp_path, require=True)
    # The marker fails the setup (an error), the call fails the test: both fail the run.
    assert "1 failed, 1 passed, 1 error" in out, out
    assert f"{REQUIRE_TOOLS_VARIABLE} is set" in out, out


# Programs from Debian packages that tests run, and how a test file names them in an argv.
PROGRAMS = ["swaks", "mbsync", "slapd", "slapadd", "ldapmodify", "smtp-sink", "smtp-source", "openssl", "bogofilter"]
PROGRAMS += ["chromium", "dovecot", "postfix", "mutt"]


@pytest.mark.parametrize("path", sorted((REPO / "tests").rglob("*.py")), ids=lambda p: str(p.relative_to(REPO)))
def test_every_test_that_runs_a_debian_program_declares_it(path: Path) -> None:
    """A new test that runs one of these programs without going through tests/tools.py would
    fail with FileNotFoundError on a bare machine: catch it here instead."""
    if path.name in ("tools.py", "test_tools.py"):
        return
    text = path.read_text()
    # An assertion on a command line shown to the user (e.g. the openssl commands of a generated key)
    # runs nothing.
    code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("assert "))
    for program in PROGRAMS:
        runs = re.search(rf'\[\s*"{re.escape(program)}"|"{re.escape(program)} ', code)
        if runs is None:
            continue
        declared = re.search(rf'(needs|require)_program\(\s*"{re.escape(program)}"', text)
        # slapadd and ldapmodify run inside tests/auth/slapd.py, whose start_slapd requires slapd.
        helper = program in ("slapadd",) and 'require_program("slapd"' in text
        assert declared or helper, f"{path.relative_to(REPO)} runs {program} without needs_program/require_program"


def test_ci_sets_the_variable_and_tox_passes_it_through() -> None:
    ci = (REPO / ".ci" / "run").read_text()
    assert f"export {REQUIRE_TOOLS_VARIABLE}=1" in ci
    passenv = re.search(r"^passenv\s*=\s*(.+)$", (REPO / "tox.ini").read_text(), re.MULTILINE)
    assert passenv is not None
    names = [n.strip() for n in passenv.group(1).split(",")]
    assert REQUIRE_TOOLS_VARIABLE in names or "MAILSRV_*" in names, names
