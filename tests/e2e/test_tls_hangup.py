"""After the last reply (IMAP LOGOUT, SMTP QUIT) the daemon closes TCP within a couple of
seconds even when the client never answers the server's TLS close_notify, on implicit TLS
and after STARTTLS (issue 11 defect 15: Twisted's TLS transport waited for the peer's
close_notify forever, so a client that just read to the end hung, and so did the server's
connection).

The client here is a raw TCP socket driving an `ssl.SSLObject` through memory BIOs: it
reads everything that comes, but never sends anything after its last command, so no
close_notify of its own ever goes out.
"""

from __future__ import annotations

import socket
import ssl
import time

import pytest

from tests.daemon import RunningDaemon

# The server's grace is 2 s (mailsrv.transport.HANGUP_GRACE); allow for a loaded machine.
CLOSED_WITHIN = 8.0


class SilentTLSClient:
    """TLS over a plain socket whose TCP end we watch; never sends close_notify."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.plain = b""
        self.tls: ssl.SSLObject | None = None
        self._in = ssl.MemoryBIO()
        self._out = ssl.MemoryBIO()
        self.tcp_closed = False

    def start_tls(self) -> None:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        self.tls = ctx.wrap_bio(self._in, self._out, server_side=False)
        while True:
            try:
                self.tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                self._send_pending()
                self._read_raw()
        self._send_pending()

    def _send_pending(self) -> None:
        data = self._out.read()
        if data:
            self.sock.sendall(data)

    def _read_raw(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            self.tcp_closed = True
            raise EOFError
        if self.tls is None:
            self.plain += data
        else:
            self._in.write(data)
            while True:
                try:
                    chunk = self.tls.read(65536)
                except (ssl.SSLWantReadError, ssl.SSLZeroReturnError):
                    break
                if not chunk:
                    break  # the server's close_notify: we read it and do not answer
                self.plain += chunk

    def send(self, line: bytes) -> None:
        if self.tls is None:
            self.sock.sendall(line)
        else:
            self.tls.write(line)
            self._send_pending()

    def read_until(self, marker: bytes) -> bytes:
        while marker not in self.plain:
            self._read_raw()
        head, _, self.plain = self.plain.partition(marker)
        return head + marker

    def seconds_until_tcp_closed(self, limit: float) -> float:
        """Keeps reading (the server's close_notify included) without answering it."""
        start = time.monotonic()
        self.sock.settimeout(limit)
        try:
            while True:
                self._read_raw()
        except EOFError:
            return time.monotonic() - start
        except TimeoutError:
            return float("inf")
        except ConnectionResetError:
            return time.monotonic() - start

    def close(self) -> None:
        self.sock.close()


def _imap_logout_closes(client: SilentTLSClient) -> None:
    client.send(b"a1 NOOP\r\n")
    client.read_until(b"a1 OK")
    client.send(b"a2 LOGOUT\r\n")
    assert b"* BYE" in client.read_until(b"a2 OK")
    took = client.seconds_until_tcp_closed(CLOSED_WITHIN)
    assert took < CLOSED_WITHIN, "the server kept the TCP connection open after LOGOUT"


def test_imaps_logout_closes_tcp_without_client_close_notify(daemon: RunningDaemon) -> None:
    client = SilentTLSClient(daemon.ports["imaps"])
    try:
        client.start_tls()
        client.read_until(b"\r\n")
        _imap_logout_closes(client)
    finally:
        client.close()


def test_imap_starttls_logout_closes_tcp_without_client_close_notify(daemon: RunningDaemon) -> None:
    client = SilentTLSClient(daemon.ports["imap"])
    try:
        client.read_until(b"\r\n")
        client.send(b"s STARTTLS\r\n")
        client.read_until(b"s OK")
        client.read_until(b"\r\n")
        client.start_tls()
        _imap_logout_closes(client)
    finally:
        client.close()


def _smtp_quit_closes(client: SilentTLSClient) -> None:
    client.send(b"EHLO client.example\r\n")
    client.read_until(b"250 ")
    client.read_until(b"\r\n")
    client.send(b"QUIT\r\n")
    client.read_until(b"221 ")
    took = client.seconds_until_tcp_closed(CLOSED_WITHIN)
    assert took < CLOSED_WITHIN, "the server kept the TCP connection open after QUIT"


@pytest.mark.parametrize("listener", ["submissions", "smtp"])
def test_smtp_quit_closes_tcp_without_client_close_notify(daemon: RunningDaemon, listener: str) -> None:
    client = SilentTLSClient(daemon.ports[listener])
    try:
        if listener == "submissions":
            client.start_tls()
            client.read_until(b"220 ")
            client.read_until(b"\r\n")
        else:
            client.read_until(b"220 ")
            client.read_until(b"\r\n")
            client.send(b"EHLO client.example\r\n")
            client.read_until(b"250 ")
            client.read_until(b"\r\n")
            client.send(b"STARTTLS\r\n")
            client.read_until(b"220 ")
            client.read_until(b"\r\n")
            client.start_tls()
        _smtp_quit_closes(client)
    finally:
        client.close()
