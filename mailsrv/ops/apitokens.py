"""Per-account API tokens for the webapi: an account makes named tokens for its applications
(each shown once), lists them (name, created, last used, expiry) and revokes them; the webapi
takes a token as the HTTP Basic password of an address of the account (`verify`, called by
`ops.login.token_login`).

Invariants:
- Tokens work on the webapi only: IMAP, SMTP and web sessions log in with passwords; a
  token is never a password anywhere (and `ops.login.password_login` never sees one).
- A revoked (removed) or expired token is refused on its next use; so is any token of an
  account that is disabled or removed. Disabling an account removes its tokens (re-enabling
  does not bring them back); a password change leaves them alone.
- Only a keyed hash of a token is stored (mailsrv/auth/apitokens.py).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import msgspec

from mailsrv.auth.apitokens import ApiToken, ApiTokenTable, DuplicateTokenName
from mailsrv.auth.apitokens import looks_like_token as looks_like_token  # the webapi asks: a token or a password?
from mailsrv.auth.interfaces import AuthError, LoginIdentity, TemporaryAuthFailure
from mailsrv.ops.errors import Exists, InvalidInput, LimitExceeded, NotFound, TemporaryFailure
from mailsrv.ops.operation import Done, Operation

if TYPE_CHECKING:
    from mailsrv.server import Server

MAX_TOKENS = 100  # per account
MAX_NAME = 64
MAX_DAYS = 3650


class AddToken(msgspec.Struct, kw_only=True):
    account: str
    name: str
    expires_days: int = 0  # 0: never expires


class ListTokens(msgspec.Struct, kw_only=True):
    account: str


class TokenName(msgspec.Struct, kw_only=True):
    account: str
    name: str


class TokenInfo(msgspec.Struct, kw_only=True):
    name: str
    created: float  # Unix time
    expires: float | None  # Unix time; None: never
    last_used: float | None  # Unix time, to the minute; None: never used
    expired: bool


class NewToken(msgspec.Struct, kw_only=True):
    """A token just made: the only time its secret is shown."""

    token: str
    info: TokenInfo


def _table(server: Server) -> ApiTokenTable:
    return server.credentials.api_tokens


def describe(token: ApiToken, now: float | None = None) -> TokenInfo:
    now = time.time() if now is None else now
    return TokenInfo(
        name=token.name,
        created=token.created,
        expires=token.expires,
        last_used=token.last_used,
        expired=token.expires is not None and token.expires <= now,
    )


def _name(text: str) -> str:
    name = text.strip()
    if not name or len(name) > MAX_NAME or not name.isprintable():
        raise InvalidInput(f"a token name is 1 to {MAX_NAME} printable characters", "name")
    return name


async def _existing_account(server: Server, account: str) -> str:
    """The account as stored (LDAP: as the directory spells it); NotFound when there is no
    such account that may log in."""
    if server.config.ldap is None:
        acc = server.dynamic.account_by_name(account)
        if acc is None:
            raise NotFound(f"no such account: {account}")
        return acc.name
    try:
        identity = await server.accounts.login_for_account(account)
    except TemporaryAuthFailure:
        raise TemporaryFailure("the directory cannot be reached to verify the account; try again") from None
    if identity is None:
        raise NotFound(f"no account {account} in the directory that may log in")
    return identity.account


async def add(server: Server, req: AddToken) -> NewToken:
    """Makes a token. Raises NotFound (account), InvalidInput (name, expires_days), Exists
    (the account has a token of that name), LimitExceeded (MAX_TOKENS)."""
    name = _name(req.name)
    if not 0 <= req.expires_days <= MAX_DAYS:
        raise InvalidInput(f"expires_days: 0 (never) to {MAX_DAYS}", "expires_days")
    account = await _existing_account(server, req.account)
    table = _table(server)
    if table.count(account) >= MAX_TOKENS:
        raise LimitExceeded(f"at most {MAX_TOKENS} tokens per account; remove one first")
    expires = time.time() + req.expires_days * 86400 if req.expires_days else None
    try:
        token, record = table.add(account, name, expires)
    except DuplicateTokenName:
        raise Exists(f"the account has a token named {name!r} already") from None
    return NewToken(token=token, info=describe(record))


def list_tokens(server: Server, req: ListTokens) -> list[TokenInfo]:
    if server.config.ldap is None and server.dynamic.account_by_name(req.account) is None:
        raise NotFound(f"no such account: {req.account}")
    now = time.time()
    return [describe(t, now) for t in _table(server).list(req.account)]


def remove(server: Server, req: TokenName) -> Done:
    """Revokes a token: its next use is refused. NotFound when the account has no such token."""
    if not _table(server).remove(req.account, req.name.strip()):
        raise NotFound(f"no token named {req.name.strip()!r}")
    return Done()


async def verify(server: Server, login: str, token: str) -> LoginIdentity:
    """The identity for `login` (an address or name of the account) with `token` as its
    password. Raises AuthError when the token is unknown, expired, of another account, or the
    account may not log in."""
    if not looks_like_token(token):
        raise AuthError("not an API token")
    found = _table(server).lookup(token)
    if found is None:
        raise AuthError("unknown or revoked API token")
    if found.expires is not None and found.expires <= time.time():
        raise AuthError(f"API token {found.name!r} expired")
    identity = await server.accounts.resolve_login(login)
    if identity is None or identity.account != found.account:
        raise AuthError("API token of another account, or the account may not log in")
    return identity


OPERATIONS = (
    Operation("apitoken.add", add, AddToken, summary="make a webapi token for an account (shown once)"),
    Operation("apitoken.list", list_tokens, ListTokens, summary="an account's webapi tokens"),
    Operation("apitoken.rm", remove, TokenName, summary="revoke a webapi token"),
)
