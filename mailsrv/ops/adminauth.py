"""Who may use the web admin interface: the admin password (`mailsrv setadminpassword`,
`mailsrv.auth.adminpassword`), or, with LDAP, an account in `[ldap] admin_group_dn`.

Invariants:
- One login policy as for accounts (`mailsrv.ops.login`): the attempt is counted by the login
  rate limiter before anything is checked, a success uncounts it, a wrong password counts
  against the peer's address and the name.
- The login name "admin" (or none) means the admin password. With LDAP, any other name is a
  directory login that must verify and be a member of `admin_group_dn`; without an admin
  group nobody from the directory is an administrator. Local accounts are never administrators
  by their own password: an account session must not reach the admin API.
- Hashing and directory calls run off the reactor (the hashing pool, the LDAP provider's threads).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec
from twisted.logger import Logger

from mailsrv.auth import adminpassword
from mailsrv.auth.credentials import ADMIN_PASSWORD_GENERATION
from mailsrv.auth.interfaces import AuthError, TemporaryAuthFailure
from mailsrv.auth.interfaces import RateLimited as LimiterRefused
from mailsrv.ops.accounts import end_web_sessions_from_thread
from mailsrv.ops.errors import AuthFailed, InvalidInput, RateLimited, TemporaryFailure
from mailsrv.ops.login import Peer
from mailsrv.ops.operation import Done, Operation

if TYPE_CHECKING:
    from mailsrv.server import Server

ADMIN_LOGIN = "admin"

log = Logger()
MIN_PASSWORD_LENGTH = 8


class AdminIdentity(msgspec.Struct, frozen=True, kw_only=True):
    """Who is administering: "admin" (the admin password) or a directory login name."""

    name: str
    via: str  # "password" or "ldap"


class SetAdminPassword(msgspec.Struct, kw_only=True):
    password: str


def set_admin_password(server: Server, req: SetAdminPassword) -> Done:
    """Replaces the admin password (in a thread: argon2 and an fsync)."""
    if len(req.password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(f"the admin password needs at least {MIN_PASSWORD_LENGTH} characters", "password")
    adminpassword.set_password(server.config.data_dir, req.password, server.credentials.hasher)
    # Sessions logged in with the old password end (the daemon sees it even when the CLI ran alone).
    end_web_sessions_from_thread(server, ADMIN_PASSWORD_GENERATION)
    return Done()


async def admin_login(server: Server, peer: Peer, login: str, password: str) -> AdminIdentity:
    """Checks an admin login. Raises AuthFailed, RateLimited or TemporaryFailure."""
    name = login.strip() or ADMIN_LOGIN
    try:
        attempt = server.rate_limiter.begin(peer.ip, name)
    except LimiterRefused as e:
        raise RateLimited(str(e), server.config.limits.login_failure_window) from None
    try:
        if name == ADMIN_LOGIN:
            identity = await _password_admin(server, password)
        else:
            identity = await _directory_admin(server, name, password)
    except (TemporaryFailure, TemporaryAuthFailure) as e:
        attempt.cancel()
        raise TemporaryFailure(str(e) or "authentication backend unavailable") from None
    except (AuthFailed, AuthError):
        attempt.failed()
        raise AuthFailed("authentication failed") from None
    except BaseException:
        attempt.failed()
        raise
    attempt.succeeded()
    return identity


async def _password_admin(server: Server, password: str) -> AdminIdentity:
    hasher = server.credentials.hasher
    if not await server.credentials.hash_in_thread(adminpassword.verify, server.config.data_dir, password, hasher):
        raise AuthFailed("wrong admin password")
    return AdminIdentity(name=ADMIN_LOGIN, via="password")


async def _directory_admin(server: Server, login: str, password: str) -> AdminIdentity:
    """A directory user in `[ldap] admin_group_dn`, mail user or not, with their directory password."""
    admin_login: Any = getattr(server.accounts, "admin_login", None)
    if server.config.ldap is None or server.config.ldap.admin_group_dn is None or admin_login is None:
        raise AuthFailed("not an administrator")
    try:
        account = await admin_login(login, password)
    except TemporaryAuthFailure as e:
        raise TemporaryFailure(str(e) or "directory unavailable") from None
    return AdminIdentity(name=str(account), via="ldap")


async def still_admin(server: Server, principal: str) -> bool:
    """Whether a directory administrator's session may go on: still in the admin group (asked
    of the directory; True while it cannot answer, as logged-in mail sessions go on in an
    outage). The password administrator ("admin") is not asked about."""
    is_admin: Any = getattr(server.accounts, "is_admin", None)
    if principal == ADMIN_LOGIN:
        return True
    if server.config.ldap is None or server.config.ldap.admin_group_dn is None or is_admin is None:
        return False
    try:
        return bool(await is_admin(principal))
    except TemporaryAuthFailure:
        log.warn("directory unavailable: admin {admin}'s session goes on unchecked", admin=principal)
        return True


OPERATIONS = (
    Operation(
        "admin.setpassword", set_admin_password, SetAdminPassword, in_thread=True, summary="set the admin password"
    ),
)
