"""Suppression lists: per account, the addresses the outgoing queue no longer delivers to.
Messages to a listed address fail at once, without a delivery attempt, with a "suppressed"
event (webhook) and a DSN. The queue adds addresses by itself after hard failures
(mailsrv/queue/suppression.py says when, and how an address is reduced to its base address,
the list's key); the account (webapi, account page) and the administrator (CLI) list, add,
remove and test them with the functions here.

    await suppression_add(server, AddSuppression(account="mjl", address="bob+x@example.org"))
    (await suppression_present(server, SuppressionAddress(account="mjl", address="Bob@example.org"))).present

Addresses are matched by base address: adding `bob+news@example.org` suppresses
`Bob@example.org` too, and removing either removes the entry.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

from mailsrv.address import Address, AddressError
from mailsrv.ops.errors import InvalidInput, NotFound
from mailsrv.ops.operation import Done, Operation
from mailsrv.queue import suppression
from mailsrv.queue.interfaces import Suppression

if TYPE_CHECKING:
    from mailsrv.server import Server

__all__ = [
    "AddSuppression",
    "ListSuppressions",
    "Present",
    "Suppression",
    "SuppressionAddress",
    "base_address",
    "suppression_add",
    "suppression_list",
    "suppression_present",
    "suppression_remove",
]

MAX_REASON = suppression.MAX_REASON


class ListSuppressions(msgspec.Struct, kw_only=True):
    account: str


class AddSuppression(msgspec.Struct, kw_only=True):
    account: str
    address: str
    manual: bool = True  # false: as if the queue had added it
    reason: str = ""


class SuppressionAddress(msgspec.Struct, kw_only=True):
    account: str
    address: str


class Present(msgspec.Struct, kw_only=True):
    present: bool


def _check_account(server: Server, account: str) -> None:
    if server.dynamic.account_by_name(account) is None and server.config.ldap is None:
        raise NotFound(f"no such account: {account}")


def base_address(server: Server, address: str) -> tuple[Address, str]:
    """The parsed address and its base address (the list's key). Raises InvalidInput."""
    try:
        parsed = Address.parse(address.strip())
    except AddressError as e:
        raise InvalidInput(f"invalid address {address!r}: {e}", field="address") from None
    text = f"{parsed.localpart.value}@{parsed.domain.ascii}"
    return parsed, suppression.base_address(text, suppression.separators(server.dynamic))


async def suppression_list(server: Server, req: ListSuppressions) -> list[Suppression]:
    """The account's suppression list, oldest first."""
    _check_account(server, req.account)
    return await server.queue.suppressions(req.account)


async def suppression_add(server: Server, req: AddSuppression) -> Suppression:
    """Adds the address's base address (an entry already there is kept and returned)."""
    _check_account(server, req.account)
    if len(req.reason) > MAX_REASON or any(c in req.reason for c in "\r\n\0"):
        raise InvalidInput(f"reason: one line of at most {MAX_REASON} characters", field="reason")
    parsed, base = base_address(server, req.address)
    entry, _new = await server.queue.add_suppression(req.account, base, parsed.display(), req.manual, req.reason)
    return entry


async def suppression_remove(server: Server, req: SuppressionAddress) -> Done:
    """Removes the entry for the address's base address; NotFound when there is none."""
    _check_account(server, req.account)
    _parsed, base = base_address(server, req.address)
    if not await server.queue.remove_suppression(req.account, base):
        raise NotFound(f"{req.address} is not on the suppression list")
    return Done()


async def suppression_present(server: Server, req: SuppressionAddress) -> Present:
    """Whether mail from the account to the address would be suppressed."""
    _check_account(server, req.account)
    _parsed, base = base_address(server, req.address)
    return Present(present=await server.queue.suppression(req.account, base) is not None)


OPERATIONS = (
    Operation("suppression.list", suppression_list, ListSuppressions, summary="an account's suppression list"),
    Operation("suppression.add", suppression_add, AddSuppression, summary="add an address to a suppression list"),
    Operation(
        "suppression.rm", suppression_remove, SuppressionAddress, summary="remove an address from a suppression list"
    ),
    Operation(
        "suppression.present", suppression_present, SuppressionAddress, summary="whether an address is suppressed"
    ),
)
