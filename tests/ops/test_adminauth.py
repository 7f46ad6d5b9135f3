"""mailsrv/ops/adminauth.py: the admin password login, counted by the login rate limiter;
account passwords never make an administrator without LDAP's admin group."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mailsrv.auth import adminpassword
from mailsrv.ops import accounts, adminauth, domains
from mailsrv.ops.errors import AuthFailed, InvalidInput, RateLimited
from mailsrv.ops.login import Peer
from tests.ops.world import make_server, result


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Any]:
    s = make_server(tmp_path)
    domains.add(s, domains.AddDomain(domain="example.org"))
    result(accounts.add(s, accounts.AddAccount(account="alice", address="alice@example.org", password="alice-secret")))
    yield s
    s.close()


PEER = Peer(ip="192.0.2.7")


def test_without_a_password_set_nobody_logs_in(server: Any) -> None:
    with pytest.raises(AuthFailed):
        result(adminauth.admin_login(server, PEER, "admin", ""))


def test_admin_password_login(server: Any) -> None:
    with pytest.raises(InvalidInput):
        adminauth.set_admin_password(server, adminauth.SetAdminPassword(password="short"))
    adminauth.set_admin_password(server, adminauth.SetAdminPassword(password="admin-secret"))
    assert "admin-secret" not in adminpassword.path(server.config.data_dir).read_text()
    identity = result(adminauth.admin_login(server, PEER, "admin", "admin-secret"))
    assert identity == adminauth.AdminIdentity(name="admin", via="password")
    assert result(adminauth.admin_login(server, PEER, "", "admin-secret")).name == "admin"
    with pytest.raises(AuthFailed):
        result(adminauth.admin_login(server, PEER, "admin", "wrong"))


def test_account_passwords_are_not_admin_passwords(server: Any) -> None:
    adminauth.set_admin_password(server, adminauth.SetAdminPassword(password="admin-secret"))
    tries = (("alice", "alice-secret"), ("alice@example.org", "alice-secret"), ("alice", "admin-secret"))
    for login, password in tries:
        with pytest.raises(AuthFailed):
            result(adminauth.admin_login(server, PEER, login, password))


def test_failures_are_rate_limited(server: Any) -> None:
    adminauth.set_admin_password(server, adminauth.SetAdminPassword(password="admin-secret"))
    limit = server.config.limits.login_failures_per_ip
    for _ in range(limit):
        with pytest.raises(AuthFailed):
            result(adminauth.admin_login(server, PEER, "admin", "guess"))
    with pytest.raises(RateLimited):
        result(adminauth.admin_login(server, PEER, "admin", "admin-secret"))
    # Another address is not affected.
    assert result(adminauth.admin_login(server, Peer(ip="192.0.2.8"), "admin", "admin-secret")).name == "admin"


class FakeDirectory:
    """The LDAP provider as adminauth uses it: password checks and admin group membership."""

    def __init__(self) -> None:
        self.admins = {"dora"}
        self.passwords = {"dora": "dora-secret", "ed": "ed-secret"}

    async def check_password(self, login: str, password: str) -> Any:
        from mailsrv.auth.interfaces import InvalidCredentials, LoginIdentity

        if self.passwords.get(login) != password:
            raise InvalidCredentials("wrong")
        return LoginIdentity(login, None)

    async def resolve_login(self, login: str) -> Any:
        from mailsrv.auth.interfaces import LoginIdentity

        return LoginIdentity(login, None) if login in self.passwords else None

    async def is_admin(self, login: str) -> bool:
        return login in self.admins

    async def admin_login(self, login: str, password: str) -> str:
        from mailsrv.auth.interfaces import InvalidCredentials

        if self.passwords.get(login) != password or login not in self.admins:
            raise InvalidCredentials("wrong")
        return login


def test_ldap_admin_group(server: Any) -> None:
    from mailsrv.config.types import LDAPConfig

    ldap = LDAPConfig(uris=("ldap://127.0.0.1",), bind_dn="", bind_password_file=None, user_base="", user_filter="")
    object.__setattr__(server.config, "ldap", ldap)
    server.accounts = FakeDirectory()
    with pytest.raises(AuthFailed):  # no admin group configured: nobody from the directory
        result(adminauth.admin_login(server, PEER, "dora", "dora-secret"))
    object.__setattr__(server.config, "ldap", LDAPConfig(**{**ldap.__dict__, "admin_group_dn": "cn=admins"}))
    assert result(adminauth.admin_login(server, PEER, "dora", "dora-secret")) == adminauth.AdminIdentity(
        name="dora", via="ldap"
    )
    for login, password in (("ed", "ed-secret"), ("dora", "wrong")):
        with pytest.raises(AuthFailed):
            result(adminauth.admin_login(server, PEER, login, password))
