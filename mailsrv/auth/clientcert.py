"""Login by TLS client certificate: which account a presented certificate belongs to.

Only the public key identifies the account: the SHA-256 of the certificate's
SubjectPublicKeyInfo is looked up among the keys accounts registered (`auth.db`). Expiry,
names, constraints and issuers are ignored and no CA is involved, so a device keeps its key
across certificate renewals and each device's key is revoked on its own. The lookup reads the
database at every connection, so a key added or removed applies to the next connection
without a restart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mailsrv.address import Address, AddressError
from mailsrv.auth.credentials import TLSPublicKey
from mailsrv.auth.interfaces import LoginIdentity

if TYPE_CHECKING:
    from mailsrv.server import Server


@dataclass(frozen=True)
class ClientKeyLogin:
    key: TLSPublicKey
    identity: LoginIdentity

    @property
    def preauth(self) -> bool:
        """IMAP may greet with PREAUTH (RFC 9051 §7.1.4) for this key."""
        return not self.key.no_imap_preauth


def login_for_certificate(server: Server, certificate: Any) -> ClientKeyLogin | None:
    """The registered key and login identity for a peer certificate, or None when none is
    presented or its key is not registered (the client may still log in by password)."""
    if certificate is None or server.credentials is None:
        return None
    from mailsrv.tlsutil import spki_fingerprint

    key = server.credentials.get_tls_public_key(spki_fingerprint(certificate))
    if key is None:
        return None
    address: Address | None = None
    if key.login_address:
        try:
            address = Address.parse(key.login_address)
        except AddressError:
            address = None
    if address is None:
        account = server.dynamic.current.accounts.get(key.account)
        address = account.addresses[0] if account is not None and account.addresses else None
    return ClientKeyLogin(key, LoginIdentity(key.account, address))
