"""The `Server`: the one object every protocol factory and web handler is given.

It holds the configuration, the account stores, the account provider (local or LDAP), the
credential database, the login rate limiter, the TLS contexts, the outgoing queue, the
rulesets, the DNS resolver and inbound mail authentication (all required: `Server.create`
opens them, test harnesses pass their own), and what features install later (junk filters,
the login cache, the hooks the application layer publishes to). Nothing in mailsrv is
global: tests build a `Server` on a temporary directory with `Server.create(config)` and
start the same services the daemon starts (`mailsrv.service.make_service`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from twisted.internet.interfaces import IReactorCore
from twisted.logger import Logger

from mailsrv.config.types import StaticConfig
from mailsrv.ops.mail import MailHooks
from mailsrv.spool import MemoryBudget

if TYPE_CHECKING:
    from mailsrv.auth.credentials import CredentialStore
    from mailsrv.auth.interfaces import AccountProvider
    from mailsrv.auth.logincache import VerifiedCredentialsCache
    from mailsrv.auth.ratelimit import LoginRateLimiter
    from mailsrv.certacme import ChallengeResponses
    from mailsrv.config.dynamic import DynamicConfigStore
    from mailsrv.dns.authresults import MailAuthenticator
    from mailsrv.dns.resolver import Resolver
    from mailsrv.junk.service import JunkFilters
    from mailsrv.logging import RecentLog
    from mailsrv.ops.delivery import DeliveryDecider
    from mailsrv.pools import Pools
    from mailsrv.queue.interfaces import OutgoingQueue
    from mailsrv.rules import RulesStore
    from mailsrv.store.interfaces import StoreRegistry
    from mailsrv.tlsutil import TLSContexts
    from mailsrv.webhooks.store import WebhookStore

log = Logger()


@dataclass
class Server:
    reactor: IReactorCore
    config: StaticConfig
    dynamic: DynamicConfigStore
    stores: StoreRegistry
    accounts: AccountProvider
    rate_limiter: LoginRateLimiter
    tls: TLSContexts | None  # None when no [[tls]] key pair is configured
    credentials: CredentialStore  # passwords, SCRAM secrets and TLS public keys (data/auth.db)
    queue: OutgoingQueue
    rules: RulesStore  # per-account delivery rulesets (data/rules.toml)
    resolver: Resolver  # the one DNS resolver ([dns] config)
    mail_auth: MailAuthenticator  # inbound SPF/DKIM/DMARC (mailsrv.dns.authresults)
    pools: Pools | None = None  # the thread pools by kind of blocking work (mailsrv.pools)
    # Subscribers to what users do to their mail (junk filter training, rule suggestions).
    mail_hooks: MailHooks = field(default_factory=MailHooks)
    # Called in order for every stored copy after the rulesets (mailsrv.ops.delivery.decide): the junk filter.
    delivery_deciders: list[DeliveryDecider] = field(default_factory=list)
    junk: JunkFilters | None = None  # per-account junk filters (mailsrv.ops.junk.install)
    login_cache: VerifiedCredentialsCache | None = None  # passwords verified moments ago (ops.login)
    # Webhook settings and queue (data/webhooks.db, mailsrv/webhooks/); None: no webhooks (tests).
    webhooks: WebhookStore | None = None
    # Message data in memory across all deliveries (mailsrv/spool.py); None: no bound.
    message_budget: MemoryBudget | None = None
    # The last warnings and errors logged (the daemon observes the global log publisher).
    recent_log: RecentLog = field(default_factory=lambda: _recent_log())
    # HTTP-01 answers of a running ACME order, served by the HTTP listener (mailsrv.certacme).
    acme_challenges: ChallengeResponses = field(default_factory=lambda: _challenge_responses())
    # The web session store (mailsrv.web.sessions.SessionStore), opened by the first interface with sessions.
    web_sessions: Any = None
    # Summaries of received DMARC/TLS reports (mailsrv.store.reports.ReportStore), opened on first use by ops.reports.
    reports: Any = None
    # Connection ids are unique per process and appear in every log line of a session.
    _next_connection_id: int = field(default=1)

    def new_connection_id(self) -> str:
        cid = self._next_connection_id
        self._next_connection_id += 1
        return f"c{cid}"

    def quota_for(self, account: str) -> int | None:
        """The account's storage limit in octets (RFC 9208), None for no limit. An account
        quota of 0 means no limit even when a default is configured."""
        acc = self.dynamic.current.accounts.get(account)
        if acc is not None and acc.quota is not None:
            return acc.quota or None
        directory_quota = getattr(self.accounts, "quota_for", None)
        if acc is None and directory_quota is not None:
            # LDAP accounts: the directory's quota attribute (docs/ldap.md), when it has one.
            quota = directory_quota(account)
            if quota is not None:
                return int(quota) or None
        return self.config.limits.default_quota

    @classmethod
    def create(cls, config: StaticConfig, reactor: Any = None) -> Server:
        """Opens everything the configuration names: dynamic config, credential database,
        stores, TLS key pairs. Raises ConfigError (with file and key) or TLSConfigError."""
        from mailsrv.auth.credentials import CredentialStore
        from mailsrv.auth.local import LocalAccountProvider
        from mailsrv.auth.ratelimit import LoginRateLimiter
        from mailsrv.config.dynamic import DynamicConfigStore
        from mailsrv.store.registry import SQLiteStoreRegistry
        from mailsrv.tlsutil import TLSContexts

        if reactor is None:
            from twisted.internet import reactor as default_reactor

            reactor = default_reactor
        config.data_dir.mkdir(parents=True, exist_ok=True)
        # The reloader reads hand edits in a thread: listeners still run on the reactor thread.
        dynamic = DynamicConfigStore(config.dynamic_file, call_in_reactor=reactor.callFromThread)
        from mailsrv.pools import reactor_pools, thread_pools

        # A real reactor gets the sized pools; a test's fake reactor (a Clock with an inline
        # getThreadPool) keeps running everything through its own pool.
        pools = thread_pools(reactor) if IReactorCore.providedBy(reactor) else reactor_pools(reactor)
        credentials = CredentialStore(config.data_dir, reactor=reactor, run_hashing=pools.hashing)
        accounts: AccountProvider
        if config.ldap is not None:
            from mailsrv.auth import ldap as ldap_provider  # type: ignore[attr-defined,unused-ignore]

            accounts = ldap_provider.make_provider(config.ldap, reactor)
        else:
            accounts = LocalAccountProvider(dynamic, credentials)
        tls = TLSContexts(config.tls) if config.tls else None
        from mailsrv.dns.authresults import MailAuthenticator
        from mailsrv.dns.resolver import Resolver
        from mailsrv.queue.store import SQLiteOutgoingQueue
        from mailsrv.rules import RulesStore

        resolver = Resolver(reactor, config.dns.nameservers, config.dns.timeout, run_in_pool=pools.dns)
        # A fake reactor's timers run only when a test advances them; its stores keep the
        # global reactor's (their blocking work still runs through the fake's pool).
        store_reactor = reactor if IReactorCore.providedBy(reactor) else None
        server = cls(
            reactor=reactor,
            config=config,
            dynamic=dynamic,
            # Quotas are read per call from the server's dynamic config (and LDAP).
            stores=SQLiteStoreRegistry(
                config.data_dir,
                quota_for=lambda account: server.quota_for(account),
                reactor=store_reactor,
                pools=pools,
            ),
            accounts=accounts,
            rate_limiter=LoginRateLimiter(config.limits, reactor),
            tls=tls,
            credentials=credentials,
            queue=SQLiteOutgoingQueue(config.data_dir, run_fsync=pools.fsync, run_files=pools.files),
            rules=RulesStore(config.data_dir),
            resolver=resolver,
            mail_auth=MailAuthenticator(resolver, config.hostname.ascii),
            pools=pools,
        )
        server.message_budget = MemoryBudget(config.limits.message_memory)
        from mailsrv.webhooks.store import WebhookStore

        server.webhooks = WebhookStore(config.data_dir, run_fsync=pools.fsync)
        server.login_cache = _login_cache(config, reactor, dynamic, credentials)
        if config.ldap is None:
            _revoke_api_tokens_of_disabled_accounts(dynamic, credentials)
        from mailsrv.ops import junk

        junk.install(server)
        return server

    def close(self) -> None:
        """Closes stores and databases; called when the daemon stops."""
        self.stores.close_all()
        self.credentials.close()
        self.queue.close()
        if self.webhooks is not None:
            self.webhooks.close()
        if self.junk is not None:
            self.junk.close()
        if self.reports is not None:
            self.reports.close()
        if self.pools is not None:
            self.pools.stop()


def _login_cache(
    config: StaticConfig, reactor: Any, dynamic: DynamicConfigStore, credentials: CredentialStore
) -> VerifiedCredentialsCache:
    """The verified-credentials cache, told when a password changes or an account goes."""
    from mailsrv.auth.logincache import VerifiedCredentialsCache

    cache = VerifiedCredentialsCache(reactor, config.limits.login_cache_ttl, config.limits.login_cache_size)
    credentials.on_change(cache.forget_account)
    if config.ldap is None:

        def accounts_changed(current: Any) -> None:
            def enabled(account: str) -> bool:
                acc = current.accounts.get(account)
                return acc is not None and not acc.disabled

            cache.forget_unless(enabled)

        dynamic.add_listener(accounts_changed)
    return cache


def _revoke_api_tokens_of_disabled_accounts(dynamic: DynamicConfigStore, credentials: CredentialStore) -> None:
    """Disabling or removing an account revokes its webapi tokens: at start (the CLI may have
    changed the config while the daemon was stopped) and on every change of the dynamic config."""

    def sweep(current: Any) -> None:
        enabled = {a.name for a in current.accounts.values() if not a.disabled}
        for account in credentials.api_tokens.accounts() - enabled:
            credentials.api_tokens.remove_account(account)

    sweep(dynamic.current)
    dynamic.add_listener(sweep)


def _recent_log() -> RecentLog:
    from mailsrv.logging import RecentLog

    return RecentLog()


def _challenge_responses() -> ChallengeResponses:
    from mailsrv.certacme import ChallengeResponses

    return ChallengeResponses()
