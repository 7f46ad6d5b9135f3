"""Memory per message (issue 17 item 7) against the real daemon: SMTP message data is
spooled to disk while it arrives, and deliveries hold at most `message_memory` octets in
memory together; a large message streams from its spool file into the store. The daemon's
anonymous memory stays bounded with several large messages in parallel (its peak RSS grew
by 3-4x their total before)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.daemon import RunningDaemon, start_daemon
from tests.memwatch import anonymous_growth

SIZE = 20 * 1024 * 1024
PARALLEL = 6
BUDGET = 24 * 1024 * 1024
LIMITS = f"""
[limits]
message_memory = {BUDGET}
"""


@pytest.fixture(scope="module")
def budgeted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningDaemon]:
    running = start_daemon(Path(tmp_path_factory.mktemp("memory")) / "daemon", extra_static=LIMITS)
    try:
        yield running
    finally:
        running.kill()


def _send(daemon: RunningDaemon, body: bytes, replies: list[str]) -> None:
    with socket.create_connection(("127.0.0.1", daemon.ports["smtp"]), timeout=120) as sock:
        f = sock.makefile("rb")
        f.readline()
        sock.sendall(b"EHLO big.example\r\nMAIL FROM:<x@example.net>\r\nRCPT TO:<alice@example.org>\r\nDATA\r\n")
        while not f.readline().startswith(b"354"):
            pass
        sock.sendall(body + b".\r\nQUIT\r\n")
        replies.append(f.readline().decode().strip())


def test_parallel_large_messages_keep_memory_bounded(budgeted: RunningDaemon) -> None:
    line = b"x" * 998 + b"\r\n"
    body = b"Subject: big\r\n\r\n" + line * (SIZE // len(line))
    replies: list[str] = []
    assert budgeted.process is not None
    with anonymous_growth(budgeted.process.pid) as growth:
        threads = [threading.Thread(target=_send, args=(budgeted, body, replies)) for _ in range(PARALLEL)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)
    assert replies == ["250 2.0.0 message accepted for delivery"] * PARALLEL, replies
    print(f"anonymous memory growth: {growth[0] / 2**20:.0f} MiB")
    # Before the spool, the six deliveries ran together: peak RSS +602 MiB measured. With the
    # budget but deliveries reading the message into memory, one at a time fit the 24 MiB
    # budget and cost +155 MiB. Now each streams from its spool file into the store (1 MiB of
    # the budget each, so all six run at once).
    assert growth[0] < 60 * 1024 * 1024, f"anonymous memory grew by {growth[0] / 2**20:.0f} MiB"
