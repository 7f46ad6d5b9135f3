"""IMAP against the real daemon with real clients: imaplib (STARTTLS and implicit TLS),
imapclient, raw sockets for COMPRESS=DEFLATE and the STARTTLS injection attempt."""

from __future__ import annotations

import hashlib
import imaplib
import socket
import threading
import time
import zlib
from pathlib import Path

import imapclient
import scramp

from mailsrv.imapserver.mutf7 import encode as mutf7
from tests.daemon import RunningDaemon, start_daemon

MESSAGE = b"From: bob@example.org\r\nTo: alice@example.org\r\nSubject: e2e\r\n\r\nHello Alice.\r\n"


def _m(name: str) -> str:
    return mutf7(name).decode("ascii")


def test_imaplib_starttls_and_mailboxes(daemon: RunningDaemon) -> None:
    m = imaplib.IMAP4("127.0.0.1", daemon.ports["imap"])
    assert "LOGINDISABLED" in m.capabilities and "STARTTLS" in m.capabilities
    m.starttls(daemon.ssl_context())
    assert "LOGINDISABLED" not in m.capabilities
    m.login("alice@example.org", "alicepass")
    name = _m("Ärger/Überstunden")
    assert m.create(name)[0] == "OK"
    typ, data = m.list('""', "*")
    assert typ == "OK" and any(name.encode() in d for d in data if isinstance(d, bytes)), data
    assert m.rename(name, _m("Freude"))[0] == "OK"
    typ, data = m.status(_m("Freude"), "(MESSAGES UIDNEXT UIDVALIDITY UNSEEN SIZE DELETED)")
    assert typ == "OK" and b"MESSAGES 0" in data[0], data
    typ, data = m.append("INBOX", "(\\Seen)", imaplib.Time2Internaldate(time.time()), MESSAGE)
    assert typ == "OK" and b"[APPENDUID " in data[0], data
    typ, data = m.select("INBOX")
    assert typ == "OK" and data == [b"1"], data
    assert m.delete(_m("Freude"))[0] == "OK"
    assert m.delete(_m("Ärger"))[0] == "OK"
    typ, data = m.getquotaroot("INBOX")
    assert typ == "OK", data
    m.logout()


def test_authenticate_plain_and_scram_over_implicit_tls(daemon: RunningDaemon) -> None:
    m = imaplib.IMAP4_SSL("127.0.0.1", daemon.ports["imaps"], ssl_context=daemon.ssl_context())
    assert "AUTH=PLAIN" in m.capabilities
    assert m.authenticate("PLAIN", lambda _: b"\0bob@example.org\0bobpass")[0] == "OK"
    m.logout()
    for mechanism in ("SCRAM-SHA-256", "SCRAM-SHA-256-PLUS"):
        m = imaplib.IMAP4_SSL("127.0.0.1", daemon.ports["imaps"], ssl_context=daemon.ssl_context())
        if f"AUTH={mechanism}" not in m.capabilities:
            m.logout()
            continue  # the account provider may not store SCRAM secrets
        binding = None
        if mechanism.endswith("PLUS"):
            der = m.sock.getpeercert(binary_form=True)  # type: ignore[attr-defined]
            binding = ("tls-server-end-point", hashlib.sha256(der).digest())
        client = scramp.ScramClient([mechanism], "alice@example.org", "alicepass", channel_binding=binding)
        state = iter(range(3))

        def answer(challenge: bytes, client: scramp.ScramClient = client, state: object = state) -> bytes:
            step = next(state)  # type: ignore[call-overload]
            if step == 0:
                return client.get_client_first().encode()
            if step == 1:
                client.set_server_first(challenge.decode())
                return client.get_client_final().encode()
            client.set_server_final(challenge.decode())
            return b""

        assert m.authenticate(mechanism, answer)[0] == "OK", mechanism
        m.logout()


def test_imapclient_utf8_names_and_idle(daemon: RunningDaemon) -> None:
    ctx = daemon.ssl_context()
    a = imapclient.IMAPClient("127.0.0.1", port=daemon.ports["imaps"], ssl_context=ctx)
    a.login("alice", "alicepass")  # by account name; b by address: the same account
    b = imapclient.IMAPClient("127.0.0.1", port=daemon.ports["imaps"], ssl_context=ctx)
    b.login("alice@example.org", "alicepass")
    a.create_folder("Café/Menü")
    names = [f[2] for f in b.list_folders()]
    assert "Café/Menü" in names and "Café" in names, names
    a.rename_folder("Café/Menü", "Café/Karte")
    assert b.folder_exists("Café/Karte") and not b.folder_exists("Café/Menü")
    assert b.folder_status("Café/Karte", ["MESSAGES", "UIDNEXT"])[b"MESSAGES"] == 0
    a.delete_folder("Café/Karte")
    assert not b.folder_exists("Café/Karte")

    a.select_folder("INBOX")
    a.idle()
    b.append("INBOX", MESSAGE)
    # The change is committed when APPEND is answered and pushed at once (no polling).
    started = time.monotonic()
    responses = a.idle_check(timeout=5)
    elapsed = time.monotonic() - started
    a.idle_done()
    assert any(r[1] == b"EXISTS" for r in responses), responses
    assert elapsed < 3.0, elapsed  # pushed, not polled; slack for a loaded CI machine
    a.logout()
    b.logout()


def _tls_socket(daemon: RunningDaemon) -> socket.socket:
    raw = socket.create_connection(("127.0.0.1", daemon.ports["imaps"]), timeout=10)
    return daemon.ssl_context().wrap_socket(raw)


def test_compress_deflate_raw(daemon: RunningDaemon) -> None:
    s = _tls_socket(daemon)
    f = s.makefile("rb")
    assert f.readline().startswith(b"* OK")
    s.sendall(b"a LOGIN alice@example.org alicepass\r\n")
    assert f.readline().startswith(b"a OK")
    s.sendall(b"z COMPRESS DEFLATE\r\n")
    assert f.readline().startswith(b"z OK")
    deflate, inflate = zlib.compressobj(6, zlib.DEFLATED, -15), zlib.decompressobj(-15)
    s.sendall(deflate.compress(b'b LIST "" *\r\nc STATUS INBOX (MESSAGES)\r\n') + deflate.flush(zlib.Z_SYNC_FLUSH))
    out = b""
    while b"c OK" not in out:
        chunk = s.recv(65536)
        assert chunk, out
        out += inflate.decompress(chunk)
    assert b'* LIST (\\HasNoChildren) "/" INBOX' in out and b"* STATUS INBOX (MESSAGES 0)" in out
    s.close()


def test_starttls_injection_is_not_executed(daemon: RunningDaemon) -> None:
    s = socket.create_connection(("127.0.0.1", daemon.ports["imap"]), timeout=5)
    f = s.makefile("rb")
    assert f.readline().startswith(b"* OK")
    s.sendall(b"a STARTTLS\r\nb CAPABILITY\r\n")
    out = b""
    try:
        while line := f.readline():
            out += line
    except (TimeoutError, ConnectionResetError):
        pass
    s.close()
    assert out.startswith(b"a OK") and b"b OK" not in out and b"* CAPABILITY" not in out


def test_over_quota_append(tmp_path: Path) -> None:
    running = start_daemon(tmp_path / "d", extra_static="\n[limits]\ndefault_quota = 20000\n")
    try:
        m = imaplib.IMAP4_SSL("127.0.0.1", running.ports["imaps"], ssl_context=running.ssl_context())
        m.login("alice@example.org", "alicepass")
        typ, data = m.append("INBOX", None, None, b"Subject: big\r\n\r\n" + b"x" * 30000)
        assert typ == "NO" and b"[OVERQUOTA]" in data[0], (typ, data)
        typ, data = m.append("INBOX", None, None, MESSAGE)
        assert typ == "OK", data
        m.logout()
    finally:
        running.stop()


def test_pipelined_sessions_in_parallel(daemon: RunningDaemon) -> None:
    """Several clients at once, each pipelining: every reply arrives, in order."""
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            s = _tls_socket(daemon)
            f = s.makefile("rb")
            f.readline()
            s.sendall(b"a LOGIN bob@example.org bobpass\r\n" + b"".join(b"t%d NOOP\r\n" % n for n in range(50)))
            seen = []
            while len(seen) < 51:
                line = f.readline()
                assert line, seen
                if not line.startswith(b"*"):
                    seen.append(line.split(b" ", 1)[0])
            assert seen == [b"a"] + [b"t%d" % n for n in range(50)]
            s.close()
        except BaseException as e:  # collected for the main thread
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors


def test_bye_when_the_daemon_stops(tmp_path: Path) -> None:
    running = start_daemon(tmp_path / "d")
    s = socket.create_connection(("127.0.0.1", running.ports["imap"]), timeout=10)
    f = s.makefile("rb")
    assert f.readline().startswith(b"* OK")
    running.stop()
    assert f.read() == b"* BYE server shutting down\r\n"
    s.close()


def test_utf8_and_modified_utf7_names_both_ways(daemon: RunningDaemon) -> None:
    """A UTF8=ACCEPT session and a modified-UTF-7 (rev1) client see the same mailboxes."""
    s = _tls_socket(daemon)
    f = s.makefile("rb")
    f.readline()

    def cmd(line: bytes) -> bytes:
        tag = line.split(b" ", 1)[0]
        s.sendall(line + b"\r\n")
        out = b""
        while not out.split(b"\r\n")[-2:-1] or not out.split(b"\r\n")[-2].startswith(tag + b" "):
            out += f.readline()
        return out

    assert b"a OK" in cmd(b"a LOGIN alice@example.org alicepass")
    assert b"* ENABLED UTF8=ACCEPT" in cmd(b"b ENABLE UTF8=ACCEPT")
    assert b"c OK" in cmd('c CREATE "Grüße/Ärger"'.encode())
    client = imapclient.IMAPClient("127.0.0.1", port=daemon.ports["imaps"], ssl_context=daemon.ssl_context())
    client.login("alice@example.org", "alicepass")
    assert "Grüße/Ärger" in [name for _, _, name in client.list_folders()]
    client.create_folder("Zürich")  # sent as modified UTF-7 by imapclient
    assert '"Zürich"'.encode() in cmd(b'd LIST "" "Z*"')
    assert '* STATUS "Zürich" (MESSAGES 0)'.encode() in cmd('e STATUS "Zürich" (MESSAGES)'.encode())
    client.logout()
    s.close()
