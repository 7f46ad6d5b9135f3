"""Rulesets: parsing and validation, first match wins, List-Id within the verified domain,
catastrophic patterns bounded, the rules file round trip."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from mailsrv.rules import MAX_PATTERN, RulesError, Ruleset, RulesStore, facts_from, first_match


def _facts(mail_from: str = "a@x.example", headers: list[tuple[str, str]] | None = None, verified: str = "") -> object:
    return facts_from(mail_from, frozenset([verified]) if verified else frozenset(), headers or [])


def test_first_match_wins_and_all_conditions_must_hold() -> None:
    rules = [
        Ruleset.from_dict({"msg_from": r"@news\.example$", "smtp_mail_from": "^bounce", "mailbox": "News"}),
        Ruleset.from_dict({"headers": [["^subject$", "invoice"]], "mailbox": "Bills", "comment": "c"}),
        Ruleset.from_dict({"msg_from": r"@news\.example$", "mailbox": "Other"}),
    ]
    hdrs = [("From", "N <n@news.example>"), ("Subject", "Your Invoice")]
    assert first_match(rules, _facts("bounce-1@news.example", hdrs)).mailbox == "News"  # type: ignore[arg-type,union-attr]
    assert first_match(rules, _facts("x@y.example", hdrs)).mailbox == "Bills"  # type: ignore[arg-type,union-attr]
    assert first_match(rules, _facts("x@y.example", hdrs[:1])).mailbox == "Other"  # type: ignore[arg-type,union-attr]
    assert first_match(rules, _facts("x@y.example", [("From", "z@z.example")])) is None  # type: ignore[arg-type]


def test_list_requires_list_id_within_verified_domain() -> None:
    rule = Ruleset.from_dict({"verified_domain": "lists.example", "is_list": True, "mailbox": "Lists"})
    good = [("List-Id", "Dev list <dev.lists.example>")]
    assert first_match([rule], _facts(headers=good, verified="lists.example")) is rule  # type: ignore[arg-type]
    assert first_match([rule], _facts(headers=good)) is None  # type: ignore[arg-type]  # domain not verified
    forged = [("List-Id", "<dev.evil.example>")]
    assert first_match([rule], _facts(headers=forged, verified="lists.example")) is None  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "spec",
    [
        {"mailbox": "X"},  # no condition
        {"msg_from": "a"},  # no action
        {"msg_from": "(", "mailbox": "X"},
        {"msg_from": "a" * (MAX_PATTERN + 1), "mailbox": "X"},
        {"is_list": True, "msg_from": "a"},  # is_list without verified_domain
        {"msg_from": "a", "mailbox": "X", "bogus": 1},
        {"headers": [["only-one"]], "mailbox": "X"},
    ],
)
def test_invalid_rulesets_refused(spec: dict[str, object]) -> None:
    with pytest.raises(RulesError):
        Ruleset.from_dict(spec)


def test_catastrophic_pattern_is_bounded() -> None:
    rule = Ruleset.from_dict({"headers": [["subject", r"^(\w+\s?)*$"]], "mailbox": "X"})
    start = time.monotonic()
    assert first_match([rule], _facts(headers=[("Subject", "a" * 60 + "!")])) is None  # type: ignore[arg-type]
    assert time.monotonic() - start < 2


def test_rules_file_round_trip(tmp_path: Path) -> None:
    store = RulesStore(tmp_path)
    assert store.for_account("alice") == ()
    rule = Ruleset.from_dict({"msg_from": "@x", "mailbox": "X", "comment": "from x"})
    store.set_account("alice", [rule])
    again = RulesStore(tmp_path)
    assert again.for_account("alice") == (rule,)
    (tmp_path / "rules.toml").write_text("not toml [")
    assert again.for_account("alice") == (rule,)  # a broken hand edit keeps the last good rules


def test_hand_edit_is_seen_within_a_second_without_a_stat_per_delivery(tmp_path: Path) -> None:
    now = [100.0]
    store = RulesStore(tmp_path, clock=lambda: now[0])
    assert store.for_account("alice") == ()
    rule = Ruleset.from_dict({"msg_from": "@x", "mailbox": "X"})
    RulesStore(tmp_path).set_account("alice", [rule])  # another writer: a hand edit, the CLI
    now[0] += 0.5
    assert store.for_account("alice") == ()  # the file was looked at less than a second ago
    now[0] += 0.5
    assert store.for_account("alice") == (rule,)
    store.set_account("alice", [])  # the store's own writes apply at once
    assert store.for_account("alice") == ()
