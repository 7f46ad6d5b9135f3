"""The account page's JSON API: everything an account may read or change of itself.

Each method is a thin adapter over the ops layer with the session's account filled in (never
an account named by the request), so one account can never reach another's data. Parameters
and results are the ops layer's Structs where they fit; ops errors become `user:...` codes
(mailsrv/web/jsonapi.py). Login, logout and sessions come from `SessionAPI`.
"""

from __future__ import annotations

from typing import Any

import msgspec
from twisted.internet.threads import deferToThreadPool

from mailsrv.config.junk import JunkSettings as JunkSettingsStruct
from mailsrv.ops import accounts, accountself, apitokens, junk, rules, suppressions, tlspubkeys, webhooks
from mailsrv.ops.accountself import Overview
from mailsrv.ops.apitokens import NewToken, TokenInfo
from mailsrv.ops.clientconfig import ClientSettings as ClientSettingsStruct
from mailsrv.ops.clientconfig import apple_profile, settings_for
from mailsrv.ops.errors import InvalidInput, NotFound
from mailsrv.ops.junk import JunkStats as JunkStatsStruct
from mailsrv.ops.queue import Keep
from mailsrv.ops.queue import keep as queue_keep
from mailsrv.ops.rules import RulesetSpec
from mailsrv.ops.suppressions import Suppression
from mailsrv.ops.tlspubkeys import GeneratedKey, KeyInfo
from mailsrv.ops.webhooks import Secret as WebhookSecret
from mailsrv.ops.webhooks import Settings as WebhookSettings
from mailsrv.server import Server
from mailsrv.web.jsonapi import Call, api
from mailsrv.web.sessions import SessionAPI, account_login

MAX_KEEP = 10 * 365 * 86400  # seconds


class MailboxName(msgspec.Struct, kw_only=True):
    name: str
    messages: int
    size: int


class KeyAdd(msgspec.Struct, kw_only=True):
    cert_pem: str
    name: str = "device"
    login_address: str = ""  # "": the primary address
    no_imap_preauth: bool = False


class KeyGenerate(msgspec.Struct, kw_only=True):
    name: str = "device"
    login_address: str = ""
    no_imap_preauth: bool = False
    pkcs12_password: str = ""  # "": the PKCS#12 file is not encrypted


class WebhookOverview(msgspec.Struct, kw_only=True):
    settings: WebhookSettings
    events: list[str]  # every outgoing event (an empty selection means all of them)


def _account(call: Call) -> str:
    assert call.principal is not None  # authenticate() set it
    return call.principal


def own_key(server: Server, account: str, fingerprint: str) -> KeyInfo:
    """The key when it belongs to `account`; NotFound otherwise (another account's key is
    not revealed to exist)."""
    try:
        key = tlspubkeys.get(server, tlspubkeys.Fingerprint(fingerprint=fingerprint))
    except (NotFound, InvalidInput):
        raise NotFound("no such key") from None
    if key.account != account:
        raise NotFound("no such key")
    return key


async def _in_thread(server: Server, f: Any, *args: Any) -> Any:
    """A blocking ops function (it rewrites the dynamic config) in the reactor's pool."""
    reactor: Any = server.reactor
    return await deferToThreadPool(reactor, reactor.getThreadPool(), f, *args)


class AccountAPI(SessionAPI):
    title = "mailsrv account"

    def __init__(self, server: Server, path: str) -> None:
        super().__init__(server, "account", path, account_login)

    # --- the account ------------------------------------------------------------------------

    @api
    async def Account(self, call: Call) -> Overview:
        """Name, full name, addresses, aliases the account is a member of, quota and usage,
        keep periods and fromid addresses."""
        return await accountself.overview(self.server, _account(call))

    @api
    async def AccountSaveFullName(self, call: Call, fullName: str) -> str:
        """Sets the display name (used in From: of composed mail); returns it as stored."""
        request = accounts.SetFullName(account=_account(call), full_name=fullName)
        done: accounts.FullName = await _in_thread(self.server, accounts.set_full_name, self.server, request)
        return done.full_name

    @api
    async def SetPassword(self, call: Call, current: str, new: str) -> int:
        """Changes the password after checking the current one (rate limited like any login),
        then ends every other session of the account; returns how many were ended."""
        await accountself.change_password(self.server, _account(call), call.peer, current, new)
        return self.invalidate_other_sessions(call)

    @api
    async def ClientSettings(self, call: Call) -> ClientSettingsStruct:
        """IMAP and submission hosts, ports and TLS modes for the primary address."""
        return settings_for(self.server, (await accountself.overview(self.server, _account(call))).addresses[0])

    @api
    async def AppleProfile(self, call: Call) -> bytes:
        """An Apple configuration profile (.mobileconfig, XML plist, no password) for the
        primary address."""
        overview = await accountself.overview(self.server, _account(call))
        return apple_profile(settings_for(self.server, overview.addresses[0]), overview.full_name)

    @api
    async def KeepRetiredPeriodSave(self, call: Call, seconds: int) -> int:
        """How long the queue keeps finished outgoing messages with their attempts (0: not kept)."""
        if not 0 <= seconds <= MAX_KEEP:
            raise InvalidInput("a keep period is 0 seconds to 10 years", "seconds")
        done = await _in_thread(self.server, queue_keep, self.server, Keep(account=_account(call), keep=str(seconds)))
        return int(done.retired_keep)

    @api
    async def FromIDLoginAddressesSave(self, call: Call, addresses: list[str]) -> list[str]:
        """Login addresses whose submissions get a unique MAIL FROM per recipient."""
        saved: list[str] = await _in_thread(
            self.server, accountself.set_fromid_login_addresses, self.server, _account(call), addresses
        )
        return saved

    @api
    async def Mailboxes(self, call: Call) -> list[MailboxName]:
        """The account's mailboxes with message counts and sizes (for export and import)."""
        store = self.server.stores.open(_account(call))
        return [MailboxName(name=m.name, messages=m.messages, size=m.size) for m in await store.mailboxes_async()]

    # --- TLS client certificates ------------------------------------------------------------

    @api
    async def TLSPublicKeys(self, call: Call) -> list[KeyInfo]:
        """The account's registered client-certificate keys."""
        return tlspubkeys.list_keys(self.server, tlspubkeys.ListKeys(account=_account(call)))

    @api
    async def TLSPublicKeyAdd(self, call: Call, key: KeyAdd) -> KeyInfo:
        """Registers the public key of a certificate (PEM) for the account."""
        request = tlspubkeys.AddKey(
            account=_account(call),
            cert_pem=key.cert_pem,
            name=key.name,
            login_address=key.login_address or None,
            no_imap_preauth=key.no_imap_preauth,
        )
        return await tlspubkeys.add(self.server, request)

    @api
    async def TLSPublicKeyRemove(self, call: Call, fingerprint: str) -> None:
        """Unregisters one of the account's keys."""
        own_key(self.server, _account(call), fingerprint)
        tlspubkeys.remove(self.server, tlspubkeys.Fingerprint(fingerprint=fingerprint))

    @api
    async def TLSPublicKeyGenerate(self, call: Call, key: KeyGenerate) -> GeneratedKey:
        """Makes an ed25519 key and certificate, registers the public key and returns the
        PKCS#12 bundle and private key once (the server keeps neither)."""
        request = tlspubkeys.GenerateKey(
            account=_account(call),
            name=key.name,
            login_address=key.login_address or None,
            no_imap_preauth=key.no_imap_preauth,
            pkcs12_password=key.pkcs12_password,
        )
        return await tlspubkeys.generate(self.server, request)

    # --- delivery rulesets ------------------------------------------------------------------

    @api
    async def Rulesets(self, call: Call) -> list[RulesetSpec]:
        """The rulesets in order; the first that matches decides."""
        return rules.list_rules(self.server, rules.AccountRules(account=_account(call)))

    @api
    async def RulesetAdd(self, call: Call, ruleset: RulesetSpec) -> int:
        """Appends a ruleset; returns its 1-based position."""
        return rules.add(self.server, rules.AddRuleset(account=_account(call), ruleset=ruleset)).index

    @api
    async def RulesetSave(self, call: Call, index: int, ruleset: RulesetSpec) -> None:
        """Replaces the ruleset at a 1-based position."""
        rules.replace(self.server, rules.ReplaceRuleset(account=_account(call), index=index, ruleset=ruleset))

    @api
    async def RulesetRemove(self, call: Call, index: int) -> None:
        """Removes the ruleset at a 1-based position."""
        rules.remove(self.server, rules.RemoveRuleset(account=_account(call), index=index))

    @api
    async def RulesetMove(self, call: Call, index: int, to: int) -> list[RulesetSpec]:
        """Moves a ruleset to another 1-based position; returns the new order."""
        return rules.move(self.server, rules.MoveRuleset(account=_account(call), index=index, to=to))

    # --- junk filter ------------------------------------------------------------------------

    @api
    async def JunkSettings(self, call: Call) -> JunkSettingsStruct:
        """The account's junk-filter settings."""
        found: JunkSettingsStruct = await junk.get_settings(self.server, junk.AccountJunk(account=_account(call)))
        return found

    @api
    async def JunkSettingsSave(self, call: Call, settings: JunkSettingsStruct) -> JunkSettingsStruct:
        """Replaces the junk-filter settings (each field checked against its limits)."""
        request = junk.ConfigureJunk(account=_account(call), settings=msgspec.to_builtins(settings))
        saved: JunkSettingsStruct = await junk.configure(self.server, request)
        return saved

    @api
    async def JunkStats(self, call: Call) -> JunkStatsStruct:
        """Messages trained and words known."""
        stats: JunkStatsStruct = await junk.stats(self.server, junk.AccountJunk(account=_account(call)))
        return stats

    # --- webhooks ---------------------------------------------------------------------------

    @api
    async def Webhooks(self, call: Call) -> WebhookOverview:
        """The account's webhook settings (no secret) and every outgoing event there is."""
        settings = webhooks.webhook_settings(self.server, webhooks.WebhookAccount(account=_account(call)))
        return WebhookOverview(settings=settings, events=list(webhooks.OUTGOING_EVENTS))

    @api
    async def OutgoingWebhookSave(self, call: Call, url: str, authorization: str, events: list[str]) -> WebhookSettings:
        """Delivery events of mail the account sends go to `url` ("" turns it off), with this
        Authorization header; no events named: all of them."""
        request = webhooks.OutgoingWebhookSave(
            account=_account(call), url=url, authorization=authorization, events=events
        )
        return await webhooks.outgoing_webhook_save(self.server, request)

    @api
    async def IncomingWebhookSave(self, call: Call, url: str, authorization: str) -> WebhookSettings:
        """Mail the account receives is posted to `url` ("" turns it off)."""
        request = webhooks.IncomingWebhookSave(account=_account(call), url=url, authorization=authorization)
        return await webhooks.incoming_webhook_save(self.server, request)

    @api
    async def WebhookSecretRotate(self, call: Call) -> WebhookSecret:
        """A new signing secret (shown only in this answer) replaces the old one at once."""
        return await webhooks.webhook_secret_rotate(self.server, webhooks.WebhookAccount(account=_account(call)))

    @api
    async def KeepRetiredWebhookPeriodSave(self, call: Call, seconds: int) -> int:
        """How long finished webhooks stay listed (0: not kept)."""
        if not 0 <= seconds <= MAX_KEEP:
            raise InvalidInput("a keep period is 0 seconds to 10 years", "seconds")
        settings = await webhooks.keep(self.server, webhooks.Keep(account=_account(call), keep=str(seconds)))
        return settings.retired_keep

    # --- suppression list -------------------------------------------------------------------

    @api
    async def Suppressions(self, call: Call) -> list[Suppression]:
        """Addresses outgoing mail is no longer sent to, oldest first."""
        return await suppressions.suppression_list(self.server, suppressions.ListSuppressions(account=_account(call)))

    @api
    async def SuppressionAdd(self, call: Call, address: str, reason: str) -> Suppression:
        """Adds an address (its base address: tags and case do not matter)."""
        request = suppressions.AddSuppression(account=_account(call), address=address, reason=reason)
        return await suppressions.suppression_add(self.server, request)

    @api
    async def SuppressionRemove(self, call: Call, address: str) -> None:
        """Removes an address from the list."""
        request = suppressions.SuppressionAddress(account=_account(call), address=address)
        await suppressions.suppression_remove(self.server, request)

    # --- webapi tokens ----------------------------------------------------------------------

    @api
    async def ApiTokens(self, call: Call) -> list[TokenInfo]:
        """The account's webapi tokens (never their secrets), oldest first."""
        return apitokens.list_tokens(self.server, apitokens.ListTokens(account=_account(call)))

    @api
    async def ApiTokenAdd(self, call: Call, name: str, expiresDays: int) -> NewToken:
        """Makes a token for an application (expiresDays 0: never expires); the answer is the
        only time its secret is shown. It is the HTTP Basic password of any address of the
        account on the webapi, nowhere else."""
        request = apitokens.AddToken(account=_account(call), name=name, expires_days=expiresDays)
        return await apitokens.add(self.server, request)

    @api
    async def ApiTokenRemove(self, call: Call, name: str) -> None:
        """Revokes a token: its next use is refused."""
        apitokens.remove(self.server, apitokens.TokenName(account=_account(call), name=name))
