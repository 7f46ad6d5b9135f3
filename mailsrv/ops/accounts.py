"""Accounts: add, remove, list, set password, set quota.

An account lives in the dynamic config (name, addresses, quota) and, for local accounts, in
the credential database (`auth.db`: the argon2 hash and derived SASL secrets). Password
derivation runs in the thread pool (`CredentialStore.set_password`). Removing an account
keeps its mail on disk under `data/accounts/<name>/` for the admin to remove.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from mailsrv.address import Address, AddressError
from mailsrv.config.types import AccountConfig
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


class SetDisabled(msgspec.Struct, kw_only=True):
    account: str
    disabled: bool


class AccountAddress(msgspec.Struct, kw_only=True):
    account: str
    address: str


class SearchAccounts(msgspec.Struct, kw_only=True):
    search: str = ""  # a part of the name or of an address, any case; "": every account
    after: str = ""  # the previous page's `next`: the last account name it showed
    limit: int = 100


class AccountPage(msgspec.Struct, kw_only=True):
    accounts: list[AccountInfo]
    next: str | None = None  # None: this was the last page


class RemovalConsequences(msgspec.Struct, kw_only=True):
    """What removing an account does, to show before it is done."""

    account: str
    addresses: list[str]  # stop receiving mail: senders get "no such user"
    aliases: list[str]  # aliases the account is a member of: it stops getting their mail
    messages_size: int  # octets of mail stored: they stay on disk (data/accounts/<name>/) until deleted by hand
    tls_public_keys: int  # registered client keys, removed with the password
    queued: int  # outgoing messages still queued from the account: they are still delivered
    queued_more: bool  # more than `queued`


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


MAX_PAGE = 1000


def _info(server: Server, a: AccountConfig) -> AccountInfo:
    addresses = [x.display() for x in a.addresses]
    return AccountInfo(account=a.name, addresses=addresses, quota=server.quota_for(a.name), disabled=a.disabled)


def search(server: Server, req: SearchAccounts) -> AccountPage:
    """One page of accounts in name order whose name or an address contains `search`."""
    if not 1 <= req.limit <= MAX_PAGE:
        raise InvalidInput(f"limit: 1 to {MAX_PAGE}", "limit")
    if len(req.search) > 256:
        raise InvalidInput("search text longer than 256 characters", "search")
    needle = req.search.strip().casefold()
    found: list[AccountConfig] = []
    for a in sorted(server.dynamic.current.accounts.values(), key=lambda a: a.name):
        if a.name <= req.after and req.after:
            continue
        texts = [a.name, *(x.display() for x in a.addresses)]
        if needle and not any(needle in t.casefold() for t in texts):
            continue
        found.append(a)
        if len(found) > req.limit:
            break
    more = len(found) > req.limit
    page = found[: req.limit]
    return AccountPage(accounts=[_info(server, a) for a in page], next=page[-1].name if more else None)


def set_disabled(server: Server, req: SetDisabled) -> AccountInfo:
    """Disables (no logins; mail is still delivered) or enables an account. Rewrites the
    dynamic config: run it in a thread."""
    _require(server, req.account)
    with refusals_as_invalid_input():
        info = _info(server, server.dynamic.set_account_disabled(req.account, req.disabled))
    if req.disabled:
        # Its web sessions end even if it is enabled again before they are next used.
        end_web_sessions_from_thread(server, req.account)
    return info


def end_web_sessions_from_thread(server: Server, key: str) -> None:
    """Bumps the credential generation of `key` (an account, or the admin password's) from a
    pool thread: the credential store's connection belongs to the reactor thread."""
    reactor: Any = server.reactor
    reactor.callFromThread(server.credentials.bump_generation, key)


def _address(text: str) -> Address:
    try:
        return Address.parse(text.strip())
    except AddressError as e:
        raise InvalidInput(f"invalid address {text!r}: {e}", "address") from None


def add_address(server: Server, req: AccountAddress) -> AccountInfo:
    """Another address delivering to the account (in a local domain, not used elsewhere).
    Rewrites the dynamic config: run it in a thread."""
    _require(server, req.account)
    address = _address(req.address)
    with refusals_as_invalid_input():
        return _info(server, server.dynamic.add_address(req.account, address))


def remove_address(server: Server, req: AccountAddress) -> AccountInfo:
    """Removes an address (never the last one). Rewrites the dynamic config: run it in a thread."""
    _require(server, req.account)
    address = _address(req.address)
    with refusals_as_invalid_input():
        return _info(server, server.dynamic.remove_address(req.account, address))


async def removal_consequences(server: Server, req: AccountName) -> RemovalConsequences:
    from mailsrv.ops.accountself import memberships
    from mailsrv.queue.interfaces import MAX_PAGE as QUEUE_PAGE
    from mailsrv.queue.interfaces import QueueFilter, QueuePageRequest

    acc = server.dynamic.account_by_name(req.account)
    if acc is None:
        raise NotFound(f"no such account: {req.account}")
    queued = await server.queue.page(QueuePageRequest(QueueFilter(account=acc.name), limit=QUEUE_PAGE))
    return RemovalConsequences(
        account=acc.name,
        addresses=[a.display() for a in acc.addresses],
        aliases=[m.address for m in memberships(server, acc.name)],
        messages_size=server.stores.open(acc.name).usage(),
        tls_public_keys=len(server.credentials.list_tls_public_keys(acc.name)),
        queued=len(queued.messages),
        queued_more=queued.next is not None,
    )


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
    Operation("account.search", search, SearchAccounts, summary="accounts matching a text, one page"),
    Operation("account.disable", set_disabled, SetDisabled, in_thread=True, summary="disable or enable an account"),
    Operation("account.addaddress", add_address, AccountAddress, in_thread=True, summary="add an address"),
    Operation("account.rmaddress", remove_address, AccountAddress, in_thread=True, summary="remove an address"),
    Operation("account.rmconsequences", removal_consequences, AccountName, summary="what removing an account would do"),
    Operation("account.setpassword", set_password, SetPassword, summary="set an account's password"),
    Operation("account.setquota", set_quota, SetQuota, in_thread=True, summary="set an account's quota"),
    Operation(
        "account.setfullname", set_full_name, SetFullName, in_thread=True, summary="set an account's display name"
    ),
)
