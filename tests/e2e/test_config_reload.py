"""The running daemon picks up hand edits of dynamic.toml, and survives bad ones.

What an admin sees: they add an account to DATA_DIR/dynamic.toml with an editor, and within
seconds the SMTP server accepts mail for it (NFC/NFD, case and +tag variants included); a
broken edit is logged and the daemon keeps serving the previous configuration.
"""

from __future__ import annotations

import smtplib
import time

from mailsrv.config import write_atomically
from tests.daemon import RunningDaemon


def _rcpt(daemon: RunningDaemon, address: str) -> int:
    with smtplib.SMTP("127.0.0.1", daemon.ports["smtp"], timeout=10) as smtp:
        smtp.ehlo("client.example")
        smtp.mail("someone@remote.example", options=["SMTPUTF8"])
        code, _ = smtp.rcpt(address)
        return code


def _wait_for(daemon: RunningDaemon, address: str, code: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while (got := _rcpt(daemon, address)) != code:
        assert time.monotonic() < deadline, f"RCPT {address}: {got}, expected {code}\n{daemon.log()[-3000:]}"
        time.sleep(0.3)


def test_hand_edits_are_picked_up_and_bad_edits_ignored(daemon: RunningDaemon) -> None:
    path = daemon.data_dir / "dynamic.toml"
    assert _rcpt(daemon, "carol@example.org") == 550
    original = path.read_text()
    # NFD in the file; the client uses NFC, upper case and a +tag.
    added = (
        original
        + '\n[accounts.carol]\ndomain = "example.org"\naddresses = ["carol@example.org", "e\u0301lise@example.org"]\n'
    )
    write_atomically(path, added.encode())
    _wait_for(daemon, "carol@example.org", 250)
    assert _rcpt(daemon, "CAROL+news@Example.ORG") == 250
    assert _rcpt(daemon, "\u00c9lise@example.org") == 250

    write_atomically(path, (added + "[accounts.broken\n").encode())
    deadline = time.monotonic() + 15
    while "not reloading dynamic config" not in daemon.log():
        assert time.monotonic() < deadline, daemon.log()[-3000:]
        time.sleep(0.3)
    line = (added + "[accounts.broken\n").count("\n")
    assert f"(at line {line}, column 17)" in daemon.log().split("not reloading dynamic config")[-1].splitlines()[0]
    assert _rcpt(daemon, "carol@example.org") == 250  # the previous config still serves
    assert daemon.process is not None and daemon.process.poll() is None

    write_atomically(path, original.encode())
    _wait_for(daemon, "carol@example.org", 550)
    daemon.stop()
