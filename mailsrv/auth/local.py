"""The embedded account provider: accounts from the dynamic config, secrets from auth.db.

Login names (RFC 4616 authcid, IMAP LOGIN user, SMTP AUTH user) are either one of the
account's addresses, compared by `Address.key()` (NFC, case-folded localpart, A-label
domain), or the account name itself. The catchall separator never applies to logins.

Invariants:
- A disabled account, an unknown name and a wrong password all fail the same way
  (InvalidCredentials) and take the same time: unknown and disabled users are verified
  against a dummy hash in the thread pool, like real ones.
- Password hashes are verified in the reactor's thread pool, never on the reactor thread,
  with bounded concurrency (`CredentialStore.hash_in_thread`).
- Mail delivery (`account_for_address`) ignores `disabled`: a disabled account cannot log
  in but keeps receiving mail.
- `login_for_account` (logins by registered TLS client key) answers from the current
  dynamic config: an account removed from it, or disabled, has no login even while its
  keys remain in auth.db.
"""

from __future__ import annotations

import unicodedata
from typing import Protocol

from twisted.internet.defer import Deferred, fail, succeed

from mailsrv.address import Address, AddressError
from mailsrv.auth.credentials import CredentialStore
from mailsrv.auth.interfaces import (
    InvalidCredentials,
    LoginIdentity,
    MechanismUnavailable,
    ScramSecret,
)
from mailsrv.config.types import AccountConfig, DynamicConfig


class DynamicConfigSource(Protocol):
    """What this provider needs of `mailsrv.config.dynamic.DynamicConfigStore`."""

    @property
    def current(self) -> DynamicConfig: ...


class LocalAccountProvider:
    """`AccountProvider` for accounts in the dynamic config."""

    def __init__(
        self,
        dynamic: DynamicConfigSource,
        credentials: CredentialStore,
    ) -> None:
        self._dynamic = dynamic
        self._credentials = credentials
        self._index_for: DynamicConfig | None = None
        self._by_address: dict[str, AccountConfig] = {}
        self._by_folded_name: dict[str, AccountConfig] = {}

    # --- Lookup --------------------------------------------------------------------------
    def _indexes(self) -> tuple[dict[str, AccountConfig], dict[str, AccountConfig]]:
        # DynamicConfig is replaced on change, never mutated: rebuild once per object.
        config = self._dynamic.current
        if config is not self._index_for:
            self._by_address = {a.key(): acc for acc in config.accounts.values() for a in acc.addresses}
            self._by_folded_name = {_fold(name): acc for name, acc in config.accounts.items()}
            self._index_for = config
        return self._by_address, self._by_folded_name

    def _lookup(self, username: str) -> tuple[AccountConfig, Address | None] | None:
        """The account a login name names (disabled or not), and the address used."""
        name = unicodedata.normalize("NFC", username.strip())
        if not name:
            return None
        by_address, by_name = self._indexes()
        if "@" in name:
            try:
                address = Address.parse(name)
            except AddressError:
                address = None
            account = by_address.get(address.key()) if address is not None else None
            if account is not None and address is not None:
                # Report the address as configured, not as typed.
                configured = next((a for a in account.addresses if a.key() == address.key()), address)
                return account, configured
            # Not an address of any account: it may still be an account name with an "@".
        account = self._dynamic.current.accounts.get(name) or by_name.get(_fold(name))
        if account is None:
            return None
        return account, (account.addresses[0] if account.addresses else None)

    def _enabled_identity(self, username: str) -> LoginIdentity | None:
        found = self._lookup(username)
        if found is None or found[0].disabled:
            return None
        return LoginIdentity(found[0].name, found[1])

    # --- AccountProvider -----------------------------------------------------------------
    def resolve_login(self, username: str) -> Deferred[LoginIdentity | None]:
        return succeed(self._enabled_identity(username))

    def check_password(self, username: str, password: str) -> Deferred[LoginIdentity]:
        identity = self._enabled_identity(username)
        stored = self._credentials.get(identity.account) if identity is not None else None
        hasher = self._credentials.hasher
        # Unknown, disabled and password-less accounts pay the same argon2 cost.
        password_hash = stored.password_hash if stored is not None else hasher.dummy_hash
        d: Deferred[bool] = self._credentials.hash_in_thread(hasher.verify, password, password_hash)

        def decide(ok: bool) -> LoginIdentity:
            if not ok or identity is None or stored is None:
                raise InvalidCredentials()
            return identity

        return d.addCallback(decide)

    def scram_secret(self, username: str, hash_name: str) -> Deferred[tuple[LoginIdentity, ScramSecret]]:
        identity = self._enabled_identity(username)
        stored = self._credentials.get(identity.account) if identity is not None else None
        if identity is None or stored is None:
            return fail(InvalidCredentials())
        secret = stored.scram.get(hash_name)
        if secret is None:
            return fail(MechanismUnavailable(f"no SCRAM-{hash_name} secret stored; set the password again"))
        return succeed((identity, secret))

    def cram_md5_secret(self, username: str) -> Deferred[tuple[LoginIdentity, bytes]]:
        identity = self._enabled_identity(username)
        stored = self._credentials.get(identity.account) if identity is not None else None
        if identity is None or stored is None:
            return fail(InvalidCredentials())
        return succeed((identity, stored.cram_md5))

    def login_for_account(self, account: str, address: Address | None = None) -> Deferred[LoginIdentity | None]:
        # By exact name: a key is registered for an account name as the config spells it.
        found = self._dynamic.current.accounts.get(account)
        if found is None or found.disabled:
            return succeed(None)
        if address is None:
            return succeed(LoginIdentity(found.name, found.addresses[0] if found.addresses else None))
        configured = next((a for a in found.addresses if a.key() == address.key()), None)
        return succeed(LoginIdentity(found.name, configured) if configured is not None else None)

    def account_for_address(self, address: Address) -> Deferred[str | None]:
        by_address, _ = self._indexes()
        account = by_address.get(address.key())
        return succeed(account.name if account is not None else None)

    def supports_stored_secrets(self) -> bool:
        return True


def _fold(name: str) -> str:
    return unicodedata.normalize("NFC", name.casefold())
