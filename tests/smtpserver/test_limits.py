"""Flow control against the real daemon over a raw socket: a pipelined flood larger than the
session buffers is answered in full (the transport pauses reading while a command waits).
Ordering, limits, parameters and timeouts are tested without a daemon in test_session.py."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.daemon import RunningDaemon, start_daemon

LIMITS = """
[limits]
smtp_max_recipients = 3
"""


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningDaemon]:
    running = start_daemon(Path(tmp_path_factory.mktemp("limits")) / "daemon", extra_static=LIMITS)
    try:
        yield running
    finally:
        running.kill()


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
