"""The account page's JSON API: everything an account may read or change of itself.

Each method is a thin adapter over the ops layer with the session's account filled in (never
an account named by the request), so one account can never touch another. Results and
parameters are the ops layer's Structs where they fit; errors are ops errors, which the API
framework turns into `user:...` codes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

import msgspec
from twisted.internet.defer import Deferred

from mailsrv.config.junk import JunkSettings
from mailsrv.ops import accounts, accountself, clientconfig, junk, rules, suppressions, tlspubkeys
from mailsrv.ops.errors import InvalidInput, NotFound
from mailsrv.ops.queue import Keep
from mailsrv.ops.queue import keep as queue_keep
from mailsrv.ops.suppressions import Suppression

if TYPE_CHECKING:
    from mailsrv.server import Server

MAX_KEEP = 10 * 365 * 86400


class CallContext(Protocol):
    """What a method needs of the API framework's call: the server, the session's account
    and the peer's IP (rate limits)."""

    @property
    def server(self) -> Server: ...

    @property
    def account(self) -> str: ...

    @property
    def peer_ip(self) -> str: ...


class MailboxName(msgspec.Struct, kw_only=True):
    name: str
    messages: int
    size: int


class KeyAdd(msgspec.Struct, kw_only=True):
    cert_pem: str
    name: str = "device"
    login_address: str = ""
    no_imap_preauth: bool = False


class KeyGenerate(msgspec.Struct, kw_only=True):
    name: str = "device"
    login_address: str = ""
    no_imap_preauth: bool = False
    pkcs12_password: str = ""


def own_key(server: Server, account: str, fingerprint: str) -> tlspubkeys.KeyInfo:
    """The key when it belongs to `account`; NotFound otherwise (another account's key is
    not revealed to exist)."""
    try:
        key = tlspubkeys.get(server, tlspubkeys.Fingerprint(fingerprint=fingerprint))
    except (NotFound, InvalidInput):
        raise NotFound("no such key") from None
    if key.account != account:
        raise NotFound("no such key")
    return key


async def in_thread(server: Server, f: Any, *args: Any) -> Any:
    """Runs a blocking ops function (a dynamic-config rewrite) in the reactor's pool."""
    from twisted.internet.threads import deferToThreadPool

    reactor: Any = server.reactor
    return await deferToThreadPool(reactor, reactor.getThreadPool(), f, *args)


class AccountMethods:
    """The methods, each `(ctx, params...)`; the interface class exposes them by name."""

    # --- account ---------------------------------------------------------------------------

    async def account(self, ctx: CallContext) -> accountself.Overview:
        return accountself.overview(ctx.server, ctx.account)

    async def save_full_name(self, ctx: CallContext, full_name: str) -> str:
        done: accounts.FullName = await in_thread(
            ctx.server,
            accounts.set_full_name,
            ctx.server,
            accounts.SetFullName(account=ctx.account, full_name=full_name),
        )
        return done.full_name

    async def set_password(self, ctx: CallContext, current: str, new: str) -> None:
        await accountself.change_password(ctx.server, ctx.account, ctx.peer_ip, current, new)

    async def client_settings(self, ctx: CallContext) -> clientconfig.ClientSettings:
        return clientconfig.settings_for(ctx.server, self._primary(ctx))

    async def apple_profile(self, ctx: CallContext) -> bytes:
        overview = accountself.overview(ctx.server, ctx.account)
        settings = clientconfig.settings_for(ctx.server, overview.addresses[0])
        return clientconfig.apple_profile(settings, overview.full_name)

    async def save_retired_keep(self, ctx: CallContext, seconds: int) -> int:
        if not 0 <= seconds <= MAX_KEEP:
            raise InvalidInput("a keep period is 0 seconds to 10 years", "seconds")
        done = await in_thread(ctx.server, queue_keep, ctx.server, Keep(account=ctx.account, keep=str(seconds)))
        return int(done.retired_keep)

    async def mailboxes(self, ctx: CallContext) -> list[MailboxName]:
        store = ctx.server.stores.open(ctx.account)
        return [MailboxName(name=m.name, messages=m.messages, size=m.size) for m in store.mailboxes()]

    async def save_fromid_login_addresses(self, ctx: CallContext, addresses: list[str]) -> list[str]:
        saved: list[str] = await in_thread(
            ctx.server, accountself.set_fromid_login_addresses, ctx.server, ctx.account, addresses
        )
        return saved

    # --- suppression list ------------------------------------------------------------------

    async def suppressions(self, ctx: CallContext) -> list[Suppression]:
        return await suppressions.suppression_list(ctx.server, suppressions.ListSuppressions(account=ctx.account))

    async def suppression_add(self, ctx: CallContext, address: str, reason: str) -> Suppression:
        request = suppressions.AddSuppression(account=ctx.account, address=address, reason=reason)
        return await suppressions.suppression_add(ctx.server, request)

    async def suppression_remove(self, ctx: CallContext, address: str) -> None:
        request = suppressions.SuppressionAddress(account=ctx.account, address=address)
        await suppressions.suppression_remove(ctx.server, request)

    # --- TLS client keys -------------------------------------------------------------------

    async def keys(self, ctx: CallContext) -> list[tlspubkeys.KeyInfo]:
        return tlspubkeys.list_keys(ctx.server, tlspubkeys.ListKeys(account=ctx.account))

    async def key_add(self, ctx: CallContext, key: KeyAdd) -> tlspubkeys.KeyInfo:
        return await tlspubkeys.add(
            ctx.server,
            tlspubkeys.AddKey(
                account=ctx.account,
                cert_pem=key.cert_pem,
                name=key.name,
                login_address=key.login_address or None,
                no_imap_preauth=key.no_imap_preauth,
            ),
        )

    async def key_remove(self, ctx: CallContext, fingerprint: str) -> None:
        own_key(ctx.server, ctx.account, fingerprint)
        tlspubkeys.remove(ctx.server, tlspubkeys.Fingerprint(fingerprint=fingerprint))

    async def key_generate(self, ctx: CallContext, key: KeyGenerate) -> tlspubkeys.GeneratedKey:
        return await tlspubkeys.generate(
            ctx.server,
            tlspubkeys.GenerateKey(
                account=ctx.account,
                name=key.name,
                login_address=key.login_address or None,
                no_imap_preauth=key.no_imap_preauth,
                pkcs12_password=key.pkcs12_password,
            ),
        )

    # --- rulesets --------------------------------------------------------------------------

    async def rulesets(self, ctx: CallContext) -> list[rules.RulesetSpec]:
        return rules.list_rules(ctx.server, rules.AccountRules(account=ctx.account))

    async def ruleset_add(self, ctx: CallContext, ruleset: rules.RulesetSpec) -> int:
        return rules.add(ctx.server, rules.AddRuleset(account=ctx.account, ruleset=ruleset)).index

    async def ruleset_save(self, ctx: CallContext, index: int, ruleset: rules.RulesetSpec) -> None:
        rules.replace(ctx.server, rules.ReplaceRuleset(account=ctx.account, index=index, ruleset=ruleset))

    async def ruleset_remove(self, ctx: CallContext, index: int) -> None:
        rules.remove(ctx.server, rules.RemoveRuleset(account=ctx.account, index=index))

    async def ruleset_move(self, ctx: CallContext, index: int, to: int) -> list[rules.RulesetSpec]:
        return rules.move(ctx.server, rules.MoveRuleset(account=ctx.account, index=index, to=to))

    # --- junk filter -----------------------------------------------------------------------

    async def junk_settings(self, ctx: CallContext) -> JunkSettings:
        settings: Deferred[JunkSettings] = junk.get_settings(ctx.server, junk.AccountJunk(account=ctx.account))
        return await settings

    async def junk_settings_save(self, ctx: CallContext, settings: JunkSettings) -> JunkSettings:
        request = junk.ConfigureJunk(account=ctx.account, settings=msgspec.to_builtins(settings))
        saved: Deferred[JunkSettings] = junk.configure(ctx.server, request)
        return await saved

    async def junk_stats(self, ctx: CallContext) -> junk.JunkStats:
        stats: Deferred[junk.JunkStats] = junk.stats(ctx.server, junk.AccountJunk(account=ctx.account))
        return await stats

    # --- helpers ---------------------------------------------------------------------------

    def _primary(self, ctx: CallContext) -> str:
        overview = accountself.overview(ctx.server, ctx.account)
        return overview.addresses[0]
