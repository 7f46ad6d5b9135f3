"""Per-account delivery rulesets (`mailsrv.rules`): list, add, remove.

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


def add(server: Server, req: AddRuleset) -> RulesetAdded:
    store = _store(server, req.account)
    try:
        # JSON-shaped, as rules.toml holds it (headers as [name, value] lists).
        ruleset = Ruleset.from_dict(msgspec.json.decode(msgspec.json.encode(req.ruleset)))
    except RulesError as e:
        raise InvalidInput(str(e), "ruleset") from None
    store.set_account(req.account, [*store.for_account(req.account), ruleset])
    return RulesetAdded(index=len(store.for_account(req.account)))


def remove(server: Server, req: RemoveRuleset) -> Done:
    store = _store(server, req.account)
    current = list(store.for_account(req.account))
    if not 1 <= req.index <= len(current):
        raise NotFound(f"no ruleset {req.index} for {req.account}")
    del current[req.index - 1]
    store.set_account(req.account, current)
    return Done()


OPERATIONS = (
    Operation("rules.list", list_rules, AccountRules, summary="an account's rulesets, first match wins"),
    Operation("rules.add", add, AddRuleset, summary="append a ruleset"),
    Operation("rules.rm", remove, RemoveRuleset, summary="remove a ruleset by its 1-based index"),
)
