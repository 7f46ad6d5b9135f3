# mypy: disable-error-code="no-untyped-call"
# (Twisted services are unannotated; calling them is fine.)
"""Certificates from an ACME CA (RFC 8555, e.g. Let's Encrypt) for the server's host names,
renewed automatically, with the protocol done by `acme`/`josepy` (certbot's libraries).

The HTTP-01 challenge (RFC 8555 §8.3) is answered by the HTTP listener on port 80 at
`/.well-known/acme-challenge/<token>` (`ChallengeResponses`, looked up by the web site). The
`acme` client is blocking (requests): each run happens in the reactor's thread pool. The new
key and chain replace the first `[[tls]]` pair's files atomically, then the TLS contexts are
reloaded (mailsrv/certreload.py): connections are not dropped. A run is due when the
certificate is missing, does not cover every name, or expires within RENEW_BEFORE.
"""

from __future__ import annotations

import datetime
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from twisted.application.internet import TimerService
from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger

log = Logger()

RENEW_BEFORE = datetime.timedelta(days=30)  # Let's Encrypt's certificates last 90 days
CHECK_SECONDS = 12 * 3600.0
CHALLENGE_PATH = b"/.well-known/acme-challenge/"


class ChallengeResponses:
    """HTTP-01 key authorizations by token, written by the ACME run (a pool thread) and read
    by the HTTP listener (the reactor thread)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_token: dict[str, str] = {}

    def add(self, token: str, key_authorization: str) -> None:
        with self._lock:
            self._by_token[token] = key_authorization

    def remove(self, token: str) -> None:
        with self._lock:
            self._by_token.pop(token, None)

    def get(self, token: str) -> str | None:
        with self._lock:
            return self._by_token.get(token)


def serve_challenge(responses: ChallengeResponses | None, request: Any) -> bytes | None:
    """The body for an HTTP-01 validation request (status set on `request`), or None when
    the request is not for the challenge path."""
    path: bytes = request.path
    if not path.startswith(CHALLENGE_PATH):
        return None
    token = path[len(CHALLENGE_PATH) :].decode("ascii", "replace")
    value = responses.get(token) if responses is not None else None
    if value is None:
        request.setResponseCode(404)
        return b"no such challenge\n"
    request.setHeader(b"content-type", b"application/octet-stream")
    return value.encode("ascii")


@dataclass(frozen=True)
class ACMESettings:
    directory_url: str
    hostnames: tuple[str, ...]
    account_key_file: Path
    cert_file: Path
    key_file: Path
    email: str | None = None


def renewal_due(cert_file: Path, hostnames: tuple[str, ...], now: datetime.datetime) -> str | None:
    """Why a certificate must be obtained now, or None when the one in `cert_file` will do."""
    try:
        cert = x509.load_pem_x509_certificates(cert_file.read_bytes())[0]
    except (OSError, ValueError):
        return "no certificate"
    try:
        names = set(
            cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
        )
    except x509.ExtensionNotFound:
        names = set()
    missing = [h for h in hostnames if h not in names]
    if missing:
        return f"not valid for {', '.join(missing)}"
    if cert.issuer == cert.subject:
        return "self-signed"
    if cert.not_valid_after_utc - now < RENEW_BEFORE:
        return f"expires {cert.not_valid_after_utc:%Y-%m-%d}"
    return None


def _account_key(path: Path) -> Any:
    from josepy.jwk import JWKRSA

    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), None)
    else:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        _write_private(
            path,
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            ),
        )
    return JWKRSA(key=key)


def _write_private(path: Path, data: bytes) -> None:
    from mailsrv.config.dynamic import write_atomically

    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_atomically(path, data)
    path.chmod(0o600)


def obtain_certificate(settings: ACMESettings, responses: ChallengeResponses, timeout: float = 300.0) -> None:
    """Runs one order for `settings.hostnames` (blocking) and writes the key and chain."""
    from acme import challenges, client, crypto_util, errors, messages

    account_key = _account_key(settings.account_key_file)
    net = client.ClientNetwork(account_key, user_agent="mailsrv", timeout=60)
    directory = client.ClientV2.get_directory(settings.directory_url, net)
    acme = client.ClientV2(directory, net)
    registration = messages.NewRegistration.from_data(email=settings.email, terms_of_service_agreed=True)
    try:
        acme.new_account(registration)
    except errors.ConflictError as e:  # this key has an account already: use it
        net.account = messages.RegistrationResource(uri=e.location, body=messages.Registration())
    key = ec.generate_private_key(ec.SECP256R1())
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    order = acme.new_order(crypto_util.make_csr(key_pem, list(settings.hostnames)))
    tokens: list[str] = []
    try:
        for authorization in order.authorizations:
            if authorization.body.status == messages.STATUS_VALID:
                continue
            challenge = next((c for c in authorization.body.challenges if isinstance(c.chall, challenges.HTTP01)), None)
            if challenge is None:
                raise errors.Error(f"no http-01 challenge for {authorization.body.identifier.value}")
            response, validation = challenge.response_and_validation(account_key)
            token = challenge.chall.encode("token")
            responses.add(token, validation)
            tokens.append(token)
            acme.answer_challenge(challenge, response)
        deadline = datetime.datetime.now() + datetime.timedelta(seconds=timeout)
        order = acme.poll_and_finalize(order, deadline)
    finally:
        for token in tokens:
            responses.remove(token)
    # The key first: a reload between the two writes fails check_privatekey and keeps the old pair.
    _write_private(settings.key_file, key_pem)
    _write_private(settings.cert_file, order.fullchain_pem.encode("ascii"))


class ACMEService(TimerService):
    """Checks at start and every CHECK_SECONDS; obtains a certificate when one is due, then
    calls `installed` (the TLS reload)."""

    def __init__(self, reactor: Any, settings: ACMESettings, responses: ChallengeResponses, installed: Any) -> None:
        super().__init__(CHECK_SECONDS, self.check)
        self.clock = reactor
        self.reactor = reactor
        self.settings = settings
        self.responses = responses
        self.installed = installed
        self.setName("acme")

    def check(self) -> Deferred[None] | None:
        now = datetime.datetime.now(datetime.UTC)
        why = renewal_due(self.settings.cert_file, self.settings.hostnames, now)
        if why is None:
            return None
        names = ", ".join(self.settings.hostnames)
        log.info("ACME: ordering a certificate for {names} ({why})", names=names, why=why)
        d = deferToThreadPool(
            self.reactor, self.reactor.getThreadPool(), obtain_certificate, self.settings, self.responses
        )

        def done(_: None) -> None:
            log.info("ACME: certificate for {names} obtained", names=names)
            self.installed("ACME")

        def failed(f: Any) -> None:
            # Logged and tried again at the next check; the current certificate stays.
            log.error("ACME: no certificate for {names}: {error}", names=names, error=f.getErrorMessage())

        d.addCallbacks(done, failed)
        return d
