"""Per-account delivery rulesets (`mailsrv.rules`): list, add, remove, replace, move.

A ruleset is validated exactly as loading `data/rules.toml` validates it (pattern length,
regexp syntax, at least one condition and one action) before the file is written.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

from mailsrv.ops.errors import InvalidInput, NotFound
from mailsrv.ops.operation import Done, Operation
from mailsrv.rules import RulesError, Ruleset, RulesStore

if TYPE_CHECKING:
    from mailsrv.server import Server


class RulesetSpec(msgspec.Struct, kw_only=True, omit_defaults=True):
    """First matching ruleset wins. Conditions: regexps on the SMTP MAIL FROM and From:
    addresses, a domain that passed SPF or DKIM, [name regexp, value regexp] header pairs.
    Actions: deliver into `mailbox`, treat as a mailing list, skip the junk verdict."""

    smtp_mail_from: str = ""
    msg_from: str = ""
    verified_domain: str = ""
    headers: list[tuple[str, str]] = []
    mailbox: str = ""
    is_list: bool = False
    accept_regardless: bool = False
    comment: str = ""


class AccountRules(msgspec.Struct, kw_only=True):
    account: str


class AddRuleset(msgspec.Struct, kw_only=True):
    account: str
    ruleset: RulesetSpec


class RemoveRuleset(msgspec.Struct, kw_only=True):
    account: str
    index: int  # 1-based, as `list` orders them


class ReplaceRuleset(msgspec.Struct, kw_only=True):
    account: str
    index: int  # 1-based
    ruleset: RulesetSpec


class MoveRuleset(msgspec.Struct, kw_only=True):
    account: str
    index: int  # 1-based: the ruleset to move
    to: int  # 1-based position it takes; the others keep their order


class RulesetAdded(msgspec.Struct, kw_only=True):
    index: int  # 1-based position of the new ruleset (the last)


def spec_of(ruleset: Ruleset) -> RulesetSpec:
    return msgspec.convert(ruleset.to_dict(), RulesetSpec)


def _store(server: Server, account: str) -> RulesStore:
    if server.dynamic.account_by_name(account) is None:
        raise NotFound(f"no such account: {account}")
    return server.rules


def list_rules(server: Server, req: AccountRules) -> list[RulesetSpec]:
    return [spec_of(r) for r in _store(server, req.account).for_account(req.account)]


def _ruleset(spec: RulesetSpec) -> Ruleset:
    try:
        # JSON-shaped, as rules.toml holds it (headers as [name, value] lists).
        return Ruleset.from_dict(msgspec.json.decode(msgspec.json.encode(spec)))
    except RulesError as e:
        raise InvalidInput(str(e), "ruleset") from None


def _position(current: list[Ruleset], index: int, account: str) -> int:
    if not 1 <= index <= len(current):
        raise NotFound(f"no ruleset {index} for {account}")
    return index - 1


def add(server: Server, req: AddRuleset) -> RulesetAdded:
    store = _store(server, req.account)
    ruleset = _ruleset(req.ruleset)
    store.set_account(req.account, [*store.for_account(req.account), ruleset])
    return RulesetAdded(index=len(store.for_account(req.account)))


def remove(server: Server, req: RemoveRuleset) -> Done:
    store = _store(server, req.account)
    current = list(store.for_account(req.account))
    del current[_position(current, req.index, req.account)]
    store.set_account(req.account, current)
    return Done()


def replace(server: Server, req: ReplaceRuleset) -> Done:
    """Puts a changed ruleset in the place of ruleset `index` (validated as `add` does)."""
    store = _store(server, req.account)
    current = list(store.for_account(req.account))
    at = _position(current, req.index, req.account)
    current[at] = _ruleset(req.ruleset)
    store.set_account(req.account, current)
    return Done()


def move(server: Server, req: MoveRuleset) -> list[RulesetSpec]:
    """Moves ruleset `index` to position `to` (first match wins, so order matters); returns
    the new order."""
    store = _store(server, req.account)
    current = list(store.for_account(req.account))
    ruleset = current.pop(_position(current, req.index, req.account))
    if not 1 <= req.to <= len(current) + 1:
        raise InvalidInput(f"position {req.to} is outside 1 to {len(current) + 1}", "to")
    current.insert(req.to - 1, ruleset)
    store.set_account(req.account, current)
    return [spec_of(r) for r in current]


OPERATIONS = (
    Operation("rules.list", list_rules, AccountRules, summary="an account's rulesets, first match wins"),
    Operation("rules.add", add, AddRuleset, summary="append a ruleset"),
    Operation("rules.rm", remove, RemoveRuleset, summary="remove a ruleset by its 1-based index"),
    Operation("rules.replace", replace, ReplaceRuleset, summary="replace the ruleset at a 1-based index"),
    Operation("rules.move", move, MoveRuleset, summary="move a ruleset to another 1-based position"),
)
