"""COMPRESS=DEFLATE (RFC 4978) against the real daemon with a zlib-wrapped raw client:
a compressible APPEND of several MiB completes (issue 17 item 8: 3 MB never did, 0.5 MB
did: the session stopped inflating at 1 MiB of buffered input and never resumed)."""

from __future__ import annotations

import os
import socket
import ssl
import zlib

import pytest

from tests.daemon import RunningDaemon


class DeflateClient:
    """A raw IMAP client over TLS that turns on COMPRESS=DEFLATE after login."""

    def __init__(self, daemon: RunningDaemon) -> None:
        raw = socket.create_connection(("127.0.0.1", daemon.ports["imaps"]), timeout=60)
        self.sock: ssl.SSLSocket = daemon.ssl_context().wrap_socket(raw)
        self.deflate: zlib._Compress | None = None
        self.inflate: zlib._Decompress | None = None
        self.pending = b""
        self.readline()  # greeting
        self.send(b"a LOGIN alice@example.org alicepass\r\n")
        assert self.tagged(b"a").startswith(b"a OK")
        self.send(b"z COMPRESS DEFLATE\r\n")
        assert self.tagged(b"z").startswith(b"z OK")
        self.deflate = zlib.compressobj(6, zlib.DEFLATED, -15)
        self.inflate = zlib.decompressobj(-15)

    def send(self, data: bytes) -> None:
        if self.deflate is not None:
            data = self.deflate.compress(data) + self.deflate.flush(zlib.Z_SYNC_FLUSH)
        self.sock.sendall(data)

    def readline(self) -> bytes:
        while b"\r\n" not in self.pending:
            chunk = self.sock.recv(65536)
            assert chunk, "connection closed"
            self.pending += self.inflate.decompress(chunk) if self.inflate is not None else chunk
        line, _, self.pending = self.pending.partition(b"\r\n")
        return line

    def tagged(self, tag: bytes) -> bytes:
        while True:
            line = self.readline()
            if line.startswith(tag + b" "):
                return line


@pytest.mark.parametrize("size", [512 * 1024, 3 * 1024 * 1024, 8 * 1024 * 1024])
def test_compressed_append_completes(daemon: RunningDaemon, size: int) -> None:
    client = DeflateClient(daemon)
    header = b"From: <x@example.net>\r\nSubject: big\r\n\r\n"
    line = b"all work and no play makes a compressible message\r\n"
    message = header + line * ((size - len(header)) // len(line))
    # Synchronising literal: wait for the continuation, then send it all at once.
    client.send(b"b APPEND INBOX {%d}\r\n" % len(message))
    assert client.readline().startswith(b"+")
    client.send(message + b"\r\n")
    assert client.tagged(b"b").startswith(b"b OK")
    client.send(b"c STATUS INBOX (MESSAGES SIZE)\r\n")
    status = client.tagged(b"c")
    assert status.startswith(b"c OK")
    client.sock.close()


def test_incompressible_append_with_literal_plus(daemon: RunningDaemon) -> None:
    client = DeflateClient(daemon)
    message = b"Subject: noise\r\n\r\n" + os.urandom(3 * 1024 * 1024).hex().encode()[: 3 * 1024 * 1024] + b"\r\n"
    client.send(b"b APPEND INBOX {%d+}\r\n" % len(message) + message + b"\r\nc NOOP\r\n")
    assert client.tagged(b"b").startswith(b"b OK")
    assert client.tagged(b"c").startswith(b"c OK")
    client.sock.close()
