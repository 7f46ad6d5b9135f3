"""PLAIN (RFC 4616) and LOGIN (draft-murchison-sasl-login): mechanisms that carry the
password itself. Protocols offer them only over TLS unless configured otherwise.

Both verify through `AccountProvider.check_password`, which hashes off the reactor and
takes the same time for unknown users.
"""

from __future__ import annotations

from mailsrv.auth.interfaces import AccountProvider, InvalidCredentials
from mailsrv.sasl.base import MechanismBase, authorize
from mailsrv.sasl.mechanism import Challenge, LoginCheck, SASLError, Step, Success, decode_utf8

# RFC 4616 §2: each field is at most 255 octets. We allow more for passphrases, bounded
# by MAX_CLIENT_MESSAGE overall.


class PlainServer(MechanismBase):
    name = "PLAIN"

    def __init__(self, provider: AccountProvider, check_login: LoginCheck | None = None) -> None:
        super().__init__(check_login)
        self._provider = provider

    async def _start(self, initial: bytes | None) -> Step:
        if initial is None:
            # RFC 4616 §2: the client sends its message after an empty challenge.
            return Challenge(b"")
        return await self._verify(initial)

    async def _respond(self, data: bytes) -> Step:
        return await self._verify(data)

    async def _verify(self, message: bytes) -> Step:
        # message = [authzid] UTF8NUL authcid UTF8NUL passwd (RFC 4616 §2)
        parts = message.split(b"\x00")
        if len(parts) != 3:
            raise SASLError("malformed PLAIN message")
        authzid, authcid, passwd = (decode_utf8(p, "PLAIN message") for p in parts)
        if not authcid or not passwd:
            raise SASLError("malformed PLAIN message")
        self._got_login_name(authcid)
        identity = await self._provider.check_password(authcid, passwd)
        return Success(await authorize(self._provider, identity, authzid))


class LoginServer(MechanismBase):
    """The obsolete but widespread LOGIN: "Username:" then "Password:" challenges. An
    initial response, when given, is the user name (as Outlook and others send it)."""

    name = "LOGIN"

    def __init__(self, provider: AccountProvider, check_login: LoginCheck | None = None) -> None:
        super().__init__(check_login)
        self._provider = provider
        self._username: str | None = None

    async def _start(self, initial: bytes | None) -> Step:
        if initial is None:
            return Challenge(b"Username:")
        return self._take_username(initial)

    def _take_username(self, data: bytes) -> Step:
        username = decode_utf8(data, "user name")
        if not username or "\x00" in username:
            raise SASLError("empty or malformed user name")
        self._username = username
        self._got_login_name(username)
        return Challenge(b"Password:")

    async def _respond(self, data: bytes) -> Step:
        if self._username is None:
            return self._take_username(data)
        password = decode_utf8(data, "password")
        if not password:
            raise InvalidCredentials()
        return Success(await self._provider.check_password(self._username, password))
