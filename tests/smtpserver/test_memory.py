"""Memory per message (issue 17 item 7) against the real daemon: SMTP message data is
spooled to disk while it arrives, and deliveries hold at most `message_memory` octets in
memory together; a message beyond that gets 452 4.3.1. The daemon's peak RSS stays bounded
with several large messages in parallel (it grew by 3-4x their total before)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.daemon import RunningDaemon, start_daemon

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


def _peak_rss(daemon: RunningDaemon) -> int:
    """VmHWM of the daemon process, in octets."""
    assert daemon.process is not None
    for line in Path(f"/proc/{daemon.process.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


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
    before = _peak_rss(budgeted)
    replies: list[str] = []
    threads = [threading.Thread(target=_send, args=(budgeted, body, replies)) for _ in range(PARALLEL)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert len(replies) == PARALLEL
    assert all(r.startswith(("250 2.0.0", "452 4.3.1")) for r in replies), replies
    assert any(r.startswith("250") for r in replies), replies
    growth = _peak_rss(budgeted) - before
    # Without the budget the six deliveries ran together: +602 MiB measured. Now one 20 MB
    # message fits the 24 MB budget at a time; its delivery (parsing, authentication
    # checks, store) still costs several times its size: +155 MiB measured.
    assert growth < 250 * 1024 * 1024, f"peak RSS grew by {growth / 2**20:.0f} MiB"


def test_a_message_larger_than_the_budget_is_refused_temporarily(tmp_path: Path) -> None:
    daemon = start_daemon(tmp_path / "d", extra_static="[limits]\nmessage_memory = 1048576\n")
    try:
        replies: list[str] = []
        _send(daemon, b"Subject: s\r\n\r\n" + b"y" * 998 + b"\r\n" * 1 + (b"z" * 998 + b"\r\n") * 1100, replies)
        assert replies[0].startswith("452 4.3.1"), replies
        replies.clear()
        _send(daemon, b"Subject: small\r\n\r\nhello\r\n", replies)
        assert replies[0].startswith("250"), replies
        assert list((daemon.data_dir / "spool").iterdir()) == []  # nothing left behind
    finally:
        daemon.stop()
