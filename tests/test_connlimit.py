"""Connection caps and deadlines (issue 17 item 3): per-address caps on every listener (an
IPv6 /64 counts as one address), a daemon-wide cap below the open-file limit, and request
deadlines that trickled bytes cannot move (HTTP, SMTP, IMAP). Daemon tests use short
configured limits; other clients come from 127.0.0.2."""

from __future__ import annotations

import select
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailsrv.connlimit import MIN_DESCRIPTOR_RESERVE, address_key, global_cap
from tests.daemon import RunningDaemon, start_daemon

CAPS = """
[limits]
max_connections_per_ip = 5
max_connections = 40
"""
DEADLINES = """
[limits]
http_request_timeout = 2

[smtp]
command_timeout = 3

[imap]
unauthenticated_timeout = 3
"""


def test_address_key_groups_ipv6_by_64() -> None:
    assert address_key("2001:db8:1:2:aaaa::1") == address_key("2001:db8:1:2:ffff::9") == "2001:db8:1:2::/64"
    assert address_key("2001:db8:1:3::1") != address_key("2001:db8:1:2::1")
    assert address_key("::ffff:192.0.2.7") == "192.0.2.7"
    assert address_key("192.0.2.7") == "192.0.2.7"


def test_global_cap_leaves_descriptors_for_the_store() -> None:
    assert global_cap(1024, 0) == 1024 - MIN_DESCRIPTOR_RESERVE
    assert global_cap(65536, 0) == 65536 - 65536 // 4
    assert global_cap(1024, 100) == 100
    assert global_cap(1024, 5000) == 1024 - MIN_DESCRIPTOR_RESERVE  # never above the limit


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningDaemon]:
    running = start_daemon(Path(tmp_path_factory.mktemp("connlimit")) / "daemon", extra_static=CAPS)
    try:
        yield running
    finally:
        running.kill()


@pytest.fixture(scope="module")
def deadlines(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningDaemon]:
    running = start_daemon(Path(tmp_path_factory.mktemp("deadlines")) / "daemon", extra_static=DEADLINES)
    try:
        yield running
    finally:
        running.kill()


def _connect(daemon: RunningDaemon, listener: str, source: str = "127.0.0.1") -> socket.socket:
    return socket.create_connection(("127.0.0.1", daemon.ports[listener]), timeout=10, source_address=(source, 0))


def _closed(socks: list[socket.socket], wait: float) -> list[socket.socket]:
    """The sockets the server closed within `wait` seconds (whatever it wrote first)."""
    pending, closed = list(socks), []
    deadline = time.monotonic() + wait
    while pending and time.monotonic() < deadline:
        readable, _, _ = select.select(pending, [], [], 0.1)
        for s in readable:
            try:
                data = s.recv(4096)
            except OSError:
                data = b""
            if not data:
                closed.append(s)
                pending.remove(s)
    return closed


def _http_get(daemon: RunningDaemon, source: str) -> bytes:
    with _connect(daemon, "http", source) as s:
        s.sendall(b"GET /no-such-page HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := s.recv(4096):
            data += chunk
        return data


def _wait_for_count_to_drop(daemon: RunningDaemon) -> None:
    # Connections of an earlier test count until the daemon's reactor has seen them close.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if _http_get(daemon, "127.0.0.1").startswith(b"HTTP/1.1 404"):
            return
        time.sleep(0.2)


def test_idle_http_flood_from_one_address_does_not_drop_others(limited: RunningDaemon) -> None:
    _wait_for_count_to_drop(limited)
    # Another client's IMAP session, open before the flood.
    imap = ssl.create_default_context(cafile=str(limited.cert_path))
    imap.check_hostname = False
    other = imap.wrap_socket(_connect(limited, "imaps", "127.0.0.2"))
    f = other.makefile("rb")
    assert f.readline().startswith(b"* OK")
    flood = [_connect(limited, "http") for _ in range(30)]
    try:
        refused = _closed(flood, 1.0)
        assert len(refused) == 25, len(refused)
        # The other address still gets served, on every protocol, and keeps its session.
        assert _http_get(limited, "127.0.0.2").startswith(b"HTTP/1.1 404")  # served: the site has no such page
        with _connect(limited, "smtp", "127.0.0.2") as smtp:
            assert smtp.recv(100).startswith(b"220")
        other.sendall(b"a NOOP\r\n")
        assert f.readline().startswith(b"a OK")
        # Refused plaintext HTTP connections were told why.
        probe = _connect(limited, "http")
        assert probe.recv(100).startswith(b"HTTP/1.1 503")
        probe.close()
    finally:
        for s in flood:
            s.close()
        other.close()


def test_daemon_wide_cap(limited: RunningDaemon) -> None:
    _wait_for_count_to_drop(limited)
    held = []
    try:
        # 4 per address (below the per-address cap) from 12 addresses: 48 > 40.
        for i in range(12):
            held += [_connect(limited, "imap", f"127.0.1.{i + 1}") for _ in range(4)]
        refused = _closed(held, 1.0)
        assert 8 <= len(refused) <= 18, len(refused)  # 40 minus the test's own others
    finally:
        for s in held:
            s.close()
    _wait_for_count_to_drop(limited)


def test_trickled_http_request_is_closed_at_the_deadline(deadlines: RunningDaemon) -> None:
    s = _connect(deadlines, "http", "127.0.0.3")
    started = time.monotonic()
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
    s.settimeout(0.2)
    closed_at = None
    while time.monotonic() - started < 8:
        try:
            s.sendall(b"X")  # one byte of a header every 0.2 s
            if s.recv(4096) == b"":
                closed_at = time.monotonic()
                break
        except TimeoutError:
            continue
        except OSError:
            closed_at = time.monotonic()
            break
    s.close()
    assert closed_at is not None and closed_at - started < 4, "the trickle kept the connection"


def _trickle_until_closed(sock: socket.socket, seconds: float, data: bytes = b"x") -> float | None:
    """Sends `data` every 0.2 s; the seconds until the server closed, or None."""
    started = time.monotonic()
    sock.settimeout(0.2)
    while time.monotonic() - started < seconds:
        try:
            sock.sendall(data)
        except OSError:
            return time.monotonic() - started
        try:
            while True:
                chunk = sock.recv(4096)
                if not chunk:
                    return time.monotonic() - started
        except TimeoutError:
            pass
        except OSError:
            return time.monotonic() - started
    return None


def test_trickled_smtp_data_and_command_are_closed_at_the_deadline(deadlines: RunningDaemon) -> None:
    s = _connect(deadlines, "smtp", "127.0.0.4")
    f = s.makefile("rb")
    f.readline()
    s.sendall(b"EHLO t\r\nMAIL FROM:<x@example.net>\r\nRCPT TO:<alice@example.org>\r\nDATA\r\n")
    while not f.readline().startswith(b"354"):
        pass
    elapsed = _trickle_until_closed(s, 10)
    s.close()
    assert elapsed is not None and elapsed < 6, elapsed
    s = _connect(deadlines, "smtp", "127.0.0.4")
    s.recv(100)
    elapsed = _trickle_until_closed(s, 10, b"N")  # a command line that never ends
    s.close()
    assert elapsed is not None and elapsed < 6, elapsed


def test_trickled_imap_command_is_closed_at_the_deadline(deadlines: RunningDaemon) -> None:
    s = _connect(deadlines, "imap", "127.0.0.5")
    s.recv(1000)
    elapsed = _trickle_until_closed(s, 10)
    s.close()
    assert elapsed is not None and elapsed < 6, elapsed
