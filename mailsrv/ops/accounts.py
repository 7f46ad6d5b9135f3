"""Accounts: add, remove, list, set password, set quota.

An account lives in the dynamic config (name, addresses, quota) and, for local accounts, in
the credential database (`auth.db`: the argon2 hash and derived SASL secrets). Password
derivation runs in the thread pool (`CredentialStore.set_password`). Removing an account
keeps its mail on disk under `data/accounts/<name>/` for the admin to remove.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from mailsrv.address import Address, AddressError
from mailsrv.ops.configerrors import refusals_as_invalid_input
from mailsrv.ops.errors import Exists, InvalidInput, NotFound
from mailsrv.ops.operation import Done, Operation

if TYPE_CHECKING:
    from mailsrv.auth.credentials import CredentialStore
    from mailsrv.server import Server

MIN_PASSWORD_LENGTH = 8


class AddAccount(msgspec.Struct, kw_only=True):
    account: str
    address: str  # the primary address; its domain must be a local domain
    password: str
    full_name: str = ""


class AccountName(msgspec.Struct, kw_only=True):
    account: str


class ListAccounts(msgspec.Struct, kw_only=True):
    pass


class SetPassword(msgspec.Struct, kw_only=True):
    account: str
    password: str


class SetQuota(msgspec.Struct, kw_only=True):
    account: str
    quota: int | None  # octets; 0: no limit; None: the configured default


class SetFullName(msgspec.Struct, kw_only=True):
    account: str
    full_name: str


class FullName(msgspec.Struct, kw_only=True):
    full_name: str


class AccountAdded(msgspec.Struct, kw_only=True):
    account: str
    address: str


class AccountInfo(msgspec.Struct, kw_only=True):
    account: str
    addresses: list[str]
    quota: int | None
    disabled: bool


class Quota(msgspec.Struct, kw_only=True):
    quota: int | None  # the effective limit in octets, None: no limit


def check_password_policy(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(f"password too short: at least {MIN_PASSWORD_LENGTH} characters", "password")


def _credentials(server: Server) -> CredentialStore:
    return server.credentials


def _require(server: Server, name: str) -> None:
    if server.dynamic.account_by_name(name) is None:
        raise NotFound(f"no such account: {name}")


def add(server: Server, req: AddAccount) -> Deferred[AccountAdded]:
    """Creates the account and its store, then derives and stores the password (in the thread
    pool); the account is removed again when that fails."""
    check_password_policy(req.password)
    credentials = _credentials(server)
    if not req.account:
        raise InvalidInput("missing account name", "account")
    if server.dynamic.account_by_name(req.account) is not None:
        raise Exists(f"account {req.account} already exists")
    try:
        Address.parse(req.address)
    except AddressError as e:
        raise InvalidInput(f"invalid address {req.address!r}: {e}", "address") from None
    with refusals_as_invalid_input():
        acc = server.dynamic.add_account(req.account, req.address, full_name=req.full_name)
    server.stores.open(acc.name)

    def done(_: object) -> AccountAdded:
        return AccountAdded(account=acc.name, address=acc.addresses[0].display())

    def undo(failure: Failure) -> Failure:
        server.dynamic.remove_account(acc.name)
        return failure

    return credentials.set_password(acc.name, req.password).addCallbacks(done, undo)


def remove(server: Server, req: AccountName) -> Done:
    """Forgets the account, its password and TLS keys; its mail stays on disk."""
    _require(server, req.account)
    with refusals_as_invalid_input():
        server.dynamic.remove_account(req.account)
    server.credentials.remove_account(req.account)
    return Done()


def list_accounts(server: Server, req: ListAccounts) -> list[AccountInfo]:
    return [
        AccountInfo(
            account=a.name,
            addresses=[x.display() for x in a.addresses],
            quota=server.quota_for(a.name),
            disabled=a.disabled,
        )
        for a in sorted(server.dynamic.current.accounts.values(), key=lambda a: a.name)
    ]


def set_password(server: Server, req: SetPassword) -> Deferred[Done]:
    _require(server, req.account)
    check_password_policy(req.password)
    return _credentials(server).set_password(req.account, req.password).addCallback(lambda _: Done())


def set_quota(server: Server, req: SetQuota) -> Quota:
    if req.quota is not None and req.quota < 0:
        raise InvalidInput("quota must be a number of octets >= 0 (0: no limit)", "quota")
    _require(server, req.account)
    with refusals_as_invalid_input():
        server.dynamic.set_account_quota(req.account, req.quota)
    return Quota(quota=server.quota_for(req.account))


MAX_FULL_NAME = 200


def check_full_name(full_name: str) -> str:
    """The name without surrounding space. InvalidInput for a control character (a line break
    would end a header field it is put in) or more than MAX_FULL_NAME characters."""
    name = full_name.strip()
    if len(name) > MAX_FULL_NAME:
        raise InvalidInput(f"full name longer than {MAX_FULL_NAME} characters", "full_name")
    if any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 or c in "\u2028\u2029" for c in name):
        raise InvalidInput("full name with a control character", "full_name")
    return name


def set_full_name(server: Server, req: SetFullName) -> FullName:
    """Sets the account's display name ("" removes it); rewrites the dynamic config, so run
    it in a thread."""
    name = check_full_name(req.full_name)
    _require(server, req.account)
    with refusals_as_invalid_input():
        account = server.dynamic.set_account_full_name(req.account, name)
    return FullName(full_name=account.full_name)


OPERATIONS = (
    Operation("account.add", add, AddAccount, summary="add an account with its primary address and password"),
    Operation("account.rm", remove, AccountName, summary="remove an account (its mail stays on disk)"),
    Operation("account.list", list_accounts, ListAccounts, summary="list accounts"),
    Operation("account.setpassword", set_password, SetPassword, summary="set an account's password"),
    Operation("account.setquota", set_quota, SetQuota, in_thread=True, summary="set an account's quota"),
    Operation(
        "account.setfullname", set_full_name, SetFullName, in_thread=True, summary="set an account's display name"
    ),
)
