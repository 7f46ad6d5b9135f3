"""Login by TLS client certificate: which account a presented certificate belongs to.

Only the public key identifies the account: the SHA-256 of the certificate's
SubjectPublicKeyInfo is looked up among the keys accounts registered (`auth.db`). Expiry,
names, constraints and issuers are ignored and no CA is involved, so a device keeps its key
across certificate renewals and each device's key is revoked on its own. The lookup reads the
database at every connection, so a key added or removed applies to the next connection
without a restart.

Invariants:
- A registered key is not enough: at every connection the account provider (the one
  password logins use: the dynamic config, or LDAP in the thread pool) must confirm that
  the key's account still exists and may log in (`AccountProvider.login_for_account`), and
  that the key's login address is still one of its addresses. A key whose account was
  deleted or disabled, in the directory or in dynamic.toml, counts as unregistered: no
  PREAUTH, no EXTERNAL, no submission without AUTH. The refusal is logged with its reason
  and counted by the rate limiter as a failed login from the peer's address.
- When the provider cannot answer (directory down) no certificate login happens: the
  caller gets TemporaryAuthFailure, never a login.
- The identity is the provider's: the account named as the provider spells it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from mailsrv.address import Address, AddressError
from mailsrv.auth.credentials import CredentialStore, TLSPublicKey
from mailsrv.auth.interfaces import AccountProvider, LoginIdentity

log = Logger()


@dataclass(frozen=True)
class ClientKeyLogin:
    key: TLSPublicKey
    identity: LoginIdentity

    @property
    def preauth(self) -> bool:
        """IMAP may greet with PREAUTH (RFC 9051 §7.1.4) for this key."""
        return not self.key.no_imap_preauth


# Counts a refused key as a failed login: (peer IP, account).
RefusalCounter = Callable[[str, str], None]


def login_for_certificate(
    credentials: CredentialStore,
    accounts: AccountProvider,
    count_refusal: RefusalCounter,
    certificate: Any,
    peer_ip: str,
    connection: str,
) -> Deferred[ClientKeyLogin | None]:
    """The registered key and login identity for a peer certificate, or None when none is
    presented, its key is not registered, or the key's account no longer exists or may not
    log in (the client may still log in by password). Fails with TemporaryAuthFailure when
    the account provider cannot answer. A refusal is passed to `count_refusal(peer_ip,
    account)` (the rate limiter); `connection` (protocol and connection id) goes into the log
    line."""
    return Deferred.fromCoroutine(
        _login_for_certificate(credentials, accounts, count_refusal, certificate, peer_ip, connection)
    )


async def _login_for_certificate(
    credentials: CredentialStore,
    accounts: AccountProvider,
    count_refusal: RefusalCounter,
    certificate: Any,
    peer_ip: str,
    connection: str,
) -> ClientKeyLogin | None:
    if certificate is None:
        return None
    from mailsrv.tlsutil import fingerprint_text, spki_fingerprint

    # A small indexed read of auth.db: inline on the reactor thread, like the store's index.
    key = credentials.get_tls_public_key(spki_fingerprint(certificate))
    if key is None:
        return None
    address: Address | None = None
    if key.login_address:
        try:
            address = Address.parse(key.login_address)
        except AddressError:
            address = None  # checked when the key was added; the primary address then
    identity = await accounts.login_for_account(key.account, address)
    if identity is None:
        why = "the account does not exist or may not log in"
        if address is not None:
            why += f", or {address.display()} is no longer its address"
        log.info(
            "{connection} {peer}: client key {fingerprint} ({key_name}) of {account} refused: {reason}",
            connection=connection,
            peer=peer_ip,
            fingerprint=fingerprint_text(key.fingerprint),
            key_name=key.name,
            account=key.account,
            reason=why,
        )
        count_refusal(peer_ip, key.account)
        return None
    return ClientKeyLogin(key, identity)
