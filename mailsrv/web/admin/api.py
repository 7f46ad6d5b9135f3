"""The admin interface's JSON API: every admin action of the CLI, through the same ops
functions (domains with their DNS check, accounts, aliases, the queue with its hold rules and
retired messages, server views).

Invariants:
- Sessions are of kind "admin", logged in with `ops.adminauth.admin_login` (the admin
  password, or an LDAP member of the admin group); an account session (kind "account") is
  refused by `SessionAPI.session_of`, so no account ever reaches a method here.
- Unless `[web] admin_on_all_listeners`, the peer must be a loopback address, at login and
  on every call (the site also mounts the interface on loopback listeners only).
- Methods that rewrite the dynamic config (or hash, or read files) run in the thread pool;
  queue listings are keyset pages (ops.queue).
- Disabling or removing an account, or setting its password, ends its web sessions.
"""

from __future__ import annotations

import ipaddress
import secrets
from typing import Any

import msgspec
from twisted.internet.threads import deferToThreadPool

from mailsrv.dns.dkimkeys import public_record
from mailsrv.ops import (
    accounts,
    accountself,
    adminauth,
    aliases,
    dnscheck,
    domains,
    reports,
    serverinfo,
    tlspubkeys,
    webhooks,
)
from mailsrv.ops import queue as ops_queue
from mailsrv.ops.adminauth import admin_login
from mailsrv.ops.aliases import AliasInfo
from mailsrv.ops.dkim import DKIMRecord
from mailsrv.ops.errors import InvalidInput, NotFound, PermissionDenied
from mailsrv.ops.login import Peer
from mailsrv.ops.queue import HoldRule, QueuePage
from mailsrv.ops.tlspubkeys import KeyInfo
from mailsrv.server import Server
from mailsrv.web.jsonapi import Call, api, bad_auth
from mailsrv.web.sessions import SESSION_COOKIE, SessionAPI
from mailsrv.webhooks.store import HookPage

GENERATED_PASSWORD_BYTES = 12  # token_urlsafe: 16 characters


class AccountCreated(msgspec.Struct, kw_only=True):
    account: str
    address: str
    password: str  # generated; shown once, never stored in clear


class AliasSettings(msgspec.Struct, kw_only=True):
    postPublic: bool = False
    listMembers: bool = False
    allowMsgFrom: bool = False


def _loopback_only(server: Server, peer: str) -> None:
    if server.config.web.admin_on_all_listeners:
        return
    try:
        loopback = ipaddress.ip_address(peer.split("%")[0]).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise PermissionDenied("the admin interface answers only on loopback ([web] admin_on_all_listeners)")


async def admin_authenticator(server: Server, peer: str, username: str, password: str) -> str:
    _loopback_only(server, peer)
    identity = await admin_login(server, Peer(peer), username, password)
    return identity.name


async def _in_thread(server: Server, f: Any, *args: Any) -> Any:
    reactor: Any = server.reactor
    return await deferToThreadPool(reactor, reactor.getThreadPool(), f, *args)


class AdminAPI(SessionAPI):
    title = "mailsrv admin"

    def __init__(self, server: Server, path: str) -> None:
        super().__init__(server, "admin", path, admin_authenticator)
        # Directory administrators: when the directory last said they are in the admin group.
        self._admins_checked: dict[str, float] = {}

    async def authenticate(self, call: Call) -> None:
        _loopback_only(self.server, call.peer)
        await super().authenticate(call)
        if call.principal != adminauth.ADMIN_LOGIN:
            await self._check_directory_admin(call)

    async def _check_directory_admin(self, call: Call) -> None:
        """A directory administrator removed from the admin group loses the session within
        `[ldap] admin_recheck_seconds` (the directory is asked again after that long)."""
        principal = call.principal
        assert principal is not None
        ldap = self.server.config.ldap
        now = self.server.reactor.seconds()
        checked = self._admins_checked.get(principal)
        if ldap is not None and checked is not None and now - checked < ldap.admin_recheck_seconds:
            return
        if await adminauth.still_admin(self.server, principal):
            self._admins_checked[principal] = now
            return
        self._admins_checked.pop(principal, None)
        self.sessions.delete_principal(self.kind, principal)
        self._set_cookie(call.request, SESSION_COOKIE, b"", expire=True)
        raise bad_auth("no longer a member of the admin group: log in again")

    def _end_account_sessions(self, account: str) -> None:
        self.sessions.delete_principal("account", account)

    @api
    async def Whoami(self, call: Call) -> str:
        """The administrator logged in: "admin" (the admin password) or a directory login."""
        assert call.principal is not None
        return call.principal

    # --- domains --------------------------------------------------------------------------

    @api
    async def Domains(self, call: Call) -> list[domains.DomainInfo]:
        """Every domain, by name."""
        return domains.list_domains(self.server, domains.ListDomains())

    @api
    async def DomainAdd(self, call: Call, domain: str, separator: str) -> domains.DomainAdded:
        """Adds a domain and creates its DKIM keys; returns the TXT records to publish."""
        result: domains.DomainAdded = await _in_thread(
            self.server, domains.add, self.server, domains.AddDomain(domain=domain, separator=separator)
        )
        return result

    @api
    async def DomainRemove(self, call: Call, domain: str) -> None:
        """Removes a domain; refused while an account, address or alias uses it (the message says which)."""
        await _in_thread(self.server, domains.remove, self.server, domains.DomainName(domain=domain))

    @api
    async def DomainSetSeparator(self, call: Call, domain: str, separator: str) -> domains.DomainInfo:
        """The localpart catchall separator ("+": user+tag@ reaches user@; "": none)."""
        req = domains.SetSeparator(domain=domain, separator=separator)
        info: domains.DomainInfo = await _in_thread(self.server, domains.set_separator, self.server, req)
        return info

    @api
    async def Domain(self, call: Call, domain: str) -> domains.DomainInfo:
        """One domain's settings and the MTA-STS policy served for it (with the id of its `_mta-sts` record)."""
        return domains.show(self.server, domains.DomainName(domain=domain))

    @api
    async def DomainSettingsSave(self, call: Call, settings: domains.SetDomainSettings) -> domains.DomainInfo:
        """Changes the settings given (null: unchanged): catchall separator, DMARC and TLS reporting
        addresses ("": none; a local one must reach an account), MTA-STS mode ("": the server's
        default) and max_age (0: the server's default)."""
        return await domains.set_settings(self.server, settings)

    @api
    async def DomainReports(self, call: Call, domain: str, limit: int) -> reports.DomainReports:
        """The latest DMARC aggregate and TLS reports received about the domain (summaries, at
        most `limit` (1-100) of each kind), with totals."""
        return reports.domain_reports(self.server, reports.ReportsRequest(domain=domain, limit=limit))

    @api
    async def DomainDKIMRecords(self, call: Call, domain: str) -> list[DKIMRecord]:
        """The DKIM TXT records of the domain's selectors, as they should be published."""
        config = self.server.dynamic.current.domains.get(domain.lower())
        if config is None:
            raise NotFound(f"no such domain: {domain}")

        def records() -> list[DKIMRecord]:
            out = []
            for selector in config.dkim_selectors:
                name = f"{selector}._domainkey.{config.name.ascii}"
                out.append(
                    DKIMRecord(selector, name, public_record(self.server.config.data_dir, config.name.ascii, selector))
                )
            return out

        result: list[DKIMRecord] = await _in_thread(self.server, records)
        return result

    @api
    async def DomainCheck(self, call: Call, domain: str) -> dnscheck.DomainCheck:
        """Looks up and judges the domain's DNS records (MX, SPF, DKIM, DMARC, MTA-STS, TLSRPT,
        SRV, autoconfig, reverse DNS, certificate names) with the records to publish."""
        return await dnscheck.check_domain(self.server, dnscheck.CheckDomain(domain=domain))

    # --- accounts -------------------------------------------------------------------------

    @api
    async def Accounts(self, call: Call, search: str, after: str, limit: int) -> accounts.AccountPage:
        """One page of accounts by name whose name or an address contains `search`; `after`
        is the previous page's `next` ("" for the first page)."""
        return accounts.search(self.server, accounts.SearchAccounts(search=search, after=after, limit=limit))

    @api
    async def Account(self, call: Call, account: str) -> accountself.Overview:
        """One account: addresses, aliases, quota and usage, keep periods, fromid addresses."""
        return await accountself.overview(self.server, account)

    @api
    async def AccountAdd(self, call: Call, account: str, address: str, fullName: str) -> AccountCreated:
        """Creates an account with a generated password, returned once."""
        password = secrets.token_urlsafe(GENERATED_PASSWORD_BYTES)
        added = await accounts.add(
            self.server, accounts.AddAccount(account=account, address=address, password=password, full_name=fullName)
        )
        return AccountCreated(account=added.account, address=added.address, password=password)

    @api
    async def AccountRemoveConsequences(self, call: Call, account: str) -> accounts.RemovalConsequences:
        """What removing the account would do (say it before AccountRemove)."""
        return await accounts.removal_consequences(self.server, accounts.AccountName(account=account))

    @api
    async def AccountRemove(self, call: Call, account: str) -> None:
        """Removes the account, its password and client keys, and ends its sessions; its mail
        stays on disk."""
        await _in_thread(self.server, accounts.remove, self.server, accounts.AccountName(account=account))
        self._end_account_sessions(account)

    @api
    async def AccountSetDisabled(self, call: Call, account: str, disabled: bool) -> accounts.AccountInfo:
        """Disables (no logins, its sessions end; mail is still delivered) or enables the account."""
        info: accounts.AccountInfo = await _in_thread(
            self.server, accounts.set_disabled, self.server, accounts.SetDisabled(account=account, disabled=disabled)
        )
        if disabled:
            self._end_account_sessions(account)
        return info

    @api
    async def AccountSetPassword(self, call: Call, account: str, password: str) -> None:
        """Sets the account's password and ends its web sessions."""
        await accounts.set_password(self.server, accounts.SetPassword(account=account, password=password))
        self._end_account_sessions(account)

    @api
    async def AccountSetQuota(self, call: Call, account: str, quota: int | None) -> int | None:
        """Sets the quota in octets (0: no limit; null: the configured default); returns the
        limit now in force (null: none)."""
        done: accounts.Quota = await _in_thread(
            self.server, accounts.set_quota, self.server, accounts.SetQuota(account=account, quota=quota)
        )
        return done.quota

    @api
    async def AccountAddressAdd(self, call: Call, account: str, address: str) -> accounts.AccountInfo:
        """Adds an address (in a local domain, not used by another account or alias)."""
        req = accounts.AccountAddress(account=account, address=address)
        info: accounts.AccountInfo = await _in_thread(self.server, accounts.add_address, self.server, req)
        return info

    @api
    async def AccountAddressRemove(self, call: Call, account: str, address: str) -> accounts.AccountInfo:
        """Removes an address (never the last one)."""
        req = accounts.AccountAddress(account=account, address=address)
        info: accounts.AccountInfo = await _in_thread(self.server, accounts.remove_address, self.server, req)
        return info

    @api
    async def AccountFromIDAddressesSave(self, call: Call, account: str, addresses: list[str]) -> list[str]:
        """Login addresses whose submissions get a unique MAIL FROM per recipient (fromid)."""
        saved: list[str] = await _in_thread(
            self.server, accountself.set_fromid_login_addresses, self.server, account, addresses
        )
        return saved

    @api
    async def AccountKeepRetiredSave(self, call: Call, account: str, seconds: int) -> int:
        """How long finished outgoing messages stay in the retired list (0: not kept)."""
        if not 0 <= seconds <= 10 * 365 * 86400:
            raise InvalidInput("seconds: 0 to ten years", "seconds")
        done: ops_queue.KeepPeriod = await _in_thread(
            self.server, ops_queue.keep, self.server, ops_queue.Keep(account=account, keep=str(seconds))
        )
        return done.retired_keep

    @api
    async def AccountTLSPublicKeys(self, call: Call, account: str) -> list[KeyInfo]:
        """The client-certificate public keys registered for the account."""
        if self.server.dynamic.account_by_name(account) is None:
            raise NotFound(f"no such account: {account}")
        return tlspubkeys.list_keys(self.server, tlspubkeys.ListKeys(account=account))

    @api
    async def TLSPublicKeyRemove(self, call: Call, fingerprint: str) -> None:
        """Removes a registered key; connections presenting it no longer log in."""
        tlspubkeys.remove(self.server, tlspubkeys.Fingerprint(fingerprint=fingerprint))

    # --- aliases --------------------------------------------------------------------------

    @api
    async def Aliases(self, call: Call) -> list[AliasInfo]:
        return aliases.list_aliases(self.server, aliases.ListAliases())

    @api
    async def AliasAdd(self, call: Call, alias: str, members: list[str], settings: AliasSettings) -> AliasInfo:
        """Creates an alias (a list); members must be addresses of accounts."""
        req = aliases.AddAlias(
            alias=alias,
            members=members,
            post_public=settings.postPublic,
            list_members=settings.listMembers,
            allow_msg_from=settings.allowMsgFrom,
        )
        info: AliasInfo = await _in_thread(self.server, aliases.add, self.server, req)
        return info

    @api
    async def AliasRemove(self, call: Call, alias: str) -> None:
        await _in_thread(self.server, aliases.remove, self.server, aliases.AliasAddress(alias=alias))

    @api
    async def AliasMemberAdd(self, call: Call, alias: str, member: str) -> AliasInfo:
        """Adds a member; refused for an address that is not an account's."""
        req = aliases.AliasMember(alias=alias, member=member)
        info: AliasInfo = await _in_thread(self.server, aliases.add_member, self.server, req)
        return info

    @api
    async def AliasMemberRemove(self, call: Call, alias: str, member: str) -> AliasInfo:
        req = aliases.AliasMember(alias=alias, member=member)
        info: AliasInfo = await _in_thread(self.server, aliases.remove_member, self.server, req)
        return info

    @api
    async def AliasSettingsSave(self, call: Call, alias: str, settings: AliasSettings) -> AliasInfo:
        """PostPublic (anyone may send to it), ListMembers (members see the list), AllowMsgFrom
        (members may send as the alias)."""
        req = aliases.SetAliasOptions(
            alias=alias,
            post_public=settings.postPublic,
            list_members=settings.listMembers,
            allow_msg_from=settings.allowMsgFrom,
        )
        info: AliasInfo = await _in_thread(self.server, aliases.set_options, self.server, req)
        return info

    # --- the queue ------------------------------------------------------------------------

    @api
    async def QueueList(self, call: Call, query: ops_queue.ListMessages) -> QueuePage:
        """One keyset page of queued messages: filters, sort, `after` = the previous page's `next`."""
        return await ops_queue.list_queue(self.server, query)

    @api
    async def QueueHistory(self, call: Call, id: int) -> ops_queue.History:
        """A queued or retired message with every delivery attempt."""
        return await ops_queue.history(self.server, ops_queue.MessageId(id=id))

    @api
    async def QueueHold(self, call: Call, selection: ops_queue.Selection) -> int:
        """Holds the matching messages (ids, or every message matching the filter); how many changed."""
        return (await ops_queue.hold(self.server, selection)).count

    @api
    async def QueueRelease(self, call: Call, selection: ops_queue.Selection) -> int:
        return (await ops_queue.release(self.server, selection)).count

    @api
    async def QueueRetry(self, call: Call, selection: ops_queue.Selection) -> int:
        """Makes the queued recipients due now; how many recipients."""
        return (await ops_queue.retry(self.server, selection)).count

    @api
    async def QueueNextAttempt(self, call: Call, request: ops_queue.SetNextAttempt) -> int:
        """Sets the next attempt (Unix time) of the matching queued recipients; how many."""
        return (await ops_queue.set_next_attempt(self.server, request)).count

    @api
    async def QueueRequireTLS(self, call: Call, request: ops_queue.SetRequireTLS) -> int:
        """Requires verified TLS on every hop (RFC 8689) for the matching messages, or not."""
        return (await ops_queue.set_requiretls(self.server, request)).count

    @api
    async def QueueSetTransport(self, call: Call, request: ops_queue.SetTransport) -> int:
        """The matching queued recipients use transport `to` from their next attempt on ("routes":
        the routes choose again); how many recipients."""
        return (await ops_queue.set_transport(self.server, request)).count

    @api
    async def Transports(self, call: Call) -> list[ops_queue.TransportInfo]:
        """The configured transports (mailsrv.toml), `direct` first."""
        return ops_queue.transports(self.server, ops_queue.ListTransports())

    @api
    async def QueueDrop(self, call: Call, request: ops_queue.Drop) -> int:
        """Removes the matching messages (a filter or `all` is needed): silently, or with `dsn`
        failing their recipients so the senders get a DSN."""
        return (await ops_queue.drop(self.server, request)).count

    @api
    async def HoldRules(self, call: Call) -> list[HoldRule]:
        return await ops_queue.hold_rules(self.server, ops_queue.ListHoldRules())

    @api
    async def HoldRuleAdd(self, call: Call, rule: ops_queue.NewHoldRule) -> HoldRule:
        """Messages matching every non-empty field are held when queued (all empty: every message)."""
        return await ops_queue.add_hold_rule(self.server, rule)

    @api
    async def HoldRuleRemove(self, call: Call, id: int) -> None:
        await ops_queue.remove_hold_rule(self.server, ops_queue.HoldRuleId(id=id))

    @api
    async def RetiredList(self, call: Call, query: ops_queue.ListMessages) -> QueuePage:
        """One keyset page of retired messages (finished, kept for their account's period)."""
        return await ops_queue.list_retired(self.server, query)

    @api
    async def RetiredPurge(self, call: Call, selection: ops_queue.Selection) -> int:
        """Forgets retired messages: past their keep period, or every one matching a filter."""
        return (await ops_queue.purge(self.server, selection)).count

    # --- webhooks (mailsrv/webhooks/) -------------------------------------------------------

    @api
    async def WebhookQueue(self, call: Call, query: webhooks.ListHooks) -> HookPage:
        """Webhooks still to call, oldest first; `after` = the previous page's `next`."""
        return webhooks.list_queue(self.server, query)

    @api
    async def WebhookRetired(self, call: Call, query: webhooks.ListHooks) -> HookPage:
        """Finished webhooks (delivered, failed, dropped, ...), newest first."""
        return webhooks.list_retired(self.server, query)

    @api
    async def WebhookRetry(self, call: Call, selection: webhooks.HookSelection) -> int:
        """Makes the matching queued webhooks due now (ids, an account, or all); how many."""
        return (await webhooks.retry(self.server, selection)).count

    @api
    async def WebhookDrop(self, call: Call, selection: webhooks.HookSelection) -> int:
        """Retires the matching queued webhooks without calling them again; how many."""
        return (await webhooks.drop(self.server, selection)).count

    @api
    async def AccountWebhookKeepRetiredSave(self, call: Call, account: str, seconds: int) -> int:
        """How long the account's finished webhooks stay in the retired list (0: not kept)."""
        if not 0 <= seconds <= 10 * 365 * 86400:
            raise InvalidInput("seconds: 0 to ten years", "seconds")
        settings = await webhooks.keep(self.server, webhooks.Keep(account=account, keep=str(seconds)))
        return settings.retired_keep

    # --- the server -----------------------------------------------------------------------

    @api
    async def ServerListeners(self, call: Call) -> serverinfo.Listeners:
        """Listeners and TLS certificates (names, validity)."""
        result: serverinfo.Listeners = await _in_thread(
            self.server, serverinfo.listeners, self.server, serverinfo.Empty()
        )
        return result

    @api
    async def ServerConfig(self, call: Call) -> serverinfo.ConfigView:
        """The static configuration as loaded, secrets hidden."""
        return serverinfo.configuration(self.server, serverinfo.Empty())

    @api
    async def ServerErrors(self, call: Call, limit: int) -> list[serverinfo.LogEntry]:
        """The last warnings and errors logged, newest first."""
        return serverinfo.recent_errors(self.server, serverinfo.RecentErrorsRequest(limit=limit))

    @api
    async def ServerCounts(self, call: Call) -> serverinfo.Counts:
        return await serverinfo.counts(self.server, serverinfo.Empty())
