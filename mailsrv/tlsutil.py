"""TLS for every listener and for our SMTP client: contexts, client certificates,
fingerprints and SASL channel bindings.

Server side (`TLSContexts`): one pyOpenSSL context per configured key pair, chosen by SNI
hostname (the first pair is the default). TLS 1.2 is the minimum. A client certificate
is requested but neither required nor verified against any CA: whoever presents one is
identified by the SHA-256 of its SubjectPublicKeyInfo, looked up among registered keys
(`mailsrv.auth.credentials`). The same object serves implicit TLS
(`SSL4ServerEndpoint`/`TLSMemoryBIOFactory`) and STARTTLS (`transport.startTLS(...)`).

Facts callers rely on:
- The peer certificate is only known once the handshake completed (TLS 1.3 sends it
  late): read `peer_certificate(transport)` from `IHandshakeListener.handshakeCompleted`.
- `set_session_id()` is set on every context: without it TLS 1.2 resumption fails with
  an internal-error alert when client certificates are requested.
- Fingerprints appear in one text format everywhere: base64url without padding
  (`fingerprint_text`).
- Channel bindings (RFC 5056) for SCRAM-*-PLUS: tls-exporter (RFC 9266) only on TLS 1.3
  (on TLS 1.2 it is only safe with extended master secret, which pyOpenSSL cannot report),
  and tls-server-end-point (RFC 5929 §4.1) from our certificate's hash.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.x509.oid import NameOID
from OpenSSL import SSL, crypto
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator, IOpenSSLServerConnectionCreator
from twisted.internet.ssl import Certificate, optionsForClientTLS
from twisted.logger import Logger
from zope.interface import implementer

from mailsrv.config.types import TLSKeyPair

log = Logger()

# RFC 9266 §2: label and length of the tls-exporter channel binding.
TLS_EXPORTER_LABEL = b"EXPORTER-Channel-Binding"
TLS_EXPORTER_LENGTH = 32

ChannelBindingType = Literal["tls-exporter", "tls-server-end-point"]


class TLSConfigError(Exception):
    """A key pair cannot be loaded; the message names the files."""


# --- Fingerprints ----------------------------------------------------------------------
def _to_cryptography(cert: x509.Certificate | crypto.X509) -> x509.Certificate:
    if isinstance(cert, crypto.X509):
        return cert.to_cryptography()
    return cert


def spki_fingerprint(cert: x509.Certificate | crypto.X509) -> bytes:
    """SHA-256 of the certificate's DER SubjectPublicKeyInfo (32 bytes); equals
    `openssl x509 -pubkey -noout | openssl pkey -pubin -outform DER | sha256sum`."""
    spki = (
        _to_cryptography(cert)
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return hashlib.sha256(spki).digest()


def fingerprint_text(fingerprint: bytes) -> str:
    """The one text format for fingerprints: base64url without padding (43 characters)."""
    return base64.urlsafe_b64encode(fingerprint).rstrip(b"=").decode("ascii")


def parse_fingerprint_text(text: str) -> bytes:
    """Inverse of `fingerprint_text`. Raises ValueError for anything but 32 bytes."""
    text = text.strip()
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError):
        raise ValueError("not a base64url fingerprint") from None
    if len(raw) != 32 or fingerprint_text(raw) != text:
        raise ValueError("not a SHA-256 base64url fingerprint")
    return raw


def load_pem_certificate(data: bytes | str) -> x509.Certificate:
    """The first certificate of a PEM text (e.g. pasted by a user registering a client
    certificate). Raises ValueError with a reason safe to show."""
    raw = data.encode("ascii", "replace") if isinstance(data, str) else data
    try:
        certs = x509.load_pem_x509_certificates(raw)
    except ValueError:
        raise ValueError("not a PEM certificate (expected -----BEGIN CERTIFICATE-----)") from None
    if not certs:
        raise ValueError("no certificate found")
    return certs[0]


def key_type(cert: x509.Certificate | crypto.X509) -> str:
    """A short name of the public key type ("rsa-2048", "ecdsa-p256", "ed25519", ...)."""
    key = _to_cryptography(cert).public_key()
    if isinstance(key, rsa.RSAPublicKey):
        return f"rsa-{key.key_size}"
    if isinstance(key, ec.EllipticCurvePublicKey):
        curve = {"secp256r1": "p256", "secp384r1": "p384", "secp521r1": "p521"}.get(key.curve.name)
        return f"ecdsa-{curve or key.curve.name}"
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "ed25519"
    if isinstance(key, ed448.Ed448PublicKey):
        return "ed448"
    return type(key).__name__


# --- Transports ------------------------------------------------------------------------
def tls_connection(transport: Any) -> SSL.Connection | None:
    """The pyOpenSSL connection under a Twisted transport (implicit TLS, or after
    startTLS), or None for a plaintext transport."""
    get_handle = getattr(transport, "getHandle", None)
    if get_handle is None:
        return None
    try:
        handle = get_handle()
    except Exception:
        return None
    return handle if isinstance(handle, SSL.Connection) else None


def peer_certificate(transport: Any) -> x509.Certificate | None:
    """The certificate the peer presented, or None (no TLS, no certificate, or handshake
    not yet complete)."""
    conn = tls_connection(transport)
    if conn is None:
        return None
    cert = conn.get_peer_certificate()
    return None if cert is None else cert.to_cryptography()


@dataclass(frozen=True)
class ChannelBindings:
    """The channel binding data of one TLS connection, by RFC 5056 type name."""

    tls_exporter: bytes | None = None
    tls_server_end_point: bytes | None = None

    def get(self, cb_type: str) -> bytes | None:
        if cb_type == "tls-exporter":
            return self.tls_exporter
        if cb_type == "tls-server-end-point":
            return self.tls_server_end_point
        return None

    def types(self) -> tuple[str, ...]:
        """Available types, most preferred first (RFC 9266 §3: tls-exporter)."""
        out: list[str] = []
        if self.tls_exporter is not None:
            out.append("tls-exporter")
        if self.tls_server_end_point is not None:
            out.append("tls-server-end-point")
        return tuple(out)

    def __bool__(self) -> bool:
        return bool(self.types())


def server_end_point_hash(cert: x509.Certificate | crypto.X509) -> bytes:
    """RFC 5929 §4.1: the certificate hashed with its signature's hash function, SHA-256
    when that is MD5 or SHA-1. Signatures without a separate hash (Ed25519/Ed448) are
    not covered by the RFC; SHA-256 is used, as other implementations do."""
    c = _to_cryptography(cert)
    der = c.public_bytes(serialization.Encoding.DER)
    algorithm = c.signature_hash_algorithm
    if algorithm is None or isinstance(algorithm, hashes.MD5 | hashes.SHA1):
        algorithm = hashes.SHA256()
    digest = hashes.Hash(algorithm)
    digest.update(der)
    return digest.finalize()


def channel_bindings(transport: Any, server_side: bool = True) -> ChannelBindings:
    """The channel bindings of a TLS transport (empty for plaintext). tls-server-end-point
    hashes the server's certificate: ours on the server side, the peer's on a client."""
    conn = tls_connection(transport)
    if conn is None:
        return ChannelBindings()
    exporter: bytes | None = None
    if conn.get_protocol_version_name() == "TLSv1.3":
        try:
            exporter = conn.export_keying_material(TLS_EXPORTER_LABEL, TLS_EXPORTER_LENGTH, None)
        except SSL.Error:
            exporter = None
    cert = conn.get_certificate() if server_side else conn.get_peer_certificate()
    end_point = server_end_point_hash(cert) if cert is not None else None
    return ChannelBindings(tls_exporter=exporter, tls_server_end_point=end_point)


# --- Server contexts -------------------------------------------------------------------
def _accept_any_certificate(conn: SSL.Connection, cert: crypto.X509, errno: int, depth: int, ok: int) -> bool:
    # No CA: any client certificate is accepted here and identified by its public key later.
    return True


def _hostnames_of(cert: x509.Certificate) -> list[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        return [n.lower() for n in san.get_values_for_type(x509.DNSName)]
    except x509.ExtensionNotFound:
        cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        return [str(cns[0].value).lower()] if cns else []


@dataclass
class _LoadedPair:
    context: SSL.Context
    certificate: x509.Certificate
    hostnames: list[str]


# OpenSSL cipher string for the server's TLS 1.2 suites: ECDHE with AES-GCM or ChaCha20.
SERVER_TLS12_CIPHERS = b"ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL:!eNULL"


@implementer(IOpenSSLServerConnectionCreator)
class TLSContexts:
    """Server TLS contexts for the configured key pairs, switched by SNI."""

    def __init__(self, keypairs: Sequence[TLSKeyPair]) -> None:
        if not keypairs:
            raise TLSConfigError("no TLS key pair configured")
        self._keypairs = tuple(keypairs)
        self._pairs: list[_LoadedPair] = [self._load(kp) for kp in self._keypairs]

    def reload(self) -> None:
        """Re-reads every key pair (e.g. after certificate renewal). On error the old
        contexts stay in use and TLSConfigError is raised."""
        self._pairs = [self._load(kp) for kp in self._keypairs]

    def _load(self, kp: TLSKeyPair) -> _LoadedPair:
        ctx = SSL.Context(SSL.TLS_METHOD)
        ctx.set_min_proto_version(SSL.TLS1_2_VERSION)
        ctx.set_options(SSL.OP_NO_COMPRESSION | SSL.OP_CIPHER_SERVER_PREFERENCE)
        # TLS 1.2: forward-secret AEAD suites only (no CBC: Lucky13-class padding oracles,
        # no static RSA key exchange); TLS 1.3 suites are all AEAD already.
        ctx.set_cipher_list(SERVER_TLS12_CIPHERS)
        try:
            ctx.use_certificate_chain_file(str(kp.cert_file))
            ctx.use_privatekey_file(str(kp.key_file))
            ctx.check_privatekey()
        except (SSL.Error, OSError) as e:
            raise TLSConfigError(f"cannot load TLS key pair {kp.cert_file} / {kp.key_file}: {e}") from None
        # Required for TLS 1.2 session resumption when peer certificates are requested.
        ctx.set_session_id(b"mailsrv")
        ctx.set_verify(SSL.VERIFY_PEER, _accept_any_certificate)
        ctx.set_tlsext_servername_callback(self._switch_by_servername)
        cert = x509.load_pem_x509_certificates(Path(kp.cert_file).read_bytes())[0]
        names = [h.lower().rstrip(".") for h in kp.hostnames] or _hostnames_of(cert)
        return _LoadedPair(ctx, cert, names)

    def context_for(self, servername: str | None) -> SSL.Context:
        """The context whose hostnames match `servername` (exact, then "*." wildcard of one
        label), else the default (first) pair's."""
        pairs = self._pairs
        if servername:
            name = servername.lower().rstrip(".")
            for p in pairs:
                if name in p.hostnames:
                    return p.context
            parent = name.partition(".")[2]
            for p in pairs:
                if parent and f"*.{parent}" in p.hostnames:
                    return p.context
        return pairs[0].context

    def _switch_by_servername(self, conn: SSL.Connection) -> None:
        raw = conn.get_servername()
        try:
            name = raw.decode("ascii") if raw else None
        except UnicodeDecodeError:
            name = None
        ctx = self.context_for(name)
        if ctx is not conn.get_context():
            conn.set_context(ctx)

    # IOpenSSLServerConnectionCreator: used by TLSMemoryBIOFactory (implicit TLS) and by
    # transport.startTLS (STARTTLS).
    def serverConnectionForTLS(self, tlsProtocol: object) -> SSL.Connection:
        return SSL.Connection(self._pairs[0].context, None)

    def getContext(self) -> SSL.Context:
        """Old-style context factory API (reactor.listenSSL); SNI still switches."""
        return self._pairs[0].context

    @property
    def certificates(self) -> list[x509.Certificate]:
        return [p.certificate for p in self._pairs]

    def files(self) -> list[Path]:
        """Every certificate and key file, for a watcher that reloads when one changes."""
        return [Path(f) for kp in self._keypairs for f in (kp.cert_file, kp.key_file)]


# --- Client side -----------------------------------------------------------------------
@implementer(IOpenSSLClientConnectionCreator)
class _UnverifiedClientCreator:
    """Opportunistic TLS for SMTP between MTAs (RFC 3207 §4.1 allows not verifying): SNI
    is sent, the server certificate is recorded but not verified."""

    def __init__(self, hostname: str, context: SSL.Context) -> None:
        self._hostname = hostname
        self._context = context

    def clientConnectionForTLS(self, tlsProtocol: object) -> SSL.Connection:
        conn = SSL.Connection(self._context, None)
        try:
            ascii_name = self._hostname.encode("idna")
            ipaddress.ip_address(self._hostname)
        except ValueError:
            conn.set_tlsext_host_name(ascii_name)
        except UnicodeError:
            pass
        return conn


@implementer(IOpenSSLClientConnectionCreator)
class _WithClientCertificate:
    """Adds our client certificate (leaf only) to each connection of another creator.
    Done per connection with cryptography objects: Twisted's CertificateOptions would
    pass pyOpenSSL X509/PKey objects, which pyOpenSSL deprecates."""

    def __init__(self, inner: Any, client_cert: tuple[Path, Path]) -> None:
        self._inner = inner
        self._cert = x509.load_pem_x509_certificate(Path(client_cert[0]).read_bytes())
        self._key = serialization.load_pem_private_key(Path(client_cert[1]).read_bytes(), password=None)

    def clientConnectionForTLS(self, tlsProtocol: object) -> SSL.Connection:
        conn: SSL.Connection = self._inner.clientConnectionForTLS(tlsProtocol)
        conn.use_certificate(self._cert)
        conn.use_privatekey(self._key)  # type: ignore[arg-type]
        return conn


def client_tls_options(
    hostname: str,
    verify: bool = True,
    ca_file: Path | None = None,
    client_cert: tuple[Path, Path] | None = None,
) -> Any:
    """An `IOpenSSLClientConnectionCreator` for `transport.startTLS`/`wrapClientTLS`.

    verify=True checks the chain against `ca_file` (or the platform's roots) and the
    hostname (service_identity); verify=False is opportunistic TLS. `client_cert` is a
    (cert_file, key_file) pair to present. TLS 1.2 minimum either way."""
    if verify:
        from twisted.internet import ssl as twisted_ssl

        # Twisted's ssl helpers are untyped: go through Any.
        tssl: Any = twisted_ssl
        trust: Any = tssl.platformTrust() if ca_file is None else Certificate.loadPEM(Path(ca_file).read_bytes())
        extra: dict[str, Any] = {"raiseMinimumTo": tssl.TLSVersion.TLSv1_2}
        verified = optionsForClientTLS(hostname, trustRoot=trust, extraCertificateOptions=extra)
        if client_cert is not None:
            return _WithClientCertificate(verified, client_cert)
        return verified
    ctx = SSL.Context(SSL.TLS_METHOD)
    ctx.set_min_proto_version(SSL.TLS1_2_VERSION)
    ctx.set_options(SSL.OP_NO_COMPRESSION)
    ctx.set_verify(SSL.VERIFY_NONE, _accept_any_certificate)
    if client_cert is not None:
        ctx.use_certificate_chain_file(str(client_cert[0]))
        ctx.use_privatekey_file(str(client_cert[1]))
    return _UnverifiedClientCreator(hostname, ctx)


# --- Self-signed certificates (localserve, quickstart) -----------------------------------
SelfSignableKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey


def self_signed_certificate(
    key: SelfSignableKey, common_name: str, days: int, alt_names: Sequence[x509.GeneralName] = ()
) -> x509.Certificate:
    """A minimal self-signed certificate for `key`: server certificates (with alt_names) and
    client certificates, which mailsrv identifies by the public key alone."""
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    )
    if alt_names:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(alt_names)), critical=False)
    return builder.sign(key, None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256())


def generate_self_signed(
    hostnames: Sequence[str],
    cert_path: Path | str,
    key_path: Path | str,
    key_kind: Literal["ecdsa", "rsa"] = "ecdsa",
    days: int = 3650,
) -> x509.Certificate:
    """Writes a self-signed certificate for `hostnames` (first is the subject CN) and its
    private key (PEM, file mode 0600, created that way so it is never world-readable)."""
    if not hostnames:
        raise ValueError("at least one hostname")
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
    if key_kind == "ecdsa":
        key = ec.generate_private_key(ec.SECP256R1())
    else:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    names: list[x509.GeneralName] = []
    for h in hostnames:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            names.append(x509.DNSName(h.encode("idna").decode("ascii")))
    cert = self_signed_certificate(key, hostnames[0], days, alt_names=names)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    key_path = Path(key_path)
    tmp = key_path.with_name(key_path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, key_pem)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, key_path)
    Path(cert_path).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert
