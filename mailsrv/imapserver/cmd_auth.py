"""LOGIN and AUTHENTICATE (RFC 9051 §6.2.2, §6.2.3; SASL-IR RFC 4959): a thin adapter over
the login policy (`mailsrv.ops.login`: rate limit, verify, record, client-certificate
binding).

What the peer learns: NO [AUTHENTICATIONFAILED] for wrong credentials, NO [UNAVAILABLE]
when the backend cannot answer or too many attempts failed, and nothing else. Plaintext
passwords are refused before TLS when `login_disabled_without_tls` (RFC 9051 §6.2.3
LOGINDISABLED; PRIVACYREQUIRED code).
"""

from __future__ import annotations

import base64
import binascii
from typing import TYPE_CHECKING

from mailsrv.auth.interfaces import LoginIdentity
from mailsrv.imapserver.commandreader import CommandRefused
from mailsrv.imapserver.commands import NOT_AUTHENTICATED_ONLY, Command, Reply, command
from mailsrv.imapserver.errors import SyntaxError_, UserError
from mailsrv.ops import login as login_ops
from mailsrv.ops.errors import AuthFailed, OpsError, RateLimited, TemporaryFailure
from mailsrv.sasl import Challenge, SASLAborted, SASLError, advertised_mechanisms
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


def _peer(session: Session) -> login_ops.Peer:
    return login_ops.Peer(session.peer_ip, session.client_key)


def _refusal(session: Session, error: OpsError, login: str | None) -> UserError:
    """The NO the peer sees for a refused login."""
    if isinstance(error, TemporaryFailure):
        session.log.warn("authentication backend unavailable: {error}", error=error.message)
        return UserError("authentication temporarily unavailable", "UNAVAILABLE")
    if isinstance(error, RateLimited):
        session.log.warn("login rate-limited: {error}", error=error.message)
        return UserError("too many failed logins, try later", "UNAVAILABLE")
    session.log.info("authentication failed for {login}: {error}", login=login or "?", error=error.message)
    if isinstance(error, login_ops.MechanismNotUsable):
        return UserError("this mechanism cannot be used for this account", "AUTHENTICATIONFAILED")
    if isinstance(error, login_ops.WrongCertificateAccount):
        return UserError("credentials do not belong to the client certificate's account", "AUTHENTICATIONFAILED")
    return UserError("authentication failed", "AUTHENTICATIONFAILED")


def _logged_in(session: Session, identity: LoginIdentity) -> Reply:
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
        identity = await login_ops.password_login(session.server, _peer(session), user, password)
    except (AuthFailed, RateLimited, TemporaryFailure) as e:
        raise _refusal(session, e, user) from None
    return _logged_in(session, identity)


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
    exchange: login_ops.SASLLogin | None = None
    try:
        exchange = login_ops.SASLLogin(
            session.server,
            _peer(session),
            name,
            bindings,
            offered=offered,
            external_identity=session.external_identity,
        )
        step = await exchange.start(initial)
        while isinstance(step, Challenge):
            step = await exchange.respond(await _client_response(session, step.data))
        if step.final_data is not None:
            # RFC 9051 §6.2.2: additional data with success goes in a last challenge, which
            # the client answers with an empty line.
            if await _client_response(session, step.final_data) != b"":
                raise SASLError("expected an empty response")
        identity = exchange.finish(step)
    except SASLAborted:
        if exchange is not None:
            exchange.abort()
        raise SyntaxError_("AUTHENTICATE cancelled") from None
    except SASLError as e:
        if exchange is not None:
            exchange.abort()
        raise SyntaxError_(str(e) or "bad SASL exchange") from None
    except (AuthFailed, RateLimited, TemporaryFailure) as e:
        raise _refusal(session, e, exchange.login_name if exchange else None) from None
    except BaseException:
        # The connection went away mid-exchange (or a bug): the attempt stays counted.
        if exchange is not None:
            exchange.abort()
        raise
    return _logged_in(session, identity)


async def _client_response(session: Session, challenge: bytes) -> bytes:
    session.write_continuation(base64.b64encode(challenge))
    event = await session.read_line()
    if isinstance(event, CommandRefused):
        raise SASLError("response too long")
    if event.data == b"*":
        raise SASLAborted("cancelled")  # RFC 4422 §3.5, RFC 9051 §6.2.2
    return _b64decode(event.data) if event.data else b""
