"""ops.aliases on its own."""

from __future__ import annotations

import pytest

from mailsrv.ops import accounts, aliases
from mailsrv.ops.errors import Exists, InvalidInput, NotFound
from mailsrv.server import Server
from tests.ops.world import result


def _add(server: Server, **kw: object) -> aliases.AliasInfo:
    return aliases.add(server, aliases.AddAlias(alias="team@example.org", members=["alice@example.org"], **kw))  # type: ignore[arg-type]


def test_add_list_members_options_remove(server: Server) -> None:
    result(accounts.add(server, accounts.AddAccount(account="bob", address="bob@example.org", password="bob-secret")))
    info = _add(server, post_public=True)
    assert info == aliases.AliasInfo(
        alias="team@example.org",
        members=["alice@example.org"],
        post_public=True,
        list_members=False,
        allow_msg_from=False,
    )
    assert aliases.list_aliases(server, aliases.ListAliases()) == [info]
    changed = aliases.set_options(server, aliases.SetAliasOptions(alias="TEAM@example.org", list_members=True))
    assert changed.post_public and changed.list_members and not changed.allow_msg_from
    more = aliases.add_member(server, aliases.AliasMember(alias="team@example.org", member="bob@example.org"))
    assert more.members == ["alice@example.org", "bob@example.org"]
    less = aliases.remove_member(server, aliases.AliasMember(alias="team@example.org", member="Alice@Example.org"))
    assert less.members == ["bob@example.org"]
    aliases.remove(server, aliases.AliasAddress(alias="team@example.org"))
    assert aliases.list_aliases(server, aliases.ListAliases()) == []


def test_refusals(server: Server) -> None:
    _add(server)
    with pytest.raises(Exists):
        _add(server)
    with pytest.raises(InvalidInput, match="invalid address") as e:
        aliases.add(server, aliases.AddAlias(alias="x@example.org", members=["not an address"]))
    assert e.value.field == "members"
    with pytest.raises(InvalidInput):
        # The address of an account cannot also be an alias.
        aliases.add(server, aliases.AddAlias(alias="alice@example.org"))
    with pytest.raises(NotFound):
        aliases.remove(server, aliases.AliasAddress(alias="nope@example.org"))
    with pytest.raises(NotFound):
        aliases.set_options(server, aliases.SetAliasOptions(alias="nope@example.org", post_public=True))
    with pytest.raises(Exists):
        aliases.add_member(server, aliases.AliasMember(alias="team@example.org", member="ALICE@example.org"))
    with pytest.raises(NotFound, match="no member"):
        aliases.remove_member(server, aliases.AliasMember(alias="team@example.org", member="bob@example.org"))
    # A member must be an account's address: no one would receive the list's mail otherwise.
    for member, what in [
        ("nobody@example.org", "not an account's address"),
        ("someone@elsewhere.example", "not an account's address"),
        ("team@example.org", "an alias"),
    ]:
        with pytest.raises(InvalidInput, match=f"is {what}: members must be addresses of local accounts") as e:
            aliases.add(server, aliases.AddAlias(alias="x@example.org", members=["alice@example.org", member]))
        assert e.value.field == "members"
        with pytest.raises(InvalidInput, match=what):
            aliases.add_member(server, aliases.AliasMember(alias="team@example.org", member=member))
    assert [a.alias for a in aliases.list_aliases(server, aliases.ListAliases())] == ["team@example.org"]
    with pytest.raises(NotFound):
        aliases.add_member(server, aliases.AliasMember(alias="nope@example.org", member="bob@example.org"))
