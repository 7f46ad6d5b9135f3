"""What an account sees of itself and changes on its own (the account web page).

Every function takes the account name of the logged-in session, never one from the request,
so an account can only ever read or change itself. The admin counterparts live in
`ops.accounts`, `ops.aliases`, ...; the account page calls the same functions for what it
may change (rulesets, junk settings, client keys) with its own account filled in.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

from mailsrv.address import Address, AddressError
from mailsrv.config.types import AccountConfig
from mailsrv.ops import accounts
from mailsrv.ops.configerrors import refusals_as_invalid_input
from mailsrv.ops.delivery import is_member
from mailsrv.ops.errors import AuthFailed, InvalidInput, NotFound
from mailsrv.ops.login import Peer, password_login

if TYPE_CHECKING:
    from mailsrv.server import Server


class AliasMembership(msgspec.Struct, kw_only=True):
    """An alias (list) the account is a member of. `members` only when the alias lets its
    members see the list (`list_members`), else empty."""

    address: str
    members: list[str]
    post_public: bool  # anyone may send to it (else members only)
    list_members: bool
    allow_msg_from: bool  # the account may send with this address as From:


class Overview(msgspec.Struct, kw_only=True):
    account: str
    full_name: str
    addresses: list[str]  # primary first; mail to each reaches the account
    domain: str  # the account's domain (U-label)
    aliases: list[AliasMembership]
    quota: int | None  # octets, None: no limit
    usage: int  # octets stored
    retired_keep: int  # seconds the queue keeps finished outgoing messages (0: not kept)
    # Login addresses whose submissions get a unique MAIL FROM per recipient ("fromid"), so
    # a bounce or webhook event names the message it is about.
    fromid_login_addresses: list[str]


def _account(server: Server, account: str) -> AccountConfig:
    acc = server.dynamic.account_by_name(account)
    if acc is None:
        raise NotFound(f"no such account: {account}")
    return acc


def memberships(server: Server, account: str) -> list[AliasMembership]:
    """The aliases with one of the account's addresses among their members, by address."""
    out = []
    for alias in server.dynamic.current.aliases.values():
        if not is_member(server, alias, None, account):
            continue
        out.append(
            AliasMembership(
                address=alias.address.display(),
                members=[m.display() for m in alias.members] if alias.list_members else [],
                post_public=alias.post_public,
                list_members=alias.list_members,
                allow_msg_from=alias.allow_msg_from,
            )
        )
    return sorted(out, key=lambda a: a.address)


async def overview(server: Server, account: str) -> Overview:
    acc = _account(server, account)
    usage = await server.stores.open(acc.name).usage_async()
    return Overview(
        account=acc.name,
        full_name=acc.full_name,
        addresses=[a.display() for a in acc.addresses],
        domain=acc.domain.unicode,
        aliases=memberships(server, account),
        quota=server.quota_for(acc.name),
        usage=usage,
        retired_keep=acc.retired_keep,
        fromid_login_addresses=[a.display() for a in acc.fromid_login_addresses],
    )


MAX_FROMID_ADDRESSES = 100


def set_fromid_login_addresses(server: Server, account: str, addresses: list[str]) -> list[str]:
    """Sets the fromid login addresses (each must be one of the account's addresses);
    rewrites the dynamic config, so run it in a thread. Raises InvalidInput."""
    _account(server, account)
    if len(addresses) > MAX_FROMID_ADDRESSES:
        raise InvalidInput(f"at most {MAX_FROMID_ADDRESSES} addresses", "addresses")
    for text in addresses:
        try:
            Address.parse(text.strip())
        except AddressError as e:
            raise InvalidInput(f"invalid address {text!r}: {e}", "addresses") from None
    with refusals_as_invalid_input():
        acc = server.dynamic.set_account_fromid_addresses(account, [a.strip() for a in addresses])
    return [a.display() for a in acc.fromid_login_addresses]


async def change_password(server: Server, account: str, peer_ip: str, current: str, new: str) -> None:
    """Sets a new password after checking the current one through the login policy (same
    rate limits as IMAP: a guessed current password counts as a failed login). Raises
    InvalidInput (current password wrong: field "current"; new one too short or equal),
    RateLimited, TemporaryFailure."""
    acc = _account(server, account)
    accounts.check_password_policy(new)
    if new == current:
        raise InvalidInput("the new password is the current one", "new")
    try:
        identity = await password_login(server, Peer(ip=peer_ip), acc.addresses[0].display(), current)
    except AuthFailed:
        raise InvalidInput("the current password is not right", "current") from None
    if identity.account != acc.name:
        raise InvalidInput("the current password is not right", "current")
    await accounts.set_password(server, accounts.SetPassword(account=acc.name, password=new))
