"""Aliases (lists): add, remove, list, add/remove a member, set options.

The dynamic config validates every change as loading `dynamic.toml` does: an alias cannot
share an address with an account, members must be addresses of local domains; here, also
addresses of accounts (`_member`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

from mailsrv.address import Address, AddressError
from mailsrv.config.types import AccountConfig, AliasConfig
from mailsrv.ops.configerrors import refusals_as_invalid_input
from mailsrv.ops.errors import Exists, InvalidInput, NotFound
from mailsrv.ops.operation import Done, Operation

if TYPE_CHECKING:
    from mailsrv.server import Server


class AliasOptions(msgspec.Struct, kw_only=True):
    """None leaves an option as it is (on add: off)."""

    post_public: bool | None = None  # anyone may send to the alias (default: members only)
    list_members: bool | None = None  # members may see the member list
    allow_msg_from: bool | None = None  # members may submit with the alias as From:


class AddAlias(AliasOptions, kw_only=True):
    alias: str
    members: list[str] = []


class AliasAddress(msgspec.Struct, kw_only=True):
    alias: str


class AliasMember(msgspec.Struct, kw_only=True):
    alias: str
    member: str


class SetAliasOptions(AliasOptions, kw_only=True):
    alias: str


class ListAliases(msgspec.Struct, kw_only=True):
    pass


class AliasInfo(msgspec.Struct, kw_only=True):
    alias: str
    members: list[str]
    post_public: bool
    list_members: bool
    allow_msg_from: bool


def describe(alias: AliasConfig) -> AliasInfo:
    return AliasInfo(
        alias=alias.address.display(),
        members=[m.display() for m in alias.members],
        post_public=alias.post_public,
        list_members=alias.list_members,
        allow_msg_from=alias.allow_msg_from,
    )


def _address(text: str, field: str) -> Address:
    try:
        return Address.parse(text)
    except AddressError as e:
        raise InvalidInput(f"invalid address {text!r}: {e}", field) from None


def _member(server: Server, text: str, field: str) -> Address:
    """A member must receive the list's mail: an address of a local account (a directory
    user's, with LDAP). Aliases do not nest and mail is not forwarded outside (yet), so any
    other member would silently receive nothing."""
    member = _address(text, field)
    if isinstance(server.dynamic.lookup(member), AccountConfig):
        return member
    if server.config.ldap is not None and server.dynamic.is_local_domain(member.domain):
        return member  # the directory decides at delivery time
    what = "an alias" if server.dynamic.alias(member) is not None else "not an account's address"
    raise InvalidInput(
        f"member {member.display()} is {what}: members must be addresses of local accounts"
        " (forwarding to other addresses is not supported)",
        field,
    )


def _existing(server: Server, text: str) -> AliasConfig:
    alias = server.dynamic.alias(_address(text, "alias"))
    if alias is None:
        raise NotFound(f"no such alias: {text}")
    return alias


def _options(req: AliasOptions) -> dict[str, bool]:
    return {
        k: v
        for k, v in (
            ("post_public", req.post_public),
            ("list_members", req.list_members),
            ("allow_msg_from", req.allow_msg_from),
        )
        if v is not None
    }


def add(server: Server, req: AddAlias) -> AliasInfo:
    address = _address(req.alias, "alias")
    if server.dynamic.alias(address) is not None:
        raise Exists(f"alias {address.display()} already exists")
    members = [_member(server, m, "members") for m in req.members]
    with refusals_as_invalid_input():
        return describe(server.dynamic.add_alias(address, members, **_options(req)))


def remove(server: Server, req: AliasAddress) -> Done:
    alias = _existing(server, req.alias)
    with refusals_as_invalid_input():
        server.dynamic.remove_alias(alias.address)
    return Done()


def list_aliases(server: Server, req: ListAliases) -> list[AliasInfo]:
    aliases = sorted(server.dynamic.current.aliases.values(), key=lambda a: a.address.display())
    return [describe(a) for a in aliases]


def add_member(server: Server, req: AliasMember) -> AliasInfo:
    alias = _existing(server, req.alias)
    member = _member(server, req.member, "member")
    if any(m.key() == member.key() for m in alias.members):
        raise Exists(f"{member.display()} is already a member of {alias.address.display()}")
    with refusals_as_invalid_input():
        return describe(server.dynamic.add_alias_member(alias.address, member))


def remove_member(server: Server, req: AliasMember) -> AliasInfo:
    alias = _existing(server, req.alias)
    member = _address(req.member, "member")
    if not any(m.key() == member.key() for m in alias.members):
        raise NotFound(f"alias {alias.address.display()} has no member {req.member}")
    with refusals_as_invalid_input():
        return describe(server.dynamic.remove_alias_member(alias.address, member))


def set_options(server: Server, req: SetAliasOptions) -> AliasInfo:
    alias = _existing(server, req.alias)
    with refusals_as_invalid_input():
        return describe(server.dynamic.set_alias_options(alias.address, **_options(req)))


OPERATIONS = (
    Operation("alias.add", add, AddAlias, in_thread=True, summary="add an alias with its members"),
    Operation("alias.rm", remove, AliasAddress, in_thread=True, summary="remove an alias"),
    Operation("alias.list", list_aliases, ListAliases, summary="list aliases"),
    Operation("alias.addmember", add_member, AliasMember, in_thread=True, summary="add a member"),
    Operation("alias.rmmember", remove_member, AliasMember, in_thread=True, summary="remove a member"),
    Operation("alias.set", set_options, SetAliasOptions, in_thread=True, summary="change an alias's options"),
)
