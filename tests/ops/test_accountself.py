"""ops.accountself: the account's own overview and password change."""

from __future__ import annotations

import pytest

from mailsrv.ops import accounts, accountself, aliases
from mailsrv.ops.errors import InvalidInput, NotFound, RateLimited
from mailsrv.server import Server
from tests.ops.world import result


def test_overview_and_memberships(server: Server) -> None:
    result(accounts.add(server, accounts.AddAccount(account="bob", address="bob@example.org", password="bob-secret-1")))
    server.dynamic.add_address("alice", "ali@example.org")
    aliases.add(server, aliases.AddAlias(alias="team@example.org", members=["ali@example.org", "bob@example.org"]))
    aliases.add(server, aliases.AddAlias(alias="open@example.org", members=["alice@example.org"], list_members=True))
    aliases.add(server, aliases.AddAlias(alias="other@example.org", members=["bob@example.org"]))
    accounts.set_full_name(server, accounts.SetFullName(account="alice", full_name="Alice"))
    seen = result(accountself.overview(server, "alice"))
    assert seen.account == "alice" and seen.full_name == "Alice" and seen.domain == "example.org"
    assert seen.addresses == ["alice@example.org", "ali@example.org"]
    assert seen.usage == 0 and seen.quota is None and seen.retired_keep == 0
    # Members are shown only where the alias allows it; aliases without alice are not listed.
    assert [(a.address, a.members) for a in seen.aliases] == [
        ("open@example.org", ["alice@example.org"]),
        ("team@example.org", []),
    ]
    with pytest.raises(NotFound):
        result(accountself.overview(server, "nobody"))


def test_change_password(server: Server) -> None:
    with pytest.raises(InvalidInput, match="current password") as wrong:
        result(accountself.change_password(server, "alice", "192.0.2.1", "not-the-password", "new-password-1"))
    assert wrong.value.field == "current"
    with pytest.raises(InvalidInput, match="too short"):
        result(accountself.change_password(server, "alice", "192.0.2.1", "alice-secret", "short"))
    with pytest.raises(InvalidInput, match="is the current one"):
        result(accountself.change_password(server, "alice", "192.0.2.1", "alice-secret", "alice-secret"))
    result(accountself.change_password(server, "alice", "192.0.2.1", "alice-secret", "new-password-1"))
    stored = server.credentials.get("alice")
    assert stored is not None and server.credentials.hasher.verify("new-password-1", stored.password_hash)


def test_guessing_the_current_password_is_rate_limited_like_a_login(server: Server) -> None:
    limit = server.config.limits.login_failures_per_ip
    for _ in range(limit):
        with pytest.raises(InvalidInput):
            result(accountself.change_password(server, "alice", "192.0.2.9", "guess", "new-password-1"))
    with pytest.raises(RateLimited):
        result(accountself.change_password(server, "alice", "192.0.2.9", "alice-secret", "new-password-1"))


def test_fromid_login_addresses(server: Server) -> None:
    server.dynamic.add_address("alice", "ali@example.org")
    assert accountself.set_fromid_login_addresses(server, "alice", ["ali@example.org"]) == ["ali@example.org"]
    assert result(accountself.overview(server, "alice")).fromid_login_addresses == ["ali@example.org"]
    with pytest.raises(InvalidInput, match="not an address of account alice"):
        accountself.set_fromid_login_addresses(server, "alice", ["bob@example.org"])
    with pytest.raises(InvalidInput, match="invalid address"):
        accountself.set_fromid_login_addresses(server, "alice", ["nope"])
    assert accountself.set_fromid_login_addresses(server, "alice", []) == []
