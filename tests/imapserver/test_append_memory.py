"""IMAP APPEND and the daemon-wide message memory budget (issue 17 item 7, see
mailsrv/spool.py and tests/smtpserver/test_memory.py for SMTP).

Literals of APPEND below `STREAM_THRESHOLD` are held in memory until the command runs and
take their size from the budget; larger ones are written to a private spool file as they
arrive, copied from there into the store, and take only `STREAMED_COST`. The budget is one
for the whole daemon: IMAP and SMTP transactions running at once share it."""

from __future__ import annotations

import hashlib
import imaplib
import socket
import threading
import time
from pathlib import Path

from tests.daemon import RunningDaemon, start_daemon
from tests.imapserver.rawimap import raw_login, read_tagged
from tests.memwatch import anonymous_growth

BIG = b"Subject: big\r\n\r\n" + (b"z" * 998 + b"\r\n") * 1100  # 1.1 MB: spooled


def _imap(daemon: RunningDaemon) -> imaplib.IMAP4_SSL:
    imap = imaplib.IMAP4_SSL("127.0.0.1", daemon.ports["imaps"], ssl_context=daemon.ssl_context())
    imap.login("alice@example.org", "alicepass")
    return imap


def _append(imap: imaplib.IMAP4_SSL, message: bytes) -> tuple[str, bytes]:
    try:
        typ, data = imap.append("INBOX", None, None, message)
    except imaplib.IMAP4.error as e:
        return "NO", str(e).encode()
    return typ, data[0] or b""


def _smtp(daemon: RunningDaemon, body: bytes) -> str:
    with socket.create_connection(("127.0.0.1", daemon.ports["smtp"]), timeout=60) as sock:
        f = sock.makefile("rb")
        f.readline()
        sock.sendall(b"EHLO big.example\r\nMAIL FROM:<x@example.net>\r\nRCPT TO:<alice@example.org>\r\nDATA\r\n")
        while not f.readline().startswith(b"354"):
            pass
        sock.sendall(body + b".\r\nQUIT\r\n")
        return f.readline().decode().strip()


def test_the_budget_is_shared_by_sessions_and_protocols(tmp_path: Path) -> None:
    daemon = start_daemon(tmp_path / "d", extra_static="[limits]\nmessage_memory = 1048576\n")
    try:
        # Session A announces a 900,000-octet literal (held in memory: its size is reserved)
        # and keeps it pending.
        holder = raw_login(daemon)
        holder.sendall(b"h APPEND INBOX {900000}\r\n")
        assert holder.recv(100).startswith(b"+")
        imap = _imap(daemon)
        typ, text = _append(imap, BIG)
        assert typ == "NO" and b"[LIMIT]" in text, text  # a streamed APPEND needs 1 MiB
        assert _smtp(daemon, BIG).startswith("452 4.3.1")  # so does a streamed SMTP delivery
        assert _smtp(daemon, b"Subject: small\r\n\r\nhello\r\n").startswith("250")  # fits beside A
        holder.sendall(b"Subject: held\r\n\r\n" + b"h" * (900000 - 17) + b"\r\n")
        assert b"h OK" in read_tagged(holder, b"h")
        holder.close()
        # The budget came back.
        typ, text = _append(imap, BIG)
        assert typ == "OK", text
        assert _smtp(daemon, BIG).startswith("250")
        imap.logout()
        assert list((daemon.data_dir / "spool").iterdir()) == []  # refused or not, nothing left behind
    finally:
        daemon.stop()


def test_parallel_large_appends_are_stored_whole_in_bounded_memory(tmp_path: Path) -> None:
    parallel, size = 6, 20 * 1024 * 1024
    daemon = start_daemon(tmp_path / "d")
    assert daemon.process is not None
    pid = daemon.process.pid
    try:
        messages = [
            f"Subject: big {i}\r\n\r\n".encode() + (bytes([0x61 + i]) * 998 + b"\r\n") * (size // 1000)
            for i in range(parallel)
        ]
        results: list[tuple[str, bytes]] = []

        def one(message: bytes) -> None:
            imap = _imap(daemon)
            results.append(_append(imap, message))
            imap.logout()

        with anonymous_growth(pid) as growth:
            threads = [threading.Thread(target=one, args=(m,)) for m in messages]
            for t in threads:
                t.start()
            for t in threads:
                t.join(300)
        assert [typ for typ, _ in results] == ["OK"] * parallel, results
        grown = growth[0]
        print(f"anonymous memory growth with {parallel} parallel {size >> 20} MiB APPENDs: {grown / 2**20:.0f} MiB")
        # Held in memory, the literals alone were 120 MiB (and the store made copies).
        assert grown < 60 * 1024 * 1024, f"anonymous memory grew by {grown / 2**20:.0f} MiB"
        imap = _imap(daemon)
        imap.select("INBOX", readonly=True)
        want = {hashlib.sha256(m).hexdigest() for m in messages}
        got = set()
        for uid in range(1, parallel + 1):
            typ, data = imap.uid("FETCH", str(uid), "BODY.PEEK[]")
            assert typ == "OK"
            got.add(hashlib.sha256(data[0][1]).hexdigest())
        assert got == want
        imap.logout()
        assert list((daemon.data_dir / "spool").iterdir()) == []
    finally:
        daemon.stop()


def test_a_connection_lost_mid_literal_leaves_nothing(tmp_path: Path) -> None:
    daemon = start_daemon(tmp_path / "d")
    try:
        sock = raw_login(daemon)
        sock.sendall(b"a APPEND INBOX {3000000}\r\n")
        assert sock.recv(100).startswith(b"+")
        sock.sendall(b"Subject: cut\r\n\r\n" + b"c" * 2_000_000)
        time.sleep(0.5)
        assert len(list((daemon.data_dir / "spool").iterdir())) <= 1  # anonymous: none visible
        sock.close()
        imap = _imap(daemon)
        typ, data = imap.status("INBOX", "(MESSAGES)")
        assert typ == "OK" and b"MESSAGES 0" in data[0], data
        imap.logout()
        deadline = time.monotonic() + 5
        while list((daemon.data_dir / "spool").iterdir()) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert list((daemon.data_dir / "spool").iterdir()) == []
        # The spool file is closed: the daemon holds no descriptor to a deleted spool file.
        assert daemon.process is not None
        fds = Path(f"/proc/{daemon.process.pid}/fd")
        open_spools = [p for p in fds.iterdir() if "spool" in str(p.readlink())]
        assert open_spools == [], open_spools
    finally:
        daemon.stop()
