"""A synchronous in-memory AccountProvider: every Deferred it returns has already fired,
so mechanisms can be driven without a reactor (fast enough for hypothesis)."""

from __future__ import annotations

import base64
import functools
from typing import Any

from twisted.internet.defer import Deferred, fail, succeed

from mailsrv.address import Address
from mailsrv.auth.interfaces import InvalidCredentials, LoginIdentity, ScramSecret
from mailsrv.auth.passwords import cram_md5_states, derive_scram_secret, prepare_password
from mailsrv.sasl.mechanism import Step

# RFC 5802 §5 and RFC 7677 §3 examples use user "user", password "pencil" and these salts.
RFC_SALTS = {"sha1": base64.b64decode("QSXCR+Q6sek8bf92"), "sha256": base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")}


@functools.cache
def _secrets(users: tuple[tuple[str, str], ...]) -> dict[tuple[str, str], ScramSecret]:
    # PBKDF2 is slow on purpose: derive once per test process.
    return {
        (account, h): derive_scram_secret(pw, h, RFC_SALTS[h], 4096)
        for account, pw in users
        for h in ("sha1", "sha256")
    }


class FakeProvider:
    def __init__(self) -> None:
        # login name -> (account, address, password)
        self.users: dict[str, tuple[str, str | None, str]] = {
            "user": ("user", None, "pencil"),
            "tim": ("tim", None, "tanstaaftanstaaf"),
            "alice": ("alice", "alice@example.org", "correct horse"),
            "alice@example.org": ("alice", "alice@example.org", "correct horse"),
            "alias@example.org": ("alice", "alias@example.org", "correct horse"),
            "bob@example.org": ("bob", "bob@example.org", "bob"),
        }
        self.secrets = _secrets(tuple((account, pw) for account, _, pw in self.users.values()))
        self.calls: list[str] = []

    def _identity(self, username: str) -> tuple[LoginIdentity, str] | None:
        entry = self.users.get(username)
        if entry is None:
            return None
        account, address, password = entry
        return LoginIdentity(account, Address.parse(address) if address else None), password

    def resolve_login(self, username: str) -> Deferred[LoginIdentity | None]:
        found = self._identity(username)
        return succeed(found[0] if found else None)

    def check_password(self, username: str, password: str) -> Deferred[LoginIdentity]:
        self.calls.append(f"check_password {username}")
        found = self._identity(username)
        if found is None or prepare_password(found[1]) != prepare_password(password):
            return fail(InvalidCredentials())
        return succeed(found[0])

    def scram_secret(self, username: str, hash_name: str) -> Deferred[tuple[LoginIdentity, ScramSecret]]:
        found = self._identity(username)
        if found is None:
            return fail(InvalidCredentials())
        return succeed((found[0], self.secrets[(found[0].account, hash_name)]))

    def cram_md5_secret(self, username: str) -> Deferred[tuple[LoginIdentity, bytes]]:
        found = self._identity(username)
        if found is None:
            return fail(InvalidCredentials())
        return succeed((found[0], cram_md5_states(found[1])))

    def login_for_account(self, account: str, address: Address | None = None) -> Deferred[LoginIdentity | None]:
        for name, (found, primary, _) in self.users.items():
            if found == account and name == account:
                return succeed(LoginIdentity(account, address or (Address.parse(primary) if primary else None)))
        return succeed(None)

    def account_for_address(self, address: Address) -> Deferred[str | None]:
        return succeed(None)

    def supports_stored_secrets(self) -> bool:
        return True


def result_of(d: Deferred[Step]) -> Step:
    """The value of an already-fired Deferred; re-raises its failure."""
    out: list[Any] = []
    d.addBoth(out.append)
    assert out, "Deferred did not fire synchronously"
    value = out[0]
    if hasattr(value, "raiseException"):
        value.raiseException()
    return value  # type: ignore[no-any-return]
