"""MULTIAPPEND (RFC 3502) and CATENATE (RFC 4469) against the real daemon, with raw IMAP
commands over implicit TLS (imaplib cannot send either)."""

from __future__ import annotations

import re
import socket

from tests.daemon import RunningDaemon

M1 = b"From: bob@example.org\r\nSubject: one\r\n\r\nfirst\r\n"
M2 = b"From: bob@example.org\r\nSubject: two\r\n\r\nsecond\r\n"


class RawIMAP:
    def __init__(self, daemon: RunningDaemon) -> None:
        raw = socket.create_connection(("127.0.0.1", daemon.ports["imaps"]), timeout=10)
        self.sock = daemon.ssl_context().wrap_socket(raw)
        self.buffer = b""
        self.read_until(rb"^\* OK")

    def read_until(self, pattern: bytes) -> bytes:
        regex = re.compile(pattern, re.M)
        while not regex.search(self.buffer):
            chunk = self.sock.recv(65536)
            assert chunk, self.buffer
            self.buffer += chunk
        out, self.buffer = self.buffer, b""
        return out

    def command(self, tag: str, data: bytes) -> bytes:
        self.sock.sendall(tag.encode() + b" " + data + b"\r\n")
        return self.read_until(rb"^" + tag.encode() + rb" (OK|NO|BAD)[^\r]*\r\n")


def lit(data: bytes) -> bytes:
    return b"{%d+}\r\n" % len(data) + data


def test_multiappend_and_catenate(daemon: RunningDaemon) -> None:
    c = RawIMAP(daemon)
    out = c.command("a", b'LOGIN alice@example.org "alicepass"')
    assert b"a OK" in out and b"MULTIAPPEND" in out and b"CATENATE" in out, out
    out = c.command("b", b"APPEND INBOX (\\Seen) " + lit(M1) + b" " + lit(M2))
    m = re.search(rb"b OK \[APPENDUID (\d+) 1:2\]", out)
    assert m, out
    validity = int(m.group(1))
    # One bad message in a batch: none of it is stored.
    out = c.command("c", b"APPEND INBOX " + lit(M1) + b' CATENATE (URL "/INBOX/;UID=9")')
    assert b"c NO [BADURL /INBOX/;UID=9]" in out, out
    url = b"/INBOX;UIDVALIDITY=%d/;UID=2/;SECTION=TEXT" % validity
    out = c.command("d", b"APPEND Drafts CATENATE (TEXT " + lit(b"Subject: fwd\r\n\r\n") + b" URL " + lit(url) + b")")
    assert b"d OK [APPENDUID " in out, out
    out = c.command("e", b"SELECT Drafts")
    assert b"* 1 EXISTS" in out, out
    out = c.command("f", b"FETCH 1 BODY.PEEK[]")
    assert b"{24}\r\nSubject: fwd\r\n\r\nsecond\r\n)" in out, out
    out = c.command("g", b"STATUS INBOX (MESSAGES)")
    assert b"(MESSAGES 2)" in out, out
    c.command("h", b"LOGOUT")
