"""The daemon as a user runs it: start, serve, stop, survive SIGKILL, refuse bad configs."""

from __future__ import annotations

import imaplib
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from tests.daemon import REPO, RunningDaemon, connect_when_up, start_daemon, write_config
from tests.ports import free_port_offset

MESSAGE = b"From: alice@example.org\r\nTo: alice@example.org\r\nSubject: durable %d\r\n\r\n" + b"x" * 10_000 + b"\r\n"


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _free_localserve_offset() -> int:
    """A --port-offset whose seven localserve ports are all free right now (tests/ports.py)."""
    from mailsrv.localserve import PORTS

    return free_port_offset([port for _name, _protocol, port, _tls in PORTS])


def test_localserve_serves_and_stops_cleanly(tmp_path: Path) -> None:
    offset = _free_localserve_offset()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "twisted",
            "--log-format=text",
            "mailsrv",
            "--localserve",
            "--dir",
            str(tmp_path / "ls"),
            "--port-offset",
            str(offset),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=_env(),
        cwd=tmp_path,
    )
    try:
        imap = connect_when_up(proc, lambda: imaplib.IMAP4("127.0.0.1", 1143 + offset, timeout=20), 30)
        imap.login("user@localhost", "localserve")
        imap.logout()
        ctx = __import__("ssl").create_default_context(cafile=str(tmp_path / "ls" / "tls" / "cert.pem"))
        ctx.check_hostname = False
        imaps = imaplib.IMAP4_SSL("127.0.0.1", 1993 + offset, ssl_context=ctx, timeout=20)
        imaps.login("user@localhost", "localserve")
        imaps.logout()
        body = urllib.request.urlopen(f"http://127.0.0.1:{1080 + offset}/", timeout=5).read()
        assert b"app.js" in body  # "/" leads to the webmail page
        # The account page at the address the banner prints, logged in as the banner's account,
        # and Thunderbird's autoconfig for that account naming localserve's ports.
        page = f"http://localhost:{1080 + offset}/webaccount/"
        assert b"app.js" in urllib.request.urlopen(page, timeout=5).read()
        from tests.web.apiclient import ApiClient, socket_sender

        client = ApiClient(socket_sender("localhost", 1080 + offset), "/webaccount/")
        client.login("user@localhost", "localserve")
        assert client.call("Account")["addresses"] == ["user@localhost"]
        autoconfig = f"http://localhost:{1080 + offset}/mail/config-v1.1.xml?emailaddress=user%40localhost"
        assert f"<port>{1993 + offset}</port>".encode() in urllib.request.urlopen(autoconfig, timeout=5).read()
    finally:
        proc.send_signal(signal.SIGTERM)
        out = proc.communicate(timeout=20)[0].decode()
    assert proc.returncode == 0, out
    assert "user@localhost" in out and f"127.0.0.1:{1143 + offset}" in out
    assert f"account page: http://localhost:{1080 + offset}/webaccount/" in out
    assert "Traceback" not in out


def test_sigterm_exit_code_zero_and_stores_closed(daemon: RunningDaemon) -> None:
    imap = imaplib.IMAP4("127.0.0.1", daemon.ports["imap"])
    imap.starttls(daemon.ssl_context())
    imap.login("alice@example.org", "alicepass")
    imap.append("INBOX", None, None, MESSAGE % 1)
    log = daemon.stop()
    assert "stores closed" in log
    assert "Traceback" not in log


@pytest.mark.parametrize(
    ("static", "dynamic", "expected"),
    [
        ("hostname = \n", "", "invalid TOML"),
        ("bogus_key = 1\n", "", "bogus_key: unknown key"),
        (
            "",
            '[accounts.carol]\ndomain = "nowhere.example"\naddresses = ["carol@nowhere.example"]\n',
            "accounts.carol.domain: domain 'nowhere.example' is not configured",
        ),
        ('[limits]\nmax_message_size = "big"\n', "", "limits.max_message_size: expected an integer"),
    ],
)
def test_bad_config_one_clear_line(tmp_path: Path, static: str, dynamic: str, expected: str) -> None:
    d = write_config(tmp_path / "d", extra_static=static, extra_dynamic=dynamic)
    result = subprocess.run(
        [sys.executable, "-m", "twisted", "--log-format=text", "mailsrv", "--config", str(d.config_path)],
        capture_output=True,
        text=True,
        env=_env(),
        cwd=tmp_path,
        timeout=60,
    )
    assert result.returncode != 0
    assert expected in result.stderr, result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_missing_tls_file(tmp_path: Path) -> None:
    d = write_config(tmp_path / "d")
    d.cert_path.unlink()
    result = subprocess.run(
        [sys.executable, "-m", "twisted", "mailsrv", "--config", str(d.config_path)],
        capture_output=True,
        text=True,
        env=_env(),
        cwd=tmp_path,
        timeout=60,
    )
    assert result.returncode != 0
    assert "tls[0].cert_file: file" in result.stderr and "does not exist" in result.stderr
    assert "Traceback" not in result.stderr


def test_sigkill_while_appending_loses_no_acknowledged_message(tmp_path: Path) -> None:
    daemon = start_daemon(tmp_path / "d")
    acknowledged: list[int] = []
    stop = threading.Event()

    def writer(n: int) -> None:
        try:
            imap = imaplib.IMAP4("127.0.0.1", daemon.ports["imap"])
            imap.starttls(daemon.ssl_context())
            imap.login("alice@example.org", "alicepass")
            i = 0
            while not stop.is_set():
                number = n * 100_000 + i
                typ, _ = imap.append("INBOX", None, None, MESSAGE % number)
                if typ == "OK":
                    acknowledged.append(number)
                i += 1
        except (OSError, imaplib.IMAP4.abort, imaplib.IMAP4.error):
            return

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    time.sleep(2.0)
    daemon.kill()
    stop.set()
    for t in threads:
        t.join(10)
    assert len(acknowledged) > 10

    # Restart on the same data: start-up removes orphans; a client still logs in and sees them.
    daemon.start()
    try:
        imap = imaplib.IMAP4("127.0.0.1", daemon.ports["imap"], timeout=30)
        imap.starttls(daemon.ssl_context())
        imap.login("alice@example.org", "alicepass")
        _, data = imap.select("INBOX")
        count = int(data[0])
        imap.logout()
        daemon.stop()
    finally:
        daemon.kill()  # never leave a daemon behind when an assertion fails

    # The index agrees with the files: counts, sizes, and no orphan file.
    account = daemon.data_dir / "accounts" / "alice"
    db = sqlite3.connect(account / "index.db")
    rows = db.execute("SELECT id, size FROM message").fetchall()
    messages, size = db.execute("SELECT messages, size FROM mailbox WHERE name = 'INBOX'").fetchone()
    assert messages == len(rows) == count
    assert size == sum(s for _, s in rows)
    files = {int(p.name) for p in (account / "msg").rglob("*") if p.is_file()}
    assert files == {i for i, _ in rows}
    subjects = set()
    for message_id, file_size in rows:
        bucket = f"{message_id >> 10:04x}"
        raw = (account / "msg" / bucket / str(message_id)).read_bytes()
        assert len(raw) == file_size
        subjects.add(int(raw.split(b"durable ")[1].split()[0]))
    assert set(acknowledged) <= subjects
    assert len(subjects) == len(rows), "a message was stored twice"


def test_twistd_json_log_lines_with_connection_id(tmp_path: Path) -> None:
    """`twistd -n mailsrv --logformat json` (the systemd unit's command) writes one JSON object
    per line; session events carry their connection id as the `cid` field."""
    import json
    import smtplib

    d = write_config(tmp_path / "d")
    twistd = [sys.executable, "-c", "from twisted.scripts.twistd import run; run()"]
    proc = subprocess.Popen(
        [*twistd, "--nodaemon", "--pidfile=", "mailsrv", "--config", str(d.config_path), "--logformat", "json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=_env(),
        cwd=tmp_path,
    )
    try:
        smtp = connect_when_up(proc, lambda: smtplib.SMTP("127.0.0.1", d.ports["smtp"], timeout=10), 30)
        smtp.ehlo("client.example")
        smtp.quit()
    finally:
        proc.send_signal(signal.SIGTERM)
        out = proc.communicate(timeout=20)[0].decode()
    assert proc.returncode == 0, out
    records = [json.loads(line) for line in out.splitlines()]
    assert all({"time", "level", "namespace", "message"} <= set(r) for r in records)
    assert any(r.get("cid") and "connect" in r["message"] for r in records), out
    assert any(r["message"].startswith("listening on 127.0.0.1:") for r in records)


def test_sigint_stops_cleanly_too(tmp_path: Path) -> None:
    daemon = start_daemon(tmp_path / "d")
    assert daemon.process is not None
    daemon.process.send_signal(signal.SIGINT)
    assert daemon.process.wait(15) == 0, daemon.log()
    log = daemon.log()
    assert "stores closed" in log and "Traceback" not in log


def test_second_daemon_on_the_same_data_refused(daemon: RunningDaemon) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "twisted", "mailsrv", "--config", str(daemon.config_path)],
        capture_output=True,
        text=True,
        env=_env(),
        cwd=daemon.directory,
        timeout=60,
    )
    assert result.returncode == 1
    assert "another mailsrv daemon is running" in result.stderr and "Traceback" not in result.stderr
    # The first one is untouched and still stops cleanly.
    assert "Traceback" not in daemon.stop()


def test_port_in_use_one_line_and_exit_1(tmp_path: Path) -> None:
    import socket

    d = write_config(tmp_path / "d")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        d.config_path.write_text(d.config_path.read_text().replace(f"port = {d.ports['imap']}\n", f"port = {taken}\n"))
        result = subprocess.run(
            [sys.executable, "-m", "twisted", "mailsrv", "--config", str(d.config_path)],
            capture_output=True,
            text=True,
            env=_env(),
            cwd=tmp_path,
            timeout=60,
        )
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{taken} (imap)" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
