"""The one login policy: IMAP LOGIN/AUTHENTICATE, SMTP AUTH, and (to come) web sessions and
the webapi's Basic auth all log in through here.

Order, for every attempt: rate limit (the attempt is counted as a failure before any
credential is looked at) → verify (the verified-credentials cache, else the account
provider, which hashes in the thread pool) → record (a success uncounts the attempt) →
client-certificate binding (a connection that presented a registered key may only log in
as that key's account).

Protocol adapters map the typed errors: `AuthFailed` (wrong credentials; its subclasses say
more to the log, never to the peer), `RateLimited`, `TemporaryFailure`. SASL syntax errors
(`mailsrv.sasl.SASLError`, `SASLAborted`) pass through for the protocol's BAD/501; the
attempt still counts as a failure.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec
from twisted.internet.defer import Deferred

from mailsrv.auth.clientcert import ClientKeyLogin, login_for_certificate
from mailsrv.auth.interfaces import (
    AccountProvider,
    AuthError,
    LoginIdentity,
    MechanismUnavailable,
    ScramSecret,
    TemporaryAuthFailure,
)
from mailsrv.auth.interfaces import RateLimited as LimiterRefused
from mailsrv.auth.ratelimit import LoginAttempt
from mailsrv.metrics import LOGINS
from mailsrv.ops import apitokens
from mailsrv.ops.errors import AuthFailed, InvalidInput, RateLimited, TemporaryFailure
from mailsrv.ops.operation import Operation
from mailsrv.sasl import Challenge, Success, make_server_mechanism
from mailsrv.sasl.external import ExternalIdentity
from mailsrv.sasl.mechanism import ServerMechanism, Step
from mailsrv.tlsutil import ChannelBindings

if TYPE_CHECKING:
    from mailsrv.address import Address
    from mailsrv.server import Server


class MechanismNotUsable(AuthFailed):
    """The account cannot use this SASL mechanism (no stored secret for it, e.g. LDAP)."""

    code = "mechanismUnavailable"


class WrongCertificateAccount(AuthFailed):
    """Credentials of another account than the connection's registered client key."""

    code = "certificateMismatch"


@dataclass(frozen=True)
class Peer:
    """Who is logging in from where: the remote IP (rate limiting) and the registered client
    key the connection presented, if any (`certificate_login`)."""

    ip: str
    client_key: ClientKeyLogin | None = None


def fake_salt_key(server: Server) -> bytes:
    """The key of SCRAM's fake salts for unknown accounts: stored in auth.db, so it is the same
    for every listener and across restarts, and unknown accounts look like real ones."""
    return server.credentials.server_secret("scram-fake-salt")


def _begin(server: Server, peer: Peer, login: str | None) -> LoginAttempt:
    try:
        return server.rate_limiter.begin(peer.ip, login)
    except LimiterRefused as e:
        LOGINS.labels("ratelimited").inc()
        raise RateLimited(str(e), server.config.limits.login_failure_window) from None


def _as_ops_error(server: Server, error: AuthError, attempt: LoginAttempt) -> Exception:
    if isinstance(error, TemporaryAuthFailure):
        attempt.cancel()
        LOGINS.labels("temporary").inc()
        return TemporaryFailure(str(error) or "authentication backend unavailable")
    attempt.failed()
    LOGINS.labels("ratelimited" if isinstance(error, LimiterRefused) else "failed").inc()
    if isinstance(error, LimiterRefused):
        return RateLimited(str(error), server.config.limits.login_failure_window)
    if isinstance(error, MechanismUnavailable):
        return MechanismNotUsable(str(error) or "mechanism not available for this account")
    return AuthFailed(str(error) or "authentication failed")


def _bind(peer: Peer, identity: LoginIdentity, attempt: LoginAttempt) -> LoginIdentity:
    key = peer.client_key
    if key is not None and identity.account != key.identity.account:
        # A registered client certificate binds the connection to its account: credentials of
        # another account are refused, and counted like a wrong password.
        attempt.failed()
        LOGINS.labels("failed").inc()
        raise WrongCertificateAccount("credentials do not belong to the client certificate's account")
    attempt.succeeded()
    LOGINS.labels("ok").inc()
    return identity


async def verify_password(server: Server, login: str, password: str) -> LoginIdentity:
    """The identity for a plaintext password: from the verified-credentials cache when this
    login and password were verified moments ago and the login still names the same enabled
    account, else from the account provider (argon2 or an LDAP bind, off the reactor).
    Fails with the provider's AuthError."""
    cache = server.login_cache
    if cache is not None:
        cached = cache.get(login, password)
        if cached is not None:
            current = await server.accounts.resolve_login(login)
            if current is not None and current.account == cached.account:
                return current
            cache.forget(login, password)
    epoch = cache.epoch if cache is not None else 0
    identity = await server.accounts.check_password(login, password)
    if cache is not None:
        cache.put(login, password, identity, epoch)
    return identity


async def password_login(server: Server, peer: Peer, login: str, password: str) -> LoginIdentity:
    """IMAP LOGIN, web session login, webapi Basic auth: the whole policy for a name and a
    password. Raises AuthFailed, RateLimited or TemporaryFailure."""
    attempt = _begin(server, peer, login)
    try:
        identity = await verify_password(server, login, password)
    except AuthError as e:
        raise _as_ops_error(server, e, attempt) from None
    except BaseException:
        attempt.failed()
        raise
    return _bind(peer, identity, attempt)


async def token_login(server: Server, peer: Peer, login: str, token: str) -> LoginIdentity:
    """Webapi Basic auth with an API token as the password (mailsrv/ops/apitokens.py): the same
    rate limits as a password, no hashing beyond one HMAC. Raises AuthFailed or RateLimited."""
    attempt = _begin(server, peer, login)
    try:
        identity = await apitokens.verify(server, login, token)
    except AuthError as e:
        raise _as_ops_error(server, e, attempt) from None
    except BaseException:
        attempt.failed()
        raise
    return _bind(peer, identity, attempt)


class _CachedPasswords:
    """The account provider as SASL mechanisms see it: plaintext checks (PLAIN, LOGIN) go
    through the verified-credentials cache."""

    def __init__(self, server: Server) -> None:
        self._server = server
        self._accounts: AccountProvider = server.accounts

    def check_password(self, username: str, password: str) -> Deferred[LoginIdentity]:
        return Deferred.fromCoroutine(verify_password(self._server, username, password))

    def resolve_login(self, username: str) -> Deferred[LoginIdentity | None]:
        return self._accounts.resolve_login(username)

    def scram_secret(self, username: str, hash_name: str) -> Deferred[tuple[LoginIdentity, ScramSecret]]:
        return self._accounts.scram_secret(username, hash_name)

    def cram_md5_secret(self, username: str) -> Deferred[tuple[LoginIdentity, bytes]]:
        return self._accounts.cram_md5_secret(username)

    def login_for_account(self, account: str, address: Address | None = None) -> Deferred[LoginIdentity | None]:
        return self._accounts.login_for_account(account, address)

    def account_for_address(self, address: Address) -> Deferred[str | None]:
        return self._accounts.account_for_address(address)

    def supports_stored_secrets(self) -> bool:
        return self._accounts.supports_stored_secrets()


class SASLLogin:
    """One SASL exchange (IMAP AUTHENTICATE, SMTP AUTH) under the policy.

    Building it chooses the mechanism (SASLError when `name` is unknown or not offered:
    nothing is counted) and then begins the attempt (RateLimited when the peer has no guess
    left). The protocol feeds the client's messages to `start`/`respond` until a `Success`,
    then calls `finish`; `abort` when the client cancels or goes away. Until `finish`
    succeeds, the attempt counts as a failure: an exchange abandoned after the SCRAM salt is
    one."""

    def __init__(
        self,
        server: Server,
        peer: Peer,
        name: str,
        channel_bindings: ChannelBindings,
        *,
        offered: list[str],
        external_identity: ExternalIdentity | None = None,
    ) -> None:
        self._server = server
        self._peer = peer
        self._attempt: LoginAttempt | None = None
        provider: Any = _CachedPasswords(server)
        self.mechanism: ServerMechanism = make_server_mechanism(
            name,
            provider,
            channel_bindings,
            hostname=server.config.hostname.ascii,
            external_identity=external_identity,
            fake_salt_key=fake_salt_key(server),
            offered=offered,
            check_login=self._named,
        )
        self._attempt = _begin(server, peer, None)

    @property
    def login_name(self) -> str | None:
        return self.mechanism.login_name

    def _named(self, login: str) -> None:
        # Called by the mechanism with the authcid, before any credential is checked.
        assert self._attempt is not None
        self._attempt.name(login)

    async def _step(self, d: Deferred[Step]) -> Step:
        assert self._attempt is not None
        try:
            return await d
        except AuthError as e:
            raise _as_ops_error(self._server, e, self._attempt) from None

    async def start(self, initial: bytes | None) -> Challenge | Success:
        return await self._step(self.mechanism.start(initial))

    async def respond(self, data: bytes) -> Challenge | Success:
        return await self._step(self.mechanism.respond(data))

    def finish(self, success: Success) -> LoginIdentity:
        """The logged-in identity, once the client accepted the server's last message."""
        assert self._attempt is not None
        return _bind(self._peer, success.identity, self._attempt)

    def abort(self) -> None:
        """The client cancelled or went away: the attempt stays counted."""
        if self._attempt is not None:
            self._attempt.failed()


def account_active(server: Server, account: str) -> bool:
    """Whether a logged-in session of `account` may go on (web sessions check it on every call):
    False once the account is disabled or removed. Accounts from an LDAP directory are not in the
    dynamic config; they count as active here (the directory is asked at the next login)."""
    config = server.dynamic.current.accounts.get(account)
    if config is None:
        return server.config.ldap is not None
    return not config.disabled


class ResetRateLimit(msgspec.Struct, kw_only=True):
    """Which failure counters to forget: of an IP (its own and its per-account ones), of an
    account from every IP (a login name, normalised), of one pair, or all when neither."""

    ip: str | None = None
    account: str | None = None


class RateLimitReset(msgspec.Struct, kw_only=True):
    dropped: int  # counters forgotten


def reset_rate_limit(server: Server, req: ResetRateLimit) -> RateLimitReset:
    """`mailsrv ratelimit reset`: lets a locked-out user (or address) in again at once."""
    if req.ip is not None:
        try:
            ipaddress.ip_address(req.ip)
        except ValueError:
            raise InvalidInput(f"invalid IP address {req.ip!r}", "ip") from None
    return RateLimitReset(dropped=server.rate_limiter.reset(ip=req.ip, account=req.account or None))


OPERATIONS = (
    Operation(
        "ratelimit.reset", reset_rate_limit, ResetRateLimit, summary="forget failed logins of an IP and/or account"
    ),
)


def certificate_login(
    server: Server, certificate: Any, peer_ip: str, connection: str
) -> Deferred[ClientKeyLogin | None]:
    """The registered key and identity for a peer's TLS client certificate (None when it has
    none, or its key is not registered or its account may not log in: counted as a failed
    login from `peer_ip`). Fails with TemporaryAuthFailure when the provider cannot answer."""
    return login_for_certificate(
        server.credentials, server.accounts, server.rate_limiter.record_failure, certificate, peer_ip, connection
    )
