"""CRAM-MD5 (RFC 2195): the server sends a unique challenge, the client answers with its
user name and HMAC-MD5(password, challenge) in lower-case hex.

The server finishes the HMAC from stored MD5 states (`mailsrv.auth.passwords`), never
from a plaintext password. CRAM-MD5 is server-first: an initial response is an error
(RFC 4422 §5, item 2).
"""

from __future__ import annotations

import hmac
import os
import time

from mailsrv.auth.interfaces import AccountProvider, InvalidCredentials
from mailsrv.auth.passwords import cram_md5_digest
from mailsrv.sasl.base import MechanismBase
from mailsrv.sasl.mechanism import Challenge, LoginCheck, SASLError, Step, Success, decode_utf8

_HEX = frozenset(b"0123456789abcdef")


class CramMD5Server(MechanismBase):
    name = "CRAM-MD5"

    def __init__(self, provider: AccountProvider, hostname: str, check_login: LoginCheck | None = None) -> None:
        super().__init__(check_login)
        self._provider = provider
        # RFC 2195 §2: a msg-id-like string, unique per exchange.
        self._challenge = f"<{os.urandom(8).hex()}.{int(time.time())}@{hostname}>".encode("ascii", "replace")

    async def _start(self, initial: bytes | None) -> Step:
        if initial is not None:
            raise SASLError("CRAM-MD5 does not take an initial response")
        return Challenge(self._challenge)

    async def _respond(self, data: bytes) -> Step:
        # RFC 2195 §2: user name, one space, 32 lower-case hex digits. The user name may
        # contain spaces, so split at the last one.
        username_raw, sep, digest_hex = data.rpartition(b" ")
        if not sep or len(digest_hex) != 32 or not set(digest_hex) <= _HEX or not username_raw:
            raise SASLError("malformed CRAM-MD5 response")
        username = decode_utf8(username_raw, "user name")
        self._got_login_name(username)
        identity, states = await self._provider.cram_md5_secret(username)
        expected = cram_md5_digest(states, self._challenge)
        if not hmac.compare_digest(expected, bytes.fromhex(digest_hex.decode("ascii"))):
            raise InvalidCredentials()
        return Success(identity)
