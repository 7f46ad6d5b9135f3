"""The outgoing queue in the real daemon: mail submitted with smtplib (or `mailsrv sendmail`)
for remote.example goes, by the MX that tests/dnsserver.py serves through the daemon's
`[dns]` section, to Postfix's smtp-sink on a loopback port (`[smtp] remote_port`); the
`mailsrv queue ...` CLI lists, holds, releases, retries and drops over the control socket."""

from __future__ import annotations

import os
import smtplib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.daemon import REPO, RunningDaemon, free_port, wait_until, write_config
from tests.queue.daemon_setup import start_queue_daemon
from tests.tools import needs_program, require_program

pytestmark = needs_program("smtp-sink", package="postfix")

MESSAGE = "From: alice@example.org\r\nTo: far@remote.example\r\nSubject: {subject}\r\n\r\nhello\r\n"


class Sink:
    """smtp-sink on 127.0.0.1:port; accepts every message and discards it."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        sink = require_program("smtp-sink", package="postfix")
        argv = [sink, *(["-u", "nobody"] if os.geteuid() == 0 else []), f"127.0.0.1:{self.port}", "16"]
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[RunningDaemon, Sink]]:
    sink = Sink(free_port())
    daemon = start_queue_daemon(tmp_path / "daemon", sink.port)
    try:
        yield daemon, sink
    finally:
        sink.stop()
        daemon.kill()


def _submit(daemon: RunningDaemon, subject: str) -> None:
    with smtplib.SMTP("127.0.0.1", daemon.ports["submission"], timeout=30) as s:
        s.starttls(context=daemon.ssl_context())
        s.login("alice@example.org", "alicepass")
        s.sendmail("alice@example.org", ["far@remote.example"], MESSAGE.format(subject=subject).encode())


def _delivered(daemon: RunningDaemon) -> list[str]:
    return [
        r["address"] for m in daemon.cli_json("queue", "retired") for r in m["recipients"] if r["status"] == "delivered"
    ]


def test_submitted_remote_mail_is_delivered_to_the_mx(setup: tuple[RunningDaemon, Sink]) -> None:
    daemon, sink = setup
    sink.start()
    _submit(daemon, "out")
    wait_until(lambda: _delivered(daemon) == ["far@remote.example"])
    assert daemon.cli_json("queue", "list") == []
    [retired] = daemon.cli_json("queue", "retired", "--sender", "@example.org")
    assert retired["from"] == "alice@example.org" and retired["account"] == "alice"
    assert "far@remote.example\tdelivered" in daemon.cli_ok("queue", "retired")


def test_hold_rule_holds_until_release(setup: tuple[RunningDaemon, Sink]) -> None:
    daemon, sink = setup
    sink.start()
    assert "hold rule 1 added" in daemon.cli_ok("queue", "holdrules", "add", "--recipient-domain", "remote.example")
    assert daemon.cli_json("queue", "holdrules", "list")[0]["recipient_domain"] == "remote.example"
    _submit(daemon, "held")
    [held] = daemon.cli_json("queue", "list", "--held")
    assert held["recipients"][0]["attempts"] == 0
    assert "HELD" in daemon.cli_ok("queue", "list")
    time.sleep(1)  # the runner was woken by the enqueue: it must have left the message alone
    assert daemon.cli_json("queue", "list")[0]["recipients"][0]["attempts"] == 0
    assert daemon.cli_ok("queue", "release", str(held["id"])).strip() == "1 message(s) released"
    wait_until(lambda: _delivered(daemon) == ["far@remote.example"])
    daemon.cli_ok("queue", "holdrules", "rm", "1")
    assert daemon.cli_json("queue", "holdrules", "list") == []


def test_list_while_the_mx_is_down_then_drop_and_retry(setup: tuple[RunningDaemon, Sink]) -> None:
    daemon, sink = setup
    _submit(daemon, "first")
    _submit(daemon, "second")
    # Nothing listens on the sink's port: each first attempt fails temporarily and waits.
    wait_until(lambda: [m["recipients"][0]["attempts"] for m in daemon.cli_json("queue", "list")] == [1, 1])
    first, second = daemon.cli_json("queue", "list")
    assert first["recipients"][0]["status"] == "queued" and first["recipients"][0]["last_error"]
    assert "far@remote.example\tqueued\tattempts 1" in daemon.cli_ok("queue", "list")
    r = daemon.cli("queue", "drop")
    assert r.returncode == 1 and "needs a filter" in r.stderr
    assert daemon.cli_ok("queue", "drop", str(first["id"])).strip() == "1 message(s) dropped"
    assert [m["id"] for m in daemon.cli_json("queue", "list")] == [second["id"]]
    assert not (daemon.data_dir / "queue" / "msg" / str(first["id"])).exists()
    sink.start()
    assert daemon.cli_ok("queue", "retry").strip() == "1 recipient(s) due now"
    wait_until(lambda: _delivered(daemon) == ["far@remote.example"])
    assert daemon.cli_json("queue", "list") == []
    assert [m["id"] for m in daemon.cli_json("queue", "retired")] == [second["id"]]
    # The retired message keeps its attempt history: the refused connection, then the delivery.
    history = daemon.cli_json("queue", "history", str(second["id"]))
    assert history["message"]["id"] == second["id"]
    failed, delivered = history["attempts"]
    assert failed["recipient"] == "far@remote.example" and failed["code"] // 100 == 4, failed
    assert delivered["code"] == 250 and delivered["host"] == "mx.remote.example [127.0.0.1]", delivered
    text = daemon.cli_ok("queue", "history", str(second["id"]))
    assert "far@remote.example\tdelivered" in text and "\tmx.remote.example [127.0.0.1]\t250" in text, text
    r = daemon.cli("queue", "history", str(first["id"]))  # dropped: gone
    assert r.returncode == 1 and f"no queued or retired message {first['id']}" in r.stderr


def test_sendmail_subcommand_submits_through_the_queue(setup: tuple[RunningDaemon, Sink], tmp_path: Path) -> None:
    daemon, sink = setup
    sink.start()
    (tmp_path / "pass").write_text("alicepass\n")
    config = tmp_path / "sendmail.toml"
    config.write_text(
        f'server = "127.0.0.1:{daemon.ports["submissions"]}"\ntls = "implicit"\n'
        f'ca_file = "{daemon.cert_path}"\nusername = "alice@example.org"\n'
        f'password_file = "{tmp_path / "pass"}"\nfrom = "alice@example.org"\n'
    )
    env = dict(os.environ, MAILSRV_SENDMAIL_CONFIG=str(config), PYTHONPATH=str(REPO))
    r = subprocess.run(
        [sys.executable, "-m", "mailsrv.cli", "--config", str(daemon.config_path), "sendmail", "-t", "-i"],
        input=MESSAGE.format(subject="via sendmail"),
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    wait_until(lambda: _delivered(daemon) == ["far@remote.example"])


def test_sendmail_subcommand_passes_usage_exit_code(tmp_path: Path) -> None:
    env = dict(os.environ, MAILSRV_SENDMAIL_CONFIG=str(tmp_path / "missing.toml"), PYTHONPATH=str(REPO))
    r = subprocess.run(
        [sys.executable, "-m", "mailsrv.cli", "sendmail"],
        input="Subject: x\r\n\r\nx\r\n",
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert r.returncode in (64, 78), (r.returncode, r.stderr)


def test_queue_commands_work_offline_on_the_files(tmp_path: Path) -> None:
    daemon = write_config(tmp_path / "offline")  # never started: the CLI opens the queue itself
    assert daemon.cli_json("queue", "list") == [] and daemon.cli_json("queue", "retired") == []
    assert "hold rule 1 added" in daemon.cli_ok("queue", "holdrules", "add", "--sender", "Alice@Example.org")
    assert daemon.cli_ok("queue", "holdrules", "list").strip() == "1\tsender=alice@example.org"
    r = daemon.cli("queue", "holdrules", "rm", "7")
    assert r.returncode == 1 and "no such hold rule: 7" in r.stderr
    assert daemon.cli_ok("queue", "release", "--held").strip() == "0 message(s) released"


def test_sendmail_arguments_are_not_parsed_by_the_cli() -> None:
    from mailsrv.cli_queue import split_sendmail

    assert split_sendmail(["sendmail", "-t", "-f", "a@b.example"]) == (["sendmail"], ["-t", "-f", "a@b.example"])
    assert split_sendmail(["--config", "x.toml", "sendmail", "-oi", "r@x.example"]) == (
        ["--config", "x.toml", "sendmail"],
        ["-oi", "r@x.example"],
    )
    assert split_sendmail(["-cx.toml", "sendmail"]) == (["-cx.toml", "sendmail"], [])
    assert split_sendmail(["queue", "list"]) is None
