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


def test_replace_and_move(server: Server) -> None:
    specs = [rules.RulesetSpec(msg_from=f"@s{n}\\.example$", mailbox=f"M{n}", comment=f"rule {n}") for n in (1, 2, 3)]
    for spec in specs:
        rules.add(server, rules.AddRuleset(account="alice", ruleset=spec))
    changed = rules.RulesetSpec(msg_from="@changed$", mailbox="C", comment="changed")
    rules.replace(server, rules.ReplaceRuleset(account="alice", index=2, ruleset=changed))
    assert rules.list_rules(server, rules.AccountRules(account="alice")) == [specs[0], changed, specs[2]]
    order = rules.move(server, rules.MoveRuleset(account="alice", index=3, to=1))
    assert [r.comment for r in order] == ["rule 3", "rule 1", "changed"]
    assert rules.list_rules(server, rules.AccountRules(account="alice")) == order
    order = rules.move(server, rules.MoveRuleset(account="alice", index=1, to=3))
    assert [r.comment for r in order] == ["rule 1", "changed", "rule 3"]
    with pytest.raises(InvalidInput, match="condition"):
        rules.replace(server, rules.ReplaceRuleset(account="alice", index=1, ruleset=rules.RulesetSpec(mailbox="X")))
    with pytest.raises(NotFound, match="no ruleset 4"):
        rules.replace(server, rules.ReplaceRuleset(account="alice", index=4, ruleset=changed))
    with pytest.raises(NotFound, match="no ruleset 0"):
        rules.move(server, rules.MoveRuleset(account="alice", index=0, to=1))
    with pytest.raises(InvalidInput, match="position 5"):
        rules.move(server, rules.MoveRuleset(account="alice", index=1, to=5))
    assert [r.comment for r in rules.list_rules(server, rules.AccountRules(account="alice"))] == [
        "rule 1",
        "changed",
        "rule 3",
    ]
