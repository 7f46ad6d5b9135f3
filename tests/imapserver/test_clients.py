"""Real clients over real sockets and real TLS against in-process IMAP listeners.

The listeners run on the trial reactor (loopback, port 0); each blocking client (imaplib,
imapclient, raw sockets) runs in a thread through deferToThread. The daemon-level tests
in tests/e2e cover the same through the real `mailsrv` process.
"""

from __future__ import annotations

import hashlib
import imaplib
import shutil
import socket
import ssl
import tempfile
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import scramp
from twisted.internet import reactor
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from mailsrv.config.types import ListenerConfig, TLSKeyPair
from mailsrv.imapserver.factory import SessionFactory
from mailsrv.imapserver.mutf7 import encode as mutf7
from mailsrv.tlsutil import TLSContexts, generate_self_signed
from tests.imapserver.harness import make_server

T = TypeVar("T")
R: Any = reactor

MESSAGE = b"From: bob@example.org\r\nTo: alice@example.org\r\nSubject: test\r\n\r\nHello Alice.\r\n"


def client_context() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class ClientsTest(TestCase):
    def setUp(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="mailsrv-imap-"))
        self.addCleanup(shutil.rmtree, self.dir, True)
        generate_self_signed(["mail.example.org"], self.dir / "cert.pem", self.dir / "key.pem")
        self.server = make_server(self.dir, login_disabled=True, quota=1024 * 1024, reactor=R)
        self.server.tls = TLSContexts([TLSKeyPair(self.dir / "cert.pem", self.dir / "key.pem")])
        self.addCleanup(self.server.stores.close_all)
        plain = ListenerConfig("imap", "imap", "127.0.0.1", 0, "starttls")
        implicit = ListenerConfig("imaps", "imap", "127.0.0.1", 0, "implicit")
        p1 = R.listenTCP(0, SessionFactory(self.server, plain), interface="127.0.0.1")
        p2 = R.listenSSL(0, SessionFactory(self.server, implicit), self.server.tls, interface="127.0.0.1")
        self.addCleanup(p1.stopListening)
        self.addCleanup(p2.stopListening)
        self.port = p1.getHost().port
        self.tls_port = p2.getHost().port

    async def in_thread(self, fn: Callable[..., T], *args: Any) -> T:
        result: T = await deferToThread(fn, *args)
        return result

    # --- imaplib -----------------------------------------------------------------------
    def _imaplib_starttls(self) -> None:
        m = imaplib.IMAP4("127.0.0.1", self.port)
        assert "LOGINDISABLED" in m.capabilities
        try:
            m.login("alice", "correct horse")
            raise AssertionError("LOGIN allowed before STARTTLS")
        except imaplib.IMAP4.error as e:
            assert "PRIVACYREQUIRED" in str(e)
        m.starttls(client_context())
        m.login("alice", "correct horse")
        name = mutf7("Ärger/Überstunden").decode()
        assert m.create(name)[0] == "OK"
        typ, data = m.list('""', '"*"')
        assert typ == "OK" and any(name.encode() in d for d in data if isinstance(d, bytes)), data
        typ, data = m.rename(name, mutf7("Freude").decode())
        assert typ == "OK", data
        typ, data = m.status(mutf7("Freude").decode(), "(MESSAGES UIDNEXT UIDVALIDITY UNSEEN SIZE)")
        assert typ == "OK" and b"MESSAGES 0" in data[0], data
        typ, data = m.append("INBOX", "(\\Seen)", imaplib.Time2Internaldate(time.time()), MESSAGE)
        assert typ == "OK" and b"APPENDUID" in data[0], data
        typ, data = m.select("INBOX")
        assert typ == "OK" and data == [b"1"], data
        assert m.delete(mutf7("Freude").decode())[0] == "OK"
        assert m.delete(mutf7("Ärger").decode())[0] == "OK"
        m.logout()

    async def test_imaplib_starttls(self) -> None:
        await self.in_thread(self._imaplib_starttls)

    def _imaplib_ssl_authenticate(self) -> None:
        m = imaplib.IMAP4_SSL("127.0.0.1", self.tls_port, ssl_context=client_context())
        assert "AUTH=PLAIN" in m.capabilities and "STARTTLS" not in m.capabilities
        typ, _ = m.authenticate("PLAIN", lambda challenge: b"\0alice\0correct horse")
        assert typ == "OK"
        typ, data = m.getquotaroot("INBOX")
        assert typ == "OK", data
        m.logout()

    async def test_imaplib_ssl_authenticate_plain(self) -> None:
        await self.in_thread(self._imaplib_ssl_authenticate)

    def _scram(self, mechanism: str, starttls: bool = False) -> None:
        if starttls:
            m: imaplib.IMAP4 = imaplib.IMAP4("127.0.0.1", self.port)
            m.starttls(client_context())
        else:
            m = imaplib.IMAP4_SSL("127.0.0.1", self.tls_port, ssl_context=client_context())
        assert f"AUTH={mechanism}" in m.capabilities
        cb = None
        if mechanism.endswith("PLUS"):
            # RFC 5929 §4.1: the hash of the server certificate (SHA-256 for our ECDSA one).
            cb = ("tls-server-end-point", hashlib.sha256(m.sock.getpeercert(binary_form=True)).digest())
        client = scramp.ScramClient([mechanism], "alice", "correct horse", channel_binding=cb)
        steps = iter(["first", "final", "verify"])

        def answer(challenge: bytes) -> bytes:
            step = next(steps)
            if step == "first":
                return client.get_client_first().encode()
            if step == "final":
                client.set_server_first(challenge.decode())
                return client.get_client_final().encode()
            client.set_server_final(challenge.decode())
            return b""

        typ, _ = m.authenticate(mechanism, answer)
        assert typ == "OK"
        m.logout()

    async def test_imaplib_scram(self) -> None:
        await self.in_thread(self._scram, "SCRAM-SHA-256")
        await self.in_thread(self._scram, "SCRAM-SHA-1")

    async def test_imaplib_scram_plus(self) -> None:
        await self.in_thread(self._scram, "SCRAM-SHA-256-PLUS")
        await self.in_thread(self._scram, "SCRAM-SHA-1-PLUS", True)

    def _overquota(self) -> None:
        m = imaplib.IMAP4_SSL("127.0.0.1", self.tls_port, ssl_context=client_context())
        m.login("alice", "correct horse")
        typ, data = m.append("INBOX", None, None, b"Subject: big\r\n\r\n" + b"x" * (1100 * 1024))
        assert typ == "NO" and b"[OVERQUOTA]" in data[0], (typ, data)
        m.logout()

    async def test_overquota(self) -> None:
        await self.in_thread(self._overquota)

    # --- imapclient ----------------------------------------------------------------------
    # imapclient (folders with UTF-8 names, IDLE across sessions): tests/e2e/test_imap.py,
    # against the real daemon.

    # --- raw sockets -----------------------------------------------------------------------
    def _raw_compress(self) -> None:
        raw = socket.create_connection(("127.0.0.1", self.tls_port))
        s = client_context().wrap_socket(raw)
        f = s.makefile("rb")
        assert f.readline().startswith(b"* OK")
        s.sendall(b'a LOGIN alice "correct horse"\r\n')
        assert f.readline().startswith(b"a OK")
        s.sendall(b"z COMPRESS DEFLATE\r\n")
        assert f.readline().startswith(b"z OK")
        deflate = zlib.compressobj(6, zlib.DEFLATED, -15)
        inflate = zlib.decompressobj(-15)
        s.sendall(deflate.compress(b'b LIST "" *\r\nc NOOP\r\n') + deflate.flush(zlib.Z_SYNC_FLUSH))
        out = b""
        deadline = time.monotonic() + 5
        while b"c OK" not in out and time.monotonic() < deadline:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += inflate.decompress(chunk)
        assert b'* LIST (\\HasNoChildren) "/" INBOX' in out and b"b OK" in out and b"c OK" in out, out
        s.close()

    async def test_compress_deflate(self) -> None:
        await self.in_thread(self._raw_compress)

    def _starttls_injection(self) -> bytes:
        s = socket.create_connection(("127.0.0.1", self.port))
        s.settimeout(5)
        f = s.makefile("rb")
        assert f.readline().startswith(b"* OK")
        # The attacker's plaintext rides in the same segment as STARTTLS.
        s.sendall(b"a STARTTLS\r\nb CAPABILITY\r\n")
        out = b""
        try:
            while True:
                line = f.readline()
                if not line:
                    break
                out += line
        except (TimeoutError, ConnectionResetError):
            pass
        s.close()
        return out

    async def test_starttls_injection(self) -> None:
        out = await self.in_thread(self._starttls_injection)
        self.assertNotIn(b"b OK", out)
        self.assertNotIn(b"* CAPABILITY", out)

    def _pipelined_starttls_clean(self) -> None:
        # A well-behaved client: STARTTLS alone, then TLS, then commands.
        m = imaplib.IMAP4("127.0.0.1", self.port)
        m.starttls(client_context())
        assert "STARTTLS" not in m.capabilities and "LOGINDISABLED" not in m.capabilities
        m.logout()

    async def test_starttls_capabilities_after(self) -> None:
        await self.in_thread(self._pipelined_starttls_clean)
