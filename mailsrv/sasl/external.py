"""EXTERNAL (RFC 4422 Appendix A): the identity comes from outside SASL, here the TLS
client certificate whose public key an account registered.

The mechanism is a seam: it is given a callable that returns the identity bound to the
connection's client certificate (or None), which the TLS public key issue provides. The
client's message is an authorization identity: empty, or a name of the same account.
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet.defer import Deferred

from mailsrv.auth.interfaces import AccountProvider, InvalidCredentials, LoginIdentity
from mailsrv.sasl.base import MechanismBase, authorize
from mailsrv.sasl.mechanism import Challenge, Step, Success, decode_utf8

ExternalIdentity = Callable[[], "LoginIdentity | Deferred[LoginIdentity | None] | None"]


class ExternalServer(MechanismBase):
    name = "EXTERNAL"

    def __init__(self, provider: AccountProvider, external_identity: ExternalIdentity | None) -> None:
        super().__init__()
        self._provider = provider
        self._external_identity = external_identity

    async def _start(self, initial: bytes | None) -> Step:
        if initial is None:
            # RFC 4422 App. A.1: an empty challenge, the client answers with its authzid.
            return Challenge(b"")
        return await self._finish(initial)

    async def _respond(self, data: bytes) -> Step:
        return await self._finish(data)

    async def _finish(self, message: bytes) -> Step:
        authzid = decode_utf8(message, "authorization identity")
        found = self._external_identity() if self._external_identity is not None else None
        identity = await found if isinstance(found, Deferred) else found
        if identity is None:
            raise InvalidCredentials("no registered client certificate")
        return Success(await authorize(self._provider, identity, authzid))
