"""Which mechanisms a connection offers, and building one by name.

Offer rules:
- SCRAM-*-PLUS only over TLS with channel binding data (RFC 5802 §6); the plain SCRAM
  variants and CRAM-MD5 only when the account provider stores their secrets (not LDAP).
- PLAIN and LOGIN only when plaintext passwords may be sent: by default only over TLS.
- EXTERNAL only when the client presented a certificate (registered or not: the lookup
  happens when the client chooses EXTERNAL).
Strongest first; clients that pick the first shared mechanism get the best one.
"""

from __future__ import annotations

import os

from mailsrv.auth.interfaces import AccountProvider
from mailsrv.sasl.crammd5 import CramMD5Server
from mailsrv.sasl.external import ExternalIdentity, ExternalServer
from mailsrv.sasl.mechanism import LoginCheck, SASLError, ServerMechanism
from mailsrv.sasl.plaintext import LoginServer, PlainServer
from mailsrv.sasl.scram import ScramServer
from mailsrv.tlsutil import ChannelBindings

SCRAM_PLUS = ("SCRAM-SHA-256-PLUS", "SCRAM-SHA-1-PLUS")
SCRAM = ("SCRAM-SHA-256", "SCRAM-SHA-1")
ALL_MECHANISMS = (*SCRAM_PLUS, *SCRAM, "CRAM-MD5", "PLAIN", "LOGIN", "EXTERNAL")


def advertised_mechanisms(
    tls_active: bool,
    stored_secrets: bool,
    has_client_cert: bool,
    allow_plaintext: bool | None = None,
) -> list[str]:
    """Mechanism names to advertise (IMAP AUTH=, SMTP AUTH), strongest first.
    `allow_plaintext` defaults to `tls_active`."""
    plaintext_ok = tls_active if allow_plaintext is None else allow_plaintext
    if not tls_active and not plaintext_ok:
        # Before TLS nothing is offered unless plaintext is allowed (localserve, or
        # `login_disabled_without_tls = false`): a passive observer of a CRAM-MD5 or SCRAM
        # exchange can run a dictionary attack on the password offline, and an active one
        # can strip the mechanism list down to the weakest.
        return []
    names: list[str] = []
    if stored_secrets:
        if tls_active:
            names.extend(SCRAM_PLUS)
        names.extend(SCRAM)
        names.append("CRAM-MD5")
    if plaintext_ok:
        names.extend(("PLAIN", "LOGIN"))
    if tls_active and has_client_cert:
        names.append("EXTERNAL")
    return names


def make_server_mechanism(
    name: str,
    provider: AccountProvider,
    channel_bindings: ChannelBindings,
    *,
    hostname: str = "localhost",
    external_identity: ExternalIdentity | None = None,
    fake_salt_key: bytes | None = None,
    offered: list[str] | None = None,
    check_login: LoginCheck | None = None,
) -> ServerMechanism:
    """A fresh server mechanism for one exchange. `name` is matched case-insensitively
    (RFC 4422 §3.1); SASLError when it is unknown or not in `offered` (when given).

    `channel_bindings` are the connection's (empty without TLS); `fake_salt_key` should be
    one secret per installation (`mailsrv.ops.login.fake_salt_key`), so fake SCRAM salts of
    unknown users are stable across attempts, listeners and restarts, like real ones.
    `external_identity` is the EXTERNAL seam. `check_login` is called with the login name
    before credentials are checked (per-account rate limiting); afterwards
    `mechanism.login_name` tells whom to count a failure against."""
    upper = name.upper()
    if upper not in ALL_MECHANISMS or (offered is not None and upper not in offered):
        raise SASLError("unsupported SASL mechanism")
    if upper == "PLAIN":
        return PlainServer(provider, check_login)
    if upper == "LOGIN":
        return LoginServer(provider, check_login)
    if upper == "CRAM-MD5":
        return CramMD5Server(provider, hostname, check_login)
    if upper == "EXTERNAL":
        return ExternalServer(provider, external_identity)
    if upper.endswith("-PLUS") and not channel_bindings:
        raise SASLError("channel binding requires TLS")
    return ScramServer(
        upper,
        provider,
        channel_bindings,
        plus_advertised=bool(channel_bindings),
        fake_salt_key=fake_salt_key if fake_salt_key is not None else os.urandom(32),
        check_login=check_login,
    )
