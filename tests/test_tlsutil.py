"""TLSContexts over real sockets: SNI, client certificates without CA (RSA, P-256,
ed25519) for implicit TLS and STARTTLS, SPKI fingerprints equal to openssl's, channel
bindings, TLS 1.2 resumption, self-signed certificate generation."""

from __future__ import annotations

import hashlib
import shutil
import socket
import ssl
import stat
import subprocess
import tempfile
import warnings
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IHandshakeListener
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.threads import deferToThread
from twisted.protocols.basic import LineReceiver
from twisted.trial.unittest import TestCase
from zope.interface import implementer

from mailsrv.config.types import TLSKeyPair
from mailsrv.tlsutil import (
    TLSContexts,
    channel_bindings,
    client_tls_options,
    fingerprint_text,
    generate_self_signed,
    key_type,
    parse_fingerprint_text,
    peer_certificate,
    server_end_point_hash,
    spki_fingerprint,
)
from tests.certs import client_certificate
from tests.tools import needs_program

R: Any = reactor


def make_client_cert(directory: Path, kind: str) -> tuple[Path, Path]:
    return client_certificate(directory, kind, kind, common_name=f"client-{kind}")


def openssl_fingerprint(cert_path: Path) -> bytes:
    out = subprocess.run(
        f"openssl x509 -in {cert_path} -pubkey -noout | openssl pkey -pubin -outform DER | sha256sum",
        shell=True,
        check=True,
        capture_output=True,
    ).stdout
    return bytes.fromhex(out.split()[0].decode())


@implementer(IHandshakeListener)
class ReportPeer(Protocol):
    """Sends "<fingerprint or -> <tls-server-end-point hex> <exporter hex or ->" once the
    handshake is done, then closes."""

    def __init__(self, done: Deferred[dict[str, Any]]) -> None:
        self.done = done
        self.info: dict[str, Any] = {}

    def handshakeCompleted(self) -> None:
        cert = peer_certificate(self.transport)
        cb = channel_bindings(self.transport)
        self.info = {"cert": cert, "cb": cb}
        fp = fingerprint_text(spki_fingerprint(cert)) if cert is not None else "-"
        assert self.transport is not None
        self.transport.write(f"{fp} {cb.tls_server_end_point.hex() if cb.tls_server_end_point else '-'}\n".encode())
        self.transport.loseConnection()

    def connectionLost(self, reason: Any = None) -> None:
        self.done.callback(self.info)


@implementer(IHandshakeListener)
class StartTLSPeer(LineReceiver):
    def __init__(self, contexts: TLSContexts, done: Deferred[dict[str, Any]]) -> None:
        self.contexts = contexts
        self.inner = ReportPeer(done)

    def connectionMade(self) -> None:
        self.sendLine(b"ready")

    def lineReceived(self, line: bytes) -> None:
        if line == b"STARTTLS":
            self.sendLine(b"go")
            self.clearLineBuffer()
            assert self.transport is not None
            self.transport.startTLS(self.contexts)  # type: ignore[attr-defined]

    def handshakeCompleted(self) -> None:
        self.inner.transport = self.transport
        self.inner.handshakeCompleted()

    def connectionLost(self, reason: Any = None) -> None:
        self.inner.connectionLost(reason)


def client_context(client: tuple[Path, Path] | None, max_version: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if max_version is not None:
        ctx.maximum_version = max_version
    if client is not None:
        ctx.load_cert_chain(str(client[0]), str(client[1]))
    return ctx


def tls_client(
    port: int, ctx: ssl.SSLContext, servername: str, starttls: bool = False, session: ssl.SSLSession | None = None
) -> dict[str, Any]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        if starttls:
            f = raw.makefile("rb")
            assert f.readline() == b"ready\r\n"
            raw.sendall(b"STARTTLS\r\n")
            assert f.readline() == b"go\r\n"
        with ctx.wrap_socket(raw, server_hostname=servername, session=session) as s:
            data = b""
            while not data.endswith(b"\n"):
                chunk = s.recv(1000)
                if not chunk:
                    break
                data += chunk
            return {
                "line": data.decode().split(),
                "server_cert": s.getpeercert(binary_form=True),
                "version": s.version(),
                "session": s.session,
                "reused": s.session_reused,
            }


class TLSServerFixture(TestCase):
    """Two key pairs (ECDSA default, RSA for other.example.net and *.wild.example)."""

    def setUp(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="mailsrv-tls-"))
        self.addCleanup(shutil.rmtree, self.dir, True)
        generate_self_signed(["mail.example.org", "127.0.0.1"], self.dir / "a.crt", self.dir / "a.key")
        generate_self_signed(["other.example.net"], self.dir / "b.crt", self.dir / "b.key", key_kind="rsa")
        self.contexts = TLSContexts(
            [
                TLSKeyPair(self.dir / "a.crt", self.dir / "a.key"),
                TLSKeyPair(self.dir / "b.crt", self.dir / "b.key", ("other.example.net", "*.wild.example")),
            ]
        )
        self.server_done: list[Deferred[dict[str, Any]]] = []

    def listen(self, starttls: bool = False) -> int:
        contexts = self.contexts

        def build(addr: Any) -> Protocol:
            d: Deferred[dict[str, Any]] = Deferred()
            self.server_done.append(d)
            return StartTLSPeer(contexts, d) if starttls else ReportPeer(d)

        factory = Factory.forProtocol(lambda: None)  # type: ignore[arg-type, return-value]
        factory.buildProtocol = build  # type: ignore[method-assign]
        if starttls:
            port = R.listenTCP(0, factory, interface="127.0.0.1")
        else:
            port = R.listenSSL(0, factory, contexts, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        return int(port.getHost().port)

    async def roundtrip(self, port: int, ctx: ssl.SSLContext, servername: str, **kw: Any) -> dict[str, Any]:
        result: dict[str, Any] = await deferToThread(tls_client, port, ctx, servername, **kw)
        result["server"] = await self.server_done[-1]
        return result


class TLSContextsTests(TLSServerFixture):
    @needs_program("openssl", package="openssl")
    async def test_client_certificates_implicit_and_starttls(self) -> None:
        for starttls in (False, True):
            port = self.listen(starttls)
            for kind in ("rsa", "p256", "ed25519"):
                client = make_client_cert(self.dir, kind)
                for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
                    r = await self.roundtrip(
                        port, client_context(client, version), "mail.example.org", starttls=starttls
                    )
                    expected = openssl_fingerprint(client[0])
                    self.assertEqual(r["line"][0], fingerprint_text(expected), (kind, version, starttls))
                    cert = x509.load_pem_x509_certificate(client[0].read_bytes())
                    self.assertEqual(spki_fingerprint(cert), expected)
                    self.assertEqual(spki_fingerprint(r["server"]["cert"]), expected)
                    cb = r["server"]["cb"]
                    if r["version"] == "TLSv1.3":
                        self.assertEqual(len(cb.tls_exporter), 32)
                        self.assertEqual(cb.types(), ("tls-exporter", "tls-server-end-point"))
                    else:
                        self.assertIsNone(cb.tls_exporter)
                    # tls-server-end-point: SHA-256 of our (ECDSA-SHA256-signed) certificate.
                    self.assertEqual(bytes.fromhex(r["line"][1]), hashlib.sha256(r["server_cert"]).digest())
            self.assertEqual(
                {
                    key_type(x509.load_pem_x509_certificate((self.dir / f"{k}.crt").read_bytes()))
                    for k in ("rsa", "p256", "ed25519")
                },
                {"rsa-2048", "ecdsa-p256", "ed25519"},
            )

    @needs_program("openssl", package="openssl")
    async def test_openssl_s_client(self) -> None:
        """A real command-line client: `openssl s_client` with each key type, TLS 1.2 and 1.3."""
        port = self.listen()
        for kind in ("rsa", "p256", "ed25519"):
            cert, key = make_client_cert(self.dir, kind)
            for version in ("-tls1_2", "-tls1_3"):
                argv = [
                    "openssl",
                    "s_client",
                    "-connect",
                    f"127.0.0.1:{port}",
                    "-servername",
                    "mail.example.org",
                    "-cert",
                    str(cert),
                    "-key",
                    str(key),
                    "-quiet",
                    "-ign_eof",
                    version,
                ]
                out = await deferToThread(subprocess.run, argv, input=b"", capture_output=True, timeout=20, check=False)
                await self.server_done[-1]
                line = out.stdout.decode().split()
                self.assertEqual(line[0], fingerprint_text(openssl_fingerprint(cert)), (kind, version, out.stderr))

    async def test_no_client_certificate(self) -> None:
        port = self.listen()
        r = await self.roundtrip(port, client_context(None), "mail.example.org")
        self.assertEqual(r["line"][0], "-")
        self.assertIsNone(r["server"]["cert"])

    async def test_sni_switches_certificate(self) -> None:
        port = self.listen()
        a = (self.dir / "a.crt").read_bytes()
        b = (self.dir / "b.crt").read_bytes()
        for name, expected in [
            ("mail.example.org", a),
            ("other.example.net", b),
            ("OTHER.example.net", b),
            ("x.wild.example", b),
            ("unknown.example", a),
        ]:
            r = await self.roundtrip(port, client_context(None), name)
            self.assertEqual(r["server_cert"], ssl.PEM_cert_to_DER_cert(expected.decode()), name)
            self.assertEqual(
                bytes.fromhex(r["line"][1]), server_end_point_hash(x509.load_pem_x509_certificate(expected))
            )

    async def test_tls12_resumption_with_client_cert(self) -> None:
        port = self.listen()
        client = make_client_cert(self.dir, "p256")
        ctx = client_context(client, ssl.TLSVersion.TLSv1_2)
        first = await self.roundtrip(port, ctx, "mail.example.org")
        second = await self.roundtrip(port, ctx, "mail.example.org", session=first["session"])
        self.assertTrue(second["reused"])
        self.assertEqual(second["line"][0], first["line"][0])

    async def test_tls11_refused(self) -> None:
        port = self.listen()
        ctx = client_context(None)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx.minimum_version = ssl.TLSVersion.TLSv1
            ctx.maximum_version = ssl.TLSVersion.TLSv1_1
        ctx.set_ciphers("ALL:@SECLEVEL=0")
        with self.assertRaises((ssl.SSLError, OSError)):
            await deferToThread(tls_client, port, ctx, "mail.example.org")
        await self.server_done[-1]


def test_fingerprint_text_roundtrip() -> None:
    fp = hashlib.sha256(b"x").digest()
    text = fingerprint_text(fp)
    assert len(text) == 43 and "=" not in text
    assert parse_fingerprint_text(text) == fp
    for bad in ["", "abc", text + "A", text[:-1] + "!"]:
        try:
            parse_fingerprint_text(bad)
        except ValueError:
            continue
        raise AssertionError(bad)


def test_generate_self_signed_key_mode(tmp_path: Path) -> None:
    cert = generate_self_signed(["localhost"], tmp_path / "c.pem", tmp_path / "k.pem", key_kind="rsa")
    assert stat.S_IMODE((tmp_path / "k.pem").stat().st_mode) == 0o600
    assert key_type(cert) == "rsa-2048"
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]


@implementer(IHandshakeListener)
class ClientSide(Protocol):
    def __init__(self, done: Deferred[dict[str, Any]]) -> None:
        self.done = done
        self.info: dict[str, Any] = {"data": b"", "handshake": False}

    def handshakeCompleted(self) -> None:
        self.info["handshake"] = True
        self.info["cb"] = channel_bindings(self.transport, server_side=False)
        self.info["server_cert"] = peer_certificate(self.transport)

    def dataReceived(self, data: bytes) -> None:
        self.info["data"] += data

    def connectionLost(self, reason: Any = None) -> None:
        self.done.callback(self.info)


class ClientOptionsTests(TLSServerFixture):
    """client_tls_options against TLSContexts."""

    async def connect(self, port: int, creator: Any) -> dict[str, Any]:
        from twisted.internet.endpoints import TCP4ClientEndpoint, wrapClientTLS

        done: Deferred[dict[str, Any]] = Deferred()
        factory = Factory()
        factory.buildProtocol = lambda addr: ClientSide(done)  # type: ignore[method-assign, assignment, return-value]
        endpoint = wrapClientTLS(creator, TCP4ClientEndpoint(R, "127.0.0.1", port))
        await endpoint.connect(factory)
        info = await done
        info["server"] = await self.server_done[-1]
        return info

    @needs_program("openssl", package="openssl")
    async def test_verified_with_client_certificate(self) -> None:
        port = self.listen()
        client = make_client_cert(self.dir, "p256")
        creator = client_tls_options("mail.example.org", verify=True, ca_file=self.dir / "a.crt", client_cert=client)
        info = await self.connect(port, creator)
        self.assertTrue(info["handshake"])
        self.assertEqual(info["data"].split()[0].decode(), fingerprint_text(openssl_fingerprint(client[0])))
        # Both ends derive the same channel bindings.
        self.assertEqual(info["cb"], info["server"]["cb"])
        self.assertIsNotNone(info["cb"].tls_exporter)
        self.assertEqual(
            spki_fingerprint(info["server_cert"]),
            spki_fingerprint(x509.load_pem_x509_certificate((self.dir / "a.crt").read_bytes())),
        )

    async def test_verification_failures(self) -> None:
        port = self.listen()
        # Wrong name for the certificate, and an untrusted certificate.
        for creator in [
            client_tls_options("wrong.example.org", verify=True, ca_file=self.dir / "a.crt"),
            client_tls_options("mail.example.org", verify=True, ca_file=self.dir / "b.crt"),
        ]:
            info = await self.connect(port, creator)
            self.assertFalse(info["handshake"])
            self.assertEqual(info["data"], b"")
            await self.server_done[-1]

    @needs_program("openssl", package="openssl")
    async def test_unverified_opportunistic(self) -> None:
        port = self.listen()
        info = await self.connect(port, client_tls_options("other.example.net", verify=False))
        self.assertTrue(info["handshake"])
        self.assertEqual(info["data"].split()[0], b"-")
        client = make_client_cert(self.dir, "rsa")
        with_cert = await self.connect(port, client_tls_options("x", verify=False, client_cert=client))
        self.assertEqual(with_cert["data"].split()[0].decode(), fingerprint_text(openssl_fingerprint(client[0])))
        # SNI was sent: the server chose the other.example.net certificate.
        self.assertEqual(
            info["server_cert"].public_bytes(serialization.Encoding.PEM), (self.dir / "b.crt").read_bytes()
        )
