"""Common plumbing of server mechanisms: ordering checks, error containment, authzid."""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from mailsrv.auth.interfaces import AccountProvider, AuthError, InvalidCredentials, LoginIdentity
from mailsrv.sasl.mechanism import LoginCheck, SASLError, Step, check_length

log = Logger()


class MechanismBase:
    """Subclasses implement `_start` and `_respond` as coroutines. This class enforces the
    order (start once, respond only while a challenge is outstanding, nothing after the
    end) and guarantees only SASLError/AuthError ever fail the returned Deferreds."""

    name = ""

    def __init__(self, check_login: LoginCheck | None = None) -> None:
        self.login_name: str | None = None
        self._check_login = check_login
        self._started = False
        self._busy = False
        self._finished = False

    def start(self, initial: bytes | None) -> Deferred[Step]:
        if self._started:
            return Deferred.fromCoroutine(_raise(SASLError("exchange already started")))
        self._started = True
        if initial is not None:
            try:
                check_length(initial)
            except SASLError as e:
                self._finished = True
                return Deferred.fromCoroutine(_raise(e))
        return self._run(self._start(initial))

    def respond(self, data: bytes) -> Deferred[Step]:
        if not self._started or self._finished or self._busy:
            return Deferred.fromCoroutine(_raise(SASLError("unexpected SASL response")))
        try:
            check_length(data)
        except SASLError as e:
            self._finished = True
            return Deferred.fromCoroutine(_raise(e))
        return self._run(self._respond(data))

    def _got_login_name(self, name: str) -> None:
        """Records the authcid and applies the protocol's check (rate limit) before any
        credential is looked at."""
        self.login_name = name
        if self._check_login is not None:
            self._check_login(name)

    async def _start(self, initial: bytes | None) -> Step:
        raise NotImplementedError

    async def _respond(self, data: bytes) -> Step:
        raise NotImplementedError

    def _run(self, coro: Coroutine[Any, Any, Step]) -> Deferred[Step]:
        self._busy = True
        return Deferred.fromCoroutine(self._guarded(coro))

    async def _guarded(self, coro: Coroutine[Any, Any, Step]) -> Step:
        from mailsrv.sasl.mechanism import Success

        try:
            step = await coro
        except (SASLError, AuthError):
            self._finished = True
            raise
        except Exception:
            # A bug must not reach the peer as a traceback, nor escape as an unknown type.
            self._finished = True
            log.failure("SASL {mechanism} failed unexpectedly", mechanism=self.name)
            raise SASLError("internal error") from None
        finally:
            self._busy = False
        if isinstance(step, Success):
            self._finished = True
        return step


async def _raise(error: Exception) -> Step:
    raise error


async def authorize(provider: AccountProvider, identity: LoginIdentity, authzid: str) -> LoginIdentity:
    """Applies an authorization identity: empty means `identity` itself; otherwise it must
    name the same account (one of its addresses, or its name), and the login is then
    attributed to that address. Acting as another account is refused (RFC 4616 §2 leaves
    the policy to the server; we have no admin proxying)."""
    if not authzid:
        return identity
    target = await provider.resolve_login(authzid)
    if target is None or target.account != identity.account:
        raise InvalidCredentials("not authorized to act as the given authorization identity")
    return target
