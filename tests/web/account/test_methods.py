"""The account API's methods on a real Server (no HTTP): every method's success and refusals,
and that an account only ever reaches its own data."""

from __future__ import annotations

import base64
import plistlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mailsrv.config.junk import JunkSettings
from mailsrv.ops import accounts, aliases, domains, junk, rules
from mailsrv.ops.errors import Exists, InvalidInput, NotFound
from mailsrv.server import Server
from mailsrv.web.account.api import AccountMethods, KeyAdd, KeyGenerate
from tests.ops.world import make_server, result


@dataclass
class Ctx:
    server: Server
    account: str
    peer_ip: str = "192.0.2.7"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    from mailsrv.config.types import ListenerConfig

    s = make_server(
        tmp_path,
    )
    object.__setattr__(
        s.config,
        "listeners",
        (
            ListenerConfig("imaps", "imap", "0.0.0.0", 993, "implicit"),
            ListenerConfig("submissions", "submission", "0.0.0.0", 465, "implicit"),
        ),
    )
    domains.add(s, domains.AddDomain(domain="example.org"))
    for name in ("alice", "bob"):
        result(
            accounts.add(s, accounts.AddAccount(account=name, address=f"{name}@example.org", password=f"{name}-secret"))
        )
    junk.install(s)
    yield s
    s.close()


M = AccountMethods()


def test_account_and_full_name(server: Server) -> None:
    alice = Ctx(server, "alice")
    aliases.add(server, aliases.AddAlias(alias="team@example.org", members=["alice@example.org"], list_members=True))
    seen = result(M.account(alice))
    assert seen.account == "alice" and seen.addresses == ["alice@example.org"]
    assert [(a.address, a.members) for a in seen.aliases] == [("team@example.org", ["alice@example.org"])]
    assert result(M.save_full_name(alice, " Alice A. ")) == "Alice A."
    assert result(M.account(alice)).full_name == "Alice A."
    with pytest.raises(InvalidInput, match="full name"):
        result(M.save_full_name(alice, "x\r\nBcc: y"))
    assert result(M.account(Ctx(server, "bob"))).full_name == ""


def test_password(server: Server) -> None:
    alice = Ctx(server, "alice")
    with pytest.raises(InvalidInput, match="current password"):
        result(M.set_password(alice, "wrong", "brand-new-pw"))
    result(M.set_password(alice, "alice-secret", "brand-new-pw"))
    stored = server.credentials.get("alice")
    assert stored is not None and server.credentials.hasher.verify("brand-new-pw", stored.password_hash)


def test_client_settings_and_apple_profile(server: Server) -> None:
    alice = Ctx(server, "alice")
    settings = result(M.client_settings(alice))
    assert settings.username == "alice@example.org" and settings.imap[0].port == 993
    profile = plistlib.loads(result(M.apple_profile(alice)))
    assert profile["PayloadContent"][0]["EmailAddress"] == "alice@example.org"


def test_retired_keep_and_mailboxes(server: Server) -> None:
    alice = Ctx(server, "alice")
    assert result(M.save_retired_keep(alice, 7 * 86400)) == 7 * 86400
    assert result(M.account(alice)).retired_keep == 7 * 86400
    with pytest.raises(InvalidInput):
        result(M.save_retired_keep(alice, -1))
    names = [m.name for m in result(M.mailboxes(alice))]
    assert "INBOX" in names and "Sent" in names


def test_keys_are_per_account(server: Server) -> None:
    alice, bob = Ctx(server, "alice"), Ctx(server, "bob")
    made = result(M.key_generate(alice, KeyGenerate(name="laptop")))
    assert made.key.account == "alice" and base64.b64encode(made.pkcs12)
    assert [k.name for k in result(M.keys(alice))] == ["laptop"] and result(M.keys(bob)) == []
    # Bob can neither see nor remove alice's key, and cannot register her certificate.
    with pytest.raises(NotFound):
        result(M.key_remove(bob, made.key.fingerprint))
    with pytest.raises(Exists):
        result(M.key_add(bob, KeyAdd(cert_pem=made.key.cert_pem)))
    with pytest.raises(NotFound):
        result(M.key_remove(alice, "not-a-fingerprint"))
    with pytest.raises(InvalidInput, match="not an address"):
        result(M.key_generate(alice, KeyGenerate(login_address="bob@example.org")))
    with pytest.raises(InvalidInput, match="certificate"):
        result(M.key_add(alice, KeyAdd(cert_pem="nonsense")))
    result(M.key_remove(alice, made.key.fingerprint))
    assert result(M.keys(alice)) == []
    added = result(M.key_add(bob, KeyAdd(cert_pem=made.key.cert_pem, name="phone", no_imap_preauth=True)))
    assert added.account == "bob" and added.no_imap_preauth


def test_rulesets(server: Server) -> None:
    alice, bob = Ctx(server, "alice"), Ctx(server, "bob")
    first = rules.RulesetSpec(msg_from="@lists\\.example$", mailbox="Lists", comment="lists")
    second = rules.RulesetSpec(verified_domain="example.net", mailbox="Net", comment="net")
    assert result(M.ruleset_add(alice, first)) == 1
    assert result(M.ruleset_add(alice, second)) == 2
    assert [r.comment for r in result(M.ruleset_move(alice, 2, 1))] == ["net", "lists"]
    changed = rules.RulesetSpec(msg_from="@other$", mailbox="Other", comment="changed")
    result(M.ruleset_save(alice, 2, changed))
    assert result(M.rulesets(alice)) == [second, changed]
    assert result(M.rulesets(bob)) == []
    with pytest.raises(NotFound):
        result(M.ruleset_remove(bob, 1))
    with pytest.raises(InvalidInput):
        result(M.ruleset_add(alice, rules.RulesetSpec(msg_from="(", mailbox="X")))
    result(M.ruleset_remove(alice, 1))
    assert result(M.rulesets(alice)) == [changed]


def test_junk_settings(server: Server) -> None:
    alice = Ctx(server, "alice")
    settings = result(M.junk_settings(alice))
    assert isinstance(settings, JunkSettings) and settings.enabled
    changed = result(M.junk_settings_save(alice, JunkSettings(enabled=False, threshold=0.9, ignored_words=["x"])))
    assert not changed.enabled and changed.threshold == 0.9
    assert result(M.junk_settings(alice)) == changed
    assert result(M.junk_settings(Ctx(server, "bob"))).enabled
    with pytest.raises(InvalidInput, match="threshold"):
        result(M.junk_settings_save(alice, JunkSettings(threshold=0.2)))
    assert result(M.junk_stats(alice)).words == 0


def test_fromid_and_suppressions(server: Server) -> None:
    alice, bob = Ctx(server, "alice"), Ctx(server, "bob")
    assert result(M.save_fromid_login_addresses(alice, ["alice@example.org"])) == ["alice@example.org"]
    assert result(M.account(alice)).fromid_login_addresses == ["alice@example.org"]
    with pytest.raises(InvalidInput):
        result(M.save_fromid_login_addresses(alice, ["bob@example.org"]))
    entry = result(M.suppression_add(alice, "Someone+tag@example.net", "bounced"))
    assert entry.base_address == "someone@example.net" and entry.manual
    assert [e.base_address for e in result(M.suppressions(alice))] == ["someone@example.net"]
    assert result(M.suppressions(bob)) == []
    with pytest.raises(NotFound):
        result(M.suppression_remove(bob, "someone@example.net"))
    with pytest.raises(InvalidInput):
        result(M.suppression_add(alice, "not an address", ""))
    result(M.suppression_remove(alice, "someone@example.net"))
    assert result(M.suppressions(alice)) == []
