"""The `Server`: the one object every protocol factory and web handler is given.

It holds the configuration, the account stores, the account provider (local or LDAP), the
login rate limiter and the TLS contexts. Nothing in mailsrv is global: tests build a
`Server` on a temporary directory with `Server.create(config)` and start the same services
the daemon starts (`mailsrv.service.make_service`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from twisted.internet.interfaces import IReactorCore
from twisted.logger import Logger

from mailsrv.config.types import StaticConfig

if TYPE_CHECKING:
    from mailsrv.auth.interfaces import AccountProvider
    from mailsrv.auth.ratelimit import LoginRateLimiter
    from mailsrv.config.dynamic import DynamicConfigStore
    from mailsrv.store.interfaces import StoreRegistry
    from mailsrv.tlsutil import TLSContexts

log = Logger()


@dataclass
class Server:
    reactor: IReactorCore
    config: StaticConfig
    dynamic: DynamicConfigStore
    stores: StoreRegistry
    accounts: AccountProvider
    rate_limiter: LoginRateLimiter
    tls: TLSContexts | None
    # Connection ids are unique per process and appear in every log line of a session.
    _next_connection_id: int = field(default=1)

    def new_connection_id(self) -> str:
        cid = self._next_connection_id
        self._next_connection_id += 1
        return f"c{cid}"
