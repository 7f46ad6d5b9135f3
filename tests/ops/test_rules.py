"""ops.rules on its own."""

from __future__ import annotations

import pytest

from mailsrv.ops import rules
from mailsrv.ops.errors import InvalidInput, NotFound
from mailsrv.server import Server


def test_add_list_remove(server: Server) -> None:
    spec = rules.RulesetSpec(msg_from=r"@lists\.example$", headers=[("^x-spam$", "yes")], mailbox="Lists")
    assert rules.add(server, rules.AddRuleset(account="alice", ruleset=spec)) == rules.RulesetAdded(index=1)
    second = rules.RulesetSpec(verified_domain="Example.net.", is_list=True)
    assert rules.add(server, rules.AddRuleset(account="alice", ruleset=second)).index == 2
    listed = rules.list_rules(server, rules.AccountRules(account="alice"))
    assert listed == [spec, rules.RulesetSpec(verified_domain="example.net", is_list=True)]
    rules.remove(server, rules.RemoveRuleset(account="alice", index=1))
    assert [r.verified_domain for r in rules.list_rules(server, rules.AccountRules(account="alice"))] == ["example.net"]


def test_refusals(server: Server) -> None:
    with pytest.raises(InvalidInput, match="condition"):
        rules.add(server, rules.AddRuleset(account="alice", ruleset=rules.RulesetSpec(mailbox="X")))
    with pytest.raises(InvalidInput, match="msg_from"):
        rules.add(server, rules.AddRuleset(account="alice", ruleset=rules.RulesetSpec(msg_from="(", mailbox="X")))
    with pytest.raises(NotFound, match="no such account"):
        rules.list_rules(server, rules.AccountRules(account="nobody"))
    with pytest.raises(NotFound, match="no ruleset 1"):
        rules.remove(server, rules.RemoveRuleset(account="alice", index=1))
