"""Retired messages in the real daemon: alice's account keeps finished messages for a few
seconds (`retired_keep` in data/dynamic.toml), bob's keeps none. Mail submitted with smtplib
goes by the loopback DNS to a recording sink; `mailsrv queue retired` (control socket) then
lists alice's messages with their outcome and never bob's; `mailsrv queue purge` forgets one
at once, and the daemon's tidy at start forgets those whose keep period has passed."""

from __future__ import annotations

import smtplib
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.daemon import RunningDaemon, free_port, wait_until
from tests.queue.daemon_setup import start_queue_daemon
from tests.queue.sink import RecordingSink

KEEP = 3  # seconds


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[RunningDaemon, RecordingSink]]:
    sink = RecordingSink(free_port())
    daemon = start_queue_daemon(tmp_path / "daemon", sink.port, alice_keeps=f"{KEEP}s")
    try:
        yield daemon, sink
    finally:
        daemon.kill()
        sink.close()


def _submit(daemon: RunningDaemon, account: str, password: str, subject: str) -> None:
    with smtplib.SMTP("127.0.0.1", daemon.ports["submission"], timeout=30) as s:
        s.starttls(context=daemon.ssl_context())
        s.login(f"{account}@example.org", password)
        message = f"From: {account}@example.org\r\nTo: far@remote.example\r\nSubject: {subject}\r\n\r\nhi\r\n"
        s.sendmail(f"{account}@example.org", ["far@remote.example"], message.encode())


def test_retired_list_follows_the_accounts_keep_period(setup: tuple[RunningDaemon, RecordingSink]) -> None:
    daemon, sink = setup
    _submit(daemon, "alice", "alicepass", "one")
    _submit(daemon, "bob", "bobpass", "two")
    _submit(daemon, "alice", "alicepass", "three")
    wait_until(lambda: sink.count() == 3 and daemon.cli_json("queue", "list") == [])

    retired = daemon.cli_json("queue", "retired")
    assert [m["account"] for m in retired] == ["alice", "alice"]  # bob's went when it finished
    first, second = retired
    assert [(r["address"], r["status"], r["attempts"]) for r in first["recipients"]] == [
        ("far@remote.example", "delivered", 1)
    ]
    assert first["created"] < first["retired_until"] <= time.time() + KEEP
    assert "kept until" in daemon.cli_ok("queue", "retired", "--account", "alice")
    assert daemon.cli_json("queue", "retired", "--account", "bob") == []

    # An admin forgets one at once; the other stays until its period has passed.
    assert daemon.cli_ok("queue", "purge", str(first["id"])).strip() == "1 retired message(s) forgotten"
    assert [m["id"] for m in daemon.cli_json("queue", "retired")] == [second["id"]]

    # After the period, the tidy run at start forgets it (and would hourly after that).
    time.sleep(max(0.0, second["retired_until"] - time.time()) + 0.1)
    daemon.stop()
    daemon.start()
    wait_until(lambda: daemon.cli_json("queue", "retired") == [])
    assert "1 retired messages forgotten" in daemon.log()
    assert daemon.cli_ok("queue", "purge").strip() == "0 retired message(s) forgotten"


def test_keep_period_set_from_the_cli(setup: tuple[RunningDaemon, RecordingSink]) -> None:
    daemon, _sink = setup
    assert daemon.cli_ok("queue", "keep", "bob").strip() == "finished messages of bob: not kept (removed when finished)"
    assert daemon.cli_ok("queue", "keep", "alice").strip() == f"finished messages of alice: kept {KEEP}s"
    r = daemon.cli("queue", "keep", "bob", "7 days")
    assert r.returncode == 1 and "keep must be a duration" in r.stderr
    r = daemon.cli("queue", "keep", "nobody", "1d")
    assert r.returncode == 1 and "no such account: nobody" in r.stderr
    assert daemon.cli_ok("queue", "keep", "bob", "1d12h").strip() == "finished messages of bob: kept 1d12h"
    assert 'retired_keep = "1d12h"' in (daemon.data_dir / "dynamic.toml").read_text()
    _submit(daemon, "bob", "bobpass", "kept now")
    wait_until(lambda: [m["account"] for m in daemon.cli_json("queue", "retired")] == ["bob"])
    [retired] = daemon.cli_json("queue", "retired")
    assert retired["retired_until"] - retired["created"] > 36 * 3600 - 60
