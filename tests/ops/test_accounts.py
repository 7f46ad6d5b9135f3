"""ops.accounts on its own: each operation and each refusal."""

from __future__ import annotations

import pytest

from mailsrv.ops import accounts
from mailsrv.ops.errors import Exists, InvalidInput, NotFound
from mailsrv.ops.operation import Done
from mailsrv.server import Server
from tests.ops.world import result


def test_add_creates_account_password_and_store(server: Server) -> None:
    added = result(
        accounts.add(server, accounts.AddAccount(account="bob", address="Bob@Example.org", password="b" * 8))
    )
    assert added == accounts.AccountAdded(account="bob", address="Bob@example.org")
    assert server.credentials is not None and server.credentials.get("bob") is not None
    assert [a.account for a in accounts.list_accounts(server, accounts.ListAccounts())] == ["alice", "bob"]


@pytest.mark.parametrize(
    ("request_", "error", "text"),
    [
        (accounts.AddAccount(account="bob", address="bob@example.org", password="short"), InvalidInput, "too short"),
        (accounts.AddAccount(account="alice", address="a2@example.org", password="p" * 8), Exists, "already exists"),
        (accounts.AddAccount(account="bob", address="not an address", password="p" * 8), InvalidInput, "invalid"),
        (
            accounts.AddAccount(account="bob", address="bob@elsewhere.example", password="p" * 8),
            InvalidInput,
            "elsewhere",
        ),
        (accounts.AddAccount(account="", address="bob@example.org", password="p" * 8), InvalidInput, "missing"),
    ],
)
def test_add_refusals(server: Server, request_: accounts.AddAccount, error: type[Exception], text: str) -> None:
    with pytest.raises(error, match=text):
        result(accounts.add(server, request_))
    assert [a.account for a in accounts.list_accounts(server, accounts.ListAccounts())] == ["alice"]


def test_remove_forgets_account_and_password(server: Server) -> None:
    assert accounts.remove(server, accounts.AccountName(account="alice")) == Done()
    assert server.dynamic.account_by_name("alice") is None
    assert server.credentials is not None and server.credentials.get("alice") is None
    with pytest.raises(NotFound, match="no such account"):
        accounts.remove(server, accounts.AccountName(account="alice"))


def test_set_password(server: Server) -> None:
    assert server.credentials is not None
    before = server.credentials.get("alice")
    result(accounts.set_password(server, accounts.SetPassword(account="alice", password="new-password")))
    after = server.credentials.get("alice")
    assert before is not None and after is not None and after.password_hash != before.password_hash
    assert server.credentials.hasher.verify("new-password", after.password_hash)
    with pytest.raises(InvalidInput, match="too short"):
        accounts.set_password(server, accounts.SetPassword(account="alice", password="1234567"))
    with pytest.raises(NotFound):
        accounts.set_password(server, accounts.SetPassword(account="nobody", password="long enough"))


def test_set_quota(server: Server) -> None:
    assert accounts.set_quota(server, accounts.SetQuota(account="alice", quota=1000)) == accounts.Quota(quota=1000)
    assert accounts.list_accounts(server, accounts.ListAccounts())[0].quota == 1000
    assert accounts.set_quota(server, accounts.SetQuota(account="alice", quota=0)).quota is None
    with pytest.raises(InvalidInput, match="quota"):
        accounts.set_quota(server, accounts.SetQuota(account="alice", quota=-1))
    with pytest.raises(NotFound):
        accounts.set_quota(server, accounts.SetQuota(account="nobody", quota=1))


def test_set_full_name(server: Server) -> None:
    done = accounts.set_full_name(server, accounts.SetFullName(account="alice", full_name="  Alice Ängström "))
    assert done == accounts.FullName(full_name="Alice Ängström")
    acc = server.dynamic.account_by_name("alice")
    assert acc is not None and acc.full_name == "Alice Ängström"
    assert accounts.set_full_name(server, accounts.SetFullName(account="alice", full_name="")).full_name == ""
    for bad in ("Eve\r\nBcc: x@example.com", "a\x00b", "x" * 201, "line\u2028sep"):
        with pytest.raises(InvalidInput, match="full name"):
            accounts.set_full_name(server, accounts.SetFullName(account="alice", full_name=bad))
    with pytest.raises(NotFound):
        accounts.set_full_name(server, accounts.SetFullName(account="nobody", full_name="x"))


def test_search_pages_by_name(server: Server) -> None:
    for name in ("bob", "carol", "dave", "erin"):
        result(
            accounts.add(
                server, accounts.AddAccount(account=name, address=f"{name}@example.org", password="pw-12345678")
            )
        )
    page = accounts.search(server, accounts.SearchAccounts(limit=2))
    assert [a.account for a in page.accounts] == ["alice", "bob"] and page.next == "bob"
    page = accounts.search(server, accounts.SearchAccounts(limit=2, after=page.next))
    assert [a.account for a in page.accounts] == ["carol", "dave"] and page.next == "dave"
    page = accounts.search(server, accounts.SearchAccounts(limit=2, after="dave"))
    assert [a.account for a in page.accounts] == ["erin"] and page.next is None
    found = accounts.search(server, accounts.SearchAccounts(search="ROL@EXAMPLE"))
    assert [a.account for a in found.accounts] == ["carol"]
    with pytest.raises(InvalidInput):
        accounts.search(server, accounts.SearchAccounts(limit=0))


def test_disable_and_addresses(server: Server) -> None:
    info = accounts.set_disabled(server, accounts.SetDisabled(account="alice", disabled=True))
    assert info.disabled and server.dynamic.account_by_name("alice").disabled  # type: ignore[union-attr]
    assert not accounts.set_disabled(server, accounts.SetDisabled(account="alice", disabled=False)).disabled
    with pytest.raises(NotFound):
        accounts.set_disabled(server, accounts.SetDisabled(account="nobody", disabled=True))
    info = accounts.add_address(server, accounts.AccountAddress(account="alice", address="al@example.org"))
    assert info.addresses == ["alice@example.org", "al@example.org"]
    with pytest.raises(InvalidInput):
        accounts.add_address(server, accounts.AccountAddress(account="alice", address="x@elsewhere.example"))
    with pytest.raises(InvalidInput):
        accounts.add_address(server, accounts.AccountAddress(account="alice", address="not an address"))
    info = accounts.remove_address(server, accounts.AccountAddress(account="alice", address="al@example.org"))
    assert info.addresses == ["alice@example.org"]
    with pytest.raises(InvalidInput):  # never the last address
        accounts.remove_address(server, accounts.AccountAddress(account="alice", address="alice@example.org"))


def test_removal_consequences(server: Server) -> None:
    from mailsrv.ops import aliases

    aliases.add(server, aliases.AddAlias(alias="team@example.org", members=["alice@example.org"]))
    said = result(accounts.removal_consequences(server, accounts.AccountName(account="alice")))
    assert said.addresses == ["alice@example.org"] and said.aliases == ["team@example.org"]
    assert said.queued == 0 and not said.queued_more and said.tls_public_keys == 0
    with pytest.raises(NotFound):
        result(accounts.removal_consequences(server, accounts.AccountName(account="nobody")))
