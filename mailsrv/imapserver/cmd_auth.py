"""LOGIN and AUTHENTICATE (RFC 9051 §6.2.2, §6.2.3; SASL-IR RFC 4959).

Failures are counted by the server's `LoginRateLimiter` per remote IP and login name.
What the peer learns: NO [AUTHENTICATIONFAILED] for wrong credentials, NO [UNAVAILABLE]
when the backend cannot answer (TemporaryAuthFailure) or too many attempts failed, and
nothing else. Plaintext passwords are refused before TLS when `login_disabled_without_tls`
(RFC 9051 §6.2.3 LOGINDISABLED; PRIVACYREQUIRED code).
"""

from __future__ import annotations

import base64
import binascii
from typing import TYPE_CHECKING

from mailsrv.auth.interfaces import (
    AuthError,
    LoginIdentity,
    MechanismUnavailable,
    RateLimited,
    TemporaryAuthFailure,
)
from mailsrv.imapserver.commandreader import CommandRefused
from mailsrv.imapserver.commands import NOT_AUTHENTICATED_ONLY, Command, Reply, command
from mailsrv.imapserver.errors import SyntaxError_, UserError
from mailsrv.sasl import Challenge, SASLAborted, SASLError, Success, advertised_mechanisms, make_server_mechanism
from mailsrv.tlsutil import ChannelBindings, channel_bindings

if TYPE_CHECKING:
    from mailsrv.imapserver.session import Session


def sasl_mechanism_names(session: Session) -> list[str]:
    """AUTH= mechanisms for this connection, strongest first (see mailsrv.sasl.server)."""
    return advertised_mechanisms(
        tls_active=session.tls_active,
        stored_secrets=session.server.accounts.supports_stored_secrets(),
        # EXTERNAL waits for the TLS client-certificate issue to provide the identity lookup.
        has_client_cert=session.external_identity is not None and session.peer_certificate is not None,
        allow_plaintext=not session.login_disabled,
    )


def _auth_failure(session: Session, error: Exception, login: str | None) -> UserError:
    """Turns an authentication outcome into the NO the peer sees, counting failures."""
    if isinstance(error, TemporaryAuthFailure):
        session.log.warn("authentication backend unavailable: {error}", error=str(error))
        return UserError("authentication temporarily unavailable", "UNAVAILABLE")
    if isinstance(error, RateLimited):
        session.log.warn("login rate-limited: {error}", error=str(error))
        return UserError("too many failed logins, try later", "UNAVAILABLE")
    session.server.rate_limiter.record_failure(session.peer_ip, login)
    session.log.info("authentication failed for {login}", login=login or "?")
    if isinstance(error, MechanismUnavailable):
        return UserError("this mechanism cannot be used for this account", "AUTHENTICATIONFAILED")
    return UserError("authentication failed", "AUTHENTICATIONFAILED")


def _logged_in(session: Session, identity: LoginIdentity, login: str | None) -> Reply:
    key = session.client_key
    if key is not None and identity.account != key.identity.account:
        # A registered client certificate binds the connection to its account: credentials
        # of another account are refused, and counted like a wrong password.
        session.server.rate_limiter.record_failure(session.peer_ip, login)
        raise UserError("credentials do not belong to the client certificate's account", "AUTHENTICATIONFAILED")
    session.server.rate_limiter.record_success(session.peer_ip, login)
    session.logged_in(identity)
    # RFC 9051 §6.2.3: the OK may carry the new capabilities, sparing a round trip.
    return Reply("logged in", "CAPABILITY " + " ".join(session.capabilities()))


@command("LOGIN", NOT_AUTHENTICATED_ONLY)
async def login(session: Session, cmd: Command) -> Reply | None:
    r = cmd.reader
    user = r.astring()
    r.sp()
    password = r.astring()
    r.end()
    if session.login_disabled:
        raise UserError("LOGIN is disabled before STARTTLS", "PRIVACYREQUIRED")
    try:
        session.server.rate_limiter.check(session.peer_ip, user)
        identity = await session.server.accounts.check_password(user, password)
    except AuthError as e:
        raise _auth_failure(session, e, user) from None
    return _logged_in(session, identity, user)


def _b64decode(data: bytes) -> bytes:
    if data == b"=":
        return b""
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise SyntaxError_("invalid base64") from None


@command("AUTHENTICATE", NOT_AUTHENTICATED_ONLY)
async def authenticate(session: Session, cmd: Command) -> Reply | None:
    r = cmd.reader
    name = r.keyword()
    initial: bytes | None = None
    if not r.at_end():
        r.sp()
        initial = _b64decode(r.rest())  # SASL-IR, RFC 4959: "=" is an empty response
    r.end()
    offered = sasl_mechanism_names(session)
    if name not in offered:
        if session.login_disabled and name in ("PLAIN", "LOGIN"):
            raise UserError("plaintext authentication is disabled before STARTTLS", "PRIVACYREQUIRED")
        raise UserError(f"mechanism {name} not available", "CANNOT")
    bindings = channel_bindings(session.transport) if session.tls_active else ChannelBindings()
    mech = None
    try:
        session.server.rate_limiter.check(session.peer_ip, None)
        mech = make_server_mechanism(
            name,
            session.server.accounts,
            bindings,
            hostname=str(session.server.config.hostname),
            external_identity=session.external_identity,
            fake_salt_key=session.sasl_fake_salt_key,
            offered=offered,
            # Per-account rate limiting as soon as the mechanism knows the login name.
            check_login=lambda login: session.server.rate_limiter.check(session.peer_ip, login),
        )
        step = await mech.start(initial)
        while isinstance(step, Challenge):
            step = await mech.respond(await _client_response(session, step.data))
        assert isinstance(step, Success)
        if step.final_data is not None:
            # RFC 9051 §6.2.2: additional data with success goes in a last challenge, which
            # the client answers with an empty line.
            if await _client_response(session, step.final_data) != b"":
                raise SASLError("expected an empty response")
    except SASLAborted:
        raise SyntaxError_("AUTHENTICATE cancelled") from None
    except SASLError as e:
        session.server.rate_limiter.record_failure(session.peer_ip, mech.login_name if mech else None)
        raise SyntaxError_(str(e) or "bad SASL exchange") from None
    except AuthError as e:
        raise _auth_failure(session, e, mech.login_name if mech else None) from None
    return _logged_in(session, step.identity, mech.login_name)


async def _client_response(session: Session, challenge: bytes) -> bytes:
    session.write_continuation(base64.b64encode(challenge))
    event = await session.read_line()
    if isinstance(event, CommandRefused):
        raise SASLError("response too long")
    if event.data == b"*":
        raise SASLAborted("cancelled")  # RFC 4422 §3.5, RFC 9051 §6.2.2
    return _b64decode(event.data) if event.data else b""
