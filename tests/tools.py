"""Debian programs the tests drive (swaks, mbsync, slapd, Postfix's smtp-sink, openssl, ...).

A test that needs one says so with `needs_program(...)` (a marker) or `require_program(...)`
(a call, for helpers such as tests/auth/slapd.py). When the program is missing the test is
skipped with a reason naming the Debian package to install, so the README's test command
passes on a bare machine. With MAILSRV_REQUIRE_TOOLS=1 (set by .ci/run) a missing program
fails the test instead: CI installs every package and must never skip one of these tests.
"""

from __future__ import annotations

import os
import shutil

import pytest

REQUIRE_TOOLS_VARIABLE = "MAILSRV_REQUIRE_TOOLS"

# Postfix and slapd put their programs in /usr/sbin, which is not on an ordinary user's PATH.
_SBIN = ("/usr/local/sbin", "/usr/sbin", "/sbin")


def find_program(name: str) -> str | None:
    """The program's full path: PATH first, then the sbin directories."""
    path = os.environ.get("PATH", os.defpath)
    return shutil.which(name, path=os.pathsep.join([path, *_SBIN]))


def tools_required() -> bool:
    return os.environ.get(REQUIRE_TOOLS_VARIABLE, "") not in ("", "0")


def require_program(name: str, package: str) -> str:
    """The program's path; skips the running test (or fails it under MAILSRV_REQUIRE_TOOLS)
    when the program is not installed."""
    found = find_program(name)
    if found is not None:
        return found
    reason = f"{name} is not installed (Debian package {package})"
    if tools_required():
        pytest.fail(f"{reason}; {REQUIRE_TOOLS_VARIABLE} is set, so this test may not be skipped", pytrace=False)
    pytest.skip(reason)


def needs_program(name: str, package: str) -> pytest.MarkDecorator:
    """Marks a test (class, module via `pytestmark`) as needing `name`; checked at setup by
    tests/conftest.py with require_program."""
    return pytest.mark.needs_program(name, package=package)
