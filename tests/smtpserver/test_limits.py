"""Limits and ordering against the real daemon over raw sockets: pipelined replies in
command order, recipients per transaction, SIZE, line length, bad-command counting,
per-IP connection limit, the command timeout."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.daemon import RunningDaemon, start_daemon

LIMITS = """
[limits]
smtp_max_recipients = 3
smtp_max_line_length = 600
max_connections_per_ip = 4
max_message_size = 4096

[smtp]
command_timeout = 2
"""


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningDaemon]:
    running = start_daemon(Path(tmp_path_factory.mktemp("limits")) / "daemon", extra_static=LIMITS)
    try:
        yield running
    finally:
        running.kill()


def _talk(daemon: RunningDaemon, data: bytes) -> list[str]:
    """Final lines of each reply until the server closes."""
    with socket.create_connection(("127.0.0.1", daemon.ports["smtp"]), timeout=10) as sock:
        f = sock.makefile("rb")
        f.readline()
        sock.sendall(data)
        return [line.decode().rstrip() for line in f if line[3:4] == b" "]


def test_pipelined_replies_come_in_command_order(limited: RunningDaemon) -> None:
    replies = _talk(
        limited,
        b"EHLO p.example\r\nMAIL FROM:<x@example.net>\r\nRCPT TO:<nobody@example.org>\r\n"
        b"RCPT TO:<alice@example.org>\r\nRCPT TO:<x@elsewhere.example>\r\nRCPT TO:<bob@example.org>\r\n"
        b"DATA\r\nSubject: p\r\n\r\nhi\r\n.\r\nQUIT\r\n",
    )
    codes = [r[:9] for r in replies]
    expected = ["250 START", "250 2.1.0", "550 5.1.1", "250 2.1.5", "554 5.7.1", "250 2.1.5", "354 end d"]
    assert codes == [*expected, "250 2.0.0", "221 2.0.0"], replies


def test_recipient_and_size_limits(limited: RunningDaemon) -> None:
    rcpts = b"".join(b"RCPT TO:<alice+%d@example.org>\r\n" % i for i in range(4))
    replies = _talk(limited, b"EHLO x\r\nMAIL FROM:<x@example.net>\r\n" + rcpts + b"RSET\r\nQUIT\r\n")
    assert [r[:9] for r in replies[2:6]] == ["250 2.1.5"] * 3 + ["452 4.5.3"]
    replies = _talk(limited, b"EHLO x\r\nMAIL FROM:<x@example.net> SIZE=5000\r\nQUIT\r\n")
    assert replies[1].startswith("552 5.3.4")
    body = b"Subject: big\r\n\r\n" + b"x" * 5000 + b"\r\n.\r\nQUIT\r\n"
    replies = _talk(limited, b"EHLO x\r\nMAIL FROM:<x@example.net>\r\nRCPT TO:<alice@example.org>\r\nDATA\r\n" + body)
    assert replies[-2].startswith("552 5.3.4")


def test_long_lines_and_bad_commands_close_the_session(limited: RunningDaemon) -> None:
    replies = _talk(limited, b"EHLO " + b"x" * 700 + b"\r\nNOOP\r\nQUIT\r\n")
    assert replies == ["500 5.5.2 line too long", "250 2.0.0 OK", "221 2.0.0 bye"]
    replies = _talk(limited, b"BOGUS\r\n" * 12)
    assert replies[-1].startswith("421 4.7.0") and len(replies) == 11


def _four_sessions(daemon: RunningDaemon) -> list[socket.socket]:
    """Four greeted sessions. Connections closed a moment ago (start-up's port probes, other
    tests) count until the daemon's reactor sees them close: retry until they are gone."""
    deadline = time.monotonic() + 10
    while True:
        socks = [socket.create_connection(("127.0.0.1", daemon.ports["smtp"]), timeout=10) for _ in range(4)]
        greetings = [s.makefile("rb").readline() for s in socks]
        if all(g.startswith(b"220") for g in greetings):
            return socks
        for s in socks:
            s.close()
        assert time.monotonic() < deadline, greetings
        time.sleep(0.2)


def test_per_ip_connection_limit_and_timeout(limited: RunningDaemon) -> None:
    socks = _four_sessions(limited)
    try:
        extra = socket.create_connection(("127.0.0.1", limited.ports["smtp"]), timeout=10)
        assert extra.makefile("rb").readline().startswith(b"421 4.7.0")
        extra.close()
        # An idle session is closed after the command timeout (2 s here).
        start = time.monotonic()
        f = socks[0].makefile("rb")
        assert f.readline().startswith(b"421 4.4.2")
        assert f.readline() == b"" and time.monotonic() - start < 8
    finally:
        for s in socks:
            s.close()


def test_pipelined_flood_is_answered_in_full(limited: RunningDaemon) -> None:
    # More than the server buffers while a RCPT lookup waits: it stops reading, then resumes.
    rcpts = b"RCPT TO:<alice@example.org>\r\n" * 12000
    with socket.create_connection(("127.0.0.1", limited.ports["smtp"]), timeout=20) as sock:
        f = sock.makefile("rb")
        f.readline()
        sock.sendall(b"EHLO x\r\nMAIL FROM:<x@example.net>\r\n")
        writer = threading.Thread(target=sock.sendall, args=(rcpts + b"QUIT\r\n",))
        writer.start()
        replies = [line[:9] for line in f if line[3:4] == b" "]
        writer.join()
    assert replies[0] == b"250 START" and replies[1] == b"250 2.1.0"
    assert replies[2:5] == [b"250 2.1.5"] * 3 and replies[5:-1] == [b"452 4.5.3"] * 11997
    assert replies[-1] == b"221 2.0.0"
