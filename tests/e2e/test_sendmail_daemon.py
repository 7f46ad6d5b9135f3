"""`mailsrv sendmail` as /usr/sbin/sendmail is called by cron, scripts and PHP: real processes of
the CLI against the real daemon (-t, -f, -F, -i/-oi, ignored -o options, missing From/Date/
Message-ID added), --help, and a clear refusal of a configuration with both a client
certificate and a username."""

from __future__ import annotations

import email
import email.policy
import os
import subprocess
import sys
from pathlib import Path

from tests.daemon import REPO, RunningDaemon


def sendmail(config: Path, *args: str, message: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    env = dict(os.environ, MAILSRV_SENDMAIL_CONFIG=str(config))
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run(
        [sys.executable, "-m", "mailsrv.cli", "sendmail", *args],
        input=message,
        capture_output=True,
        env=env,
        timeout=60,
    )


def write_config(daemon: RunningDaemon, tmp_path: Path, extra: str = "") -> Path:
    (tmp_path / "pass").write_text("alicepass\n")
    config = tmp_path / "sendmail.toml"
    config.write_text(
        f'server = "127.0.0.1:{daemon.ports["submissions"]}"\ntls = "implicit"\nca_file = "{daemon.cert_path}"\n'
        f'username = "alice@example.org"\npassword_file = "{tmp_path / "pass"}"\nfrom = "alice@example.org"\n'
        + extra
    )
    return config


def parsed(raw: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(raw.replace(b"\r\n", b"\n"), policy=email.policy.default)  # type: ignore[return-value]


def test_drop_in_flags_and_added_headers(daemon: RunningDaemon, tmp_path: Path) -> None:
    config = write_config(daemon, tmp_path)
    # cron's way: -t with only To: and Subject:, -oi, -odi/-oem ignored, -F the sender's name.
    cron = b"To: bob@example.org\nSubject: cron output\n\nfirst\n.\nafter the dot\n"
    run = sendmail(config, "-FCron Daemon", "-odi", "-oem", "-t", "-oi", "-f", "alice@example.org", message=cron)
    assert run.returncode == 0, run.stderr
    # Without -i a lone "." ends the message; a message without any header gets a blank line.
    run = sendmail(config, "bob@example.org", message=b"just a body\n.\nnot sent\n")
    assert run.returncode == 0, run.stderr
    # The message's own From:, Date: and Message-ID: are kept.
    own = (
        b"From: Alice <alice@example.org>\nDate: Mon, 1 Jan 2024 00:00:00 +0000\nMessage-ID: <own@example.org>\n"
        b"Subject: own headers\n\nbody\n"
    )
    run = sendmail(config, "-i", "-F", "Ignored Name", "bob@example.org", message=own)
    assert run.returncode == 0, run.stderr

    first, second, third = (parsed(m) for m in daemon.inbox("bob@example.org", "bobpass"))
    assert first["From"] == "Cron Daemon <alice@example.org>"
    assert first["Date"] is not None and first["Message-ID"].endswith("@example.org>")
    assert first["Subject"] == "cron output"
    assert first.get_content() == "first\n.\nafter the dot\n"
    assert second["From"] == "alice@example.org" and second["Date"] is not None and second["Message-ID"]
    assert second.get_content() == "just a body\n"
    assert third["From"] == "Alice <alice@example.org>" and third["Message-ID"] == "<own@example.org>"
    assert third["Date"] == "Mon, 01 Jan 2024 00:00:00 +0000"
    assert len(third.get_all("From")) == 1 and len(third.get_all("Date")) == 1


def test_help_and_usage_errors(tmp_path: Path) -> None:
    config = tmp_path / "absent.toml"
    run = sendmail(config, "--help")
    assert run.returncode == 0 and b"usage: mailsrv sendmail" in run.stdout and b"-t " in run.stdout
    run = sendmail(config, "-X", "bob@example.org", message=b"Subject: x\n\ny\n")
    assert run.returncode == 64 and b"unsupported option -X" in run.stderr
    run = sendmail(config, "-F")
    assert run.returncode == 64 and b"-F needs a name" in run.stderr


def test_client_certificate_and_username_conflict(tmp_path: Path) -> None:
    (tmp_path / "pass").write_text("x\n")
    config = tmp_path / "sendmail.toml"
    config.write_text(
        'server = "127.0.0.1:465"\ntls = "implicit"\nusername = "alice@example.org"\n'
        f'password_file = "{tmp_path / "pass"}"\nclient_cert = "{tmp_path / "device.pem"}"\n'
    )
    run = sendmail(config, "bob@example.org", message=b"Subject: x\n\ny\n")
    assert run.returncode == 78, run.stderr
    assert b"client_cert and username/password_file exclude each other" in run.stderr
    assert b"Traceback" not in run.stderr
