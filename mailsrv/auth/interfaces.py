"""The seams of credential checking.

An `AccountProvider` answers two questions for the protocols: "which account receives mail
for this address?" (SMTP RCPT, aliases resolved elsewhere) and "who is this login?" (IMAP
LOGIN/AUTHENTICATE, SMTP AUTH). The embedded provider (`mailsrv.auth.local`) answers from
the dynamic config and the credential database; the LDAP provider (`mailsrv.auth.ldap`)
from a directory. Protocols never look at password hashes themselves: SASL mechanisms ask
the provider for what they need (a plaintext check, or a SCRAM/CRAM secret).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from twisted.internet.defer import Deferred

from mailsrv.address import Address


class AuthError(Exception):
    """Base of authentication outcomes that are not success."""


class InvalidCredentials(AuthError):
    """Wrong user or password. Counted by the rate limiter; the peer sees no detail."""


class TemporaryAuthFailure(AuthError):
    """The backend (e.g. LDAP) cannot answer now: IMAP NO [UNAVAILABLE], SMTP 454 4.7.0."""


class RateLimited(AuthError):
    """Too many recent failures for this IP or account."""


class MechanismUnavailable(AuthError):
    """The account cannot use this mechanism (e.g. SCRAM for an LDAP account)."""


@dataclass(frozen=True)
class LoginIdentity:
    """A successful login: the account and the address the user logged in as."""

    account: str
    address: Address | None


@dataclass(frozen=True)
class ScramSecret:
    """RFC 5802 §3 stored secrets for one hash function."""

    salt: bytes
    iterations: int
    stored_key: bytes
    server_key: bytes


class AccountProvider(Protocol):
    """Where accounts come from. Every method may be slow (LDAP): they return Deferreds."""

    def resolve_login(self, username: str) -> Deferred[LoginIdentity | None]:
        """Maps a login name (an email address, or an account name) to the account, or None."""

    def check_password(self, username: str, password: str) -> Deferred[LoginIdentity]:
        """Verifies a plaintext password (PLAIN, LOGIN). Fails with InvalidCredentials or
        TemporaryAuthFailure. Never compares plaintext; hashing runs off the reactor."""

    def scram_secret(self, username: str, hash_name: str) -> Deferred[tuple[LoginIdentity, ScramSecret]]:
        """The SCRAM secret for hash_name ("sha1" or "sha256"). Fails with InvalidCredentials
        for an unknown user (the SASL layer then fakes an exchange) or MechanismUnavailable."""

    def cram_md5_secret(self, username: str) -> Deferred[tuple[LoginIdentity, bytes]]:
        """The HMAC-MD5 inner/outer key material CRAM-MD5 needs (RFC 2195), or failure as for
        scram_secret."""

    def login_for_account(self, account: str, address: Address | None = None) -> Deferred[LoginIdentity | None]:
        """A login that proves no secret to us, the account named by something we hold (a
        registered TLS client key, `mailsrv.auth.clientcert`): the identity of `account`
        (its name as the backend spells it: a directory may match names regardless of case,
        by its attribute's matching rule), attributed to `address` or,
        without one, to its primary address. None when the account no longer exists, may not
        log in (disabled; outside the directory's mail group), or `address` is not one of its
        addresses. TemporaryAuthFailure when the backend cannot answer."""

    def account_for_address(self, address: Address) -> Deferred[str | None]:
        """The account that receives mail for `address` (after catchall-separator stripping
        is done by the caller), or None when no account has it. TemporaryAuthFailure when
        the backend cannot answer (SMTP then answers 451, never 550)."""

    def supports_stored_secrets(self) -> bool:
        """False when SCRAM and CRAM-MD5 cannot work (no salted secret stored, e.g. LDAP)."""
